"""Bring your own model in (`sleepnet import`) and take it out (`sleepnet export`): every format both ways on
a network trained outside sleepnet, ONNX checked by onnxruntime, NIR read back and simulated."""

import json

import numpy as np
import pytest
import torch
from torch import nn

from tests.conftest import run_cli

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
nir = pytest.importorskip("nir")


@pytest.fixture(scope="module")
def outside(tmp_path_factory):
    """A bias-free ReLU MLP trained with plain torch on Patches (not by sleepnet), in every import format."""
    from sleepnet.data import make_patches

    d = tmp_path_factory.mktemp("outside")
    data = make_patches(seed=0)
    torch.manual_seed(1)
    model = nn.Sequential(nn.Flatten(), nn.Linear(100, 24, bias=False), nn.ReLU(), nn.Dropout(0.1),
                          nn.Linear(24, 4, bias=False), nn.ReLU())  # fmt: skip
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    x, y = torch.as_tensor(data.x_train), torch.as_tensor(data.y_train)
    for _ in range(60):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    model.eval()
    torch.save(model.state_dict(), d / "sd.pt")
    torch.save(model, d / "full.pt")
    torch.jit.script(model).save(str(d / "m.ts"))
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(d / "m.safetensors"))
    return d, model, data


def _weights(folder):
    from sleepnet.models import load_model

    m, _ = load_model(folder)
    return [p.detach() for p in m.parameters()]


@pytest.mark.parametrize("name, fmt", [("sd.pt", "torch"), ("full.pt", "torch"), ("m.ts", "torchscript"),
                                       ("m.safetensors", "safetensors")])  # fmt: skip
def test_each_import_format_gives_the_same_network_with_its_provenance(outside, tmp_path, name, fmt):
    d, model, _ = outside
    out = tmp_path / "m"
    res = run_cli("import", d / name, "-o", out, "--dataset", "patches", "--arch", "100-24-4")
    assert res.returncode == 0, res.stderr
    record = json.loads((out / "model.json").read_text())
    from sleepnet.hashing import sha256_file

    assert record["kind"] == "imported" and record["source"]["format"] == fmt
    assert record["source"]["sha256"] == sha256_file(d / name) and record["dataset"]["name"] == "patches"
    want = [p.detach() for p in model.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(_weights(out), want)) and len(_weights(out)) == 2


def test_export_torch_and_onnx_give_the_ann_and_onnx_reads_back(outside, tmp_path):
    d, model, data = outside
    folder = tmp_path / "m"
    assert run_cli("import", d / "sd.pt", "-o", folder, "--dataset", "patches").returncode == 0
    assert run_cli("export", folder, "--format", "torch", "-o", tmp_path / "w.pt").returncode == 0
    state = torch.load(tmp_path / "w.pt", weights_only=True)
    want = model.state_dict()
    assert len(state) == len(want) == 2  # the imported folder's own layer numbering: values compared in order
    assert all(torch.equal(a, b) for a, b in zip(state.values(), want.values()))
    res = run_cli("export", folder, "--format", "onnx", "-o", tmp_path / "m.onnx")
    assert res.returncode == 0, res.stderr
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    ours = model(torch.as_tensor(data.x_test)).detach().numpy()
    theirs = sess.run(None, {"x": data.x_test})[0]
    assert np.abs(theirs - ours).max() <= 1e-6 * max(1.0, np.abs(ours).max())
    back = tmp_path / "back"
    res = run_cli("import", tmp_path / "m.onnx", "-o", back)
    assert res.returncode == 0, res.stderr
    assert len(_weights(back)) == 2 and all(torch.equal(a, b) for a, b in zip(_weights(back),
                                                                              _weights(folder)))


