"""FSDD as a ``Dataset``: ``fsdd`` (waveforms) and ``fsdd-mel`` (features) (``docs/audio.md`` §1-2).

Names: ``fsdd`` or ``fsdd-mel``, then optionally ``:speaker=NAME`` for the speaker-held-out
split (the official split otherwise).

- ``fsdd``: waveforms ``(N, 8192)`` in [0, 1]; the dataset names the front-end its models
  start with (``Dataset.frontend``), ``ref`` fitted on the training split.
- ``fsdd-mel``: the same front-end's features, clipped to [0, 1], ``(N, 63 * 32)`` with
  ``image_shape`` (63 frames, 32 mel bands): the feature-domain mode, where attacks and
  distortions act on the features, as on an image.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from ..data import Dataset, cache_dir
from ..errors import SleepnetError
from ..hashing import sha256_bytes
from .frontend import LogMel, fit_ref
from .fsdd import KINDS, N_SAMPLES, SAMPLE_RATE, load_recordings


def digest(recordings_sha256: str, split: str = "official") -> str:
    """The SHA-256 of the ``fsdd`` dataset of that split, from its recordings' (``Recordings.sha256``)."""
    return sha256_bytes(recordings_sha256, f":{split}:{N_SAMPLES}")


def parse_name(name: str) -> tuple[str, str]:
    """``(kind, split)`` of a dataset name: ``fsdd`` or ``fsdd-mel``, ``official`` or ``speaker:NAME``."""
    kind, _, rest = name.partition(":")
    if kind not in KINDS:
        raise SleepnetError(f"not an FSDD dataset name: {name!r}")
    if not rest:
        return kind, "official"
    if rest.startswith("speaker=") and rest[8:]:
        return kind, "speaker:" + rest[8:]
    raise SleepnetError(f"dataset {name!r}: after {kind} comes nothing or :speaker=NAME")


def load_fsdd(name: str, data_dir: str | os.PathLike | None = None) -> Dataset:
    """The FSDD dataset ``name`` (module docstring) from ``data_dir`` or ``$SLEEPNET_FSDD``."""
    kind, split = parse_name(name)
    rec = load_recordings(data_dir, cache=cache_dir())
    train, test = rec.split(split)
    x_tr, x_te = rec.x[train], rec.x[test]
    front = LogMel(N_SAMPLES, SAMPLE_RATE, fit_ref(x_tr, N_SAMPLES, SAMPLE_RATE))
    sha = digest(rec.sha256, split)
    y_tr, y_te = rec.digit[train], rec.digit[test]
    if kind == "fsdd":
        return Dataset(name, x_tr, y_tr, x_te, y_te, sha, None, front.record())
    with torch.no_grad():
        f_tr, f_te = (np.clip(front(torch.from_numpy(x)).numpy(), 0.0, 1.0) for x in (x_tr, x_te))
    sha = sha256_bytes(sha, ":mel:", repr(sorted(front.record().items())))
    return Dataset(name, f_tr, y_tr, f_te, y_te, sha, (front.frames, front.n_mels))
