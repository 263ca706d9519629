"""Sleep simulator benchmark: every backend on the same input spikes, ratios measured in one run.

    python benchmarks/bench_sleep.py            # `make bench`
    python benchmarks/bench_sleep.py --quick    # smaller, for a smoke test

Prints, for the paper network 784-1200-1200-10 (trained with the paper recipe,
seed 0) and the presets mnist-fgsm and mnist-deepfool: wall time (median of
--repeat runs), steps/s, synaptic events/s (propagation adds + plastic updates
performed) and each backend's time relative to Numba with 2 threads (the torch backend on the
CPU, and on the GPU too where there is one: ``--torch-device``). The slow
backends run on the first --slow-steps steps (default: all of T); Numba runs
on those and on the full T. Then: wide networks 784-H-H-10 (H = 1200, 4000, 8000), torch
against Numba; scaling with hidden width and T, achieved bytes/s against the
machine's copy bandwidth, cold/warm start of `sleepnet sleep`, and peak memory.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numba
import numpy as np
import torch

from sleepnet.config import load_preset
from sleepnet.converters import brian2_backend as b2back
from sleepnet.converters import from_torch
from sleepnet.data import load_dataset
from sleepnet.inputs import input_spikes
from sleepnet.kernels import KernelParams
from sleepnet.models import load_model
from sleepnet.sleep_phase import run_sleep, sleep
from sleepnet.workflow import train_to_folder

ROOT = Path(__file__).resolve().parents[1]


def median_time(fn, repeat):
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times)), out


def events(counts: np.ndarray, sizes: list[int]) -> tuple[int, int]:
    """(propagation adds, plastic updates) implied by the spike counts."""
    prop = sum(int(counts[:, l].sum()) * sizes[l + 1] for l in range(len(sizes) - 1))
    plast = sum(int(counts[:, l + 1].sum()) * sizes[l] for l in range(len(sizes) - 1))
    return prop, plast


def copy_bandwidth(repeat: int = 5) -> float:
    """Bytes read + written per second by a large array copy (one thread)."""
    a = np.ones(32 * 2**20)  # 256 MiB
    b = np.empty_like(a)
    t, _ = median_time(lambda: np.copyto(b, a), repeat)
    return 2 * a.nbytes / t


def numba_run(weights, spikes, kw, threads):
    numba.set_num_threads(threads)
    return run_sleep(weights, spikes, backend="numba", chunk=len(spikes), **kw)


def brian2_cython_time(weights, spikes, params, repeat):
    import brian2 as b2

    b2.prefs.codegen.target = "cython"
    times, model = [], None
    for _ in range(repeat + 1):  # the first run compiles (cached on disk afterwards)
        b2.start_scope()
        model = b2back.build(weights, params, spikes)
        t = time.perf_counter()
        model.network.run(len(spikes) * model.dt * b2.second, namespace={})
        times.append(time.perf_counter() - t)
    return float(np.median(times[1:])), model


def brian2_standalone_time(weights, spikes, params, repeat):
    """Compile once, then time the binary's runs (compile time excluded)."""
    import brian2 as b2

    folder = tempfile.mkdtemp(prefix="sleepnet-bench-standalone-")
    b2.set_device("cpp_standalone", directory=folder, build_on_run=True)
    try:
        t = time.perf_counter()
        model = b2back.build(weights, params, spikes)
        model.network.run(len(spikes) * model.dt * b2.second, namespace={})
        compile_and_run = time.perf_counter() - t
        runs = []
        for _ in range(repeat):
            b2.device.run(with_output=False)
            runs.append(b2.device.timers["run_binary"])
        counts = [np.bincount(np.rint(np.asarray(m.t_[:]) / model.dt).astype(int),
                              minlength=len(spikes)) for m in model.monitors]  # fmt: skip
        weights_out = model.weights()
    finally:
        b2.device.reinit()
        b2.device.activate()
        b2.set_device("runtime")
        shutil.rmtree(folder, ignore_errors=True)
    return float(np.median(runs)), compile_and_run, np.stack(counts, axis=1), weights_out


def row(name, steps, t, counts, sizes, ref_t):
    prop, plast = events(counts, sizes)
    return (f"{name:28}{steps:>8}{t:>10.3f}{steps / t:>12.0f}{(prop + plast) / t / 1e6:>12.1f}"
            f"{t / ref_t:>10.1f}x")  # fmt: skip


HEADER = f"{'backend':28}{'steps':>8}{'time s':>10}{'steps/s':>12}{'Mevents/s':>12}{'vs numba':>11}"


