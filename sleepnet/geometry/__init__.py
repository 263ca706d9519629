"""Neural population geometry: manifold capacity, radius and dimension (MFTMA), the participation
ratio, the centre correlations, and linear separability checked directly.

- ``mftma.manifold_analysis(X)``: ``X`` of shape ``(P, N, M)``, P manifolds of M points in N
  dimensions; a port of Chung et al.'s reference code (``docs/geometry.md``), tested against it;
- ``separability.simulated_capacity(X)``: the capacity found by checking random dichotomies for
  linear separability, the theory's direct test.

``sleepnet geometry`` runs it on an .npz file; ``sleepnet analyze --geometry`` on a model's
representations, layer by layer (``analysis.geometry``).
"""

from .mftma import anchor_analysis, check_manifolds, manifold_analysis, participation_ratio
from .separability import separable, separable_fraction, simulated_capacity

__all__ = ["anchor_analysis", "check_manifolds", "manifold_analysis", "participation_ratio", "separable",
           "separable_fraction", "simulated_capacity"]  # fmt: skip
