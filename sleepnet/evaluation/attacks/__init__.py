"""Adversarial attacks, one module each, behind the ``Attack`` interface of ``base.py``."""

from .base import ATTACKS, Attack, register
from .fgsm import FGSM

__all__ = ["ATTACKS", "Attack", "FGSM", "register"]