def backend_table(net, data, preset, args, bandwidth):
    cfg = load_preset(preset)
    T = cfg.T if not args.quick else min(cfg.T, 3000)
    spikes = input_spikes(cfg.replace(T=T), data.x_train)
    params = KernelParams(alpha=cfg.alpha(net.factors), beta=cfg.beta, inc=cfg.inc, dec=cfg.dec)
    kw = dict(alpha=params.alpha, beta=params.beta, inc=params.inc, dec=params.dec)
    sizes = net.sizes
    P = min(T, args.slow_steps)
    prefix = spikes[:P]
    numba_run(net.weights, spikes[:10], kw, 2)  # compile / load from cache
    print(f"\n## {preset}: T = {T}, all backends on the first {P} steps "
          f"(input {spikes.sum() / T:.1f} spikes/step)")  # fmt: skip
    t2_full, ref_full = median_time(lambda: numba_run(net.weights, spikes, kw, 2), args.repeat)
    t1_full, out1 = median_time(lambda: numba_run(net.weights, spikes, kw, 1), args.repeat)
    assert np.array_equal(out1.spike_counts, ref_full.spike_counts)
    assert all(np.array_equal(a, b) for a, b in zip(out1.weights, ref_full.weights))
    t2, ref = median_time(lambda: numba_run(net.weights, prefix, kw, 2), args.repeat)
    t1, _ = median_time(lambda: numba_run(net.weights, prefix, kw, 1), args.repeat)
    print(HEADER)
    print(row("numba, 2 threads (full T)", T, t2_full, ref_full.spike_counts, sizes, t2_full))
    print(row("numba, 1 thread (full T)", T, t1_full, ref_full.spike_counts, sizes, t2_full))
    print(row("numba, 2 threads", P, t2, ref.spike_counts, sizes, t2))
    print(row("numba, 1 thread", P, t1, ref.spike_counts, sizes, t2))
    results = {"numba2": t2, "numba1": t1}

    tn, outn = median_time(lambda: run_sleep(net.weights, prefix, backend="numpy", **kw), args.repeat)
    check = _agree(outn.spike_counts, outn.weights, ref)
    print(row("numpy reference", P, tn, ref.spike_counts, sizes, t2) + check)
    results["numpy"] = tn
    for label, opts in torch_variants(args.torch_device):
        def run_torch(opts=opts):
            return run_sleep(net.weights, prefix, backend="torch", backend_options=opts, **kw)

        tt, outt = median_time(run_torch, args.repeat)
        print(row(label, P, tt, ref.spike_counts, sizes, t2) + _agree(outt.spike_counts, outt.weights, ref))
        results[label] = tt
    if not args.skip_brian2:
        tb, model = brian2_cython_time(net.weights, prefix, params, args.repeat)
        counts = np.stack([np.bincount(np.rint(np.asarray(m.t_[:]) / model.dt).astype(int),
                                       minlength=P) for m in model.monitors], axis=1)  # fmt: skip
        print(row("brian2 runtime (cython)", P, tb, ref.spike_counts, sizes, t2)
              + _agree(counts, model.weights(), ref))  # fmt: skip
        results["brian2"] = tb
    if not args.skip_standalone:
        ts, tc, counts, w = brian2_standalone_time(net.weights, prefix, params, args.repeat)
        print(row("brian2 cpp_standalone", P, ts, ref.spike_counts, sizes, t2) + _agree(counts, w, ref)
              + f"  (compile + first run {tc:.0f} s)")  # fmt: skip
        results["standalone"] = ts
    prop, plast = events(ref_full.spike_counts, sizes)
    bytes_moved = 8 * prop + 16 * plast
    print(f"numba full T: {prop / 1e6:.1f} M propagation adds, {plast / 1e6:.1f} M plastic updates, "
          f"~{bytes_moved / t2_full / 1e9:.2f} GB/s of weight traffic "
          f"({100 * bytes_moved / t2_full / bandwidth:.0f}% of copy bandwidth)")  # fmt: skip
    return results


def torch_variants(device: str) -> list[tuple[str, dict]]:
    """The torch backend on the CPU, and on ``device`` too (both plasticity paths) if it is a GPU."""
    from sleepnet.devices import resolve_device

    out = [("torch cpu", {"device": "cpu"})]
    dev = resolve_device(device)
    if dev.type == "cuda":
        out += [(f"torch {dev} dense", {"device": str(dev), "dense": True}),
                (f"torch {dev} sparse", {"device": str(dev), "dense": False})]  # fmt: skip
    return out


