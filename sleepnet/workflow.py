"""The steps of the command line as functions on folders: train, sleep, evaluate, plot.

Each step reads model folders, checks what it reads, and writes its output
folder atomically, so the CLI and the demo are thin layers over this module.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .config import SleepConfig
from .data import Dataset, load_dataset
from .devices import model_device, resolve_device
from .errors import SleepnetError, UsageError, usage
from .fsio import atomic_dir, check_output, read_json, write_json
from .hashing import sha256_file
from .models import load_model, save_model
from .units import Units, resumable_dir

RECORD = "sleep_record.npz"


def dataset_for(meta: dict, data_dir: str | None = None, name: str | None = None) -> Dataset:
    """Load the dataset a model was trained on and check it is the same data (SHA-256).

    ``name`` names the dataset for a model whose record has none (a model you
    saved yourself); it is checked against the record's hash when they agree.
    """
    rec = meta.get("dataset") or {}
    if name is None:
        name = rec.get("name")
        if name is None:
            raise SleepnetError("the model record names no dataset; pass --dataset")
        try:
            data = load_dataset(name, data_dir)
        except UsageError as exc:  # the record's name, not the command line's
            raise SleepnetError(f"the model record's dataset: {exc}") from None
    else:
        data = load_dataset(name, data_dir)
    if rec.get("name") == name and rec.get("sha256") and rec["sha256"] != data.sha256:
        raise SleepnetError(
            f"dataset hash mismatch: the model was trained on {rec['name']} with SHA-256 "
            f"{rec['sha256'][:12]}..., the data found has {data.sha256[:12]}..."
        )
    return data


def load_with_data(folder, data_dir: str | None = None, name: str | None = None):
    """``(model, meta, data)``: the model saved in ``folder``, its record, and the dataset it was trained on
    (``dataset_for``, hash checked)."""
    model, meta = load_model(folder)
    return model, meta, dataset_for(meta, data_dir, name)


def model_loss(meta: dict) -> str:
    """The training loss named in a model record's recipe (``cross-entropy`` if none)."""
    return (meta.get("recipe") or {}).get("loss", "cross-entropy")


def train_to_folder(dataset: str, recipe: str, seed: int, out: Path, *, epochs: int | None = None,
                    hidden: tuple[int, ...] | None = None, data_dir: str | None = None,
                    overwrite: bool = False, progress: bool = True, device=None,
                    saturation: float | None = None, schedule: str | None = None, noise: str | None = None,
                    noise_after: tuple[int, ...] | None = None) -> dict:  # fmt: skip
    """Train ``recipe`` on ``dataset`` on ``device``; ``hidden`` replaces the recipe's hidden layer
    sizes, ``saturation`` and ``schedule`` its saturation penalty (``sleepnet.saturation``),
    ``noise`` and ``noise_after`` its noise layers (``sleepnet.noise``)."""
    from .converters import check_sequential
    from .errors import ConversionError
    from .training import get_recipe, train

    if schedule is not None and not saturation:
        raise UsageError("--schedule sets the saturation penalty's annealing: give --saturation too")
    if noise_after is not None and not noise:
        raise UsageError("--noise-after places the noise layers: give --noise too")
    changes = {"epochs": epochs, "saturation": saturation, "schedule": schedule, "noise": noise,
               "noise_after": noise_after}  # fmt: skip
    with usage():  # every check of the options' values: exit 2
        base = get_recipe(recipe, **changes)
        if hidden is not None:
            base = get_recipe(recipe, **changes, sizes=(base.sizes[0], *hidden, base.sizes[-1]))

    check_output(out, overwrite, inputs=[dataset[4:]] if dataset.startswith("npz:") else ())
    device = resolve_device(device)
    data = load_dataset(dataset, data_dir)
    model, record = train(data, base, seed=seed, progress=progress, device=device)
    try:
        check_sequential(model)
    except ConversionError:
        pass  # not a network sleep can convert: no maxima to keep
    else:
        record["activation_max"] = activation_record(model, data)
    save_model(model, out, record, overwrite=overwrite)
    return record


