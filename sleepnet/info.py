"""``sleepnet info FOLDER``: what a folder holds, without reading JSON by hand.

A model folder: its architecture and parameter count, the dataset and its hash, how it was made
(recipe, sleep config, defence), its lineage (the parent chain, each parent's weights checked against
the hash its child recorded), the sleep's spike summary and warnings, and the metrics recorded so far.
An evaluation or experiment folder (``metrics.json``), a tuning study (``study.db``) or an unfinished
output (``.NAME.partial``) gets a shorter account. ``info(folder)`` returns it as a dict (``--json``);
``render(info)`` as text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import SleepnetError
from .fsio import read_json
from .hashing import sha256_file


def info(folder: str | Path) -> dict[str, Any]:
    """What ``folder`` holds (module docstring); ``SleepnetError`` for a folder sleepnet did not write."""
    folder = Path(folder)
    partial = folder.with_name(f".{folder.name}.partial")
    if not folder.is_dir() and partial.is_dir():
        units = list(partial.rglob("*.json"))
        models = list(partial.glob("seed*/*/model.json"))
        return {"kind": "unfinished", "path": str(folder), "partial": str(partial),
                "models_kept": len(models),
                "units_kept": len(units)}  # fmt: skip
    if not folder.is_dir():
        raise SleepnetError(f"{folder} is not a folder")
    if (folder / "model.json").is_file():
        return _model(folder)
    if (folder / "metrics.json").is_file():
        return _metrics(folder)
    if (folder / "study.db").is_file():
        return {"kind": "study", "path": str(folder), "report": (folder / "tune.json").is_file()}
    raise SleepnetError(f"{folder} holds no model.json, metrics.json or study.db: not a sleepnet folder")


def _model(folder: Path) -> dict[str, Any]:
    from .models import load_model

    model, meta = load_model(folder)
    out: dict[str, Any] = {
        "kind": meta.get("kind", "model"),
        "path": str(folder),
        "format": meta.get("format"),
        "architecture": architecture(meta.get("architecture", [])),
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "dataset": meta.get("dataset"),
        "seed": meta.get("seed"),
        "device": meta.get("device"),
        "versions": meta.get("versions"),
        "source": _source(meta.get("source")),
        "lineage": lineage(folder, meta),
        "metrics": meta.get("metrics", {}),
    }
    recipe = meta.get("recipe") or {}
    if recipe:
        keys = ("name", "epochs", "loss", "optimizer", "lr", "saturation", "noise")
        out["recipe"] = {k: recipe.get(k) for k in keys if recipe.get(k) not in (None, "", 0.0)}
    if "defence" in meta:
        out["defence"] = meta["defence"]
    sleep = meta.get("sleep")
    if sleep:
        config = sleep.get("config", {})
        out["sleep"] = {
            "config": {k: config.get(k) for k in ("name", "T", "max_rate", "inc", "dec", "alpha_scale",
                                                  "beta", "input_mode", "norm_w", "seed")},  # fmt: skip
            "backend": sleep.get("backend"),
            "spikes": [layer["total_spikes"] for layer in sleep.get("spikes", {}).get("layers", [])],
            "steps": sleep.get("spikes", {}).get("steps"),
            "fraction_of_weights_changed": [round(w.get("fraction_changed", float("nan")), 4)
                                            for w in sleep.get("weight_change", [])],  # fmt: skip
            "warnings": sleep.get("warnings", []),
        }
    return out


def architecture(spec: list[dict]) -> str:
    """The layers of a model record in one line: ``linear 784->1200 (no bias), relu, dropout 0.2, ...``."""
    parts = []
    for layer in spec:
        kind = layer.get("type", "?")
        if kind == "linear":
            parts.append(f"linear {layer.get('in')}->{layer.get('out')}" + ("" if layer.get("bias") else
                                                                            " (no bias)"))  # fmt: skip
        elif kind == "conv2d":
            parts.append(f"conv {layer.get('in')}->{layer.get('out')} k{layer.get('kernel')}")
        elif kind == "dropout":
            parts.append(f"dropout {layer.get('p')}")
        elif kind in ("poisson_noise", "gaussian_noise"):
            params = ", ".join(f"{k} {v}" for k, v in layer.items() if k not in ("type",))
            parts.append(f"{kind} ({params})")
        else:
            parts.append(kind)
    return ", ".join(parts)


def lineage(folder: Path, meta: dict, limit: int = 20) -> list[dict[str, Any]]:
    """The parent chain of a model folder, nearest first: each parent's path, kind, and whether its weights
    still hash to what the child recorded (``matches``; None where the parent folder is gone)."""
    from .interop import weights_hash  # what a child records of its parent, folder or file

    chain, seen = [], {str(folder.resolve())}
    parent = meta.get("parent") or {}
    while parent.get("path") and len(chain) < limit:
        path = Path(parent["path"])
        entry: dict[str, Any] = {"path": str(path), "kind": None, "matches": None}
        if path.is_file():  # slept straight from a model file (sleepnet import's formats)
            entry["kind"] = "file"
            entry["matches"] = weights_hash(path) == parent.get("sha256")
            chain.append(entry)
            break
        weights = path / "model.safetensors"
        if (path / "model.json").is_file() and weights.is_file() and str(path.resolve()) not in seen:
            seen.add(str(path.resolve()))
            if parent.get("sha256"):
                entry["matches"] = weights_hash(path) == parent["sha256"]
            try:
                up = read_json(path / "model.json")
            except SleepnetError:
                chain.append(entry)
                break
            entry["kind"] = up.get("kind", "model")
            chain.append(entry)
            parent = up.get("parent") or {}
        else:
            chain.append(entry)
            break
    return chain


def _source(source: dict | None) -> dict[str, Any] | None:
    """An imported model's source file and format, and whether the file still hashes as recorded."""
    if not source:
        return None
    path = Path(source.get("file", ""))
    matches = sha256_file(path) == source.get("sha256") if path.is_file() else None
    return {"file": str(path), "format": source.get("format"), "sha256": source.get("sha256"),
            "matches": matches}