def wide(trained, data, args):
    """Wide networks: torch (each variant) against numba on 2 threads, the same input spikes."""
    cfg = load_preset("mnist-fgsm")
    T = 300 if args.quick else 2000
    spikes = input_spikes(cfg.replace(T=T), data.x_train)
    P = min(T, args.slow_steps)
    print(f"\n## wide networks (mnist-fgsm parameters, T = {T}; torch on the first {P} steps)")
    print(HEADER)
    for hidden in ((1200, 4000) if args.quick else (1200, 4000, 8000)):
        net = from_torch(synthetic_model(trained, hidden), data.x_train[:10000])
        kw = dict(alpha=cfg.alpha(net.factors), beta=cfg.beta, inc=cfg.inc, dec=cfg.dec)
        t2, ref = median_time(lambda net=net, kw=kw: numba_run(net.weights, spikes, kw, 2), args.repeat)
        print(row(f"784-{hidden}-{hidden}-10 numba 2 thr", T, t2, ref.spike_counts, net.sizes, t2))
        ref_p = numba_run(net.weights, spikes[:P], kw, 2) if P < T else ref
        for label, opts in torch_variants(args.torch_device):
            def run_torch(net=net, kw=kw, opts=opts):
                return run_sleep(net.weights, spikes[:P], backend="torch", backend_options=opts, **kw)

            tt, out = median_time(run_torch, args.repeat)
            print(row(f"  {label}", P, tt, ref_p.spike_counts, net.sizes, t2 * P / T)
                  + _agree(out.spike_counts, out.weights, ref_p))  # fmt: skip


def _agree(counts, weights, ref) -> str:
    same = np.array_equal(counts, ref.spike_counts)
    dw = max(float(np.abs(a - b).max()) for a, b in zip(weights, ref.weights))
    return f"   counts {'identical' if same else 'DIFFER'}, max|dW| {dw:.1e}"


def synthetic_model(trained: torch.nn.Sequential, hidden: int, seed: int = 0) -> torch.nn.Sequential:
    """784-H-H-10 with weights drawn from the trained network's per-layer weight values."""
    from sleepnet.converters import check_sequential
    from sleepnet.models import build_mlp

    rng = np.random.default_rng(seed)
    model = build_mlp([784, hidden, hidden, 10], dropout=0.2)
    src = [trained[k].weight.detach().numpy().ravel() for k in check_sequential(trained)]
    with torch.no_grad():
        for k, values in zip(check_sequential(model), src):
            w = model[k].weight
            scale = np.sqrt(1200 / w.shape[1]) if w.shape[1] != 784 else 1.0
            w.copy_(torch.from_numpy(rng.choice(values, size=tuple(w.shape)) * scale))
    return model.eval()


def scaling(trained, data, args, bandwidth):
    cfg = load_preset("mnist-deepfool")
    T = 1000 if args.quick else 2000
    spikes = input_spikes(cfg.replace(T=T), data.x_train)
    print(f"\n## scaling with hidden width (mnist-deepfool parameters, T = {T}, numba 2 threads)")
    print(f"{'hidden':>8}{'time s':>10}{'steps/s':>10}{'Mevents/s':>11}{'GB/s':>8}{'% bw':>7}"
          f"{'spikes/step (layers)':>32}")  # fmt: skip
    widths = (300, 600, 1200) if args.quick else (300, 600, 1200, 2400, 4800)
    for h in widths:
        net = from_torch(synthetic_model(trained, h), data.x_train[:10000])
        kw = dict(alpha=cfg.alpha(net.factors), beta=cfg.beta, inc=cfg.inc, dec=cfg.dec)
        t, out = median_time(lambda net=net, kw=kw: numba_run(net.weights, spikes, kw, 2), args.repeat)
        prop, plast = events(out.spike_counts, net.sizes)
        gbs = (8 * prop + 16 * plast) / t / 1e9
        rates = " ".join(f"{x:.2f}" for x in out.spike_counts.mean(axis=0)[1:])
        print(f"{h:>8}{t:>10.3f}{T / t:>10.0f}{(prop + plast) / t / 1e6:>11.1f}{gbs:>8.2f}"
              f"{100 * gbs * 1e9 / bandwidth:>6.0f}%{rates:>32}")  # fmt: skip

    net = from_torch(trained, data.x_train)
    fg = load_preset("mnist-fgsm")
    kw = dict(alpha=fg.alpha(net.factors), beta=fg.beta, inc=fg.inc, dec=fg.dec)
    print("\n## scaling with T (mnist-fgsm, paper network, numba 2 threads)")
    print(f"{'T':>8}{'time s':>10}{'steps/s':>10}")
    for T in ((1000, 3000) if args.quick else (1000, 3000, 10000, 27105)):
        sp = input_spikes(fg.replace(T=T), data.x_train)
        t, _ = median_time(lambda sp=sp: numba_run(net.weights, sp, kw, 2), args.repeat)
        print(f"{T:>8}{t:>10.3f}{T / t:>10.0f}")