def activation_record(model, data: Dataset) -> dict:
    """The per-layer activation maxima over the training set, kept in ``model.json``.

    Sleep needs them for the scale factors; recording them once saves a pass
    over the training set on every later sleep of this model.
    """
    from .converters import check_sequential
    from .converters.torch_convert import activation_maxima

    values = activation_maxima(model, data.x_train, check_sequential(model))
    return {"statistic": "max", "dataset_sha256": data.sha256, "values": values.tolist()}


def cached_maxima(meta: dict, data: Dataset, config: SleepConfig) -> np.ndarray | None:
    """Recorded activation maxima, if they were computed on this data with this statistic."""
    rec = meta.get("activation_max") or {}
    if config.percentile is None and rec.get("statistic") == "max" and \
            rec.get("dataset_sha256") == data.sha256:  # fmt: skip
        return np.asarray(rec["values"], dtype=np.float64)
    return None


def sleep_to_folder(model_dir: Path, config: SleepConfig, out: Path, *, backend: str = "numba",
                    data_dir: str | None = None, overwrite: bool = False, progress: bool = True,
                    parent_path: Path | None = None, dataset: str | None = None,
                    device=None) -> dict:  # fmt: skip
    """Sleep a model folder into a new model folder that records its parent and the run.

    ``parent_path`` is the parent's path to record, if it differs from ``model_dir``
    (the demo builds its folders in a temporary place and renames them). ``device`` is where
    the model's scale factors and accuracy are computed, and where the ``torch`` backend sleeps.
    """
    from .interop import load_any, weights_hash
    from .sleep_phase import sleep
    from .training import accuracy

    check_output(out, overwrite, inputs=[model_dir])
    model, meta = load_any(model_dir, device=resolve_device(device))  # a model folder, or a model file
    from .converters import check_sequential

    check_sequential(model)  # a CNN, biases or sigmoids: one line, before the data are read
    data = dataset_for(meta, data_dir, dataset)
    check_classes(model, data, str(model_dir))
    result = sleep(model, config, data.x_train, backend=backend, progress=progress,
                   max_activation=cached_maxima(meta, data, config))  # fmt: skip
    summary = result.summary()
    record = {
        "kind": "slept",
        "parent": {"path": str(Path(parent_path or model_dir).resolve()),
                   "sha256": weights_hash(model_dir)},
        "recipe": meta.get("recipe"),
        "dataset": data.record(),
        "seed": config.seed,
        "device": str(model_device(model)),
        "sleep": summary,
        "metrics": {"test_accuracy": accuracy(result.model, data.x_test, data.y_test),
                    "parent_test_accuracy": accuracy(model, data.x_test, data.y_test)},
    }  # fmt: skip
    out_ = result.output

    def write_record(folder: Path) -> None:
        """Write spike counts, raster (if kept), snapshots and ``dt`` to ``folder/sleep_record.npz``."""
        arrays = {"spike_counts": out_.spike_counts, "unit_counts": out_.unit_counts,
                  "sizes": np.asarray(out_.sizes), "raster_start": np.asarray(out_.raster_start),
                  "dt": np.asarray(config.dt)}  # fmt: skip
        if out_.raster is not None:
            arrays["raster"] = out_.raster
        for t, ws in out_.snapshots:
            for l, w in enumerate(ws):
                arrays[f"snapshot_{t}_{l}"] = w
        with open(folder / RECORD, "wb") as f:
            np.savez_compressed(f, **arrays)

    save_model(result.model, out, record, overwrite=overwrite, extra=write_record)
    return record


