"""Baseline defences trained from a control network, one module each, in one registry.

``DEFENCES[name](**params).apply(control, record, data, seed, device)`` trains
on ``device`` (default: the control's) and returns the defended model and its record for
``model.json``; ``DEFENCES`` is a ``sleepnet.registry.Registry``, and a
parameter a defence does not have is an error. Defences of the sleep paper
(``docs/paper-protocol.md`` §4) and the standard ones users expect:

- ``distillation``: defensive distillation at temperature T = 50;
- ``finetune-fgsm``, ``finetune-noise``, ``finetune-blur``: the paper's fine-tuning;
- ``adv-fgsm``, ``adv-pgd``: adversarial training (Goodfellow et al.; Madry et al.);
- ``saturation``: the saturation penalty of Nayebi & Ganguli (2017), trained from scratch;
- ``stochastic``: noise layers on at test time (Dapello et al. 2021), trained with or added.
"""

from .adversarial import AdversarialTraining
from .base import DEFENCES, Defence, DefenceEntry
from .distillation import Distillation
from .finetune import FineTune
from .saturation import Saturation
from .stochastic import Stochastic

__all__ = ["DEFENCES", "AdversarialTraining", "Defence", "DefenceEntry", "Distillation", "FineTune",
           "Saturation", "Stochastic"]  # fmt: skip