def _simulate_nir(graph, spikes: np.ndarray, dt: float) -> np.ndarray:
    """Forward Euler at step ``dt`` over a chain NIR graph (Linear -> LIF/IF ...), spikes where ``v >= thr``
    (sleepnet's; NIR writes ``>``, the same off exact ties), reset to ``v_reset``: spikes per step and
    layer."""
    order, node = [], "input"
    nxt = dict(graph.edges)
    while node in nxt:
        node = nxt[node]
        order.append(node)
    layers = [(graph.nodes[a], graph.nodes[b]) for a, b in zip(order[0::2], order[1::2]) if b != "output"]
    v = [np.zeros(lin.weight.shape[0]) for lin, _ in layers]
    counts = np.zeros((len(spikes), len(layers) + 1), dtype=np.int64)
    for t, s in enumerate(spikes):
        s = s.astype(np.float64)
        counts[t, 0] = s.sum()
        for k, (lin, cell) in enumerate(layers):
            current = lin.weight @ s
            if isinstance(cell, nir.LIF):
                v[k] = v[k] + dt / cell.tau * (cell.v_leak - v[k] + cell.r * current)
            else:  # IF: dv/dt = R I
                v[k] = v[k] + dt * cell.r * current
            fired = v[k] >= cell.v_threshold
            v[k][fired] = cell.v_reset[fired]
            s = fired.astype(np.float64)
            counts[t, k + 1] = fired.sum()
    return counts


@pytest.mark.parametrize("decay", [0.99, 1.0])
def test_nir_holds_every_number_of_the_spiking_network_and_spikes_as_ours(outside, tmp_path, decay):
    from sleepnet.models import load_model
    from sleepnet.sleep_phase import run_sleep

    d, _, data = outside
    folder, slept = tmp_path / "m", tmp_path / "slept"
    assert run_cli("import", d / "sd.pt", "-o", folder, "--dataset", "patches").returncode == 0
    res = run_cli("sleep", folder, "--preset", "patches", "--set", "beta=[1.5,2]", "--set", "T=400",
                  "--set", f"decay={decay}", "-q", "-o", slept)  # fmt: skip
    assert res.returncode == 0, res.stderr
    res = run_cli("export", slept, "--format", "nir", "-o", tmp_path / "net.nir")
    assert res.returncode == 0, res.stderr
    graph = nir.read(str(tmp_path / "net.nir"))
    record = json.loads((slept / "model.json").read_text())
    alpha, cfg = record["sleep"]["conversion"]["alpha"], record["sleep"]["config"]
    from sleepnet.converters import check_sequential

    model, _ = load_model(slept)
    weights = [model[k].weight.detach().double().numpy() for k in check_sequential(model)]
    chain = ["input", "linear0", "lif0", "linear1", "lif1", "output"]
    assert sorted(graph.nodes) == sorted(chain) and sorted(graph.edges) == sorted(zip(chain, chain[1:]))
    for l, w in enumerate(weights):
        assert np.array_equal(graph.nodes[f"linear{l}"].weight, alpha[l] * w)
        cell = graph.nodes[f"lif{l}"]
        if decay == 1.0:
            assert isinstance(cell, nir.IF) and np.all(cell.r == 1 / cfg["dt"])
        else:
            tau = cfg["dt"] / (1 - cfg["decay"])
            assert np.allclose(cell.tau, tau, rtol=0, atol=1e-15) and np.allclose(cell.r, tau / cfg["dt"])
        assert np.all(cell.v_threshold == cfg["threshold"] * cfg["beta"][l]) and not cell.v_reset.any()
    assert graph.metadata["dt"] == cfg["dt"]
    # the same input spikes through our simulator (plasticity off) and through the NIR graph
    spikes = np.random.default_rng(3).random((300, 100)) < 0.15
    ours = run_sleep(weights, spikes, alpha=alpha, beta=cfg["beta"], inc=0.0, dec=0.0,
                     threshold=cfg["threshold"],
                     decay=cfg["decay"])  # fmt: skip
    theirs = _simulate_nir(graph, spikes, cfg["dt"])
    assert ours.spike_counts[:, 1:].sum() > 20  # the hidden and output layers fire
    assert np.array_equal(theirs, ours.spike_counts)


