"""The saturation defence (Nayebi & Ganguli 2017): a network trained from scratch with the
saturation penalty (``sleepnet.saturation``, ``docs/saturation.md``).

By default the control's recipe, seed and so initial weights, so only the loss differs, by
``lam * schedule(t) *`` the penalty on every layer's pre-activation, the readout's
included. ``recipe`` names another recipe (``relu-mlp``, ``sigmoid-mlp``, ``cnn``) to train
that network instead, its layer sizes fitted to the data; with ``lam = 0`` that is the
plain network of the recipe, the penalty's own control. ``epochs`` (default: the recipe's)
allows the longer training a strong penalty needs.
"""

from __future__ import annotations

from dataclasses import replace

from ..errors import SleepnetError
from ..saturation import Schedule, check_lambda
from ..training import RECIPES, fit, get_recipe, init_model
from .base import Defence, register


@register("saturation", lam=1e-2, schedule="linear:0.5", epochs=None, recipe=None)
class Saturation(Defence):
    """A network of the control's recipe (or ``recipe``) trained with the saturation penalty."""

    def __init__(self, name: str, **params) -> None:
        check_lambda(params["lam"])
        if not isinstance(params["schedule"], str):
            raise SleepnetError(f"schedule must be a string, got {params['schedule']!r}")
        Schedule.parse(params["schedule"])
        if params["recipe"] is not None:
            RECIPES.get(params["recipe"])
        epochs = params["epochs"]
        if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1):
            raise SleepnetError(f"epochs must be a positive integer, got {params['epochs']!r}")
        super().__init__(name, **params)

    def recipe_for(self, record, data):
        """The control's recipe (or ``recipe``, sized to ``data``) with the penalty and ``epochs``."""
        p = self.params
        base = self.recipe_of(record)
        if p["recipe"] is not None:
            base = get_recipe(p["recipe"])
            base = replace(base, sizes=(data.n_features, *base.sizes[1:-1], data.n_classes))
        recipe = replace(base, saturation=float(p["lam"]), schedule=str(p["schedule"]),
                         epochs=int(p["epochs"] or base.epochs))  # fmt: skip
        recipe.validate()
        return recipe

    def train(self, control, recipe, data, seed, device):
        """See ``Defence.train``: a fresh network of ``recipe`` (seed ``seed``) trained with the penalty."""
        model = init_model(recipe, seed, data.image_shape, data.frontend).to(device)
        fit(model, recipe, data.x_train, data.y_train, seed, device=device)
        return model, recipe.loss
