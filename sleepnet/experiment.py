"""``sleepnet run EXPERIMENT.toml``: control, sleep variants and baseline defences over seeds, one report.

An experiment file::

    [experiment]
    dataset = "mnist"          # as for `sleepnet train`
    recipe = "paper"
    hidden = [1200, 1200]      # optional: the recipe's hidden sizes otherwise
    seeds = [0, 1, 2]
    suite = "paper"            # or "quick"
    subsample = 1000           # paper suite: at most this many test images per iterative attack
    workers = 2                # evaluation processes (default: one per core)
    without_eot = true         # also evaluate each stochastic model naively (no EOT, single draws),
                               # as "<name>-no-eot", to show what EOT changes (default: false)
    rand_autoattack = true     # also AutoAttack's rand version (EOT 1) where the suite's L-inf
                               # AutoAttack is the standard one: a stochastic model's (with EOT),
                               # compared like for like (evaluate_model; default: false)
    analyses = ["weights", "activations", "jacobian", "geometry"]   # sleepnet.analysis, of every
                               # model, kept as its measures (default: none)
    analysis_images = 500      # the analyses' test images (the geometry picks its own)

    [sleep]                    # name = {preset = ..., any sleep key = value}
    sleep-fgsm = { preset = "mnist-fgsm" }

    [defences]                 # name = {parameters}; names from sleepnet.defences.DEFENCES
    distillation = {}
    sat-3 = { defence = "saturation", lam = 1e-3 }   # any model name, with `defence` naming its kind

For every seed: train the control, sleep it with each variant, train each
defence from it, and evaluate them all on the same test images (in worker
processes, while the next seed trains). Then
aggregate over seeds (mean, std, paired t-test of each model against the
control) and write ``metrics.json``, ``results.csv``, ``report.md`` and
``figures/`` into the output folder, atomically.

``load_experiment`` reads the file into an ``ExperimentSpec``, a frozen
dataclass that checks every field when it is made: a bad value, an unknown key,
suite, recipe, dataset, defence or defence parameter, or a sleep variant
without a preset is one ``SleepnetError`` naming the file and the key, before
anything is trained.

Workers and threads: each model is saved as soon as it is trained (or
slept) and evaluated by ``workers`` processes, each with ``cores // workers``
torch threads, while the next models train: the decision-based attacks gain
little from a second thread and almost 2x from a second process. Results do
not depend on the number of workers beyond float rounding in torch's
threaded matrix products (which the decision-based attacks, walking along the
boundary, can amplify). With a pool, training runs on ``cores - workers``
torch threads (at least one): torch's threads wait on each other, and with
two training threads beside two busy workers on two cores, a seed of the
MNIST experiment took 21 to 33 minutes to train, against about 8 on one
thread. Training's float rounding, and so its weights, can depend on that
thread count (``sleepnet train`` uses torch's default).

Sharing work between experiments (``reuse``, ``sleepnet run --reuse OTHER``): a model is named by
the hash of what makes it (data, recipe, seed, device, torch's thread count; a slept or defended
model, its parent's hash and its settings), and each measure by the model's hash, the hash of its
weights (a model made again on another CPU may differ in the last bits: its measures are then made
again too), the suite, its options and the evaluation's thread count, so a model that another
experiment's output holds (finished, or still running as ``.OTHER.partial``) is the same unit under
any name, given the same ``--workers`` on as many cores. Where this run's folder has no such model,
it is copied from OTHER, and so are the measures kept beside it when this run reaches that model
(not those OTHER finishes later); a measure whose inputs differ is computed again, as on a resume.
``--keep DIR`` keeps a copy of every measure in ``DIR`` as it is finished (``Units``), from which a
run resumes on another machine with its models made again; ``--reuse`` also takes such a copy of
another run's, whose measures are taken wherever their inputs match (model, weights, data, suite,
options, threads: the same measure of the same model under any name). Three of
``saturation_mnist.toml``'s nine models per seed are ``standard_mnist.toml``'s (control,
``sleep-fgsm``, ``adv-pgd``), as are three of ``stochastic_mnist.toml``'s.

A first pass (``measures``, ``sleepnet run --only-measures``) makes only the measures named, of every
model and seed, and stops without a report, its work folder left for the run without it
(``first_pass``; ``docs/design.md``, "Resumable work").
"""

from __future__ import annotations

import dataclasses
import os
import re
import time
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from .config import ALIASES, SleepConfig, apply_overrides, load_preset, toml_value
from .errors import SleepnetError, UsageError
from .evaluation.suites import RAND_AUTOATTACK, SUITES, FrozenMap
from .fsio import MARK, check_creatable, check_output, marked, read_json, remove, write_json
from .progress import LOG
from .registry import UnknownName
from .state import is_seed
from .threads import cores, pinned
from .units import copy_tree, partial_path, resumable_dir, unit_hash

TABLES = ("experiment", "sleep", "defences")
KNOWN = ("name", "description", "dataset", "recipe", "hidden", "epochs", "seeds", "suite", "subsample",
         "workers", "without_eot", "rand_autoattack", "analyses", "analysis_images")  # fmt: skip
#: the name of a stochastic model's naive evaluation (``without_eot``) is its own with this suffix
NO_EOT = "-no-eot"
#: what a sleep variant may be called (it names a model folder)
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int_list(value: Any, least: int) -> bool:
    return isinstance(value, (list, tuple)) and all(_is_int(v) and v >= least for v in value)


