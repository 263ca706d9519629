"""What the commands share: the parser class, the help formatter, common options, parsing helpers."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import SleepnetError, UsageError
from ..state import is_seed


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's default in its help, ``(default: X)``; tables in descriptions kept as written.

    No default is shown where there is none to show (``None``, an off switch, an empty
    list) or where the help already says it in words. Descriptions and epilogs are
    filled paragraph by paragraph, except a paragraph indented by two spaces (a table).
    """

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return "\n\n".join(
            "\n".join(indent + line for line in para.splitlines()) if para.startswith("  ")
            else super(HelpFormatter, self)._fill_text(para, width, indent)
            for para in text.split("\n\n")
        )  # fmt: skip

    def _get_help_string(self, action: argparse.Action) -> str:
        default = action.default
        if default is None or default is False or default == [] or "(default" in (action.help or ""):
            return action.help or ""
        return super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (``sleepnet: error: ...``), not usage + message."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        """Raise ``UsageError`` with ``message`` and where to read the command's options (one line, exit
        2) instead of exiting."""
        raise UsageError(f"{message} (see {self.prog} --help)")


def add_command(subparsers, name: str, help: str, **kwargs) -> argparse.ArgumentParser:
    """A command's parser, with its one-line ``help`` also as the description of its ``--help``."""
    return subparsers.add_parser(name, help=help, description=kwargs.pop("description", help), **kwargs)


DATA_DIR_HELP = ("folder of IDX files to use instead of the default data source; for fsdd, its recordings/ "
                 "folder, the repository folder or its zip (else $SLEEPNET_FSDD)")  # fmt: skip


def add_data_dir(p: argparse.ArgumentParser, help: str = DATA_DIR_HELP) -> None:
    """``--data-dir``: a folder of data files instead of the default source."""
    p.add_argument("--data-dir", help=help)


def add_dataset(p: argparse.ArgumentParser) -> None:
    """``--dataset``: the model's dataset when its record names none."""
    p.add_argument("--dataset", help="the model's dataset, if its record names none "
                   "(mnist, fashion-mnist, patches, npz:PATH)")  # fmt: skip


def add_quiet(p: argparse.ArgumentParser, help: str = "only warnings and errors: no progress bars or "
              "per-unit lines") -> None:  # fmt: skip
    """``-q``/``--quiet``: only warnings and errors."""
    p.add_argument("-q", "--quiet", action="store_true", help=help)


def add_output(p: argparse.ArgumentParser, help: str = "output folder", required: bool = True) -> None:
    """``-o``/``--output``: the output path (a ``Path``), required unless ``required`` is false."""
    p.add_argument("-o", "--output", required=required, type=Path, help=help)


def add_force(p: argparse.ArgumentParser, help: str = "replace the output folder if it exists") -> None:
    """``--force``: replace the output if it exists."""
    p.add_argument("--force", action="store_true", help=help)


def add_common(p: argparse.ArgumentParser, out: bool = True, dataset: bool = True) -> None:
    """``--data-dir``, ``--dataset`` (unless not ``dataset``), ``-q``, and ``-o``/``--force`` (if ``out``)."""
    add_data_dir(p)
    if dataset:
        add_dataset(p)
    add_quiet(p)
    if out:
        add_output(p)
        add_force(p)


def add_device(p: argparse.ArgumentParser, what: str = "training and evaluation") -> None:
    """``--device``: where torch runs ``what``."""
    from ..devices import DEVICE_HELP

    p.add_argument("--device", default="cpu", help=f"torch device for {what}: {DEVICE_HELP}")


def device(args):
    """The resolved ``--device``: one clear error for a device this machine lacks, before any work."""
    from ..devices import resolve_device

    try:
        return resolve_device(args.device)
    except SleepnetError as exc:
        raise UsageError(f"--device: {exc}") from None


def progress(args) -> bool:
    """Progress (a bar on a terminal, else a line per finished unit: ``sleepnet.progress``) unless ``-q``."""
    return not getattr(args, "quiet", False)


def parse_seeds(text: str | None, prog: str | None = None) -> list[int] | None:
    """``--seeds 0,1,2``: distinct integers from 0 to 2**32 - 1; None stays None. A bad list is a
    ``UsageError``; with ``prog`` (an experiment script's name) it is one line ``prog: ...`` and exit
    status 1."""
    if text is None:
        return None
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
        problem = "" if seeds and all(map(is_seed, seeds)) else "integers from 0 to 2**32 - 1"
        problem = problem or ("" if len(set(seeds)) == len(seeds) else "distinct seeds")
    except ValueError:
        problem = "integers like 0,1,2"
    if not problem:
        return seeds
    message = f"--seeds expects {problem}, got {text!r}"
    if prog is not None:
        raise SystemExit(f"{prog}: {message}")
    raise UsageError(message)


def seed(text: str) -> int:
    """``--seed``: an integer from 0 to 2**32 - 1 (what every generator it seeds takes, numpy's
    legacy ``np.random.seed`` included); an argparse type."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not is_seed(value):
        raise argparse.ArgumentTypeError(f"must be an integer from 0 to 2**32 - 1, got {text!r}")
    return value


def parse_hidden(text: str | None) -> tuple[int, ...] | None:
    """``--hidden 1200,1200``: positive layer sizes, ``''`` for none; None stays None."""
    if text is None:
        return None
    try:
        sizes = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise UsageError(f"--hidden expects sizes like 1200,1200, got {text!r}") from None
    if any(n <= 0 for n in sizes):
        raise UsageError(f"--hidden sizes must be positive, got {text!r}")
    return sizes


def keys_table() -> str:
    """The sleep-config keys, one row each: name, type, default, allowed range, meaning.

    ``sleepnet sleep --help`` ends with it and ``sleepnet presets --keys`` prints it;
    both read ``sleepnet.config.config_keys()``, the rules that validation checks.
    """
    from ..config import config_keys

    rows = [("key", "type", "default", "range", "meaning"), *config_keys()]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row[:4], widths)) + "  " + row[4] for row in rows
    )