def load_sleep_record(folder: Path) -> dict[str, np.ndarray]:
    """The arrays of a slept model folder's ``sleep_record.npz`` by name.

    Parameters
    ----------
    folder : Path
        A model folder written by ``sleep_to_folder``.

    Returns
    -------
    dict of str to ndarray
        ``spike_counts``, ``unit_counts``, ``sizes``, ``raster_start``, ``dt``, and ``raster`` and
        ``snapshot_{step}_{layer}`` if recorded; ``SleepnetError`` if the file is missing or damaged.
    """
    path = Path(folder) / RECORD
    if not path.is_file():
        raise SleepnetError(f"{folder} has no {RECORD}: it is not a slept model")
    import zipfile

    try:
        with np.load(path, allow_pickle=False) as f:
            rec = {k: f[k] for k in f.files}
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        raise SleepnetError(f"{path} is damaged ({exc})") from None
    _check_record(rec, path)
    return rec


def _check_record(rec: dict[str, np.ndarray], path: Path) -> None:
    """``SleepnetError`` unless the sleep record's arrays fit together (keys, shapes, finite values)."""
    missing = [k for k in ("spike_counts", "sizes", "dt") if k not in rec]
    if missing:
        raise SleepnetError(f"{path} is damaged (no {', '.join(missing)})")
    sizes, counts, dt = rec["sizes"], rec["spike_counts"], rec["dt"]
    if sizes.ndim != 1 or len(sizes) < 2 or not np.issubdtype(sizes.dtype, np.integer) or (sizes <= 0).any():
        raise SleepnetError(f"{path} is damaged (sizes must be positive layer sizes, got {sizes.dtype} "
                            f"{sizes.shape})")  # fmt: skip
    if counts.ndim != 2 or counts.shape[1] != len(sizes) or not np.issubdtype(counts.dtype, np.number):
        raise SleepnetError(f"{path} is damaged (spike_counts must be steps x {len(sizes)} layers, "
                            f"got shape {counts.shape})")  # fmt: skip
    if dt.size != 1 or not np.issubdtype(dt.dtype, np.number) or not np.isfinite(dt).all() or float(dt) <= 0:
        raise SleepnetError(f"{path} is damaged (dt must be a positive number)")
    if "raster" in rec:
        raster, start = rec["raster"], rec.get("raster_start", np.zeros((), np.int64))
        if raster.ndim != 2 or raster.shape[1] != int(sizes.sum()) or raster.dtype != bool:
            raise SleepnetError(f"{path} is damaged (raster must be steps x {int(sizes.sum())} booleans, "
                                f"got {raster.dtype} {raster.shape})")  # fmt: skip
        if start.size != 1 or not np.issubdtype(start.dtype, np.integer) or int(start) < 0:
            raise SleepnetError(f"{path} is damaged (raster_start must be a step >= 0)")


def evaluate_to_folder(model_dirs: list[Path], out: Path, *, suite: str = "quick", seed: int = 0,
                       data_dir: str | None = None, overwrite: bool = False,
                       progress: bool = True, dataset: str | None = None, device=None,
                       **options) -> dict:  # fmt: skip
    """Evaluate model folders on one test set into ``out`` (``metrics.json``, figures).

    ``options`` go to ``evaluation.evaluate_model`` (``subsample``, ``quick``); the models are
    evaluated on ``device`` (recorded in ``metrics.json``).
    """
    from .evaluation import evaluate, headline
    from .plots import robustness_curves

    check_output(out, overwrite, inputs=model_dirs)
    device = resolve_device(device)
    loaded = {}
    for d in model_dirs:
        name = _unique(Path(d).name, loaded)
        loaded[name] = (d, *load_model(d))
    datasets = {m[2].get("dataset", {}).get("sha256") for m in loaded.values()}
    if len(datasets) > 1:
        raise SleepnetError("the models were trained on different datasets; evaluate them separately")
    data = dataset_for(next(iter(loaded.values()))[2], data_dir, dataset)
    for m in loaded.values():
        check_classes(m[1], data, str(m[0]))
    import torch

    with resumable_dir(out, overwrite, inputs=model_dirs) as work:
        # a model is its weights and its architecture (noise layers hold their settings there only); the
        # thread count can move the last bits of scores (docs/design.md), so a resume at another reruns
        units = {n: Units(work / "units" / n, [sha256_file(Path(m[0]) / "model.safetensors"),
                                               m[2].get("architecture"), model_loss(m[2]), data.sha256,
                                               suite, seed, options, str(device), torch.get_num_threads()])
                 for n, m in loaded.items()}  # fmt: skip
        results = evaluate({n: m[1] for n, m in loaded.items()}, data,
                           {n: model_loss(m[2]) for n, m in loaded.items()}, suite, seed, progress,
                           device=device, units=units, **options)  # fmt: skip
        _say_reused(units.values())
        metrics = {
            "suite": suite, "seed": seed, "dataset": data.record(), "options": options, "device": str(device),
            "models": {n: {"path": str(m[0]), "summary": headline(results[n]), "results": results[n]}
                       for n, m in loaded.items()},
        }  # fmt: skip
        write_json(work / "metrics.json", metrics)
        robustness_curves(results, work / "figures")
    return metrics


