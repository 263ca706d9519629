"""Adversarial attacks, one module each, behind the ``Attack`` interface of ``base.py``.

Ours (batched): ``fgsm`` (the paper's curve and median epsilon), ``pgd``
(L-inf and L2). Through the Adversarial Robustness Toolbox, with the sleep
paper's settings: ``deepfool``, ``jsma``, ``cw-l2``, and the gradient-free
``boundary`` and ``hopskipjump``.
"""

from .base import ATTACKS, Attack, PerturbationAttack, register, summarize
from .cw import CarliniWagnerL2
from .decision import Boundary, HopSkipJump
from .deepfool import DeepFool
from .fgsm import FGSM
from .jsma import JSMA
from .pgd import PGD

__all__ = ["ATTACKS", "Attack", "Boundary", "CarliniWagnerL2", "DeepFool", "FGSM", "HopSkipJump",
           "JSMA", "PGD", "PerturbationAttack", "register", "summarize"]
