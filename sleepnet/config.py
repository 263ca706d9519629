"""Sleep configuration: a frozen dataclass, TOML presets and ``key=value`` overrides.

Parameter names keep the paper's names (``max_rate``, ``inc``, ``dec``,
``beta``, ``alpha_scale``, ``T``, ``dt``, ``decay``, ``threshold``); the
reference's ``W_inh``, ``DC`` and ``normW`` are spelled ``w_inh``, ``dc`` and
``norm_w`` here (the reference spellings are accepted as aliases).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import tomllib

from .errors import SleepnetError

INPUT_MODES = ("sequential", "mean", "masked-mean")
ALIASES = {"W_inh": "w_inh", "DC": "dc", "normW": "norm_w", "alpha": "alpha_scale"}


@dataclass(frozen=True)
class SleepConfig:
    """Everything that defines one sleep phase (``sleep-algorithm.md`` §3-5).

    Units: ``dt`` in seconds, ``max_rate`` in Hz, ``T`` in steps.
    """

    max_rate: float
    inc: float
    dec: float
    beta: tuple[float, ...]
    alpha_scale: float
    T: int
    dt: float = 0.001
    threshold: float = 1.0
    decay: float = 0.999
    w_inh: float = 0.0
    dc: float = 0.0
    norm_w: bool = False
    gamma: float = 1.0
    input_mode: str = "sequential"
    cycle: bool = False  # sequential input: wrap around the data when T > len(data)
    silent_gaps: bool = False  # no input in the first 10 steps of every 100
    window: int = 11  # masked-mean: side of the square window, in pixels
    image_shape: tuple[int, int] | None = None  # masked-mean: (height, width); square if None
    percentile: float | None = None  # scale factors from this percentile instead of the max
    seed: int = 0
    chunk: int = 1000  # input spikes are drawn and simulated this many steps at a time
    raster_start: int = 0
    raster_steps: int = 1000  # spike raster kept for steps [raster_start, raster_start + raster_steps)
    snapshot_every: int = 0  # weight snapshots every k steps (0: none)
    name: str = "custom"
    description: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        beta = self.beta
        if isinstance(beta, (int, float)):
            beta = (beta,)
        try:
            object.__setattr__(self, "beta", tuple(float(b) for b in beta))
        except (TypeError, ValueError):
            raise SleepnetError(f"beta must be a list of numbers, got {self.beta!r}") from None
        if self.image_shape is not None:
            object.__setattr__(self, "image_shape", tuple(int(s) for s in self.image_shape))
        self.validate()

    def validate(self) -> None:
        positive = ("max_rate", "alpha_scale", "dt", "threshold", "gamma")
        for key in positive:
            if not _finite(getattr(self, key)) or getattr(self, key) <= 0:
                raise SleepnetError(f"{key} must be a positive number, got {getattr(self, key)!r}")
        for key in ("inc", "dec", "w_inh"):
            if not _finite(getattr(self, key)) or getattr(self, key) < 0:
                raise SleepnetError(f"{key} must be a non-negative number, got {getattr(self, key)!r}")
        if not _finite(self.dc):
            raise SleepnetError(f"dc must be a number, got {self.dc!r}")
        if not (_finite(self.decay) and 0 < self.decay <= 1):
            raise SleepnetError(f"decay must be in (0, 1], got {self.decay!r}")
        if not self.beta or not all(_finite(b) and b > 0 for b in self.beta):
            raise SleepnetError(f"beta must be positive numbers, one per weight layer, got {self.beta}")
        for key in ("T", "chunk", "window", "raster_steps", "snapshot_every", "raster_start", "seed"):
            val = getattr(self, key)
            if not isinstance(val, int) or isinstance(val, bool):
                raise SleepnetError(f"{key} must be an integer, got {val!r}")
        if self.T <= 0:
            raise SleepnetError(f"T must be a positive number of steps, got {self.T}")
        if self.chunk <= 0 or self.window <= 0:
            raise SleepnetError("chunk and window must be positive")
        if min(self.raster_steps, self.snapshot_every, self.raster_start, self.seed) < 0:
            raise SleepnetError("raster_start, raster_steps, snapshot_every and seed must be >= 0")
        if self.input_mode not in INPUT_MODES:
            raise SleepnetError(
                f"input_mode must be one of {', '.join(INPUT_MODES)}, got {self.input_mode!r}"
            )
        if self.percentile is not None and not (0 < self.percentile <= 100):
            raise SleepnetError(f"percentile must be in (0, 100], got {self.percentile}")

    def replace(self, **changes: Any) -> SleepConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["beta"] = list(self.beta)
        if self.image_shape is not None:
            d["image_shape"] = list(self.image_shape)
        return d

    def alpha(self, factors) -> list[float]:
        """Per-layer input gain ``alpha_l = alpha_scale * factor_l``."""
        return [self.alpha_scale * float(f) for f in factors]


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


_FIELDS = {f.name: f for f in dataclasses.fields(SleepConfig)}


def from_mapping(values: dict[str, Any], source: str = "config") -> SleepConfig:
    """Build a config from a flat mapping, with a clear error for unknown or missing keys."""
    clean: dict[str, Any] = {}
    for key, val in values.items():
        key = ALIASES.get(key, key)
        if key not in _FIELDS:
            raise SleepnetError(f"{source}: unknown key {key!r} (known: {', '.join(_FIELDS)})")
        clean[key] = val
    missing = [
        name for name, f in _FIELDS.items()
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        and name not in clean
    ]  # fmt: skip
    if missing:
        raise SleepnetError(f"{source}: missing keys {', '.join(missing)}")
    try:
        return SleepConfig(**clean)
    except TypeError as exc:
        raise SleepnetError(f"{source}: {exc}") from None


def preset_names() -> list[str]:
    folder = resources.files("sleepnet.presets")
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def _read_toml(text: str, source: str) -> dict[str, Any]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SleepnetError(f"{source} is not valid TOML ({exc})") from None
    sleep_table = data.get("sleep", {})
    if not isinstance(sleep_table, dict):
        raise SleepnetError(f"{source}: [sleep] must be a table")
    top = {k: v for k, v in data.items() if k != "sleep"}
    return top | sleep_table


def load_preset(name: str) -> SleepConfig:
    """One of the published presets (``experiments/presets/<name>.toml``)."""
    names = preset_names()
    if name not in names:
        raise SleepnetError(f"unknown preset {name!r} (known: {', '.join(names)})")
    text = resources.files("sleepnet.presets").joinpath(f"{name}.toml").read_text()
    values = _read_toml(text, f"preset {name}")
    values.setdefault("name", name)
    return from_mapping(values, f"preset {name}")


def load_config(path: str | Path, base: SleepConfig | None = None) -> SleepConfig:
    """A TOML config file (keys at top level or under ``[sleep]``), over ``base`` if given.

    A file may also name ``preset = "..."`` to start from a preset.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise SleepnetError(f"config file {path} does not exist") from None
    values = dict(_read_toml(text, str(path)))
    preset = values.pop("preset", None)
    if preset is not None:
        base = load_preset(preset)
    merged = base.to_dict() if base is not None else {}
    merged.update(values)
    return from_mapping(merged, str(path))