def startup(model_dir: Path):
    """Wall time of `sleepnet sleep` with an empty Numba cache, then with a warm one."""
    print("\n## start-up of `sleepnet sleep` (mnist-deepfool, whole command)")
    cache = tempfile.mkdtemp(prefix="sleepnet-numba-cache-")
    env = dict(os.environ, NUMBA_CACHE_DIR=cache)
    exe = shutil.which("sleepnet") or str(Path(sys.executable).with_name("sleepnet"))
    times = []
    try:
        for label in ("cold (empty Numba cache)", "warm", "warm"):
            out = Path(tempfile.mkdtemp(prefix="sleepnet-bench-")) / "slept"
            t = time.perf_counter()
            proc = subprocess.run([exe, "sleep", str(model_dir), "--preset", "mnist-deepfool", "-o",
                                   str(out), "-q"], env=env, capture_output=True, text=True)  # fmt: skip
            times.append(time.perf_counter() - t)
            shutil.rmtree(out.parent, ignore_errors=True)
            if proc.returncode != 0:
                print(f"  {label}: failed: {proc.stderr.strip()}")
                return
            print(f"  {label:28}{times[-1]:>8.1f} s")
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    print(f"  compilation on a cold start: ~{times[0] - min(times[1:]):.1f} s")


def peak_memory(model, data):
    print("\n## peak memory of the simulation (tracemalloc, numba, mnist-fgsm parameters)")
    w_bytes = sum(p.numel() * 8 for p in model.parameters())
    for factor in (1, 4):
        cfg = load_preset("mnist-fgsm").replace(T=27105 * factor, cycle=True, raster_steps=0)
        tracemalloc.start()
        sleep(model, cfg, data.x_train, norm_inputs=data.x_train[:2000])
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        print(f"  T = {cfg.T:>6}: peak {peak / 2**20:7.1f} MiB (float64 weights alone "
              f"{w_bytes / 2**20:.1f} MiB)")  # fmt: skip


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--slow-steps", type=int, default=10**9, help="steps for the slow backends")
    ap.add_argument("--model", type=Path, default=ROOT / "runs" / "bench" / "ann")
    ap.add_argument("--skip-brian2", action="store_true")
    ap.add_argument("--skip-standalone", action="store_true")
    ap.add_argument("--torch-device", default="auto",
                    help="also time the torch backend here when it is a GPU (auto: the first GPU)")
    ap.add_argument("--only", choices=["backends", "wide"],
                    help="backends: the per-preset tables and the wide networks; wide: only the latter")
    args = ap.parse_args()
    if args.quick:
        args.slow_steps = min(args.slow_steps, 500)

    data = load_dataset("mnist")
    if not (args.model / "model.json").is_file():
        print(f"training the paper network (seed 0) into {args.model} ...")
        train_to_folder("mnist", "paper", 0, args.model, progress=False)
    trained, _ = load_model(args.model)
    net = from_torch(trained, data.x_train)
    bandwidth = copy_bandwidth()
    print(f"# sleepnet sleep benchmark — {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, numba {numba.__version__} ("
          f"{numba.config.NUMBA_NUM_THREADS} threads max), numpy {np.__version__}")  # fmt: skip
    print(f"# copy bandwidth: {bandwidth / 1e9:.1f} GB/s (read + write, one thread); "
          f"medians of {args.repeat} runs")  # fmt: skip
    if args.only == "wide":
        wide(trained, data, args)
        return
    summary = {p: backend_table(net, data, p, args, bandwidth) for p in ("mnist-fgsm", "mnist-deepfool")}
    print("\n## speed-up of numba (2 threads) over each backend, same steps, same input spikes")
    for preset, res in summary.items():
        ratios = ", ".join(f"{k} {v / res['numba2']:.0f}x" for k, v in res.items() if k != "numba2")
        print(f"  {preset}: {ratios}")
    wide(trained, data, args)
    if args.only == "backends":
        return
    scaling(trained, data, args, bandwidth)
    startup(args.model)
    peak_memory(trained, data)


if __name__ == "__main__":
    main()
