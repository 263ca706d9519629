"""The interface of a baseline defence: a control network in, a defended network out."""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from ..data import Dataset
from ..devices import model_device, resolve_device
from ..errors import SleepnetError
from ..registry import Registry
from ..training import Recipe, accuracy, get_recipe


class DefenceEntry:
    """A registered defence: ``cls`` under ``name`` with its parameters' defaults.

    Calling it makes the defence: ``DEFENCES["distillation"](epochs=10)``; a parameter the
    defence does not have is a ``SleepnetError`` naming the known ones.
    """

    __slots__ = ("name", "cls", "defaults")

    def __init__(self, name: str, cls: type[Defence], defaults: dict[str, Any]) -> None:
        self.name, self.cls, self.defaults = name, cls, dict(defaults)

    def check(self, params) -> None:
        """``SleepnetError`` for the first key of ``params`` this defence has no parameter for."""
        for key in params:
            if key not in self.defaults:
                known = ", ".join(self.defaults) or "none"
                raise SleepnetError(f"defence {self.name!r} has no parameter {key!r} (known: {known})")

    def __call__(self, **params) -> Defence:
        self.check(params)
        return self.cls(name=self.name, **(self.defaults | params))

    def __repr__(self) -> str:
        return f"DefenceEntry({self.name!r}, {self.cls.__name__}, {self.defaults!r})"


DEFENCES: Registry[DefenceEntry] = Registry("defence")


def register(name: str, **defaults):
    """Register ``cls`` under ``name``; ``defaults`` are its constructor arguments for that name
    (and the only parameters it accepts)."""

    def wrap(cls):
        """Add ``cls`` to ``DEFENCES`` as a ``DefenceEntry`` and return ``cls`` unchanged."""
        DEFENCES.register(name, DefenceEntry(name, cls, defaults))
        return cls

    return wrap


class Defence(ABC):
    """A baseline defence with parameters ``params``; ``apply`` turns a control into a defended model."""

    def __init__(self, name: str, **params) -> None:
        self.name = name
        self.params = params

    def recipe_of(self, record: dict) -> Recipe:
        """The control's recipe: the one its record names (default ``paper``) with the record's fields."""
        rec = dict(record.get("recipe") or {})
        base = get_recipe(rec.get("name", "paper"))
        fields = {k: (tuple(v) if k in ("sizes", "channels", "noise_after") else v)
                  for k, v in rec.items() if k in base.__dict__}  # fmt: skip
        # a control trained with the saturation penalty or with noise: the other defences train
        # without them (the stochastic defence sets its own noise)
        fields["saturation"], fields["noise"], fields["noise_after"] = 0.0, "", ()
        return replace(base, **fields)

    def recipe_for(self, record: dict, data: Dataset) -> Recipe:
        """The recipe this defence trains with (recorded in its ``model.json``): the control's."""
        return self.recipe_of(record)

    def copy_of(self, control: nn.Sequential, device=None) -> nn.Sequential:
        """A deep copy of ``control`` on ``device``, in training mode (``control`` is left as it is)."""
        model = copy.deepcopy(control).to(resolve_device(device))
        model.train()
        return model

    @abstractmethod
    def train(self, control: nn.Sequential, recipe: Recipe, data: Dataset, seed: int,
              device) -> tuple[nn.Sequential, str]:  # fmt: skip
        """The defended model (on ``device``, a ``torch.device``) and the loss its attacks should use."""

    def apply(self, control: nn.Sequential, record: dict, data: Dataset, seed: int = 0, device=None):
        """Train the defence from ``control`` on ``device`` (default: the control's); returns the
        defended model, on ``device`` in evaluation mode, and its record. ``control`` stays on its
        own device."""
        device = model_device(control) if device is None else resolve_device(device)
        recipe = self.recipe_for(record, data)
        torch.manual_seed(seed)
        model, loss = self.train(control, recipe, data, seed, device)
        model.eval()
        rec = {
            "kind": "defence",
            "defence": {"name": self.name, **self.params},
            "recipe": recipe.to_dict() | {"loss": loss},
            "dataset": data.record(),
            "seed": seed,
            "metrics": {"test_accuracy": accuracy(model, data.x_test, data.y_test, device=device)},
        }
        return model, rec
