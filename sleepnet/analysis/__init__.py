"""Analyses of trained networks, one module per analysis behind one interface (``Analysis``).

- ``weights``: per layer mean, std, excess kurtosis (Fisher) and histogram of the weights;
- ``activations``: per layer the fraction of silent and of saturated units on test images;
- ``jacobian``: the singular values of the input-output Jacobian over test images;
- ``geometry`` (on request: ``sleepnet analyze --geometry``): MFTMA capacity, radius and
  dimension of class and exemplar manifolds per layer, clean and adversarial.

``analyze(models, data, n)`` runs every analysis on every model on the same test images
(the first ``n`` of the fixed permutation ``evaluation.subsample_indices``), so any models,
e.g. a control and its defended or slept version, are compared side by side; ``figures``
draws one figure per analysis with the models overlaid. ``sleepnet analyze`` is the command.
See ``docs/analysis.md``.
"""

from __future__ import annotations

from .activations import Activations
from .base import ANALYSES, Analysis, analyze, analyze_model, figures, geometry_for
from .geometry import Geometry
from .jacobian import Jacobian
from .weights import Weights

__all__ = ["ANALYSES", "Activations", "Analysis", "Geometry", "Jacobian", "Weights", "analyze",
           "analyze_model", "figures", "geometry_for"]
