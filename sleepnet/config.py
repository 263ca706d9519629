"""Sleep configuration: a frozen dataclass, TOML presets and ``key=value`` overrides.

Parameter names keep the paper's names (``max_rate``, ``inc``, ``dec``,
``beta``, ``alpha_scale``, ``T``, ``dt``, ``decay``, ``threshold``); the
reference's ``W_inh``, ``DC`` and ``normW`` are spelled ``w_inh``, ``dc`` and
``norm_w`` here (the reference spellings are accepted as aliases).

Every key carries its help line and its allowed values (a ``Rule``) as field
metadata: ``SleepConfig.validate`` checks the rules, and ``config_keys()`` lists
them for ``sleepnet sleep --help`` and ``sleepnet presets --keys``, so the two
cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple

from .errors import SleepnetError, UsageError
from .registry import Registry

INPUT_MODES = ("sequential", "mean", "masked-mean")
ALIASES = {"W_inh": "w_inh", "DC": "dc", "normW": "norm_w", "alpha": "alpha_scale"}


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _anything(value: Any) -> bool:
    return True


@dataclass(frozen=True)
class Rule:
    """The values one key allows: ``text`` as help shows it, ``ok`` to check, ``message`` if not.

    ``message`` is formatted with ``key`` and ``value``; an ``integer`` rule first
    refuses anything but an int ("T must be an integer, got 2.5").
    """

    text: str
    ok: Callable[[Any], bool] = _anything
    message: str = ""
    integer: bool = False

    def check(self, key: str, value: Any) -> None:
        """Raise ``SleepnetError`` if ``value`` of ``key`` breaks the rule."""
        if self.integer and (not isinstance(value, int) or isinstance(value, bool)):
            raise SleepnetError(f"{key} must be an integer, got {value!r}")
        if not self.ok(value):
            raise SleepnetError(self.message.format(key=key, value=value))


POSITIVE = Rule("> 0", lambda v: _finite(v) and v > 0, "{key} must be a positive number, got {value!r}")
NON_NEGATIVE = Rule(">= 0", lambda v: _finite(v) and v >= 0,
                    "{key} must be a non-negative number, got {value!r}")  # fmt: skip
NUMBER = Rule("any number", _finite, "{key} must be a number, got {value!r}")
UNIT_INTERVAL = Rule("(0, 1]", lambda v: _finite(v) and 0 < v <= 1, "{key} must be in (0, 1], got {value!r}")
BETA = Rule("each > 0, one per weight layer", lambda v: bool(v) and all(_finite(b) and b > 0 for b in v),
            "{key} must be positive numbers, one per weight layer, got {value}")  # fmt: skip
STEPS = Rule("> 0", lambda v: v > 0, "{key} must be a positive number of steps, got {value}",
             integer=True)  # fmt: skip
SIZE = Rule("> 0", lambda v: v > 0, "chunk and window must be positive", integer=True)
COUNT = Rule(">= 0", lambda v: v >= 0,
             "raster_start, raster_steps, snapshot_every and seed must be >= 0", integer=True)  # fmt: skip
MODE = Rule(", ".join(INPUT_MODES), lambda v: v in INPUT_MODES,
            f"{{key}} must be one of {', '.join(INPUT_MODES)}, got {{value!r}}")  # fmt: skip
PERCENTILE = Rule("(0, 100]; unset: the max", lambda v: v is None or (_finite(v) and 0 < v <= 100),
                  "{key} must be in (0, 100], got {value}")  # fmt: skip
FLAG = Rule("true, false", lambda v: isinstance(v, bool), "{key} must be true or false, got {value!r}")
TEXT = Rule("any text", lambda v: isinstance(v, str), "{key} must be text, got {value!r}")
SHAPE = Rule("[height, width]; unset: square",
             lambda v: v is None or (isinstance(v, tuple) and len(v) == 2 and all(n > 0 for n in v)),
             "{key} must be two positive integers [height, width], got {value!r}")  # fmt: skip


def _key(help: str, rule: Rule, default: Any = dataclasses.MISSING, **kw: Any) -> Any:
    """A config field with its help line and its rule (``sleepnet presets --keys``)."""
    return field(default=default, metadata={"help": help, "rule": rule}, **kw)


@dataclass(frozen=True)
class SleepConfig:
    """Everything that defines one sleep phase (``docs/algorithm.md`` §3-5).

    Units: ``dt`` in seconds, ``max_rate`` in Hz, ``T`` in steps.
    """

    max_rate: float = _key("input Poisson rate (Hz)", POSITIVE)
    inc: float = _key("potentiation rate", NON_NEGATIVE)
    dec: float = _key("depression rate", NON_NEGATIVE)
    beta: tuple[float, ...] = _key("per-layer threshold scale", BETA)
    alpha_scale: float = _key("input gain scale: alpha_l = alpha_scale * factor_l", POSITIVE)
    T: int = _key("number of steps", STEPS)
    dt: float = _key("step (s)", POSITIVE, 0.001)
    threshold: float = _key("base threshold; layer l fires at threshold * beta_l", POSITIVE, 1.0)
    decay: float = _key("membrane decay per step", UNIT_INTERVAL, 0.999)
    w_inh: float = _key("lateral inhibition (W_inh)", NON_NEGATIVE, 0.0)
    dc: float = _key("constant current into the last layer (DC)", NUMBER, 0.0)
    norm_w: bool = _key("post-sleep per-column renormalisation (normW)", FLAG, False)
    gamma: float = _key("scale of the norm_w renormalisation", POSITIVE, 1.0)
    input_mode: str = _key("how images become spikes (sequential: image t at step t)", MODE, "sequential")
    cycle: bool = _key("sequential input wraps around when T exceeds the data", FLAG, False)
    silent_gaps: bool = _key("no input in the first 10 steps of every 100", FLAG, False)
    window: int = _key("masked-mean: side of the square window (pixels)", SIZE, 11)
    image_shape: tuple[int, int] | None = _key("masked-mean: image shape if not square", SHAPE, None)
    percentile: float | None = _key("scale factors from this activation percentile", PERCENTILE, None)
    seed: int = _key("seed of every random draw of the run", COUNT, 0)
    chunk: int = _key("input spikes are drawn and simulated this many steps at a time", SIZE, 1000)
    raster_start: int = _key("first step of the recorded spike raster", COUNT, 0)
    raster_steps: int = _key("steps of the recorded spike raster", COUNT, 1000)
    snapshot_every: int = _key("weight snapshots every k steps (0: none)", COUNT, 0)
    name: str = _key("the config's name", TEXT, "custom")
    description: str = _key("one line about the config", TEXT, "", compare=False)

    def __post_init__(self) -> None:
        beta = self.beta
        if isinstance(beta, (int, float)):
            beta = (beta,)
        try:
            if isinstance(beta, (str, bool)) or any(isinstance(b, (str, bool)) for b in beta):
                raise TypeError
            object.__setattr__(self, "beta", tuple(float(b) for b in beta))
        except (TypeError, ValueError):
            raise SleepnetError(f"beta must be a list of numbers, got {self.beta!r}") from None
        shape = self.image_shape
        if shape is not None:
            if isinstance(shape, str) or not hasattr(shape, "__iter__") or not all(
                    isinstance(n, int) and not isinstance(n, bool) for n in shape):  # fmt: skip
                raise SleepnetError(f"image_shape must be two positive integers [height, width], "
                                    f"got {shape!r}")  # fmt: skip
            object.__setattr__(self, "image_shape", tuple(shape))
        self.validate()

    def validate(self) -> None:
        """Each key against its rule, in field order; the first bad one raises ``SleepnetError``."""
        for f in dataclasses.fields(self):
            f.metadata["rule"].check(f.name, getattr(self, f.name))

    def replace(self, **changes: Any) -> SleepConfig:
        """A copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Every key and its value, tuples as lists (``beta``, ``image_shape``); unset keys are None."""
        d = dataclasses.asdict(self)
        d["beta"] = list(self.beta)
        if self.image_shape is not None:
            d["image_shape"] = list(self.image_shape)
        return d

    def alpha(self, factors) -> list[float]:
        """Per-layer input gain ``alpha_l = alpha_scale * factor_l``."""
        return [self.alpha_scale * float(f) for f in factors]


_FIELDS = {f.name: f for f in dataclasses.fields(SleepConfig)}

_TYPES = {"float": "float", "int": "int", "bool": "bool", "str": "string",
          "tuple[float, ...]": "list of floats", "tuple[int, int] | None": "[int, int]",
          "float | None": "float"}  # fmt: skip


class ConfigKey(NamedTuple):
    """One row of ``sleepnet presets --keys``: everything shown as text."""

    name: str
    type: str
    default: str
    range: str
    help: str


def config_keys() -> list[ConfigKey]:
    """Every ``SleepConfig`` key with its type, default (``preset``: no default), range and help.

    The range is the text of the rule ``SleepConfig.validate`` checks.
    """
    rows = []
    for name, f in _FIELDS.items():
        if f.default is dataclasses.MISSING:
            default = "preset"
        else:
            default = "unset" if f.default is None else toml_value(f.default)
        rows.append(ConfigKey(name, _TYPES.get(str(f.type), str(f.type)), default,
                              f.metadata["rule"].text, f.metadata["help"]))  # fmt: skip
    return rows


def from_mapping(values: dict[str, Any], source: str = "config") -> SleepConfig:
    """Build a config from a flat mapping, with a clear error for unknown or missing keys."""
    clean: dict[str, Any] = {}
    for key, val in values.items():
        key = ALIASES.get(key, key)
        if key not in _FIELDS:
            raise SleepnetError(f"{source}: unknown key {key!r} (known: {', '.join(_FIELDS)})")
        clean[key] = val
    missing = [
        name for name, f in _FIELDS.items()
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        and name not in clean
    ]  # fmt: skip
    if missing:
        raise SleepnetError(f"{source}: missing keys {', '.join(missing)}")
    try:
        return SleepConfig(**clean)
    except TypeError as exc:
        raise SleepnetError(f"{source}: {exc}") from None


def _published_presets() -> Registry:
    """Every ``experiments/presets/<name>.toml`` (installed as ``sleepnet.presets``), by name."""
    reg = Registry("preset")
    folder = resources.files("sleepnet.presets")
    for p in sorted(folder.iterdir(), key=lambda p: p.name):
        if p.name.endswith(".toml"):
            reg.register(p.name[:-5], p)
    return reg


#: the presets: name -> TOML file (a path or package resource); ``PRESETS.register`` adds one
PRESETS: Registry = _published_presets()


def preset_names() -> list[str]:
    """The names of the registered presets, sorted."""
    return sorted(PRESETS.names())


def _read_toml(text: str, source: str) -> dict[str, Any]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SleepnetError(f"{source} is not valid TOML ({exc})") from None
    sleep_table = data.get("sleep", {})
    if not isinstance(sleep_table, dict):
        raise SleepnetError(f"{source}: [sleep] must be a table")
    top = {k: v for k, v in data.items() if k != "sleep"}
    return top | sleep_table


def load_preset(name: str) -> SleepConfig:
    """One of the published presets (``experiments/presets/<name>.toml``)."""
    text = PRESETS.get(name).read_text()
    values = _read_toml(text, f"preset {name}")
    values.setdefault("name", name)
    return from_mapping(values, f"preset {name}")


def load_config(path: str | Path, base: SleepConfig | None = None) -> SleepConfig:
    """A TOML config file (keys at top level or under ``[sleep]``), over ``base`` if given.

    A file may also name ``preset = "..."`` to start from a preset.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise SleepnetError(f"config file {path} does not exist") from None
    values = dict(_read_toml(text, str(path)))
    preset = values.pop("preset", None)
    if preset is not None:
        try:
            base = load_preset(preset)
        except SleepnetError as exc:  # the file's error, not the command line's
            raise SleepnetError(f"{path}: {exc}") from None
    merged = base.to_dict() if base is not None else {}
    merged.update(values)
    return from_mapping(merged, str(path))


