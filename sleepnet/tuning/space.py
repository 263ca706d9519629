"""The search space of sleep: ranges around a base preset, overridable in TOML.

Searched by default: ``max_rate``, ``inc``, ``dec``, ``beta``
(one value per weight layer, ``beta_1`` ... ``beta_L``), ``alpha_scale`` and
``T`` on log scales from a quarter of the base preset's value to four times
it (``inc`` and ``dec``: a tenth to ten times; ``max_rate`` and
``alpha_scale``: a quarter to sixteen times), and the input mode (those
the data can take). Every other key stays as the base preset has it, but
``cycle``, which the tuner sets, so that sequential input wraps around the
training set when a trial's ``T`` exceeds it.

A TOML file overrides any of them::

    [space]
    inc = { low = 0.001, high = 0.5 }          # log scale unless log = false
    T = { low = 5000, high = 60000 }
    beta_2 = 10.0                              # fixed: not searched
    input_mode = ["sequential", "mean"]        # the choices of a categorical
    max_rate = false                           # keep the base value (not searched)
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from ..config import INPUT_MODES, SleepConfig
from ..errors import SleepnetError

#: (low factor, high factor) around the base value, per searched key
#: (``max_rate`` and ``alpha_scale`` reach 16x: the paper's own MNIST presets differ by 12x and 16x
#: in them, and on our paper network most of the 4x box around ``mnist-fgsm`` never fires layer 2)
DEFAULT_FACTORS = {"max_rate": (0.25, 16.0), "inc": (0.1, 10.0), "dec": (0.1, 10.0),
                   "alpha_scale": (0.25, 16.0), "T": (0.25, 4.0), "beta": (0.25, 4.0)}  # fmt: skip
INTEGER = {"T"}


@dataclass(frozen=True)
class Range:
    """A searched key's range ``[low, high]``, on a log scale unless ``log`` is false."""

    low: float
    high: float
    log: bool = True

    def suggest(self, trial, name: str):
        """The value ``trial`` draws for key ``name`` (an int for ``T``, else a float)."""
        if name in INTEGER:
            return trial.suggest_int(name, int(round(self.low)), int(round(self.high)), log=self.log)
        return trial.suggest_float(name, float(self.low), float(self.high), log=self.log)


@dataclass(frozen=True)
class SearchSpace:
    """``params``: name -> ``Range``, a tuple of choices, or a fixed value."""

    base: SleepConfig
    params: dict

    def keys(self) -> list[str]:
        """The names of the space's keys (searched or fixed), in order."""
        return list(self.params)

    def suggest(self, trial) -> SleepConfig:
        """The config a trial proposes: the base with every searched key drawn."""
        values = {}
        for name, spec in self.params.items():
            if isinstance(spec, Range):
                values[name] = spec.suggest(trial, name)
            elif isinstance(spec, tuple):
                values[name] = trial.suggest_categorical(name, list(spec))
            else:
                values[name] = spec
        return self.config(values)

    def config(self, values: dict) -> SleepConfig:
        """The base config with ``values`` (flat names, ``beta_1`` ...) applied."""
        beta = list(self.base.beta)
        changes = {}
        for name, v in values.items():
            if name.startswith("beta_"):
                beta[int(name[5:]) - 1] = float(v)
            else:
                changes[name] = int(round(v)) if name in INTEGER else v
        return self.base.replace(beta=tuple(beta), **changes)

    def base_values(self) -> dict:
        """The base preset as a point of this space (to enqueue it as the first trial)."""
        out = {}
        for name, spec in self.params.items():
            if isinstance(spec, (Range, tuple)):
                v = self._base_value(name)
                if isinstance(spec, Range) and not spec.low <= v <= spec.high:
                    continue
                if isinstance(spec, tuple) and v not in spec:
                    continue
                out[name] = v
        return out

    def _base_value(self, name: str):
        if name.startswith("beta_"):
            return self.base.beta[int(name[5:]) - 1]
        return getattr(self.base, name)

    def describe(self) -> dict:
        """JSON-able description, stored with the study."""
        out = {}
        for name, spec in self.params.items():
            if isinstance(spec, Range):
                out[name] = {"low": spec.low, "high": spec.high, "log": spec.log}
            elif isinstance(spec, tuple):
                out[name] = list(spec)
            else:
                out[name] = spec
        return out


def default_space(base: SleepConfig) -> dict:
    """The default ranges around ``base`` (``DEFAULT_FACTORS``, one ``beta_l`` per layer), all input modes.

    Returns ``{name: Range or tuple of choices}``; ``T`` is rounded to integers, at least 1.
    """
    params: dict = {}
    for key, (lo, hi) in DEFAULT_FACTORS.items():
        if key == "beta":
            for l, b in enumerate(base.beta, start=1):
                params[f"beta_{l}"] = Range(b * lo, b * hi)
        else:
            v = getattr(base, key)
            integer = key in INTEGER
            params[key] = Range(max(1, round(v * lo)), round(v * hi)) if integer else Range(v * lo, v * hi)
    params["input_mode"] = tuple(INPUT_MODES)
    return params


def read_space(path: str | Path) -> dict:
    """The ``[space]`` table of a TOML file."""
    path = Path(path)
    try:
        table = tomllib.loads(path.read_text()).get("space")
    except FileNotFoundError:
        raise SleepnetError(f"search-space file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise SleepnetError(f"{path} is not valid TOML ({exc})") from None
    if not isinstance(table, dict):
        raise SleepnetError(f"{path} has no [space] table")
    return table


def build_space(base: SleepConfig, table: dict | None = None, source: str = "[space]") -> SearchSpace:
    """The default space around ``base``, with ``table`` (a ``[space]`` table) over it."""
    params = default_space(base)
    known = set(params) | set(SleepConfig.__dataclass_fields__) - {"beta", "name", "description", "seed"}
    for name, spec in (table or {}).items():
        if name not in known:
            raise SleepnetError(f"{source}: {name!r} cannot be searched (known: {', '.join(sorted(known))})")
        if spec is False:
            params.pop(name, None)
        elif isinstance(spec, dict):
            unknown = set(spec) - {"low", "high", "log"}
            if unknown or not {"low", "high"} <= set(spec):
                raise SleepnetError(f"{source}: {name} needs low and high (and optionally log)")
            lo, hi, log = spec["low"], spec["high"], bool(spec.get("log", True))
            if not (isinstance(lo, (int, float)) and isinstance(hi, (int, float)) and lo < hi):
                raise SleepnetError(f"{source}: {name} needs numbers low < high, got {lo!r}, {hi!r}")
            if log and lo <= 0:
                raise SleepnetError(f"{source}: {name} is searched on a log scale and needs low > 0")
            params[name] = Range(lo, hi, log)
        elif isinstance(spec, list):
            if not spec:
                raise SleepnetError(f"{source}: {name} needs at least one choice")
            params[name] = tuple(spec)
        else:
            params[name] = spec
    space = SearchSpace(base, params)
    # a bad fixed value or bound fails here, with the config's own message
    space.config({k: (v.low if isinstance(v, Range) else v[0] if isinstance(v, tuple) else v)
                  for k, v in params.items()})  # fmt: skip
    return space
