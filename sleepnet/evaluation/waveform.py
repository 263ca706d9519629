"""Distortions of waveforms (``docs/audio.md`` §4), in ``sleepnet.evaluation.distortions.DISTORTIONS``.

Each takes waveforms ``x`` in [0, 1) (``sleepnet.audio.fsdd``: amplitude ``a = 2 x - 1``) and
one level, like the image distortions, and returns waveforms of the same type, clipped to
the full-scale range as a recorder would. The signal power ``P`` of a recording is the mean
of ``a^2`` over its nonzero samples: the silence that pads it to a fixed length does not
dilute it, so an SNR means what it does for the recording alone.

- ``white-noise``: ``a + N(0, P 10^(-snr/10))`` on every sample, at SNRs of 40 to 0 dB.
- ``babble``: ``a + g a'``, where ``a'`` is another test recording (a seeded derangement of
  the batch) and ``g`` sets ``P / (g^2 P') = 10^(snr/10)``, at SNRs of 20 to 0 dB.
- ``time-shift``: the recording delayed by ``ms`` milliseconds, silence before it and its
  end cut off at the fixed length, 0 to 400 ms.
"""

from __future__ import annotations

import numpy as np
import torch

from ..audio.fsdd import SAMPLE_RATE
from .distortions import _like, _tensor, register


def amplitude(t: torch.Tensor) -> torch.Tensor:
    """``a = 2 x - 1``, in float64 (the SNR arithmetic)."""
    return 2.0 * t.to(torch.float64) - 1.0


def signal_power(a: torch.Tensor) -> torch.Tensor:
    """``(N,)`` mean of ``a^2`` over each row's nonzero samples (1 for an all-zero row)."""
    active = (a != 0).sum(1)
    return torch.where(active > 0, (a * a).sum(1) / active.clamp(min=1), torch.ones_like(a[:, 0]))


def _back(a: torch.Tensor, t: torch.Tensor, x):
    """Amplitudes clipped to [-1, 1 - 2^-15] (16-bit full scale), as waveforms ``x`` of ``t``'s dtype."""
    out = ((a.clamp(-1.0, 1.0 - 2.0**-15) + 1.0) / 2.0).to(t.dtype)
    return _like(out, x)


@register("white-noise", (40.0, 30.0, 20.0, 10.0, 5.0, 0.0), "snr_db")
def white_noise(x, snr_db: float, rng: np.random.Generator, image_shape=None, device=None):
    """Gaussian white noise at ``snr_db`` relative to each recording's power (module docstring)."""
    t = _tensor(x, device)
    a = amplitude(t)
    std = torch.sqrt(signal_power(a) * 10.0 ** (-snr_db / 10.0))
    noise = torch.from_numpy(rng.standard_normal(tuple(t.shape))).to(a.device)
    return _back(a + std[:, None] * noise, t, x)


def derangement(n: int, rng: np.random.Generator) -> np.ndarray:
    """A permutation of ``range(n)`` with no fixed point (a rotation of a shuffled order; ``n >= 2``)."""
    order = rng.permutation(n)
    out = np.empty(n, dtype=np.int64)
    out[order] = np.roll(order, 1)
    return out


@register("babble", (20.0, 10.0, 5.0, 0.0), "snr_db")
def babble(x, snr_db: float, rng: np.random.Generator, image_shape=None, device=None):
    """Another recording of the batch mixed in at ``snr_db`` (module docstring)."""
    t = _tensor(x, device)
    a = amplitude(t)
    if len(a) < 2:
        raise ValueError("babble needs at least two recordings to mix")
    other = a[torch.from_numpy(derangement(len(a), rng)).to(a.device)]
    gain = torch.sqrt(signal_power(a) / (signal_power(other) * 10.0 ** (snr_db / 10.0)))
    return _back(a + gain[:, None] * other, t, x)


@register("time-shift", (0.0, 25.0, 50.0, 100.0, 200.0, 400.0), "ms")
def time_shift(x, ms: float, rng=None, image_shape=None, device=None):
    """The recordings delayed by ``ms`` milliseconds (module docstring)."""
    t = _tensor(x, device)
    k = min(int(round(ms * SAMPLE_RATE / 1000.0)), t.shape[1])
    out = torch.full_like(t, 0.5)  # silence
    out[:, k:] = t[:, : t.shape[1] - k]
    return _like(out, x)


def budget_snr(x: np.ndarray, norm: str, eps: float) -> np.ndarray:
    """Per recording, the SNR in dB of a perturbation that fills budget ``eps`` (on ``x``): for L2,
    ``P n_active / (4 eps^2)`` (the amplitude moves ``2 eps``); for L-inf, the worst case, every
    sample moved by ``eps`` (``P / (2 eps)^2``)."""
    a = amplitude(torch.as_tensor(np.asarray(x)))
    power = signal_power(a).numpy()
    if norm == "inf":
        return 10 * np.log10(power / (2 * eps) ** 2)
    active = (a != 0).sum(1).numpy()
    return 10 * np.log10(power * active / (2 * eps) ** 2)