def _metrics(folder: Path) -> dict[str, Any]:
    metrics = read_json(folder / "metrics.json")
    if not isinstance(metrics, dict):
        raise SleepnetError(f"{folder / 'metrics.json'} is not a sleepnet metrics record")
    if "per_seed" in metrics:
        exp = metrics.get("experiment", {})
        agg = metrics.get("aggregate", {})
        return {"kind": "experiment", "path": str(folder), "name": exp.get("name"),
                "dataset": exp.get("dataset"),
                "seeds": exp.get("seeds"), "suite": exp.get("suite"), "models": sorted(agg),
                "clean_accuracy": {m: (a.get("clean_accuracy") or {}).get("mean") for m, a in agg.items()},
                "total_s": (metrics.get("timing") or {}).get("total_s")}  # fmt: skip
    if "models" in metrics:
        return {"kind": "evaluation", "path": str(folder), "suite": metrics.get("suite"),
                "seed": metrics.get("seed"),
                "dataset": (metrics.get("dataset") or {}).get("name"),
                "models": {n: m.get("summary") for n, m in metrics["models"].items()}}  # fmt: skip
    return {"kind": "metrics", "path": str(folder), "keys": sorted(metrics)}


def render(d: dict[str, Any]) -> str:
    """``info``'s dict as aligned text, one item a line (nested dicts flattened with dots)."""
    rows: list[tuple[str, str]] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict) and value:
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for k, v in enumerate(value):
                walk(f"{prefix}[{k}]", v)
        elif isinstance(value, list) and prefix.endswith("warnings"):
            for line in value:
                rows.append((prefix, str(line)))
        else:
            rows.append((prefix, _short(value)))

    walk("", d)
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        return value[:16] + "..."  # a SHA-256
    return str(value)
