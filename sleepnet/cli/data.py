"""``sleepnet data fetch DATASET``: download (MNIST) and verify a dataset; FSDD is checked and decoded
into the cache from the copy ``--data-dir`` (or ``$SLEEPNET_FSDD``) names (nothing is downloaded)."""

from __future__ import annotations

from .common import add_command


def add_parser(subparsers):
    """Add ``data fetch DATASET``; returns its parser."""
    p = add_command(subparsers, "data", "fetch and verify datasets")
    p.add_argument("action", choices=["fetch"], help="fetch: download if needed, then verify the hashes")
    p.add_argument("dataset", choices=["mnist", "fashion-mnist", "fsdd"], help="the dataset")
    p.add_argument("--data-dir", help="verify this folder of IDX files instead; for fsdd, the copy to "
                   "check (recordings/ folder, repository folder or zip; else $SLEEPNET_FSDD)")  # fmt: skip
    return p


def run(args) -> int:
    """Fetch MNIST if needed (no ``--data-dir``), load and verify the dataset, print its size; returns 0."""
    from ..data import fetch_mnist, load_dataset

    if args.dataset == "mnist" and not args.data_dir:
        fetch_mnist(quiet=True)
    data = load_dataset(args.dataset, args.data_dir)
    what = "images verified"
    if args.dataset == "fsdd":
        from ..audio.dataset import digest
        from ..audio.fsdd import KNOWN_SHA256

        same = data.sha256 == digest(KNOWN_SHA256)
        what = "recordings checked, " + ("" if same else "not ") + "the copy of FSDD commit 26eb9aa"
    print(f"{data.name}: {len(data.x_train)} train, {len(data.x_test)} test {what} "
          f"(sha256 {data.sha256[:16]}...)")  # fmt: skip
    return 0
