"""The differentiable front-end: waveforms ``x`` in [0, 1] to log-mel features (``docs/audio.md`` §2).

``LogMel`` is the first layer of an audio model, so attacks and distortions act on the
waveform and gradients flow through it::

    s       = 2 x - 1                                    # amplitude in [-1, 1]
    S       = |STFT(s)|^2 / sum(window)^2                # Hann window n_fft, hop, no centring
    M       = S @ mel_filterbank.T                       # HTK mel scale, triangles of unit peak
    feature = log(1 + M / floor) / log(1 + ref / floor)  # floor = ref * 10^(-range_db / 10)

flattened frame by frame, ``(N, frames * n_mels)``. ``ref`` is fitted on the training set
(``fit_ref``: the 99.5th percentile of ``M``), so features lie in [0, 1] but for the loudest
0.5 %; ``range_db`` (60 dB) sets the quietest power that still counts. The log is offset
by ``floor`` rather than clipped, so the map is smooth and clips no gradient; the power is
quadratic in the amplitude, so at exact digital silence (the padding) the gradient is 0
(``docs/audio.md`` §2). Sleep's Poisson
input takes the features clipped to [0, 1] as rates (``features``).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

N_FFT, HOP, N_MELS, RANGE_DB, REF_PERCENTILE = 256, 128, 32, 60.0, 99.5


def hz_to_mel(f):
    """HTK mel: ``2595 log10(1 + f / 700)``."""
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def mel_to_hz(m):
    """Inverse of ``hz_to_mel``."""
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0,
                   fmax: float | None = None) -> np.ndarray:  # fmt: skip
    """``(n_mels, n_fft // 2 + 1)`` triangular filters of unit peak, centres equally spaced in HTK mel
    (librosa's ``filters.mel(htk=True, norm=None)``)."""
    fmax = sample_rate / 2 if fmax is None else fmax
    freqs = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (freqs[None, :] - lo) / (mid - lo)
    down = (hi - freqs[None, :]) / (hi - mid)
    return np.maximum(0.0, np.minimum(up, down))


class LogMel(nn.Module):
    """Waveforms ``(N, n_samples)`` in [0, 1] to log-mel features ``(N, frames * n_mels)`` (module doc)."""

    def __init__(self, n_samples: int, sample_rate: int, ref: float, n_fft: int = N_FFT, hop: int = HOP,
                 n_mels: int = N_MELS, range_db: float = RANGE_DB) -> None:  # fmt: skip
        super().__init__()
        if n_samples < n_fft or hop < 1 or n_mels < 1 or not ref > 0 or not range_db > 0:
            raise ValueError(f"LogMel: bad settings (n_samples={n_samples}, n_fft={n_fft}, hop={hop}, "
                             f"n_mels={n_mels}, ref={ref}, range_db={range_db})")  # fmt: skip
        self.n_samples, self.sample_rate = int(n_samples), int(sample_rate)
        self.n_fft, self.hop = int(n_fft), int(hop)
        self.n_mels, self.ref, self.range_db = int(n_mels), float(ref), float(range_db)
        window = torch.hann_window(self.n_fft, periodic=True, dtype=torch.float64)
        self.register_buffer("window", window.float(), persistent=False)
        self.register_buffer("bank", torch.from_numpy(mel_filterbank(sample_rate, n_fft, n_mels)).float(),
                             persistent=False)  # fmt: skip
        self.power_scale = 1.0 / float(window.sum()) ** 2
        self.floor = self.ref * 10.0 ** (-self.range_db / 10.0)
        self.norm = math.log1p(self.ref / self.floor)

    @property
    def frames(self) -> int:
        """STFT frames per recording: ``1 + (n_samples - n_fft) // hop``."""
        return 1 + (self.n_samples - self.n_fft) // self.hop

    @property
    def n_features(self) -> int:
        """``frames * n_mels``."""
        return self.frames * self.n_mels

    def mel_power(self, x: torch.Tensor) -> torch.Tensor:
        """``M``: ``(N, frames, n_mels)`` mel power of waveforms ``x`` in [0, 1]."""
        if x.ndim != 2 or x.shape[1] != self.n_samples:
            raise ValueError(f"LogMel expects (N, {self.n_samples}) waveforms, got {tuple(x.shape)}")
        spec = torch.stft(2.0 * x - 1.0, self.n_fft, self.hop, window=self.window.to(x.dtype), center=False,
                          return_complex=True)  # (N, bins, frames)  # fmt: skip
        power = (spec.real**2 + spec.imag**2) * self.power_scale
        return torch.matmul(power.transpose(1, 2), self.bank.to(x.dtype).T)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The features, ``(N, frames * n_mels)``."""
        mel = self.mel_power(x)
        return (torch.log1p(mel / self.floor) / self.norm).flatten(1)

    def record(self) -> dict:
        """The layer as recorded in ``model.json`` (``models.describe``)."""
        return {"type": "logmel", "n_samples": self.n_samples, "sample_rate": self.sample_rate,
                "ref": self.ref, "n_fft": self.n_fft, "hop": self.hop, "n_mels": self.n_mels,
                "range_db": self.range_db}  # fmt: skip

    @classmethod
    def from_record(cls, rec: dict) -> LogMel:
        """Inverse of ``record``."""
        return cls(int(rec["n_samples"]), int(rec["sample_rate"]), float(rec["ref"]), int(rec["n_fft"]),
                   int(rec["hop"]), int(rec["n_mels"]), float(rec["range_db"]))  # fmt: skip

    def extra_repr(self) -> str:
        """The settings, for the module's repr."""
        return (f"n_samples={self.n_samples}, sample_rate={self.sample_rate}, n_fft={self.n_fft}, "
                f"hop={self.hop}, n_mels={self.n_mels}, ref={self.ref:.4g}, range_db={self.range_db}")


@torch.no_grad()
def fit_ref(x: np.ndarray, n_samples: int, sample_rate: int, percentile: float = REF_PERCENTILE,
            **settings) -> float:  # fmt: skip
    """``ref``: the ``percentile`` of the mel power over the training waveforms ``x`` (frames of silence
    padding excluded: power exactly 0)."""
    probe = LogMel(n_samples, sample_rate, 1.0, **settings)
    parts = []
    for s in range(0, len(x), 500):
        mel = probe.mel_power(torch.as_tensor(x[s : s + 500], dtype=torch.float64))
        parts.append(mel[mel > 0].numpy())
    values = np.concatenate(parts)
    if values.size == 0:
        raise ValueError("fit_ref: the training waveforms are silent")
    return float(np.percentile(values, percentile))


def frontend_of(model: nn.Module) -> LogMel | None:
    """The model's front-end, its first layer, if it has one."""
    if isinstance(model, nn.Sequential) and len(model) and isinstance(model[0], LogMel):
        return model[0]
    return None


@torch.no_grad()
def features(model: nn.Module, x: np.ndarray, batch_size: int = 1000, clip: bool = True) -> np.ndarray:
    """``x`` through the model's front-end (``x`` itself if it has none), float32, clipped to [0, 1] for
    sleep's Poisson rates unless ``clip`` is False."""
    front = frontend_of(model)
    if front is None:
        return np.asarray(x)
    device = front.window.device
    out = np.concatenate([front(torch.as_tensor(np.asarray(x[s : s + batch_size]), dtype=torch.float32,
                                                device=device)).cpu().numpy()
                          for s in range(0, len(x), batch_size)])  # fmt: skip
    return np.clip(out, 0.0, 1.0) if clip else out
