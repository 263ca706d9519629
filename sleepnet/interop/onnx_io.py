"""ONNX in and out.

In: a chain of Gemm, MatMul (+ Add), Mul (the paper's dropout at evaluation, ``x (1 - p)``), Relu,
Sigmoid, Flatten, Reshape, Dropout, Identity, Conv and pooling nodes becomes an nn.Sequential (sleep then
refuses what it cannot convert, by the node's name). Out: the ANN of a model folder as such a chain
(opset 17), written with the ``onnx`` package; the paper's dropout as its ``Mul``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import ConversionError, SleepnetError
from ..fsio import atomic_write
from .torch_io import LayerNames

OPSET = 17
SUPPORTED = ("Gemm", "MatMul", "Add", "Mul", "Relu", "Sigmoid", "Flatten", "Reshape", "Dropout", "Identity",
             "Conv", "MaxPool", "AveragePool")  # fmt: skip


def _onnx():
    try:
        import onnx
    except ImportError:
        raise SleepnetError("ONNX needs the onnx package: pip install onnx") from None
    return onnx


def read_onnx(path: Path) -> tuple[nn.Sequential, LayerNames]:
    """The model of an ONNX file whose graph is a chain of ``SUPPORTED`` nodes (see the module doc).

    A chain: one graph input; each node's data input (its first) is the output of the node before (or
    the graph input); the graph's one output is the last node's. A branch, a Reshape to anything but
    ``(batch, features)`` or a Flatten on another axis is refused in one line naming the node.
    """
    onnx = _onnx()
    from onnx import numpy_helper

    try:
        graph = onnx.load(str(path)).graph
        init = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        for n in graph.node:
            if n.op_type == "Constant" and n.attribute:
                value = onnx.helper.get_attribute_value(n.attribute[0])
                init[n.output[0]] = numpy_helper.to_array(value) if hasattr(value,
                                                                            "dims") else np.asarray(value)
    except Exception as exc:
        why = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise SleepnetError(f"{path} is not an ONNX file onnx can read ({why})") from None
    inputs = [i.name for i in graph.input if i.name not in init]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise ConversionError(f"{path}: the graph has {len(inputs)} inputs and {len(graph.output)} outputs; "
                              "sleep converts a chain with one of each")  # fmt: skip
    current = inputs[0]
    layers: list[nn.Module] = []
    names: list[str] = []
    for node in graph.node:
        op, name = node.op_type, node.name or node.output[0]
        if op == "Constant":
            continue
        if op not in SUPPORTED:
            raise ConversionError(f"{path}: node {name!r} ({op}) is not supported (supported: "
                                  f"{', '.join(SUPPORTED)})")  # fmt: skip
        data_in = [i for i in node.input if i and i not in init]
        if data_in != [current]:
            raise ConversionError(f"{path}: node {name!r} ({op}) does not take the previous node's output "
                                  "alone: the graph is not a chain")  # fmt: skip
        current = node.output[0]
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        m = _layer(op, name, node, attrs, init, layers, path)
        if m is not None:
            layers.append(m)
            names.append(name)
    if current != graph.output[0].name:
        raise ConversionError(f"{path}: the graph's output is not its last node's: not a chain")
    if not layers:
        raise SleepnetError(f"{path}: the graph has no layers")
    return nn.Sequential(*layers), LayerNames(names)


def _layer(op: str, name: str, node, attrs: dict, init: dict, layers: list, path: Path) -> nn.Module | None:
    """The module of one node (None for a node that only changes the layer before, or nothing)."""
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
                m.bias.copy_(torch.as_tensor(np.broadcast_to(bias * attrs.get("beta", 1.0), (w.shape[0],)),
                                             dtype=torch.float32))  # fmt: skip
        return m
    if op == "Add":
        b = next((init[i] for i in node.input if i in init), None)
        if b is None or not layers or not isinstance(layers[-1], nn.Linear):
            raise ConversionError(f"{path}: node {name!r} (Add) adds something other than a bias")
        if np.any(b):
            prev = layers[-1]
            lin = nn.Linear(prev.in_features, prev.out_features, bias=True)
            with torch.no_grad():
                lin.weight.copy_(prev.weight)
                lin.bias.copy_(torch.as_tensor(np.broadcast_to(b, (prev.out_features,)), dtype=torch.float32))
            layers[-1] = lin
        return None
    if op == "Mul":
        c = next((init[i] for i in node.input if i in init), None)
        if c is None or np.size(c) != 1 or not 0 < float(np.ravel(c)[0]) <= 1:
            raise ConversionError(f"{path}: node {name!r} (Mul) is not a scaling by a constant in (0, 1]")
        from ..models import PaperDropout

        return PaperDropout(1.0 - float(np.ravel(c)[0]))  # the paper's dropout at evaluation: x * (1 - p)
    if op == "Relu":
        return nn.ReLU()
    if op == "Sigmoid":
        return nn.Sigmoid()
    if op == "Flatten":
        if attrs.get("axis", 1) != 1:
            axis = attrs["axis"]
            raise ConversionError(f"{path}: node {name!r} (Flatten) flattens from axis {axis}, not 1")
        return nn.Flatten()
    if op == "Reshape":
        shape = init.get(node.input[1]) if len(node.input) > 1 else None
        if shape is None or np.size(shape) != 2 or int(np.ravel(shape)[0]) not in (-1, 0):
            raise ConversionError(f"{path}: node {name!r} (Reshape) does not reshape to (batch, features)")
        return nn.Flatten()
    if op in ("Dropout", "Identity"):
        return None  # nothing at inference
    if op == "Conv":
        w = _weight(init, node, path, name)
        return nn.Conv2d(w.shape[1], w.shape[0], tuple(w.shape[2:]), bias=len(node.input) > 2)
    return nn.MaxPool2d(2) if op == "MaxPool" else nn.AvgPool2d(2)


def _weight(init: dict, node, path: Path, name: str) -> np.ndarray:
    w = init.get(node.input[1]) if len(node.input) > 1 else None
    if w is None:
        raise ConversionError(f"{path}: node {name!r} ({node.op_type}) has no constant weight")
    return np.asarray(w, dtype=np.float64)


def write_onnx(model: nn.Sequential, out: Path) -> Path:
    """The ANN ``model`` as an ONNX graph (input ``x``: batch x inputs, output ``scores``), atomically."""
    onnx = _onnx()
    from onnx import TensorProto, helper, numpy_helper

    from ..models import PaperDropout

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
        elif isinstance(m, PaperDropout):  # the paper's dropout at evaluation: x * (1 - p)
            inits.append(numpy_helper.from_array(np.asarray(1.0 - m.p, dtype=np.float32), f"keep{k}"))
            nodes.append(helper.make_node("Mul", [current, f"keep{k}"], [nxt], name=f"dropout{k}"))
        elif isinstance(m, nn.Dropout):
            continue  # the identity at inference
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