def toml_value(value: Any) -> str:
    """``value`` as a TOML literal."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return repr(value)  # ints, and floats as the shortest string that reads back to the same double


def config_to_toml(config: SleepConfig, header: str = "") -> str:
    """A ``[sleep]`` TOML file that ``load_config`` reads back to an equal config, float for float."""
    lines = [f"# {line}" for line in header.splitlines()] + ["[sleep]"]
    for key, value in config.to_dict().items():
        if value is None:
            continue  # TOML has no null; None is the default of every optional key
        lines.append(f"{key} = {toml_value(value)}")
    return "\n".join(lines) + "\n"


def parse_override(item: str) -> tuple[str, Any]:
    """``key=value`` with a TOML value (``beta=[1, 2, 3]``, ``norm_w=true``; bare words are strings)."""
    if "=" not in item:
        raise SleepnetError(f"--set expects key=value, got {item!r}")
    key, raw = (s.strip() for s in item.split("=", 1))
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return ALIASES.get(key, key), value


def apply_overrides(config: SleepConfig, items: list[str]) -> SleepConfig:
    values = config.to_dict()
    for item in items:
        key, value = parse_override(item)
        if key not in _FIELDS:
            raise SleepnetError(f"--set: unknown key {key!r} (known: {', '.join(_FIELDS)})")
        if key in ("T", "seed", "chunk") and isinstance(value, float) and value.is_integer():
            value = int(value)
        values[key] = value
    return from_mapping(values, "--set")