def _seed_list(value: Any) -> bool:
    """A non-empty list of distinct seeds (plain ints, ``state.is_seed``): an experiment's ``seeds``."""
    return isinstance(value, (list, tuple)) and all(_is_int(v) and is_seed(v) for v in value) \
        and 0 < len(value) == len(set(value))


def _name_list(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value) \
        and len(set(value)) == len(value)


@dataclass(frozen=True)
class ExperimentSpec:
    """An experiment file, checked: every field valid when the object exists.

    ``sleep``: variant name -> ``SleepConfig``; ``defences``: name in ``DEFENCES`` -> its
    parameters. ``source`` names the file in error messages. ``to_dict()`` is what
    ``metrics.json`` records under ``experiment``.
    """

    name: str
    dataset: str = "mnist"
    recipe: str = "paper"
    hidden: tuple[int, ...] | None = None
    epochs: int | None = None
    seeds: tuple[int, ...] = (0,)
    suite: str = "paper"
    subsample: int = 1000
    workers: int | None = None
    without_eot: bool = False
    rand_autoattack: bool = False
    analyses: tuple[str, ...] = ()
    analysis_images: int = 500
    sleep: Mapping[str, SleepConfig] = field(default_factory=FrozenMap)
    defences: Mapping[str, Mapping[str, Any]] = field(default_factory=FrozenMap)
    source: str = field(default="experiment", compare=False, repr=False)

    def __post_init__(self) -> None:
        self._check_values()
        self._check_names()
        self._check_models()

    def _fail(self, table: str, text: str) -> NoReturn:
        raise SleepnetError(f"{self.source}: [{table}] {text}")

    def _lookup(self, table: str, registry, name: str, prefix: str = ""):
        """``registry.get(name)``, an unknown name failing as ``[table] prefix<the registry's message>``."""
        try:
            return registry.get(name)
        except UnknownName as exc:
            self._fail(table, f"{prefix}{exc}")

    def _check_values(self) -> None:
        checks = [
            ("name", isinstance(self.name, str) and bool(self.name), "a non-empty string"),
            ("hidden", self.hidden is None or _int_list(self.hidden, 1), "a list of positive integers"),
            ("epochs", self.epochs is None or (_is_int(self.epochs) and self.epochs > 0),
             "a positive integer"),
            ("seeds", _seed_list(self.seeds), "a list of distinct integers from 0 to 2**32 - 1"),
            ("subsample", _is_int(self.subsample) and self.subsample > 0, "a positive integer"),
            ("workers", self.workers is None or (_is_int(self.workers) and self.workers >= 1),
             "an integer >= 1"),
            ("without_eot", isinstance(self.without_eot, bool), "true or false"),
            ("rand_autoattack", isinstance(self.rand_autoattack, bool), "true or false"),
            ("analyses", _name_list(self.analyses), "a list of distinct analysis names"),
            ("analysis_images", _is_int(self.analysis_images) and self.analysis_images > 0,
             "a positive integer"),
        ]  # fmt: skip
        for key, ok, what in checks:
            if not ok:
                self._fail("experiment", f"{key} must be {what}, got {getattr(self, key)!r}")
        for key in ("hidden", "seeds", "analyses"):
            if getattr(self, key) is not None:
                object.__setattr__(self, key, tuple(getattr(self, key)))

    def _check_names(self) -> None:
        from .analysis import ANALYSES
        from .data import DATASETS
        from .training import RECIPES

        for key, registry in (("recipe", RECIPES), ("suite", SUITES)):
            value = getattr(self, key)
            if not isinstance(value, str):
                self._fail("experiment", f"{key} must be a string, got {value!r}")
            self._lookup("experiment", registry, value, f"{key}: ")
        for name in self.analyses:
            self._lookup("experiment", ANALYSES, name, "analyses: ")
        if not isinstance(self.dataset, str):
            self._fail("experiment", f"dataset must be a string, got {self.dataset!r}")
        if self.dataset.split(":")[0] not in DATASETS and not self.dataset.startswith("npz:"):
            self._fail("experiment", f"dataset: unknown dataset {self.dataset!r} "
                                     f"(known: {', '.join(DATASETS)}, npz:PATH)")  # fmt: skip

    def _check_models(self) -> None:
        from .defences import DEFENCES

        for table in ("sleep", "defences"):
            if not isinstance(getattr(self, table), Mapping):
                self._fail(table, f"must be a table, got {getattr(self, table)!r}")
        for name, config in self.sleep.items():
            if not isinstance(name, str) or not MODEL_NAME.fullmatch(name) or name == "control":
                self._fail("sleep", f"{name!r}: a variant name must be letters, digits, '.', '_' or "
                                    "'-', and not 'control'")  # fmt: skip
            if not isinstance(config, SleepConfig):
                self._fail("sleep", f"{name} must be a SleepConfig, got {config!r}")
        for name, params in self.defences.items():
            if not isinstance(params, Mapping):
                self._fail("defences", f"{name} must be a table of parameters, got {params!r}")
            if not isinstance(name, str) or not MODEL_NAME.fullmatch(name) or name == "control":
                self._fail("defences", f"{name!r}: a model name must be letters, digits, '.', '_' or "
                                       "'-', and not 'control'")  # fmt: skip
            kind, rest = defence_kind(name, params)
            entry = self._lookup("defences", DEFENCES, kind)
            try:
                entry(**rest)  # checks the parameters and their values
            except SleepnetError as exc:
                self._fail("defences", f"{name}: {exc}")
            if name in self.sleep:
                self._fail("defences", f"{name}: also the name of a [sleep] variant; every model "
                                       "needs its own name")  # fmt: skip
        clash = [n for n in (*self.sleep, *self.defences) if self.without_eot and n.endswith(NO_EOT)]
        if clash:
            self._fail("experiment", f"without_eot calls the naive evaluation of a model <name>{NO_EOT}: "
                                     f"rename {clash[0]!r}")  # fmt: skip
        object.__setattr__(self, "sleep", FrozenMap(self.sleep))
        object.__setattr__(self, "defences", FrozenMap({k: FrozenMap(v) for k, v in self.defences.items()}))

    def to_dict(self) -> dict:
        """The dict ``metrics.json`` records (lists, plain dicts, each sleep config as a dict);
        ``without_eot`` only where it is true, so earlier files read the same."""
        return {
            "name": self.name, "dataset": self.dataset, "recipe": self.recipe,
            "hidden": None if self.hidden is None else list(self.hidden), "epochs": self.epochs,
            "seeds": list(self.seeds), "suite": self.suite, "subsample": self.subsample,
            "workers": self.workers, **({"without_eot": True} if self.without_eot else {}),
            **({"rand_autoattack": True} if self.rand_autoattack else {}),
            **({"analyses": list(self.analyses), "analysis_images": self.analysis_images} if self.analyses
               else {}),
            "defences": {k: dict(v) for k, v in self.defences.items()},
            "sleep": {k: c.to_dict() for k, c in self.sleep.items()},
        }  # fmt: skip