class Net(nn.Module):
    """A model class of someone's own: its pickle names a class ``weights_only`` does not know."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(100, 4, bias=False)


def _unsupported_onnx(path):
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((100, 4), np.float32), "W")
    nodes = [helper.make_node("MatMul", ["x", "W"], ["h"], name="dense"),
             helper.make_node("Softmax", ["h"], ["y"], name="probabilities")]  # fmt: skip
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 100])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1,
                                                                                      4])], [w])  # fmt: skip
    onnx.save(helper.make_model(graph), str(path))


def test_bad_imports_and_exports_are_one_line_and_write_nothing(outside, tmp_path, patches_model):
    d, _, _ = outside
    torch.save(nn.Sequential(nn.Linear(100, 4), nn.ReLU()).state_dict(), tmp_path / "biased.pt")
    torch.save(Net(), tmp_path / "custom.pt")  # a pickle of a class weights_only does not know
    _unsupported_onnx(tmp_path / "soft.onnx")
    noisy = tmp_path / "noisy"
    assert run_cli("train", "--dataset", "patches", "--recipe", "relu-mlp", "--hidden", "8", "--epochs", "1",
                   "--noise", "gaussian:0.1", "-q", "-o", noisy).returncode == 0  # fmt: skip
    out = tmp_path / "out"
    cases = [
        (("import", tmp_path / "custom.pt", "-o", out), 1, "weights_only=True) refuses it"),
        (("import", tmp_path / "soft.onnx", "-o", out), 1, "node 'probabilities' (Softmax) is not supported"),
        (("import", tmp_path / "biased.pt", "-o", out), 1, "0.bias is a bias"),
        (("import", d / "sd.pt", "-o", out, "--arch", "100-30-4"), 1,
         "1.weight is 24x100 but the architecture"),
        (("import", d / "sd.pt", "-o", out, "--arch", "big"), 2, "--arch expects layer sizes"),
        (("import", tmp_path / "model.xyz", "-o", out), 2, "cannot tell the format"),
        (("export", patches_model, "--format", "keras", "-o", out), 2, "invalid choice: 'keras'"),
        (("export", noisy, "--format", "onnx", "-o", out), 1, "cannot be exported to ONNX"),
        (("export", noisy, "--format", "nir", "--preset", "patches", "-o", out), 1, "a noise layer"),
        (("export", patches_model, "--format", "nir", "-o", out), 1, "has not slept"),
        (("export", patches_model, "--format", "nir", "--preset", "patches", "--set", "w_inh=0.5", "-o",
          out), 1,
         "no lateral inhibition"),
        (("export", patches_model, "--format", "onnx", "-o", patches_model / "model.json", "--force"), 1,
         "would overwrite the input"),
    ]  # fmt: skip
    for args, status, words in cases:
        res = run_cli(*args)
        lines = res.stderr.strip().splitlines()
        assert res.returncode == status and len(lines) == 1 and words in lines[0], (args, res.stderr)
        assert not out.exists()


def test_sleep_and_convert_take_a_model_file_directly(outside, tmp_path):
    d, _, _ = outside
    res = run_cli("convert", d / "m.safetensors", "--dataset", "patches")
    assert res.returncode == 0 and "spiking network 100-24-4" in res.stdout, res.stderr
    out = tmp_path / "slept"
    res = run_cli("sleep", d / "sd.pt", "--dataset", "patches", "--preset", "patches", "--set", "beta=[1,1]",
                  "--set", "T=300", "-q", "-o", out)  # fmt: skip
    assert res.returncode == 0, res.stderr
    info = json.loads(run_cli("info", out, "--json").stdout)
    assert info["lineage"] == [{"path": str((d / "sd.pt").resolve()), "kind": "file", "matches": True}]
    res = run_cli("plot", out)  # the parent is the file: weights before sleep come from it
    assert res.returncode == 0 and (out / "figures" / "weights.png").is_file(), res.stderr
    imported = tmp_path / "imported"
    assert run_cli("import", d / "m.safetensors", "-o", imported).returncode == 0
    source = json.loads(run_cli("info", imported, "--json").stdout)["source"]
    assert source["format"] == "safetensors" and source["matches"] is True
    res = run_cli("sleep", tmp_path / "missing.pt", "--preset", "patches", "-o", tmp_path / "no")
    assert res.returncode == 1 and "does not exist" in res.stderr and not (tmp_path / "no").exists()


def test_brian2_export_is_a_script_that_sleeps_as_the_numba_kernel(outside, tmp_path):
    """The exported script, loaded with nothing of sleepnet, rebuilds the slept network with its plasticity;
    on the same input spikes its spikes equal the Numba kernel's and its weights agree to 1e-9."""
    import importlib.util

    import brian2 as b2

    from sleepnet.converters import check_sequential
    from sleepnet.models import load_model
    from sleepnet.sleep_phase import run_sleep
    from sleepnet.state import brian2_kept

    d, _, _ = outside
    folder, slept = tmp_path / "m", tmp_path / "slept"
    assert run_cli("import", d / "sd.pt", "-o", folder, "--dataset", "patches").returncode == 0
    assert run_cli("sleep", folder, "--preset", "patches", "--set", "beta=[1.5,2]", "--set", "T=200", "-q",
                   "-o", slept).returncode == 0  # fmt: skip
    script = tmp_path / "net.py"
    res = run_cli("export", slept, "--format", "brian2", "-o", script)
    assert res.returncode == 0, res.stderr
    text = script.read_text()
    assert "sleepnet" not in "".join(line for line in text.splitlines() if line.startswith(("import",
                                                                                            "from")))
    spec = importlib.util.spec_from_file_location("exported_net", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    spikes = np.random.default_rng(5).random((120, 100)) < 0.15
    with brian2_kept():
        b2.prefs.codegen.target = "numpy"
        b2.start_scope()
        net = module.load(spikes)
        net.network.run(120 * module.DT * b2.second)
    record = json.loads((slept / "model.json").read_text())
    cfg, alpha = record["sleep"]["config"], record["sleep"]["conversion"]["alpha"]
    model, _ = load_model(slept)
    weights = [model[k].weight.detach().double().numpy() for k in check_sequential(model)]
    ours = run_sleep(weights, spikes, alpha=alpha, beta=cfg["beta"], inc=cfg["inc"], dec=cfg["dec"],
                     threshold=cfg["threshold"], decay=cfg["decay"])  # fmt: skip
    assert [len(m.i) for m in net.monitors] == ours.spike_counts.sum(axis=0).tolist()
    assert ours.spike_counts[:, 1:].sum() > 20
    assert max(np.abs(a - b).max() for a, b in zip(net.weights(), ours.weights)) <= 1e-9


def _branching_onnx(path):
    """x -> MatMul W1 -> Relu -> (a dead end); x -> MatMul W2 -> Relu -> y: not a chain."""
    from onnx import TensorProto, helper, numpy_helper

    w1 = numpy_helper.from_array(np.ones((100, 4), np.float32), "W1")
    w2 = numpy_helper.from_array(np.full((100, 4), 2, np.float32), "W2")
    nodes = [helper.make_node("MatMul", ["x", "W1"], ["a"], name="a"),
             helper.make_node("Relu", ["a"], ["aux"], name="r1"),
             helper.make_node("MatMul", ["x", "W2"], ["b"], name="b"),
             helper.make_node("Relu", ["b"], ["y"], name="r2")]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 100])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph(nodes, "g", [x], [y], [w1, w2])
    onnx.save(helper.make_model(graph), str(path))


