"""Carlini-Wagner L2 (2017), through ART, with the sleep paper's settings.

20 binary-search steps x 1000 Adam iterations, learning rate 5e-3, initial
constant c0 = 0.01, confidence kappa = 0, on the pre-ReLU class scores.
"""

from __future__ import annotations

from .base import PerturbationAttack, register


@register
class CarliniWagnerL2(PerturbationAttack):
    name = "cw-l2"

    def __init__(self, model, loss, binary_search_steps: int = 20, max_iter: int = 1000,
                 learning_rate: float = 5e-3, initial_const: float = 0.01, confidence: float = 0.0,
                 batch_size: int = 1000):  # fmt: skip
        super().__init__(model, loss, batch_size)
        self.params = dict(binary_search_steps=binary_search_steps, max_iter=max_iter,
                           learning_rate=learning_rate, initial_const=initial_const,
                           confidence=confidence)  # fmt: skip

    def generate(self, x, y):
        from art.attacks.evasion import CarliniL2Method

        attack = CarliniL2Method(self.art(), batch_size=self.batch_size, verbose=False, **self.params)
        return attack.generate(x)