def toml_value(value: Any) -> str:
    """``value`` as a TOML literal."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return repr(value)  # ints, and floats as the shortest string that reads back to the same double


def config_to_toml(config: SleepConfig, header: str = "") -> str:
    """A ``[sleep]`` TOML file that ``load_config`` reads back to an equal config, float for float."""
    lines = [f"# {line}" for line in header.splitlines()] + ["[sleep]"]
    for key, value in config.to_dict().items():
        if value is None:
            continue  # TOML has no null; None is the default of every optional key
        lines.append(f"{key} = {toml_value(value)}")
    return "\n".join(lines) + "\n"


def parse_override(item: str) -> tuple[str, Any]:
    """``key=value`` with a TOML value (``beta=[1, 2, 3]``, ``norm_w=true``; bare words are strings).

    A bare word stays a string (``input_mode=mean``); a key that wants a boolean then refuses
    it, so ``norm_w=False`` is an error (TOML spells it ``false``), never a truthy string.
    """
    if "=" not in item:
        raise UsageError(f"--set expects key=value, got {item!r}")
    key, raw = (s.strip() for s in item.split("=", 1))
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return ALIASES.get(key, key), value


def apply_overrides(config: SleepConfig, items: list[str]) -> SleepConfig:
    """``config`` with ``key=value`` items (``--set``) applied, in order, and validated again.

    Parameters
    ----------
    config : SleepConfig
        The config to start from.
    items : list of str
        ``key=value`` strings (see ``parse_override``); an integral float for ``T``, ``seed`` or
        ``chunk`` becomes an int.

    Returns
    -------
    SleepConfig
        A new config; ``SleepnetError`` for an unknown key or a value its rule refuses.
    """
    values = config.to_dict()
    for item in items:
        key, value = parse_override(item)
        if key not in _FIELDS:
            raise UsageError(f"--set: unknown key {key!r} (known: {', '.join(_FIELDS)})")
        if key in ("T", "seed", "chunk") and isinstance(value, float) and value.is_integer():
            value = int(value)
        values[key] = value
    try:
        return from_mapping(values, "--set")
    except SleepnetError as exc:
        raise UsageError(str(exc)) from None