def test_onnx_from_torch_onnx_export_gemm_and_matmul_and_a_branch_refused(tmp_path):
    """ONNX written by torch's own exporter (MatMul for bias-free layers, Gemm with transB for biased ones)
    reads back to the same scores; a graph that is not a chain is refused, naming the node."""
    from sleepnet.models import load_model

    torch.manual_seed(0)
    x = torch.rand(50, 100)
    bias_free = nn.Sequential(nn.Linear(100, 12, bias=False), nn.ReLU(), nn.Linear(12, 4, bias=False),
                              nn.ReLU())
    zero_bias = nn.Sequential(nn.Linear(100, 12), nn.ReLU(), nn.Linear(12, 4), nn.ReLU())
    with torch.no_grad():
        for m in zero_bias:
            if isinstance(m, nn.Linear):
                m.bias.zero_()
    for name, model in (("matmul", bias_free), ("gemm", zero_bias)):
        path = tmp_path / f"{name}.onnx"
        torch.onnx.export(model, x[:1], str(path), dynamo=False, input_names=["x"], output_names=["y"])
        ops = {n.op_type for n in onnx.load(str(path)).graph.node}
        assert ("Gemm" in ops) == (name == "gemm")
        res = run_cli("import", path, "-o", tmp_path / name)
        assert res.returncode == 0, res.stderr
        got, _ = load_model(tmp_path / name)
        assert torch.allclose(got(x), model(x), rtol=0, atol=1e-6)
    _branching_onnx(tmp_path / "branch.onnx")
    res = run_cli("import", tmp_path / "branch.onnx", "-o", tmp_path / "no")
    assert res.returncode == 1 and "node 'b' (MatMul) does not take the previous node's output" in res.stderr
    assert not (tmp_path / "no").exists()


