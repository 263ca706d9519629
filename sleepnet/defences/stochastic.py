"""The stochastic defence (Dapello et al. 2021): noise layers that stay on at test time
(``sleepnet.noise``, ``docs/stochastic.md``).

``noise`` is ``poisson:GAIN`` or ``gaussian:SIGMA``; ``after`` the hidden layers it follows
(from 1; empty: every hidden layer). ``train = true`` (the paper's way) trains a fresh
network of the control's recipe and seed with the noise on from the start; ``train = false``
adds the noise to the trained control as it is.
"""

from __future__ import annotations

from dataclasses import replace

from .. import noise
from ..errors import SleepnetError
from ..training import fit, init_model
from .base import Defence, register


@register("stochastic", noise="poisson:25", after=[], train=True)
class Stochastic(Defence):
    """The control's network with noise layers, trained with them or not (module docstring)."""

    def __init__(self, name: str, **params) -> None:
        noise.parse(params["noise"])
        noise.check_places(params["after"])
        if not isinstance(params["train"], bool):
            raise SleepnetError(f"train must be true or false, got {params['train']!r}")
        super().__init__(name, **params)

    def recipe_for(self, record, data):
        """The control's recipe with the noise."""
        recipe = replace(self.recipe_of(record), noise=str(self.params["noise"]),
                         noise_after=tuple(self.params["after"]))  # fmt: skip
        recipe.validate()
        return recipe

    def train(self, control, recipe, data, seed, device):
        """See ``Defence.train``: a fresh noisy network trained (``train``), or the control with noise."""
        if self.params["train"]:
            model = init_model(recipe, seed, data.image_shape, data.frontend).to(device)
            fit(model, recipe, data.x_train, data.y_train, seed, device=device)
        else:
            model = noise.add_noise(self.copy_of(control, device), recipe.noise, recipe.noise_after, seed)
        return model, recipe.loss
