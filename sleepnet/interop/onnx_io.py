"""ONNX in and out. In: a chain of Gemm, MatMul (+ Add), Relu, Sigmoid, Flatten, Reshape, Dropout, Identity,
Conv and pooling nodes becomes an nn.Sequential (sleep then refuses what it cannot convert, by the node's
name). Out: the ANN of a model folder as such a chain (opset 17), written with the ``onnx`` package."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import ConversionError, SleepnetError
from ..fsio import atomic_write
from .torch_io import LayerNames

OPSET = 17
SUPPORTED = ("Gemm", "MatMul", "Add", "Relu", "Sigmoid", "Flatten", "Reshape", "Dropout", "Identity", "Conv",
             "MaxPool", "AveragePool")  # fmt: skip


def _onnx():
    try:
        import onnx
    except ImportError:
        raise SleepnetError("ONNX needs the onnx package: pip install onnx") from None
    return onnx


def read_onnx(path: Path) -> tuple[nn.Sequential, LayerNames]:
    """The model of an ONNX file whose graph is a chain of ``SUPPORTED`` nodes (see the module doc)."""
    onnx = _onnx()
    from onnx import numpy_helper

    try:
        graph = onnx.load(str(path)).graph
    except Exception as exc:
        why = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise SleepnetError(f"{path} is not an ONNX file onnx can read ({why})") from None
    init = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    consts = {n.output[0]: numpy_helper.to_array(n.attribute[0].t)
              for n in graph.node if n.op_type == "Constant" and n.attribute}  # fmt: skip
    init |= consts
    layers: list[nn.Module] = []
    names: list[str] = []
    for node in graph.node:
        op, name = node.op_type, node.name or node.output[0]
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if op == "Constant":
            continue
        if op not in SUPPORTED:
            raise ConversionError(f"{path}: node {name!r} ({op}) is not supported (supported: "
                                  f"{', '.join(SUPPORTED)})")  # fmt: skip
        if op in ("Gemm", "MatMul"):
            w = _weight(init, node, path, name)
            if op == "Gemm":
                if attrs.get("transA", 0) or attrs.get("alpha", 1.0) != 1.0:
                    raise ConversionError(f"{path}: node {name!r} (Gemm) scales or transposes its input")
                w = w if attrs.get("transB", 0) else w.T
            else:
                w = w.T  # MatMul: x @ B, B is (in, out)
            bias = init.get(node.input[2]) if op == "Gemm" and len(node.input) > 2 else None
            m = nn.Linear(w.shape[1], w.shape[0], bias=bias is not None and bool(np.any(bias)))
            with torch.no_grad():
                m.weight.copy_(torch.as_tensor(np.ascontiguousarray(w), dtype=torch.float32))
                if m.bias is not None:
                    m.bias.copy_(torch.as_tensor(bias * attrs.get("beta", 1.0), dtype=torch.float32))
        elif op == "Add":
            b = next((init[i] for i in node.input if i in init), None)
            if b is None or not layers or not isinstance(layers[-1], nn.Linear):
                raise ConversionError(f"{path}: node {name!r} (Add) adds something other than a bias")
            if np.any(b):
                prev = layers[-1]
                lin = nn.Linear(prev.in_features, prev.out_features, bias=True)
                with torch.no_grad():
                    lin.weight.copy_(prev.weight)
                    lin.bias.copy_(torch.as_tensor(np.broadcast_to(b, (prev.out_features,)),
                                                   dtype=torch.float32))
                layers[-1] = lin
            continue
        elif op == "Relu":
            m = nn.ReLU()
        elif op == "Sigmoid":
            m = nn.Sigmoid()
        elif op in ("Flatten", "Reshape"):
            m = nn.Flatten()
        elif op in ("Dropout", "Identity"):
            continue  # nothing at inference
        elif op == "Conv":
            w = _weight(init, node, path, name)
            m = nn.Conv2d(w.shape[1], w.shape[0], tuple(w.shape[2:]), bias=len(node.input) > 2)
        else:
            m = nn.MaxPool2d(2) if op == "MaxPool" else nn.AvgPool2d(2)
        layers.append(m)
        names.append(name)
    if not layers:
        raise SleepnetError(f"{path}: the graph has no layers")
    return nn.Sequential(*layers), LayerNames(names)


def _weight(init: dict, node, path: Path, name: str) -> np.ndarray:
    w = init.get(node.input[1]) if len(node.input) > 1 else None
    if w is None:
        raise ConversionError(f"{path}: node {name!r} ({node.op_type}) has no constant weight")
    return np.asarray(w, dtype=np.float64)


def write_onnx(model: nn.Sequential, out: Path) -> Path:
    """The ANN ``model`` as an ONNX graph (input ``x``: batch x inputs, output ``scores``), atomically."""
    onnx = _onnx()
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits = [], []
    current = "x"
    n_in = None
    for k, m in enumerate(model):
        nxt = f"h{k}"
        if isinstance(m, nn.Linear):
            n_in = n_in or m.in_features
            inits.append(numpy_helper.from_array(m.weight.detach().cpu().numpy().T.astype(np.float32),
                                                 f"W{k}"))
            nodes.append(helper.make_node("MatMul", [current, f"W{k}"], [nxt], name=f"linear{k}"))
            if m.bias is not None:
                inits.append(numpy_helper.from_array(m.bias.detach().cpu().numpy().astype(np.float32),
                                                     f"b{k}"))
                nodes.append(helper.make_node("Add", [nxt, f"b{k}"], [nxt + "b"], name=f"bias{k}"))
                nxt += "b"
        elif isinstance(m, nn.ReLU):
            nodes.append(helper.make_node("Relu", [current], [nxt], name=f"relu{k}"))
        elif isinstance(m, nn.Sigmoid):
            nodes.append(helper.make_node("Sigmoid", [current], [nxt], name=f"sigmoid{k}"))
        elif isinstance(m, nn.Flatten):
            nodes.append(helper.make_node("Flatten", [current], [nxt], name=f"flatten{k}", axis=1))
        elif isinstance(m, (nn.Dropout,)) or type(m).__name__ == "PaperDropout":
            continue  # nothing at inference
        else:
            raise SleepnetError(f"layer {k} ({type(m).__name__}) cannot be exported to ONNX (MLPs of Linear, "
                                "ReLU, Sigmoid, Flatten and Dropout layers can)")  # fmt: skip
        current = nxt
    if n_in is None:
        raise SleepnetError("the model has no Linear layer to export")
    n_out = [m for m in model if isinstance(m, nn.Linear)][-1].out_features
    nodes.append(helper.make_node("Identity", [current], ["scores"], name="scores"))
    current = "scores"
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", n_in])
    y = helper.make_tensor_value_info(current, TensorProto.FLOAT, ["batch", n_out])
    graph = helper.make_graph(nodes, "sleepnet", [x], [y], inits)
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                   producer_name="sleepnet")  # fmt: skip
    onnx_model.ir_version = 8
    onnx.checker.check_model(onnx_model)
    return atomic_write(out, onnx_model.SerializeToString())