def _say_reused(units) -> None:
    """One line: how many measures were reused from an interrupted or earlier run, if any."""
    from .progress import LOG

    reused = sum(u.reused for u in units)
    if reused:
        LOG.info("reused %d finished measures, computed %d", reused, sum(u.done for u in units))


def check_classes(model, data: Dataset, where: str) -> None:
    """One clear error if ``model`` cannot take ``data``'s inputs (a forward pass on one test example,
    through a copy: a noise layer's draws stay where they were) or its output size is not ``data``'s
    number of classes."""
    import copy

    import torch

    from .evaluation.attacks.base import n_outputs

    param = next(model.parameters(), None)
    x = torch.as_tensor(data.x_test[:1], device=param.device if param is not None else None)
    try:
        with torch.no_grad():
            copy.deepcopy(model)(x)
    except RuntimeError:
        first = next((m for m in model.modules() if hasattr(m, "in_features")), None)
        wants = f"{first.in_features} features" if first is not None else "inputs of another shape"
        raise SleepnetError(f"{where}: the model takes {wants} but {data.name} has {data.x_test.shape[1]} "
                            "per example (is it the data the model was trained on?)") from None
    k = n_outputs(model)
    if k != data.n_classes:
        raise SleepnetError(f"{where}: the model has {k} outputs but {data.name} has "
                            f"{data.n_classes} classes")  # fmt: skip


