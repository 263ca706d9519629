"""The pure parts of the experiment scripts (``experiments/*.py``), which the suite does not run."""

import importlib.util
from pathlib import Path

from scipy.stats import ttest_rel

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def _script(name: str):
    spec = importlib.util.spec_from_file_location(f"experiments_{name}", EXPERIMENTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(lam, seed, clean, aa):
    return {"act": "sigmoid", "lam": lam, "epochs": 5, "seed": seed, "n": 500, "clean": clean,
            "fgsm32-ce@0.1": 0.1, "pgd64-margin@0.1": 0.05, "square@0.1": 0.1, "autoattack@0.1": aa,
            "autoattack@0.2": 0.0}  # fmt: skip


def test_saturation_sweep_over_seeds_gives_means_and_paired_tests_against_lambda_0():
    sweep = _script("saturation_sweep")
    base = [_run(0.0, s, c, a) for s, c, a in ((0, 0.97, 0.03), (1, 0.96, 0.05), (2, 0.98, 0.04))]
    sat = [_run(0.1, s, c, a) for s, c, a in ((0, 0.94, 0.19), (1, 0.95, 0.15), (2, 0.93, 0.20))]
    alone = [_run(1e-3, 0, 0.97, 0.1)]  # one seed: no row over seeds
    lines = sweep.over_seeds(base + sat + alone)
    rows = {line.split(" | ")[1]: line.split(" | ") for line in lines if line.startswith("| sigmoid")}
    assert set(rows) == {"0", "0.1"} and rows["0.1"][3] == "0,1,2"
    col = 4 + sweep.SEED_COLUMNS.index("autoattack@0.1")
    p = ttest_rel([0.19, 0.15, 0.20], [0.03, 0.05, 0.04]).pvalue
    assert rows["0.1"][col] == f"0.180 ± 0.026 (p={p:.2g})"
    assert rows["0"][col] == "0.040 ± 0.010"  # lambda 0 is the baseline: no test against itself
    assert rows["0.1"][4 + sweep.SEED_COLUMNS.index("autoattack-l2@1.0")] == "-"  # not measured
    assert sweep.over_seeds(alone) == []
