"""SHA-256 hex digests, the one way sleepnet identifies content: of bytes, of a file, of arrays.

Datasets (``data.py``), model files (``workflow.py``, the tuner's study identity)
and slept weights (the tuner's reproduction check) are all hashed here, so
a digest recorded by one part is computed the same way by another.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

_BLOCK = 1 << 20


def sha256_bytes(*chunks: bytes | str) -> str:
    """The digest of the chunks one after the other (``str`` as UTF-8)."""
    h = hashlib.sha256()
    for c in chunks:
        h.update(c.encode() if isinstance(c, str) else c)
    return h.hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    """The digest of a file's bytes, read in blocks (``FileNotFoundError`` if there is none)."""
    h = hashlib.sha256()
    with open(Path(path), "rb") as f:
        while block := f.read(_BLOCK):
            h.update(block)
    return h.hexdigest()


def sha256_arrays(arrays: Iterable[np.ndarray], dtype=None, prefix: bytes | str = b"") -> str:
    """The digest of ``prefix`` then each array's C-order bytes (``a.tobytes()``), one after another.

    ``dtype``: convert every array to it first (e.g. ``np.float32`` for weights of any precision).
    The same bytes as ``sha256(prefix + a.tobytes() + b.tobytes() ...)``, without the copies.
    """
    h = hashlib.sha256(prefix.encode() if isinstance(prefix, str) else prefix)
    for a in arrays:
        a = np.asarray(a) if dtype is None else np.asarray(a).astype(dtype, copy=False)
        if a.dtype.hasobject:
            raise TypeError("cannot hash an array of Python objects")
        h.update(np.ascontiguousarray(a).reshape(-1).view(np.uint8))
    return h.hexdigest()


def weights_sha256(model) -> str:
    """A torch model's weights (``state_dict`` order) as float32 bytes, layer by layer."""
    return sha256_arrays((t.detach().cpu().numpy() for t in model.state_dict().values()), dtype=np.float32)
