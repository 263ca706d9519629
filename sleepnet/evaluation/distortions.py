"""Input distortions, one function each, in a registry (``docs/paper-protocol.md`` §3).

A distortion maps images ``x`` (float32 ``(N, h*w)`` in [0, 1]) and one level
to distorted images in [0, 1]. Register more with ``@register(name, levels)``.

``x`` may be a numpy array or a torch tensor, and the result is of the same
type: a tensor input is distorted on its own device and gives a tensor there;
a numpy input is distorted on ``device`` (default cpu) and gives a numpy array.
The random numbers come from the numpy generator ``rng`` either way, so a
tensor and its numpy copy are distorted to the same values.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ..devices import resolve_device
from ..registry import Registry


@dataclass(frozen=True)
class Distortion:
    """A registered distortion: ``fn(x, level, rng, image_shape, device=None)`` and its ``levels``.

    ``level_name`` names the level in results (``variance``, ``sigma``).
    """

    name: str
    fn: Callable[..., np.ndarray | torch.Tensor]  # fn(x, level, rng, image_shape, device=None) -> x'
    levels: tuple[float, ...]
    level_name: str


DISTORTIONS: Registry[Distortion] = Registry("distortion")


def register(name: str, levels: tuple[float, ...], level_name: str):
    """A decorator: the function it wraps joins ``DISTORTIONS`` as ``name``, run at ``levels``."""

    def wrap(fn):
        """Add ``fn`` to ``DISTORTIONS`` as a ``Distortion`` and return ``fn``."""
        DISTORTIONS.register(name, Distortion(name, fn, levels, level_name))
        return fn

    return wrap


def _tensor(x, device) -> torch.Tensor:
    """``x`` as a tensor: a tensor stays where it is, numpy goes to ``device``."""
    if isinstance(x, torch.Tensor):
        return x
    return torch.as_tensor(np.asarray(x), device=resolve_device(device))


def _like(out: torch.Tensor, x):
    """``out`` as the type of ``x``: the tensor itself, or a numpy array for numpy input."""
    return out if isinstance(x, torch.Tensor) else out.cpu().numpy()


@register("gaussian-noise", (0.0, 0.1, 0.3, 0.5, 0.7, 0.9), "variance")
def gaussian_noise(x, variance: float, rng: np.random.Generator, image_shape=None, device=None):
    """``clip(x + N(0, variance), 0, 1)`` per pixel."""
    noise = rng.standard_normal(tuple(x.shape)).astype(np.float32) * np.float32(math.sqrt(variance))
    t = _tensor(x, device)
    return _like((t + torch.from_numpy(noise).to(t.device)).clamp_(0.0, 1.0), x)


def gaussian_kernel(sigma: float) -> np.ndarray:
    """1-d normalised Gaussian, size ``2 * ceil(2 * sigma) + 1`` (``fspecial`` is its outer product)."""
    half = math.ceil(2 * sigma)
    t = np.arange(-half, half + 1, dtype=np.float64)
    k = np.exp(-(t**2) / (2 * sigma**2))
    return k / k.sum()


def blur_matrix(sigma: float, n: int) -> np.ndarray:
    """The 1-d blur of ``n`` pixels as an ``(n, n)`` matrix, replicate padding folded in."""
    k = gaussian_kernel(sigma)
    half = (len(k) - 1) // 2
    m = np.zeros((n, n))
    for i in range(n):
        for t, weight in enumerate(k):
            m[i, min(max(i + t - half, 0), n - 1)] += weight
    return m


@register("gaussian-blur", (0.0001, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0), "sigma")
def gaussian_blur(x, sigma: float, rng=None, image_shape=(28, 28), device=None):
    """Gaussian blur, kernel ``2 * ceil(2 sigma) + 1``, replicate padding (``imfilter(..., 'replicate')``).

    The separable filter as two small matrix products per image (rows, then columns), some 5x
    faster here than ``conv2d`` on one channel, on the images' device (the tiny matrices are
    summed in float64 on the host, as always, then put there).
    """
    h, w = image_shape
    t = _tensor(x, device)
    rows = torch.as_tensor(blur_matrix(sigma, h).astype(np.float32), device=t.device)
    cols = torch.as_tensor(blur_matrix(sigma, w).T.astype(np.float32), device=t.device)
    img = t.to(torch.float32).reshape(-1, h, w)
    return _like(torch.matmul(torch.matmul(rows, img), cols).reshape(len(t), h * w).clamp_(0.0, 1.0), x)


@register("salt-and-pepper", (0.0, 0.05, 0.1, 0.2, 0.3, 0.5), "fraction")
def salt_and_pepper(x, fraction: float, rng: np.random.Generator, image_shape=None, device=None):
    """A ``fraction`` of pixels set to 0 or 1 (half each, in expectation)."""
    t = _tensor(x, device)
    u = torch.from_numpy(rng.random(tuple(x.shape))).to(t.device)
    out = t.clone()
    out[u < fraction / 2] = 0.0
    out[(u >= fraction / 2) & (u < fraction)] = 1.0
    return _like(out, x)


# the waveform distortions register themselves in DISTORTIONS
from . import waveform as _waveform  # noqa: E402, F401
