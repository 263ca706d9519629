"""The one registry type: register, lazy entries, listing, errors that name the known entries."""

import pytest

from sleepnet.errors import SleepnetError
from sleepnet.registry import Registry, UnknownName


def test_register_directly_and_by_decorator_keeps_order():
    reg = Registry("widget")
    reg.register("b", 2)

    @reg.register("a")
    def a():
        return 1

    assert reg.names() == ("b", "a") and list(reg) == ["b", "a"] and len(reg) == 2
    assert reg.get("b") == 2 and reg["a"] is a and "a" in reg and "c" not in reg


def test_lazy_entry_imports_on_first_get_and_keeps_its_place():
    reg = Registry("thing")
    reg.register_lazy("dumps", "json:dumps")
    reg.register("x", 1)
    assert reg.names() == ("dumps", "x")
    import json

    assert reg.get("dumps") is json.dumps
    assert reg.names() == ("dumps", "x")


def test_unknown_name_is_one_clear_error():
    reg = Registry("attack")
    reg.register("fgsm", 1)
    reg.register("pgd", 2)
    with pytest.raises(UnknownName, match=r"^unknown attack 'pdg' \(known: fgsm, pgd\)$") as info:
        reg.get("pdg")
    assert isinstance(info.value, SleepnetError) and isinstance(info.value, ValueError)
    with pytest.raises(UnknownName, match=r"\(known: none\)"):
        Registry("empty").get("x")


def test_a_lazy_entry_whose_import_fails_stays_registered():
    reg = Registry("backend")
    reg.register_lazy("missing", "sleepnet_no_such_module:Thing")
    for _ in range(2):  # the second get says the same, not "unknown backend"
        with pytest.raises(ModuleNotFoundError, match="sleepnet_no_such_module"):
            reg.get("missing")
    assert reg.names() == ("missing",)


def test_a_name_registers_once():
    reg = Registry("preset")
    reg.register("a", 1)
    with pytest.raises(ValueError, match="preset 'a' is already registered"):
        reg.register("a", 2)
    with pytest.raises(ValueError, match="already registered"):
        reg.register_lazy("a", "json:dumps")
    with pytest.raises(ValueError, match="module:attribute"):
        reg.register_lazy("b", "json.dumps")
