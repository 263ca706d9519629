"""Baseline defences trained from a control network, one module each, in one registry.

``DEFENCES[name](**params).apply(control, record, data, seed)`` returns the
defended model and its record for ``model.json``. Defences of the sleep paper
(``paper-protocol.md`` §4) and the standard ones users expect:

- ``distillation``: defensive distillation at temperature T = 50;
- ``finetune-fgsm``, ``finetune-noise``, ``finetune-blur``: the paper's fine-tuning;
- ``adv-fgsm``, ``adv-pgd``: adversarial training (Goodfellow et al.; Madry et al.).
"""

from .adversarial import AdversarialTraining
from .base import DEFENCES, Defence
from .distillation import Distillation
from .finetune import FineTune

__all__ = ["DEFENCES", "AdversarialTraining", "Defence", "Distillation", "FineTune"]
