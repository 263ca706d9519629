"""PyTorch files in and out: ``state_dict`` and full modules (``torch.load(weights_only=True)``), TorchScript,
safetensors; a folder's ANN out as a ``state_dict``."""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

from ..errors import ConversionError, SleepnetError, UsageError
from ..fsio import atomic_write

#: the layer classes a full-module pickle may hold (``torch.serialization.safe_globals``)
SAFE_MODULES = [nn.Sequential, nn.Linear, nn.ReLU, nn.Dropout, nn.Flatten, nn.Sigmoid, nn.Conv2d,
                nn.MaxPool2d,
                nn.Identity]  # fmt: skip


class LayerNames:
    """The names a file gives the layers of the model built from it, to put into messages."""

    def __init__(self, names: list[str]) -> None:
        self.names = names

    def rename(self, message: str) -> str:
        """``message`` with ``layer K (Type)`` read as ``layer K (Type 'name in the file')``."""
        for k, name in enumerate(self.names):
            for kind in ("Linear", "ReLU", "Conv2d", "MaxPool2d", "Sigmoid", "Flatten", "Dropout",
                         "Identity"):
                message = message.replace(f"layer {k} ({kind})", f"layer {k} ({kind} {name!r})")
        return message


def parse_arch(text: str) -> list[int]:
    """``--arch 784-1200-1200-10``: the layer sizes of a bias-free ReLU MLP (at least two, all positive)."""
    try:
        sizes = [int(s) for s in text.split("-")]
    except ValueError:
        raise UsageError(f"--arch expects layer sizes like 784-1200-1200-10, got {text!r}") from None
    if len(sizes) < 2 or min(sizes) < 1:
        raise UsageError(f"--arch expects at least two positive layer sizes, got {text!r}")
    return sizes


def mlp(sizes: list[int]) -> nn.Sequential:
    """The bias-free ReLU MLP of ``sizes`` (a ReLU after every layer, the output's included)."""
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b, bias=False), nn.ReLU()]
    return nn.Sequential(*layers)


def check_arch(model: nn.Sequential, arch: str) -> None:
    """``SleepnetError`` unless ``model``'s Linear layers have the sizes ``arch`` gives."""
    sizes = parse_arch(arch)
    linear = [m for m in model if isinstance(m, nn.Linear)]
    have = [linear[0].in_features, *(m.out_features for m in linear)] if linear else []
    if have != sizes:
        layers = "-".join(map(str, have)) or "not Linear"
        raise SleepnetError(f"the file's layers are {layers}, --arch says {arch}")


def read_torch(path: Path, fmt: str, arch: str | None) -> tuple[nn.Sequential, LayerNames]:
    """The model of a ``torch`` (state_dict or full module), ``torchscript`` or ``safetensors`` file."""
    if fmt == "torchscript":
        return _from_script(path)
    if fmt == "safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            state = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise SleepnetError(f"{path} is not a valid safetensors file ({exc})") from None
        return _from_state_dict(_layer_order(state, path), arch, path)
    try:
        with torch.serialization.safe_globals(SAFE_MODULES):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # weights_only's refusal (a class it does not know), or not a torch file
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
        lines = [line.strip() for line in text.splitlines() if line.strip()] or [type(exc).__name__]
        if "Weights only load failed" in text or "Unsupported global" in text:
            why = next((line for line in lines if "Unsupported global" in line), lines[0])
            raise SleepnetError(f"{path}: torch.load(weights_only=True) refuses it ({why[:160]}); save its "
                                "state_dict (torch.save(model.state_dict(), FILE)) and import that with "
                                "--arch") from None  # fmt: skip
        first = lines[0]
        raise SleepnetError(f"{path} is not a PyTorch file torch.load can read ({first[:160]})") from None
    if isinstance(obj, nn.Sequential):
        return _from_modules(list(obj.named_children()))
    if isinstance(obj, nn.Module):
        raise ConversionError(f"{path} holds a {type(obj).__name__}, not an nn.Sequential: import its "
                              "state_dict with --arch")  # fmt: skip
    if isinstance(obj, dict) and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return _from_state_dict(obj, arch, path)
    raise SleepnetError(f"{path} holds a {type(obj).__name__}: import a state_dict, an nn.Sequential, "
                        "TorchScript, safetensors or ONNX")  # fmt: skip