def check_n(n, data: Dataset | None = None) -> None:
    """``SleepnetError`` unless ``n`` (``--n``, a number of test images) is a positive integer, and,
    given ``data``, at most its number of test images."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise UsageError(f"--n must be a positive integer, got {n!r}")
    if data is not None and n > len(data.x_test):
        raise UsageError(f"--n {n} is more than the {len(data.x_test)} test images of {data.name}")


def attack_to_file(model_dir: Path, out: Path, *, attack: str, norm: str, eps, n: int = 1000,
                   eot_samples: int | None = None, loss: str = "cross-entropy", seed: int = 0,
                   data_dir: str | None = None, dataset: str | None = None, overwrite: bool = False,
                   device=None, single_draws: bool = False, **params) -> dict:  # fmt: skip
    """One attack at budgets ``eps`` on the first ``n`` test images of the fixed permutation, as JSON.

    ``single_draws``: a stochastic model is attacked and judged naively (``noise.single_draws``),
    and the result says ``"single_draws": true``.

    Everything is checked before any attack runs (budgets, norm, attack, loss, ``n``, EOT samples,
    the model's output size), and ``out`` is written once, atomically, at the end.
    """
    from .evaluation import subsample_indices
    from .evaluation.attacks.base import check_eot, eot_default
    from .evaluation.curve import attack_curve, check_attack, takes_eot
    from .evaluation.robust import check_budgets
    from .losses import ATTACK_LOSSES
    from .noise import single_draws as noise_single_draws
    from .noise import stochastic

    budgets = check_budgets(eps)
    check_attack(attack, norm)
    if loss not in ATTACK_LOSSES:
        raise SleepnetError(f"unknown loss {loss!r} (known: {', '.join(ATTACK_LOSSES)})")
    check_n(n)
    if eot_samples is not None:
        with usage():
            check_eot(eot_samples)
    check_output(out, overwrite, inputs=[model_dir], file=True)
    device = resolve_device(device)
    model, meta, data = load_with_data(model_dir, data_dir, dataset)
    check_n(n, data)
    check_classes(model, data, str(model_dir))
    naive = bool(single_draws) and stochastic(model)
    eot = eot_samples
    if eot is None and takes_eot(attack) and meta.get("eot_samples") and not naive:  # the record's, else
        eot = eot_default(model, meta)  # the default (1 within single_draws)
    idx = subsample_indices(len(data.x_test), n)
    shape = (1, *data.image_shape) if data.image_shape else None
    with noise_single_draws(naive):
        res = attack_curve(model, data.x_test[idx], data.y_test[idx], attack, norm, budgets, loss=loss,
                           eot_samples=eot, seed=seed, image_shape=shape, device=device,
                           **params)  # fmt: skip
    res = {"model": str(model_dir), "dataset": data.record(), "device": str(device), **res,
           "indices": idx.tolist()} | ({"single_draws": True} if naive else {})  # fmt: skip
    write_json(out, res)
    return res


def _unique(name: str, taken: dict) -> str:
    k, base = 1, name
    while name in taken:
        k += 1
        name = f"{base}-{k}"
    return name


def plot_folder(folder: Path, out: Path | None = None, parent: Path | None = None) -> list[Path]:
    """Figures for a slept model folder (weights, rates, raster) or an evaluation folder (curves).

    ``parent`` overrides the parent model folder recorded in a slept model.
    """
    from . import plots

    folder = Path(folder)
    out = Path(out) if out else folder / "figures"
    if (folder / "metrics.json").is_file() and not (folder / "model.json").is_file():
        metrics = read_json(folder / "metrics.json")
        try:
            results = {n: m["results"] for n, m in metrics["models"].items()}
        except (KeyError, TypeError, AttributeError):
            raise SleepnetError(f"{folder / 'metrics.json'} is not an evaluation record") from None
        return plots.robustness_curves(results, out)
    model, meta = load_model(folder)
    rec = load_sleep_record(folder)
    from .interop import load_any

    parent_path = Path(parent or (meta.get("parent") or {}).get("path", ""))
    if not ((parent_path / "model.json").is_file() or parent_path.is_file()):
        raise SleepnetError(f"the parent model {parent_path} of {folder} is not available")
    parent, _ = load_any(parent_path)  # a model folder, or the model file it slept from
    from .converters import check_sequential

    idx = check_sequential(model)
    before = [parent[k].weight.detach().double().numpy() for k in idx]
    after = [model[k].weight.detach().double().numpy() for k in idx]
    sizes = [int(s) for s in rec["sizes"]]
    counts = rec["spike_counts"]
    paths = [
        plots.weight_histograms(before, after, out / "weights.png"),
        plots.firing_rates(counts, sizes, float(rec["dt"]), out / "firing_rates.png"),
        plots.activity(counts, sizes, out / "activity.png"),
    ]
    if "raster" in rec:
        totals = [int(t) for t in counts.sum(0)]
        paths.append(plots.raster(rec["raster"], sizes, int(rec["raster_start"]), out / "raster.png", totals))
    return paths


def geometry_to_file(manifolds: Path, out: Path, *, kappa: float = 0.0, n_t: int = 200, n_reps: int = 10,
                     seed: int = 0, simulated: bool = False, overwrite: bool = False) -> dict:  # fmt: skip
    """MFTMA (``geometry.manifold_analysis``) of ``X`` ``(P, N, M)`` of the .npz ``manifolds``, written to
    ``out`` as JSON, with the simulated capacity if ``simulated``; everything is checked first."""
    import zipfile

    from .geometry import check_manifolds, manifold_analysis, simulated_capacity
    from .geometry.mftma import check_settings

    with usage():  # the options' values: exit 2, as the command line's own checks
        check_settings(kappa, n_t, seed, n_reps)
    check_output(out, overwrite, inputs=[manifolds], file=True)
    try:
        with open(manifolds, "rb") as f:  # an .npz is a zip file (an empty one too); np.load would read
            is_zip = f.read(4) in (b"PK\x03\x04", b"PK\x05\x06")  # other files as pickles
        if not is_zip:
            raise SleepnetError(f"{manifolds} is not an .npz file (np.savez(path, X=...) writes one)")
        with np.load(manifolds, allow_pickle=False) as f:
            if "X" not in f.files:
                raise SleepnetError(f"{manifolds} holds no array X (it has: {', '.join(f.files) or 'none'})")
            x = f["X"]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise SleepnetError(f"{manifolds} is not a readable .npz file ({exc})") from None
    check_manifolds(x, kappa, n_t, seed, n_reps)
    res = manifold_analysis(x, kappa, n_t, seed, n_reps)
    if simulated:
        res["simulated"] = simulated_capacity(x, seed=seed)
    res["manifolds"] = str(Path(manifolds).resolve())
    write_json(out, res)
    return res


def analyze_to_folder(model_dirs: list[Path], out: Path, *, n: int = 500, json_path: Path | None = None,
                      analyses: tuple[str, ...] | None = None, data_dir: str | None = None,
                      dataset: str | None = None, overwrite: bool = False, geometry: bool = False,
                      draws: int | None = None) -> dict:  # fmt: skip
    """Every analysis (``sleepnet.analysis``) of the models on the first ``n`` test images of the fixed
    permutation: ``out/analysis.json`` and one figure per analysis, the models side by side.
    ``geometry`` adds the representation geometry (the whole test set: it picks its own images),
    with ``draws`` noise draws per exemplar manifold of a stochastic model.

    All models must share one dataset (name and hash). Everything is checked before any work
    (the folders, the dataset, ``n``, the analysis names), and ``out`` and ``json_path`` are
    written atomically at the end. A model is labelled by its folder's name (made unique).
    """
    from .analysis import ANALYSES, analyze, figures, geometry_for
    from .analysis.geometry import check_draws
    from .evaluation import subsample_indices

    check_n(n)
    for name in analyses or ():
        ANALYSES.get(name)
    if draws is not None and not geometry:
        raise UsageError("--draws is for the geometry's noise draws: add --geometry")
    if draws is not None and (isinstance(draws, bool) or not isinstance(draws, int) or draws < 2):
        raise UsageError(f"--draws must be an integer >= 2, got {draws!r}")
    check_output(out, overwrite, inputs=model_dirs)
    if json_path is not None:
        check_output(json_path, overwrite, inputs=[*model_dirs, out], file=True)
    models, data, labels = {}, None, []
    for folder in model_dirs:
        model, meta, found = load_with_data(folder, data_dir, dataset)
        if data is not None and (found.name, found.sha256) != (data.name, data.sha256):
            raise SleepnetError(f"{folder} was trained on {found.name}, {model_dirs[0]} on {data.name}: "
                                "analyze compares models of one dataset")  # fmt: skip
        data = found
        check_classes(model, data, str(folder))
        label, k = Path(folder).name, 1
        while label in labels:
            k += 1
            label = f"{Path(folder).name}-{k}"
        labels.append(label)
        models[label] = model
        if geometry:
            check_draws(model, draws, str(folder))
    check_n(n, data)
    names = tuple(analyses or [a for a in ANALYSES.names() if ANALYSES[a].default])
    geo = geometry_for(data, draws)  # waveforms: 30 test recordings a digit, audio-scale perturbations
    if geometry:
        geo.check_data(data.y_test)
        names = (*[a for a in names if a != "geometry"], "geometry")
    result = analyze(models, data.x_test, subsample_indices(len(data.x_test), n), names, data.y_test,
                     {"geometry": geo})  # fmt: skip
    result["models_paths"] = {label: str(Path(f).resolve()) for label, f in zip(labels, model_dirs)}
    result["dataset"] = data.record()
    with atomic_dir(out, overwrite=overwrite) as tmp:
        write_json(tmp / "analysis.json", result)
        figures(result, tmp)
    if json_path is not None:
        write_json(json_path, result)
    return result