def test_the_papers_dropout_goes_to_onnx_and_back_and_many_layers_keep_their_order(tmp_path):
    """PaperDropout scales by (1 - p) at evaluation: ONNX carries it as a Mul, onnxruntime gives torch's
    scores, and the import reads the Mul back; safetensors' sorted names (10 before 2) keep layer order."""
    from safetensors.torch import save_file

    from sleepnet.models import PaperDropout, build_mlp, load_model, save_model

    torch.manual_seed(0)
    model = build_mlp([100, 16, 16, 16, 16, 16, 4])  # the paper MLP: PaperDropout(0.2) after each hidden ReLU
    assert any(isinstance(m, PaperDropout) for m in model)
    model.eval()
    save_model(model, tmp_path / "paper")
    assert run_cli("export", tmp_path / "paper", "--format", "onnx", "-o",
                   tmp_path / "p.onnx").returncode == 0
    x = np.random.default_rng(0).random((30, 100)).astype(np.float32)
    sess = ort.InferenceSession(str(tmp_path / "p.onnx"), providers=["CPUExecutionProvider"])
    ours = model(torch.as_tensor(x)).detach().numpy()
    assert np.abs(sess.run(None, {"x": x})[0] - ours).max() <= 1e-6 * max(1.0, np.abs(ours).max())
    assert run_cli("import", tmp_path / "p.onnx", "-o", tmp_path / "back").returncode == 0
    back, _ = load_model(tmp_path / "back")
    assert [type(m).__name__ for m in back] == [type(m).__name__ for m in model]
    assert torch.allclose(back(torch.as_tensor(x)), torch.as_tensor(ours), rtol=0, atol=1e-6)
    plain = nn.Sequential(*(m for m in model if not isinstance(m, PaperDropout)))
    save_file({k: v.contiguous() for k, v in plain.state_dict().items()}, str(tmp_path / "deep.safetensors"))
    assert run_cli("import", tmp_path / "deep.safetensors", "-o", tmp_path / "deep").returncode == 0
    deep, _ = load_model(tmp_path / "deep")
    assert all(torch.equal(a, b) for a, b in zip(deep.parameters(), plain.parameters()))
    assert len(list(deep.parameters())) == 6


def test_snntorch_runs_the_exported_nir_graph_and_spikes_as_ours(outside, tmp_path):
    """An outside simulator: snnTorch's NIR importer (it assumes a 0.1 ms step, so the network is exported
    at dt = 1e-4) runs the graph one step per call; its spikes per step and layer equal the Numba kernel's
    with plasticity off."""
    snn_nir = pytest.importorskip("snntorch.import_nir")
    from sleepnet.sleep_phase import run_sleep

    d, _, _ = outside
    folder = tmp_path / "m"
    assert run_cli("import", d / "sd.pt", "-o", folder, "--dataset", "patches").returncode == 0
    res = run_cli("export", folder, "--format", "nir", "--preset", "patches", "--set", "beta=[1.5,2]",
                  "--set", "dt=0.0001", "--set", "decay=0.99", "-o", tmp_path / "net.nir")  # fmt: skip
    assert res.returncode == 0, res.stderr
    graph = nir.read(str(tmp_path / "net.nir"))
    net = snn_nir.import_from_nir(graph)
    mods = dict(net.named_modules())
    counts = {"lif0": [], "lif1": []}
    for name in counts:
        mods[name].register_forward_hook(
            lambda m, i, o, name=name: counts[name].append(int((o[0] if isinstance(o, tuple) else o).sum())))
    spikes = np.random.default_rng(3).random((300, 100)) < 0.15
    with torch.no_grad():
        for t in range(len(spikes)):
            net(torch.as_tensor(spikes[t : t + 1], dtype=torch.float32))
    theirs = np.stack([counts["lif0"], counts["lif1"]], axis=1)
    weights = [graph.nodes["linear0"].weight, graph.nodes["linear1"].weight]  # alpha folded in
    thresholds = [float(graph.nodes[f"lif{l}"].v_threshold[0]) for l in (0, 1)]
    ours = run_sleep(weights, spikes, alpha=[1.0, 1.0], beta=thresholds, inc=0.0, dec=0.0, threshold=1.0,
                     decay=0.99)  # fmt: skip
    assert ours.spike_counts[:, 1:].sum() > 20
    np.testing.assert_array_equal(theirs, ours.spike_counts[:, 1:])