def _layer_order(state: dict, path: Path) -> dict:
    """A safetensors file's tensors in layer order: it stores them sorted by name ("10.weight" before
    "4.weight"), so the order is read back from the names' numbers; names without one are refused where
    there is more than one layer (their order cannot be known)."""
    import re as _re

    def key(name: str):
        return [int(part) if part.isdigit() else part for part in _re.split(r"(\d+)", name)]

    weights = [k for k in state if k.endswith("weight")]
    if len(weights) > 1 and not all(_re.search(r"\d", k) for k in weights):
        listed = ", ".join(sorted(weights))
        raise SleepnetError(f"{path}: the order of the layers {listed} cannot be told from "
                            "their names (safetensors sorts them): save an nn.Sequential's state_dict, whose "
                            "names are numbered")  # fmt: skip
    return {k: state[k] for k in sorted(state, key=key)}


def _from_state_dict(state: dict, arch: str | None, path: Path) -> tuple[nn.Sequential, LayerNames]:
    """A bias-free ReLU MLP from a state_dict's 2-D ``*.weight`` tensors, in order; any bias refused."""
    for key, t in state.items():
        if key.endswith("bias") and torch.count_nonzero(t):
            raise ConversionError(f"{path}: {key} is a bias; sleep needs bias-free layers (bias=False)")
    keys = [k for k, t in state.items() if k.endswith("weight")]
    if not keys:
        raise SleepnetError(f"{path} holds no weight tensors")
    for k in keys:
        if state[k].ndim != 2:
            shape = tuple(state[k].shape)
            raise ConversionError(f"{path}: {k} has shape {shape}, not a Linear layer's; sleep "
                                  "converts MLPs only")  # fmt: skip
    weights = [state[k] for k in keys]
    sizes = parse_arch(arch) if arch is not None else [int(weights[0].shape[1]),
                                                       *(int(w.shape[0]) for w in weights)]
    if len(sizes) - 1 != len(weights):
        raise SleepnetError(f"{path} has {len(weights)} weight layers, --arch {arch} has {len(sizes) - 1}")
    model = mlp(sizes)
    linear = [m for m in model if isinstance(m, nn.Linear)]
    for k, w, m in zip(keys, weights, linear):
        if tuple(w.shape) != (m.out_features, m.in_features):
            raise SleepnetError(f"{path}: {k} is {w.shape[0]}x{w.shape[1]} but the architecture needs "
                                f"{m.out_features}x{m.in_features} "
                                f"({m.in_features}->{m.out_features})")  # fmt: skip
        with torch.no_grad():
            m.weight.copy_(w.float())
    names = []
    for k in keys:
        names += [k.rsplit(".", 1)[0], "relu"]
    return model, LayerNames(names)


def _from_modules(children: list[tuple[str, nn.Module]]) -> tuple[nn.Sequential, LayerNames]:
    """An nn.Sequential of the module's own layers (as they are: a bias or a CNN is refused later)."""
    return nn.Sequential(*(m for _, m in children)).float(), LayerNames([n for n, _ in children])


def _from_script(path: Path) -> tuple[nn.Sequential, LayerNames]:
    """The layers of a TorchScript ``nn.Sequential``, rebuilt as eager modules with the same weights."""
    try:
        script = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:
        why = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else repr(exc)
        raise SleepnetError(f"{path} is not a TorchScript file torch.jit.load can read ({why})") from None
    if getattr(script, "original_name", "") != "Sequential":
        raise ConversionError(f"{path} is a scripted {getattr(script, 'original_name', '?')}, not an "
                              "nn.Sequential: import its state_dict with --arch")  # fmt: skip
    layers, names = [], []
    for name, child in script.named_children():
        kind = getattr(child, "original_name", type(child).__name__)
        if kind == "Linear":
            m = nn.Linear(child.weight.shape[1], child.weight.shape[0], bias=child.bias is not None)
            with torch.no_grad():
                m.weight.copy_(child.weight)
                if child.bias is not None:
                    m.bias.copy_(child.bias)
        elif kind == "Conv2d":
            w = child.weight
            m = nn.Conv2d(w.shape[1], w.shape[0], tuple(w.shape[2:]), bias=child.bias is not None)
        elif kind in ("ReLU", "Sigmoid", "Identity"):
            m = getattr(nn, kind)()
        elif kind == "Dropout":
            m = nn.Dropout(float(child.p))
        elif kind == "Flatten":
            m = nn.Flatten(int(child.start_dim), int(child.end_dim))
        else:
            raise ConversionError(f"{path}: layer {len(layers)} ({kind} {name!r}) has no counterpart in a "
                                  "network sleep converts")  # fmt: skip
        layers.append(m)
        names.append(name)
    return nn.Sequential(*layers).float(), LayerNames(names)


def write_state_dict(model: nn.Sequential, out: Path) -> Path:
    """``torch.save(model.state_dict())`` to ``out``, atomically (loads with ``weights_only=True``)."""
    import io

    buf = io.BytesIO()
    torch.save({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, buf)
    return atomic_write(out, buf.getvalue())
