"""Adversarial attacks, one module each, behind the ``Attack`` interface of ``base.py``.

Ours (batched, torch): ``fgsm`` (the paper's curve and median epsilon),
``pgd`` (L-inf and L2), ``deepfool`` and ``cw-l2``, each with an ART twin
(``*-art``) for cross-checks; ours in numpy, batched over images: the
gradient-free ``hopskipjump`` and ``boundary`` (the sleep paper's settings),
with ``hopskipjump-art`` and ``boundary-art`` as their twins. Through the
Adversarial Robustness Toolbox, with the sleep paper's settings: ``jsma``.
Through torchattacks (``autoattack.py``): ``autoattack`` (standard and rand
versions) and its parts ``apgd-ce``, ``apgd-dlr``, ``apgd-t``, ``fab-t`` and
``square``. ``lbfgs`` (``lbfgs.py``):
Szegedy et al.'s box-constrained L-BFGS, the second-order attack, minimal L2,
in float64 through scipy.
"""

from . import autoattack  # noqa: F401  (registers autoattack and its parts)
from .autoattack import AutoAttack
from .base import ATTACKS, Attack, PerturbationAttack, eot_default, register, stochastic, summarize
from .boundary import Boundary
from .cw import CarliniWagnerL2
from .decision import BoundaryArt, HopSkipJumpArt
from .deepfool import DeepFool
from .fgsm import FGSM
from .hopskipjump import HopSkipJump
from .jsma import JSMA
from .lbfgs import LBFGS
from .pgd import PGD

__all__ = ["ATTACKS", "Attack", "AutoAttack", "Boundary", "BoundaryArt", "CarliniWagnerL2", "DeepFool",
           "FGSM", "HopSkipJump", "HopSkipJumpArt", "JSMA", "LBFGS", "PGD", "PerturbationAttack",
           "eot_default", "register", "stochastic", "summarize"]
