"""The Free Spoken Digit Dataset (FSDD, CC BY-SA 4.0): read, verify, split, cache (``docs/audio.md`` §1).

3,000 recordings, mono 8 kHz 16-bit PCM, 6 speakers, 50 of each digit per speaker, named
``{digit}_{speaker}_{index}.wav``. Nothing is downloaded: the loader takes the ``recordings/``
folder, the repository folder above it, or the repository's zip, from ``--data-dir`` or
``$SLEEPNET_FSDD``, and says where to get it when neither is given.

Every file is checked before anything is returned (one ``SleepnetError`` naming the first bad
file): its name must carry a label, and it must be a readable wav of 8 kHz (other rates are
refused, not resampled: resampling would change what the network hears), 16-bit, mono. A
recording is trimmed or padded with silence at its end to ``N_SAMPLES`` (1.024 s; 99.4 % of
the recordings are shorter) and stored as ``x = (s + 32768) / 65536`` for the 16-bit sample
``s`` (exact in float32): ``x`` lies in [0, 1) like an image, silence is 0.5, the amplitude
is ``2 x - 1 = s / 32768``, and a budget ``eps`` on ``x`` is the fraction ``eps`` of the
full-scale range (``docs/audio.md`` §4).

Splits: ``official`` (index 0-4 test, 5-49 train) or ``speaker:NAME`` (every recording of
``NAME`` is the test set, the other speakers train). The decoded recordings are cached as
one ``.npz`` in the data cache, keyed by the names, sizes and times of the files.
"""

from __future__ import annotations

import os
import re
import wave
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import SleepnetError
from ..hashing import sha256_bytes

#: the dataset names (``sleepnet.audio.dataset``), before any ``:speaker=NAME``
KINDS = ("fsdd", "fsdd-mel")
SAMPLE_RATE = 8000
N_SAMPLES = 8192
#: FSDD's own name pattern: ``{digit}_{speaker}_{index}.wav``
NAME = re.compile(r"(?P<digit>[0-9])_(?P<speaker>[a-z]+)_(?P<index>[0-9]+)\.wav")
TEST_INDICES = range(5)
#: how ``x`` encodes a sample: part of the cache key, so a change of it never reads an old cache
ENCODING = "x=(s+32768)/65536"
ENV = "SLEEPNET_FSDD"
WHERE = ("get it from https://github.com/Jakobovski/free-spoken-digit-dataset (the recordings/ "
         "folder or the repository's zip) or its Zenodo record, and pass --data-dir or set $SLEEPNET_FSDD")
#: ``Recordings.sha256`` of FSDD at commit 26eb9aa (3,000 recordings), recorded for comparison
KNOWN_SHA256 = "dd93b0a7fbb2e32fe9dcbe4cdd530cddf30ce8811facf81c10d7b3beaa23e6ca"


@dataclass(frozen=True)
class Recordings:
    """Every recording of a folder: waveforms and what their names say.

    ``x``: float32 ``(N, N_SAMPLES)`` in [0, 1] (module docstring); ``digit``, ``index`` int64;
    ``speaker`` str; ``length`` the samples each recording had before padding; ``names``
    the file names, sorted. ``sha256``: of the file names and bytes in that order.
    """

    x: np.ndarray
    digit: np.ndarray
    speaker: np.ndarray
    index: np.ndarray
    length: np.ndarray
    names: tuple[str, ...]
    sha256: str

    def split(self, split: str = "official") -> tuple[np.ndarray, np.ndarray]:
        """Masks ``(train, test)`` for ``official`` or ``speaker:NAME``, each holding every digit."""
        if split == "official":
            test = np.isin(self.index, list(TEST_INDICES))
        elif split.startswith("speaker:"):
            who = split.split(":", 1)[1]
            if who not in set(self.speaker):
                raise SleepnetError(f"FSDD split {split!r}: no speaker {who!r} "
                                    f"(known: {', '.join(sorted(set(self.speaker)))})")  # fmt: skip
            test = self.speaker == who
        else:
            raise SleepnetError(f"unknown FSDD split {split!r} (official or speaker:NAME)")
        for part, mask in (("training", ~test), ("test", test)):
            missing = sorted(set(range(10)) - set(self.digit[mask].tolist()))
            if missing:
                raise SleepnetError(f"too few FSDD recordings: the {part} set of split {split!r} has no "
                                    f"digit {missing[0]} ({len(self.names)} recordings found)")  # fmt: skip
        return ~test, test


def locate(data_dir: str | os.PathLike | None) -> Path:
    """The FSDD source: ``data_dir``, else ``$SLEEPNET_FSDD``; one clear line when neither exists."""
    given = data_dir or os.environ.get(ENV)
    if not given:
        raise SleepnetError(f"FSDD is not here: {WHERE}")
    path = Path(given)
    if not path.exists():
        raise SleepnetError(f"FSDD source {path} does not exist: {WHERE}")
    if path.is_dir() and (path / "recordings").is_dir():
        return path / "recordings"
    if path.is_file() and not zipfile.is_zipfile(path):
        raise SleepnetError(f"FSDD source {path} is neither a folder nor a zip file")
    return path


def _members(source: Path) -> list[tuple[str, object]]:
    """``(file name, opener)`` of every ``.wav`` in a folder (not recursive) or a zip (any depth)."""
    if source.is_dir():
        return [(p.name, p) for p in sorted(source.iterdir()) if p.suffix.lower() == ".wav" and p.is_file()]
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError) as exc:
        raise SleepnetError(f"{source}: cannot read the zip ({exc})") from None
    return [(Path(i.filename).name, (archive, i)) for i in archive.infolist()
            if i.filename.lower().endswith(".wav") and not i.is_dir()
            and not Path(i.filename).name.startswith("._")]  # fmt: skip


