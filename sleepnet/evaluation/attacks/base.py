"""The small interface every attack implements.

An attack is constructed with the model under attack and the name of its loss
(the model's own training loss, ``sleepnet.losses``); ``run(x, y)`` returns a
dict of JSON-able results. The model is attacked in evaluation mode.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
import torch
from torch import nn

from ...losses import loss_fn

ATTACKS: dict[str, type[Attack]] = {}


def register(cls):
    ATTACKS[cls.name] = cls
    return cls


class Attack(ABC):
    name = "abstract"

    def __init__(self, model: nn.Sequential, loss: str, batch_size: int = 2500) -> None:
        self.model = model.eval()
        self.loss = loss
        self.batch_size = batch_size

    def input_gradient(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """``d loss / d x`` per image (summed loss, so a batch does not scale it)."""
        grads = []
        for s in range(0, len(x), self.batch_size):
            xb = torch.tensor(x[s : s + self.batch_size], requires_grad=True)
            yb = torch.as_tensor(y[s : s + self.batch_size])
            loss = loss_fn(self.loss, self.model, xb, yb, reduction="sum")
            (g,) = torch.autograd.grad(loss, xb)
            grads.append(g.numpy())
        return np.concatenate(grads)

    @torch.no_grad()
    def predict(self, x: np.ndarray) -> np.ndarray:
        out = [self.model(torch.as_tensor(x[s : s + 5000])).argmax(1).numpy()
               for s in range(0, len(x), 5000)]  # fmt: skip
        return np.concatenate(out)

    @abstractmethod
    def run(self, x: np.ndarray, y: np.ndarray) -> dict:
        """Attack images ``x`` (float32 ``(N, n)`` in [0, 1]) with labels ``y``."""
