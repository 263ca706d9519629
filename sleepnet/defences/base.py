"""The interface of a baseline defence: a control network in, a defended network out."""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from dataclasses import replace

import torch
from torch import nn

from ..data import Dataset
from ..training import Recipe, accuracy, get_recipe

DEFENCES: dict[str, type[Defence]] = {}


def register(name: str, **defaults):
    """Register ``cls`` under ``name``; ``defaults`` are its constructor arguments for that name."""

    def wrap(cls):
        DEFENCES[name] = lambda **kw: cls(name=name, **(defaults | kw))
        return cls

    return wrap


class Defence(ABC):
    def __init__(self, name: str, **params) -> None:
        self.name = name
        self.params = params

    def recipe_of(self, record: dict) -> Recipe:
        rec = dict(record.get("recipe") or {})
        base = get_recipe(rec.get("name", "paper"))
        fields = {k: (tuple(v) if k == "sizes" else v) for k, v in rec.items() if k in base.__dict__}
        return replace(base, **fields)

    def copy_of(self, control: nn.Sequential) -> nn.Sequential:
        model = copy.deepcopy(control)
        model.train()
        return model

    @abstractmethod
    def train(self, control: nn.Sequential, recipe: Recipe, data: Dataset,
              seed: int) -> tuple[nn.Sequential, str]:  # fmt: skip
        """The defended model and the loss its attacks should use."""

    def apply(self, control: nn.Sequential, record: dict, data: Dataset, seed: int = 0):
        recipe = self.recipe_of(record)
        torch.manual_seed(seed)
        model, loss = self.train(control, recipe, data, seed)
        model.eval()
        rec = {
            "kind": "defence",
            "defence": {"name": self.name, **self.params},
            "recipe": recipe.to_dict() | {"loss": loss},
            "dataset": data.record(),
            "seed": seed,
            "metrics": {"test_accuracy": accuracy(model, data.x_test, data.y_test)},
        }
        return model, rec