def _read(where: object) -> bytes:
    if isinstance(where, Path):
        return where.read_bytes()
    archive, info = where
    return archive.read(info)


def decode(raw: bytes, name: str) -> np.ndarray:
    """The int16 samples of one FSDD wav; one clear line for anything but 8 kHz 16-bit mono PCM."""
    import io

    try:
        with wave.open(io.BytesIO(raw)) as w:
            rate, width, channels, n = w.getframerate(), w.getsampwidth(), w.getnchannels(), w.getnframes()
            frames = w.readframes(n)
    except (wave.Error, EOFError, ValueError) as exc:
        raise SleepnetError(f"{name} is not a readable wav file ({exc})") from None
    if channels != 1:
        raise SleepnetError(f"{name} has {channels} channels: FSDD recordings are mono")
    if width != 2:
        raise SleepnetError(f"{name} has {8 * width}-bit samples: FSDD recordings are 16-bit")
    if rate != SAMPLE_RATE:
        raise SleepnetError(f"{name} is sampled at {rate} Hz: FSDD is 8000 Hz "
                            "(sleepnet does not resample; convert the file first)")  # fmt: skip
    if len(frames) % 2:
        raise SleepnetError(f"{name} ends in half a sample: the file is truncated")
    samples = np.frombuffer(frames, dtype="<i2")
    if len(samples) == 0 or len(samples) != n:
        raise SleepnetError(f"{name} holds {len(samples)} of the {n} samples its header announces")
    return samples


def fit_length(samples: np.ndarray, n: int = N_SAMPLES) -> np.ndarray:
    """int16 samples trimmed or padded with zeros (silence) at the end to ``n``, as float32
    ``x = (s + 32768) / 65536`` in [0, 1)."""
    out = np.zeros(n, dtype=np.float32)
    k = min(n, len(samples))
    out[:k] = samples[:k]
    return (out + np.float32(32768.0)) / np.float32(65536.0)


def _fingerprint(members: list[tuple[str, object]]) -> str:
    """Names, sizes and modification times: the cache key (cheap: no file is read)."""
    parts = []
    for name, where in members:
        if isinstance(where, Path):
            st = where.stat()
            parts.append(f"{name}:{st.st_size}:{st.st_mtime_ns}")
        else:
            parts.append(f"{name}:{where[1].file_size}:{where[1].CRC}")
    return sha256_bytes("\n".join(parts), f"\n{N_SAMPLES}\n{ENCODING}")


def load_recordings(data_dir: str | os.PathLike | None = None, cache: Path | None = None) -> Recordings:
    """Every recording of the FSDD source (``locate``), checked, decoded and cached (module docstring)."""
    source = locate(data_dir)
    members = _members(source)
    if not members:
        raise SleepnetError(f"{source} holds no wav file: {WHERE}")
    labels = []
    for name, _ in members:
        m = NAME.fullmatch(name)
        if m is None:
            raise SleepnetError(f"{name} in {source}: the name carries no label (FSDD names are "
                                "{digit}_{speaker}_{index}.wav)")  # fmt: skip
        labels.append((int(m["digit"]), m["speaker"], int(m["index"])))
    names = [n for n, _ in members]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise SleepnetError(f"{source} holds {dup} twice")
    key = _fingerprint(members)
    cached = _from_cache(cache, key, names) if cache is not None else None
    if cached is not None:
        return cached
    x = np.empty((len(members), N_SAMPLES), dtype=np.float32)
    length = np.empty(len(members), dtype=np.int64)
    digests = []
    for k, (name, where) in enumerate(members):
        raw = _read(where)
        digests.append(name + ":" + sha256_bytes(raw))
        samples = decode(raw, f"{source}/{name}" if isinstance(where, Path) else f"{source}:{name}")
        x[k], length[k] = fit_length(samples), len(samples)
    rec = Recordings(x=x, digit=np.array([d for d, _, _ in labels], dtype=np.int64),
                     speaker=np.array([s for _, s, _ in labels]),
                     index=np.array([i for _, _, i in labels], dtype=np.int64), length=length,
                     names=tuple(names), sha256=sha256_bytes("\n".join(digests)))  # fmt: skip
    if cache is not None:
        _to_cache(cache, key, rec)
    return rec


def _cache_file(cache: Path, key: str) -> Path:
    return cache / "fsdd" / f"recordings-{key[:20]}.npz"


def _from_cache(cache: Path, key: str, names: list[str]) -> Recordings | None:
    path = _cache_file(cache, key)
    try:
        with np.load(path, allow_pickle=False) as f:
            rec = Recordings(x=f["x"], digit=f["digit"], speaker=f["speaker"], index=f["index"],
                             length=f["length"], names=tuple(f["names"].tolist()),
                             sha256=str(f["sha256"]))  # fmt: skip
    except (OSError, KeyError, ValueError):
        return None  # absent or damaged: decoded again
    if list(rec.names) != names or rec.x.shape != (len(names), N_SAMPLES):
        return None
    return rec


def _to_cache(cache: Path, key: str, rec: Recordings) -> None:
    import io

    from ..fsio import atomic_write

    buf = io.BytesIO()
    np.savez(buf, x=rec.x, digit=rec.digit, speaker=rec.speaker, index=rec.index, length=rec.length,
             names=np.array(rec.names), sha256=np.array(rec.sha256))  # fmt: skip
    try:
        atomic_write(_cache_file(cache, key), buf.getvalue())
    except OSError:
        pass  # an unwritable cache only costs the next load its decoding
