"""DeepFool (Moosavi-Dezfooli et al. 2016), through ART, as the sleep paper runs it.

Up to 100 iterations; overshoot 1.05: the accumulated minimal step is scaled
by 1.05 (ART's ``epsilon = 0.05``). Class scores are the pre-ReLU outputs.
"""

from __future__ import annotations

from .base import PerturbationAttack, register


@register
class DeepFool(PerturbationAttack):
    name = "deepfool"

    def __init__(self, model, loss, max_iter: int = 100, overshoot: float = 1.05, batch_size: int = 256):
        super().__init__(model, loss, batch_size)
        self.max_iter, self.overshoot = int(max_iter), float(overshoot)

    def generate(self, x, y):
        from art.attacks.evasion import DeepFool as ArtDeepFool

        clf = self.art()
        attack = ArtDeepFool(clf, max_iter=self.max_iter, epsilon=self.overshoot - 1.0,
                             nb_grads=clf.nb_classes, batch_size=self.batch_size, verbose=False)  # fmt: skip
        return attack.generate(x)
