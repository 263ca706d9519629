"""Adversarial training from the control network: FGSM (Goodfellow et al. 2015) or PGD (Madry et al. 2018).

Every training batch is replaced by its adversarial version under the model
being trained (L-inf, ``eps`` = 0.1 by default; PGD: 7 steps of ``eps / 4`` (0.025 at the
default) from a random start), for ``epochs`` more epochs with the control's recipe and loss.
One epoch by default: the control has already learnt the clean task, and PGD
training costs 8 forward-backward passes a batch: with 2 epochs, on one
thread beside two evaluation workers, it took over 5 minutes a seed of the
MNIST experiment, everything else a seed trains 6.5.
"""

from __future__ import annotations

from dataclasses import replace

from ..evaluation.attacks import PGD
from ..training import fit
from .base import Defence, register


@register("adv-fgsm", method="fgsm", eps=0.1, epochs=1)
@register("adv-pgd", method="pgd", eps=0.1, epochs=1)
class AdversarialTraining(Defence):
    """Adversarial training from the control, ``method`` ``fgsm`` or ``pgd`` (module docstring)."""

    def train(self, control, recipe, data, seed, device):
        """See ``Defence.train``; a copy of ``control`` trained ``epochs`` more on adversarial batches."""
        p = self.params
        model = self.copy_of(control, device)
        counter = iter(range(10**12))

        def perturb(m, xb, yb):
            """Batch ``xb`` made adversarial under ``m``: FGSM (one step of ``eps``) or PGD (7 x ``eps / 4``).

            PGD starts at a random point of the ball. Returns a tensor on ``xb``'s device, in [0, 1].
            """
            if p["method"] == "fgsm":
                attack = PGD(m, recipe.loss, eps=p["eps"], n_steps=1, step=p["eps"], random_start=False,
                             device=device)  # fmt: skip
            else:
                attack = PGD(m, recipe.loss, eps=p["eps"], n_steps=7, step=p["eps"] / 4,
                             seed=seed + next(counter), device=device)  # fmt: skip
            return attack(xb, yb)  # a tensor on xb's device

        fit(model, replace(recipe, epochs=int(p["epochs"])), data.x_train, data.y_train, seed,
            perturb=perturb, device=device)  # fmt: skip
        return model, recipe.loss