def _read_toml(path: Path) -> dict:
    try:
        doc = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise SleepnetError(f"experiment file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise SleepnetError(f"{path} is not valid TOML ({exc})") from None
    unknown = [k for k in doc if k not in TABLES]
    if unknown:
        raise SleepnetError(f"{path}: unknown table [{unknown[0]}] (known: {', '.join(TABLES)})")
    for table in TABLES:
        if table in doc and not isinstance(doc[table], dict):
            raise SleepnetError(f"{path}: [{table}] must be a table, got {doc[table]!r}")
    return doc


def _sleep_variant(name: str, entry: Any, where: str) -> SleepConfig:
    """The ``SleepConfig`` of ``[sleep] name = {preset = ..., key = value, ...}``."""
    at = f"{where}: [sleep] {name}"
    if not isinstance(entry, dict):
        raise SleepnetError(f'{at} must be a table like {{ preset = "mnist-fgsm" }}, got {entry!r}')
    entry = dict(entry)
    if "preset" not in entry:
        raise SleepnetError(f"{at} needs a preset")
    preset = entry.pop("preset")
    if not isinstance(preset, str):
        raise SleepnetError(f"{at}: preset must be a string, got {preset!r}")
    known = [f.name for f in dataclasses.fields(SleepConfig)]
    for key in entry:
        if ALIASES.get(key, key) not in known:
            raise SleepnetError(f"{at}: unknown key {key!r} (known: {', '.join(known)})")
    try:
        return apply_overrides(load_preset(preset), [f"{k}={toml_value(v)}" for k, v in entry.items()])
    except SleepnetError as exc:
        raise SleepnetError(f"{at}: {str(exc).removeprefix('--set: ')}") from None


def load_experiment(path: Path) -> ExperimentSpec:
    """The ``ExperimentSpec`` of an experiment file (module docstring); one ``SleepnetError`` for the
    first bad table, key or value, naming the file and the key."""
    path = Path(path)
    doc = _read_toml(path)
    table = doc.get("experiment")
    if table is None:
        raise SleepnetError(f"{path} has no [experiment] table")
    unknown = sorted(set(table) - set(KNOWN))
    if unknown:
        raise SleepnetError(f"{path}: unknown [experiment] keys {', '.join(unknown)} "
                            f"(known: {', '.join(KNOWN)})")  # fmt: skip
    description = table.get("description", "")
    if not isinstance(description, str):
        raise SleepnetError(f"{path}: [experiment] description must be a string, got {description!r}")
    fields = {k: v for k, v in table.items() if k != "description"}
    fields.setdefault("name", path.stem)
    sleep = {name: _sleep_variant(name, entry, str(path)) for name, entry in doc.get("sleep", {}).items()}
    return ExperimentSpec(**fields, sleep=sleep, defences=doc.get("defences", {}), source=str(path))


def run_experiment(path: Path, out: Path, *, quick: bool = False, overwrite: bool = False,
                   progress: bool = True, data_dir: str | None = None,
                   workers: int | None = None, seeds: list[int] | None = None, device=None,
                   reuse: list[Path] | tuple = (), keep: Path | None = None,
                   models: list[str] | None = None, measures: list[str] | None = None) -> dict:  # fmt: skip
    """Run the experiment of ``path`` into ``out``; returns the metrics.

    ``workers`` evaluation processes (default: the file's, else one per core; see "Workers and
    threads" in the module docstring). ``seeds`` replaces the file's seeds; ``models`` keeps only
    those of the file's models (``only_models``). ``device`` (default cpu) is where models are
    trained, slept (their scale factors; the Numba kernel runs on the host) and evaluated. ``reuse``:
    other experiments' outputs whose models and measures this run takes where they are the same
    units, or other runs' ``keep`` folders, whose measures it takes where their inputs match (module
    docstring). ``keep``: a folder that receives a copy of every measure as it is finished, laid out
    as the output's ``units/``, and whose measures this run takes where they are the same units
    (``Units``): a run on a machine that does not outlive it resumes elsewhere from that copy (its
    models are made again; a measure whose model came out with other weights is made again too).
    ``measures``: a first pass (``first_pass``) that makes only these measures of every model and seed
    (the rest taken where kept, else left), keeps them and stops without a report, its work folder
    left for the same command without ``measures`` to finish; returns ``{"first_pass": counts}``.
    """
    import torch

    from .data import load_dataset
    from .devices import resolve_device
    from .report import aggregate, write_report

    device = resolve_device(device)
    spec = load_experiment(path)
    # what the work folder may hold: the file's other seeds and models (--seeds, --models) are kept, not
    # pruned (hours of an earlier run's work; the report is over the ones asked)
    whole = spec
    if seeds is not None:
        if not _seed_list(seeds):
            raise SleepnetError(f"seeds must be distinct integers from 0 to 2**32 - 1, got {seeds!r}")
        whole = dataclasses.replace(spec, seeds=tuple(dict.fromkeys((*spec.seeds, *seeds))))
        spec = dataclasses.replace(spec, seeds=tuple(seeds))
    if models is not None:
        spec = only_models(spec, models)
    if measures is not None:
        first_pass(spec, measures)
    check_output(out, overwrite, inputs=[path])
    sources = reuse_sources(reuse, out)
    keep = check_keep(keep, out)
    if workers is not None and (not _is_int(workers) or workers < 1):
        raise UsageError(f"--workers must be at least 1, got {workers}")
    workers = workers or spec.workers or cores()
    data = load_dataset(spec.dataset, data_dir)
    if "geometry" in spec.analyses:  # enough test images a class, before any work
        from .analysis import geometry_for

        geometry_for(data).check_data(data.y_test)
    recipe = _recipe(spec)
    _check_sleep_variants(spec, recipe, data)
    options = {"subsample": spec.subsample, "quick": quick} if SUITES[spec.suite].subsample_attacks else {}
    options["device"] = str(device)
    n_cores = cores()
    train_threads = max(1, n_cores - workers) if workers > 1 else torch.get_num_threads()
    timing = {"train_s": {}, "workers": workers, "train_threads": train_threads, "cores": n_cores}
    t_all = time.perf_counter()
    # a first pass (--only-measures) leaves its work folder, for the run without --only-measures to finish
    with resumable_dir(out, overwrite, inputs=[path], finish=measures is None) as tmp, \
            Evaluator(spec, data_dir, options, workers, tmp / "units", data.sha256, keep,
                      [p for p in sources if kept_measures(p)], measures) as ev, \
            pinned(train_threads):  # fmt: skip
        for seed in _bar(spec.seeds, progress, "train", label=lambda s: f"seed {s}"):
            t0 = time.perf_counter()
            _train_seed(spec, data, recipe, seed, tmp, ev, progress, device, sources)
            timing["train_s"][str(seed)] = time.perf_counter() - t0
        results = ev.results(progress)
        _prune(tmp, whole)
        if measures is not None:
            counts = {"done": ev.done, "reused": ev.reused, "left": ev.deferred}
            LOG.info("first pass: %d measures made, %d kept from before, %d left for the run without "
                     "--only-measures, which finishes %s", counts["done"], counts["reused"], counts["left"],
                     out)  # fmt: skip
            return {"first_pass": counts}
        models = len(spec.seeds) * (1 + len(spec.sleep) + len(spec.defences))  # not the -no-eot passes
        timing["reused"] = {"models": ev.models_reused, "models_of": models, "measures": ev.reused,
                            "measures_of": ev.reused + ev.done}  # fmt: skip
        timing["reused_from"] = [str(p) for p in sources]  # besides this run's own earlier work
        timing["eval_threads"] = ev.threads  # each worker's torch threads: the measures' core-hours
        if ev.reused or ev.models_reused or sources or keep is not None:  # 0 said too: a --keep or
            # --reuse of other threads or weights is taken for nothing
            also = (" or --reuse" if sources else "") + (" or --keep" if keep is not None else "")
            LOG.info("reused %d of %d models and %d of %d measures from an earlier run%s", ev.models_reused,
                     models, ev.reused, ev.reused + ev.done, also)  # fmt: skip
        timing["total_s"] = time.perf_counter() - t_all
        timing["evaluate_s"] = {f"seed{k[0]}/{k[1]}": r["evaluate_s"] for k, r in results.items()}
        timing["measure_s"] = {f"seed{k[0]}/{k[1]}": r.pop("measure_s") for k, r in results.items()}
        # the measures taken from earlier work, at the time each took when it was made
        timing["kept_measure_s"] = {f"seed{k[0]}/{k[1]}": r.pop("kept_measure_s") for k, r in results.items()}
        per_seed = {seed: {name: res for (s, name), res in results.items() if s == seed}
                    for seed in spec.seeds}  # fmt: skip
        metrics = {
            "experiment": spec.to_dict() | {"quick": quick, "device": str(device)},
            "dataset": data.record(),
            "timing": timing,
            "per_seed": {str(s): r for s, r in per_seed.items()},
            "aggregate": aggregate(per_seed),
        }
        write_json(tmp / "metrics.json", metrics)
        write_report(metrics, tmp)
    return metrics


def first_pass(spec: ExperimentSpec, names) -> None:
    """One clear error unless ``names`` (``--only-measures``) are distinct measures of ``spec``'s models
    (``Suite.measures``, ``analysis-NAME`` of its analyses, ``RAND_AUTOATTACK`` with
    ``rand_autoattack``), the masking checks with HopSkipJump where the suite has it (one of the checks
    compares with it). A first pass makes the measures most wanted of every model and seed before the
    rest: a long run's answer over seeds comes sooner."""
    names = list(names)
    suite = SUITES.get(spec.suite)
    noisy = any(defence_kind(k, v)[0] == "stochastic" for k, v in spec.defences.items())
    known = [m for m in suite.measures if noisy or m != "clean-over-draws"]  # a stochastic model's only
    known += [f"analysis-{a}" for a in spec.analyses]
    if spec.rand_autoattack and "autoattack-linf" in suite.labels:
        known.append(RAND_AUTOATTACK)
    _check_names("--only-measures", names, known, f"not measured by {spec.source}", "measure")
    if "masking" in names and "hopskipjump" in known and "hopskipjump" not in names:
        raise SleepnetError("--only-measures: masking needs hopskipjump (one of its checks compares with it)")


def _check_names(option: str, names: list[str], known: list[str], missing: str, kind: str) -> None:
    """One clear error unless ``names`` (given to ``option``) are distinct and among ``known``."""
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SleepnetError(f"{option}: {', '.join(unknown)} {missing} (its {kind}s: {', '.join(known)})")
    if not names or len(set(names)) != len(names):
        raise SleepnetError(f"{option} needs distinct {kind} names, got {','.join(names)!r}")


def only_models(spec: ExperimentSpec, names) -> ExperimentSpec:
    """``spec`` with only the ``[sleep]`` variants and ``[defences]`` named in ``names`` (``--models``;
    the control is always made and measured: every other model is made from it and compared with it);
    one clear error for a name the file does not have, a repeated one or none. The models left out are
    the same units as in the whole file, so a later run of the whole file takes what this one made."""
    names = list(names)
    known = ["control", *spec.sleep, *spec.defences]
    _check_names("--models", names, known, f"not in {spec.source}", "model")
    return dataclasses.replace(spec, sleep=FrozenMap({k: v for k, v in spec.sleep.items() if k in names}),
                               defences={k: dict(v) for k, v in spec.defences.items() if k in names})


def _recipe(spec: ExperimentSpec):
    """The spec's training recipe, its hidden sizes replaced if the spec names them."""
    from .training import get_recipe

    recipe = get_recipe(spec.recipe, epochs=spec.epochs)
    if spec.hidden is not None:
        recipe = get_recipe(spec.recipe, epochs=spec.epochs,
                            sizes=(recipe.sizes[0], *spec.hidden, recipe.sizes[-1]))  # fmt: skip
    return recipe


def _check_sleep_variants(spec: ExperimentSpec, recipe, data) -> None:
    """One clear error, before any training, unless every ``[sleep]`` variant can sleep the control:
    the recipe's network (built untrained) is one sleep converts, each variant has a beta per weight
    layer, and its input mode fits the training set (``inputs.check_input``)."""
    if not spec.sleep:
        return
    import torch

    from .converters import check_sequential
    from .errors import ConversionError
    from .inputs import check_input
    from .training import init_model

    with torch.random.fork_rng(devices=[]):  # init_model seeds torch's global generator
        model = init_model(recipe, 0, data.image_shape, data.frontend)
    try:
        linear = check_sequential(model)
    except ConversionError as exc:
        raise SleepnetError(f"{spec.source}: [sleep] the recipe {spec.recipe!r} cannot sleep: "
                            f"{exc}") from None
    n_inputs = model[linear[0]].in_features  # the features, for a model with a front-end
    for name, config in spec.sleep.items():
        try:
            if len(config.beta) != len(linear):
                raise SleepnetError(f"{len(config.beta)} beta values but the network has {len(linear)} "
                                    "weight layers")  # fmt: skip
            check_input(config, len(data.x_train), n_inputs)
        except SleepnetError as exc:
            raise SleepnetError(f"{spec.source}: [sleep] {name}: {exc}") from None


def _train_seed(spec: ExperimentSpec, data, recipe, seed: int, tmp: Path, ev: Evaluator,
                progress: bool, device=None, sources: list[Path] | tuple = ()) -> None:  # fmt: skip
    """Train the control of ``seed``, sleep it with each variant, train each defence from it; each
    model is saved under ``tmp/seed<seed>/`` and handed to ``ev``. A model none of ``tmp`` holds is
    taken from ``sources`` where one holds it (``reuse_sources``, ``_take_shared``)."""
    import torch

    from .defences import DEFENCES
    from .hashing import weights_sha256
    from .models import load_model, save_model
    from .noise import stochastic
    from .sleep_phase import sleep
    from .training import train
    from .workflow import activation_record

    def made(name: str, digest: str, make):
        """The model folder ``tmp/seed<seed>/name``: kept if its unit hash is ``digest``, else ``make()``
        (a model and its record) saved there; returns the model and its record."""
        folder = tmp / f"seed{seed}" / name
        kept = _kept_model(folder, digest, device)
        if _take_shared(sources, seed, digest, tmp, name, kept is None):
            kept = _kept_model(folder, digest, device)
        if kept is not None:
            ev.models_reused += 1
        else:
            if folder.exists():  # another unit's, or half of one a kill cut short: the work folder is ours
                remove(folder)
            model, rec = make()
            save_model(model, folder, rec | {"unit": digest}, overwrite=True)
            kept = load_model(folder, device=device)  # what was saved: a resumed run sees the very same
        weights = weights_sha256(kept[0])  # in each measure's inputs: a model made again to other bits
        ev.submit(seed, name, folder, digest, weights)  # (another CPU, other threads) is measured again
        if spec.without_eot and stochastic(kept[0]):
            ev.submit(seed, name + NO_EOT, folder, digest, weights, eot=False)
        return kept

    def train_control():
        model, rec = train(data, recipe, seed=seed, progress=progress, device=device)
        return model, rec | {"activation_max": activation_record(model, data)}

    # torch's thread count can move the last bits of training (module docstring): part of the inputs
    c_hash = unit_hash("control", data.sha256, dataclasses.asdict(recipe), seed, str(device),
                       torch.get_num_threads())  # fmt: skip
    control, record = made("control", c_hash, train_control)
    for name, config in spec.sleep.items():
        def slept(config=config):
            result = sleep(control, config.replace(seed=seed), data.x_train, progress=progress,
                           max_activation=np.asarray(record["activation_max"]["values"]))  # fmt: skip
            return result.model, {"kind": "slept", "recipe": record["recipe"], "dataset": data.record(),
                                  "seed": seed, "sleep": result.summary()}  # fmt: skip

        made(name, unit_hash("sleep", c_hash, config.replace(seed=seed).to_dict()), slept)
    for name, params in spec.defences.items():
        kind, rest = defence_kind(name, params)
        made(name, unit_hash("defence", c_hash, kind, rest, seed, str(device)),
             lambda kind=kind, rest=rest: DEFENCES[kind](**rest).apply(control, record, data, seed,
                                                                      device=device))  # fmt: skip



def _kept_model(folder: Path, digest: str, device=None):
    """The model (on ``device``) and record of ``folder`` if it is a finished unit with hash ``digest``,
    else None."""
    from .models import load_model

    if not (folder / "model.json").is_file():
        return None
    try:
        model, rec = load_model(folder, device=device)
    except SleepnetError:
        return None  # damaged: made again
    return (model, rec) if rec.get("unit") == digest else None


def reuse_sources(paths, out: Path) -> list[Path]:
    """The experiment outputs ``paths``, each checked to hold one now (itself, or for a run not finished
    its ``.NAME.partial``: ``_source_dir``) or to be another run's ``--keep`` copy of measures
    (``kept_measures``); one clear error for a path that holds none or that is ``out``."""
    sources = [Path(p) for p in paths]
    for path in sources:
        if path.resolve() in (Path(out).resolve(), partial_path(out).resolve()):
            raise SleepnetError(f"--reuse {path}: that is this run's own output (it resumes by itself)")
        if _source_dir(path) is None and not kept_measures(path):
            raise SleepnetError(f"--reuse {path}: no experiment output there (no seed*/MODEL/model.json "
                                f"in it or in {partial_path(path)}) and no --keep copy of measures "
                                "(seed*/MODEL/*.json)")  # fmt: skip
    return sources


def kept_measures(path: Path) -> bool:
    """Whether ``path`` is a ``--keep`` copy of measures: ``seed*/MODEL/MEASURE.json`` and no models. Its
    measures are taken wherever their inputs match, under any model name (``Units``' ``also``)."""
    path = Path(path)
    return path.is_dir() and any(path.glob("seed*/*/*.json")) and not any(path.glob("seed*/*/model.json"))


def check_keep(keep, out: Path) -> Path | None:
    """The ``--keep`` folder, checked before any work; one clear error for an empty path, one inside
    ``out`` or its work folder (which a finished run renames, and ``--force`` replaces), a file, an
    experiment output or any folder sleepnet wrote, or one inside such (its model folders would receive
    the copies, its ``--force`` would delete them), or one that cannot be made."""
    if keep is None:
        return None
    if not str(keep).strip():
        raise SleepnetError("--keep needs a folder, got an empty path")
    keep = Path(keep)
    resolved = keep.resolve()
    for folder in (Path(out).resolve(), partial_path(out).resolve()):
        if resolved == folder or folder in resolved.parents:
            raise SleepnetError(f"--keep {keep}: that is inside this run's output {out} (keep the measures "
                                "somewhere that outlives it)")  # fmt: skip
    if keep.exists() and not keep.is_dir():
        raise SleepnetError(f"--keep {keep}: that is a file, not a folder")
    for folder in (resolved, *list(resolved.parents)[:-1]):  # it, or a folder it is in (--force replaces)
        if folder.is_dir() and (marked(folder) or _source_dir(folder) is not None):
            where = "in " if folder != resolved else ""
            raise SleepnetError(f"--keep {keep}: that is {where}an output sleepnet wrote, not a copy of "
                                "measures (choose a folder of its own)")  # fmt: skip
    if not keep.is_dir():
        check_creatable(keep)
    return keep


def _source_dir(path: Path) -> Path | None:
    """Where the output ``path`` is now: ``path`` when finished, else its ``.partial`` (looked up at each
    use: a source that finishes while this run goes on moves from one to the other)."""
    for folder in (path, partial_path(path)):
        if folder.is_dir() and any(folder.glob("seed*/*/model.json")):
            return folder
    return None


def _take_shared(sources, seed: int, digest: str, work: Path, name: str, want_model: bool) -> bool:
    """Take from ``sources`` what they hold now of the unit ``digest`` (model ``name`` of ``seed``): its
    finished model folder (copies) if ``want_model``, and the measures kept beside it that ``work`` lacks
    (those of its naive ``-no-eot`` pass too); measures a running source finishes later are not taken.
    Folders being written (hidden, or without ``fsio.MARK``) and files that vanish are passed over.
    True if a model folder was taken."""
    took = False
    for path in sources:
        root = _source_dir(path)
        if root is None:
            continue
        for meta in sorted((root / f"seed{seed}").glob("*/model.json")):
            other = meta.parent.name
            if other.startswith(".") or not (meta.parent / MARK).is_file():
                continue
            try:
                record = read_json(meta)
                if not isinstance(record, dict) or record.get("unit") != digest:
                    continue
                if want_model and not took:
                    inode = os.stat(meta.parent).st_ino
                    copy_tree(meta.parent, work / f"seed{seed}" / name)
                    if os.stat(meta.parent).st_ino != inode:  # replaced meanwhile: the copy may mix two
                        remove(work / f"seed{seed}" / name)
                        continue
                    took = True
                    LOG.info("seed%d/%s: the model %s of %s (the same unit)", seed, name, other, root)
                for suffix in ("", NO_EOT):
                    src = root / "units" / f"seed{seed}" / (other + suffix)
                    if src.is_dir():
                        copy_tree(src, work / "units" / f"seed{seed}" / (name + suffix), replace=False)
            except (OSError, ValueError, SleepnetError):
                continue  # renamed, removed or damaged meanwhile: what was taken is whole, the rest is made
    return took


def _prune(work: Path, spec: ExperimentSpec) -> None:
    """Remove the model folders and measures of seeds and models the experiment no longer has (left by
    an earlier run whose file named them)."""
    names = {"control", *spec.sleep, *spec.defences}
    names |= {name + NO_EOT for name in names} if spec.without_eot else set()
    keep = {f"seed{s}" for s in spec.seeds}
    for top in (work, work / "units"):
        for seed_dir in top.glob("seed*"):
            if seed_dir.name not in keep or not seed_dir.is_dir():
                remove(seed_dir)
                continue
            for child in seed_dir.iterdir():
                if child.name not in names:
                    remove(child)



def defence_kind(name: str, params: Mapping[str, Any]) -> tuple[str, dict]:
    """The registry name of the ``[defences]`` entry ``name`` (its ``defence`` key, else ``name``)
    and its other parameters."""
    rest = dict(params)
    return str(rest.pop("defence", name)), rest


_WORKER: dict = {}


def _worker_init(dataset: str, data_dir: str | None, threads: int | None, logging=None) -> None:
    import torch

    from .data import load_dataset

    if logging is not None:  # a pool worker: says what it finishes as the parent would
        from .progress import configure

        configure(*logging)
    if threads is not None:
        torch.set_num_threads(threads)
    _WORKER["data"] = load_dataset(dataset, data_dir)


def _evaluate_one(job: tuple, suite: str, seed: int) -> tuple:
    from .evaluation import evaluate_model
    from .models import load_model
    from .units import Units

    key, folder, units_dir, context, options, copies, analyses, only, rand = job
    model, record = load_model(folder)
    units = Units(units_dir, context, label=f"seed{key[0]}/{key[1]}", only=only, **copies)
    t0 = time.perf_counter()
    # rand_autoattack outside the options, as the analyses: the other measures' hashes stay
    res = evaluate_model(model, _WORKER["data"], record["recipe"]["loss"], suite, seed, units=units,
                         rand_autoattack=rand, **options)  # fmt: skip
    if analyses[0]:  # measures of the model too, outside the evaluation's options: their hashes stay
        from .analysis import analyze_model

        res["analyses"] = analyze_model(model, _WORKER["data"], *analyses, unit=units.run, seed=seed)
    timed = {"evaluate_s": time.perf_counter() - t0, "measure_s": units.seconds,  # both: into timing
             "kept_measure_s": units.kept_seconds}  # fmt: skip
    return key, res | timed, (units.reused, units.done, units.deferred)


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


class Evaluator:
    """Evaluates saved models as they come: in this process (``workers=1``) or in a pool of
    ``workers`` processes that works while the next models train."""

    def __init__(self, spec: ExperimentSpec, data_dir, options: dict, workers: int, units: Path,
                 data_hash: str, keep: Path | None = None, kept=(), only=None) -> None:  # fmt: skip
        self.spec, self.data_dir, self.options, self.workers = spec, data_dir, options, workers
        self.units, self.data_hash, self.keep, self.kept = Path(units), data_hash, keep, list(kept)
        self.only = None if only is None else tuple(only)  # a first pass's measures (Units.only)
        self.pending: list = []  # (key, folder) or futures
        self.pool = None
        # each pool worker's torch threads; in-process, this process's (the evaluation's thread count can
        # move the last bits of scores: module docstring)
        self.threads = max(1, cores() // workers) if workers > 1 else _torch_threads()
        # measures and models kept from an earlier run, measures computed now, and those left (a first pass)
        self.reused = self.models_reused = self.done = self.deferred = 0

    def __enter__(self) -> Evaluator:
        if self.workers > 1:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            from .progress import settings

            init = (self.spec.dataset, self.data_dir, self.threads, settings())
            self.pool = ProcessPoolExecutor(self.workers, mp_context=mp.get_context("spawn"),
                                            initializer=_worker_init, initargs=init)  # fmt: skip
            # start every worker now: the pool spawns one per submit otherwise, and a Ctrl-C or
            # kill that lands inside a spawn leaves a half-started child printing a traceback
            for _ in range(self.workers):
                self.pool.submit(_ready)
        return self

    def __exit__(self, *exc) -> None:
        if self.pool is None:
            return
        if exc[0] is not None:  # interrupted or failed: stop the workers now, not after their jobs
            for proc in list(getattr(self.pool, "_processes", {}).values()):
                proc.terminate()
        self.pool.shutdown(wait=exc[0] is None, cancel_futures=exc[0] is not None)

    def _count(self, counts: tuple[int, int, int]) -> None:
        self.reused += counts[0]
        self.done += counts[1]
        self.deferred += counts[2]

    def submit(self, seed: int, name: str, folder: Path, digest: str, weights: str, eot: bool = True) -> None:
        """Queue model ``folder`` (``name`` of ``seed``, unit hash ``digest``, ``weights_sha256`` of its
        weights ``weights``) for evaluation: in the pool, or for ``results``; its measures are kept under
        ``units/seed<seed>/name``. ``eot=False``: the naive evaluation of a stochastic model
        (``evaluate_model``)."""
        options = self.options if eot else self.options | {"eot": False}
        context = [digest, weights, self.data_hash, self.spec.suite, seed, options, self.threads]
        keep = str(self.keep / f"seed{seed}" / name) if self.keep is not None else None
        if keep is not None:
            _record_weights(Path(keep), digest, weights, f"seed{seed}/{name}")
        # other runs' --keep copies: every model folder of this seed, the measures matched by their inputs
        also = [str(d) for src in self.kept for d in sorted((src / f"seed{seed}").glob("*")) if d.is_dir()]
        # each kept copy says which model (weights) it is of: kept_table.py tells two runs' copies apart
        copies = {"keep": keep, "also": also, "stamp": {"weights": weights}}
        # the analyses of a model once, not again for its naive evaluation
        analyses = (self.spec.analyses if eot else (), self.spec.analysis_images)
        task = ((seed, name), str(folder), str(self.units / f"seed{seed}" / name), context, options, copies,
                analyses, self.only, self.spec.rand_autoattack)  # fmt: skip
        if self.pool is None:
            self.pending.append(task)
        else:
            self.pending.append(self.pool.submit(_evaluate_one, task, self.spec.suite, seed))

    def results(self, progress: bool) -> dict:
        """``{(seed, name): results}`` in the order the models were submitted."""
        bar = _bar(None, progress, "evaluate", total=len(self.pending))
        out = {}
        if self.pool is None:
            _worker_init(self.spec.dataset, self.data_dir, None)
            for task in self.pending:
                key, res, counts = _evaluate_one(task, self.spec.suite, task[0][0])
                out[key] = res
                self._count(counts)
                bar.update(1)
        else:
            from concurrent.futures import as_completed

            done = {}
            for fut in _updating(as_completed(self.pending), bar):
                key, res, counts = fut.result()
                done[key] = res
                self._count(counts)
            out = {key: done[key] for key in (f.result()[0] for f in self.pending)}
        bar.close()
        return out


def _record_weights(folder: Path, digest: str, weights: str, label: str) -> None:
    """Say in the ``--keep`` folder ``folder`` which weights its measures are of (``model.HASH.json``:
    the model's unit hash and weights hash); warn, once, where it holds measures of this model made
    otherwise: the same unit with other weights (trained again on another CPU or library), or only
    other units (other data, recipe, settings or torch thread counts: ``--workers`` on as many cores?).
    Those measures are not taken but made again, hours of work a user may prefer to spend elsewhere."""
    mine = folder / f"model.{weights[:16]}.json"
    if mine.is_file():
        return
    units = []
    for other in sorted(folder.glob("model.*.json")):
        try:
            record = read_json(other)
        except SleepnetError:
            continue
        units.append(record.get("unit") if isinstance(record, dict) else None)
    if digest in units:
        LOG.warning("%s came out with other weights than the --keep copy's of the same unit (another CPU "
                    "or library?): its measures there are not taken; it is measured again",
                    label)  # fmt: skip
    elif units:
        LOG.warning("%s is another unit than the --keep copy's models of that name (other data, recipe, "
                    "settings or thread counts: the same --workers on as many cores?): their measures are "
                    "not taken; it is measured again", label)  # fmt: skip
    write_json(mine, {"unit": digest, "weights": weights})


def _ready() -> None:
    """A job that does nothing: submitted once per worker so that the pool starts them all."""


def _updating(items, bar):
    for item in items:
        bar.update(1)
        yield item


def _bar(items, enabled, desc, total=None, label=None):
    from .progress import bar

    return bar(desc, items=items, total=total, enabled=enabled, unit="models", each=True, label=label)
