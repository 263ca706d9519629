"""Figures: each one titled, every axis labelled (with units where there are units), nothing left blank."""

import numpy as np
import pytest

from sleepnet import plots


@pytest.fixture
def drawn(monkeypatch):
    """The figures the plotting functions make, kept instead of only written."""
    figs = []
    real = plots.save

    def keep(fig, path):
        figs.append(fig)
        return real(fig, path)

    monkeypatch.setattr(plots, "save", keep)
    return figs


def _check(fig):
    axes = fig.get_axes()
    assert axes
    assert fig.get_suptitle() or all(ax.get_title() for ax in axes)
    for ax in axes:
        assert ax.get_title(), "every panel says what it shows"
        assert ax.get_ylabel(), ax.get_title()
    assert any(ax.get_xlabel() for ax in axes)
    for ax in axes:  # a shared x axis is labelled once, on the bottom panel
        assert ax.get_xlabel() or ax.get_shared_x_axes().get_siblings(ax) != [ax]


def test_sleep_figures_name_layers_count_spikes_and_show_both_weight_histograms(drawn, tmp_path):
    rng = np.random.default_rng(0)
    sizes = [20, 8, 4]
    counts = np.zeros((500, 3), dtype=np.int64)
    counts[:, 0] = rng.poisson(2, 500)
    counts[300:310, 1] = 1  # the hidden layer fires late, the output never
    raster = np.zeros((100, sum(sizes)), dtype=bool)
    raster[:, :20] = rng.random((100, 20)) < 0.1
    w0 = [rng.normal(size=(8, 20)), rng.normal(size=(4, 8))]
    w1 = [w0[0] + (rng.random((8, 20)) < 0.2) * 0.1, w0[1].copy()]
    plots.weight_histograms(w0, w1, tmp_path / "w.png")
    plots.firing_rates(counts, sizes, 0.001, tmp_path / "r.png")
    plots.activity(counts, sizes, tmp_path / "a.png")
    plots.raster(raster, sizes, 0, tmp_path / "s.png", totals=[int(t) for t in counts.sum(0)])
    for fig in drawn:
        _check(fig)
    weights, rates, act, rast = drawn
    titles = [ax.get_title() for ax in weights.get_axes()]
    assert titles[2].startswith("change of W[0]: ") and "% of 160 changed" in titles[2]
    assert titles[3] == "change of W[1]: 0.0% of 32 changed"
    assert len(weights.get_axes()[0].patches) == 2  # before and after, both drawn as outlines
    assert [t.get_text() for t in rates.get_axes()[0].get_legend().get_texts()] == [
        f"input (20): {counts[:, 0].sum()} spikes", "layer 1 (8): 10 spikes", "layer 2 (4): 0 spikes"]
    assert [ax.get_title() for ax in act.get_axes()][::-1][1:] == ["layer 1 (8): 10 spikes",
                                                                    "layer 2 (4): 0 spikes"]  # fmt: skip
    raster_titles = [ax.get_title() for ax in rast.get_axes()][::-1]
    assert raster_titles[1] == "layer 1 (8): 0 spikes in steps 0-100, 10 in the whole run"


def test_accuracy_curves_mark_the_median_eps_and_draw_the_control_in_black(drawn, tmp_path):
    eps = list(np.arange(0, 0.41, 0.005))
    results = {name: {"fgsm": {"eps": eps, "accuracy": list(np.exp(-np.array(eps) * k)), "median_eps": m},
                      "gaussian-noise": {"variance": [0, 0.1], "accuracy": [0.9, 0.5]}}
               for name, k, m in (("sleep", 8, 0.115), ("control", 10, 0.11))}  # fmt: skip
    paths = plots.robustness_curves(results, tmp_path)
    assert sorted(p.name for p in paths) == ["accuracy_vs_fgsm.png", "accuracy_vs_gaussian-noise.png"]
    for fig in drawn:
        _check(fig)
    ax = drawn[-1].get_axes()[0]  # fgsm, the last of CURVES
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["control", "control: median eps 0.11", "sleep", "sleep: median eps 0.115"]
    control = ax.get_lines()[0]
    assert control.get_color() == "k" and ax.get_title() == "test accuracy under FGSM epsilon"


def test_robust_accuracy_at_budgets_one_figure_per_norm_with_the_spread_over_seeds(drawn, tmp_path):
    """``plots.robust_at_budgets``: per norm the worst case's mean over seeds against the budget, its std as
    error bars, the control in black; a model without the norm's worst case left out, a norm no model
    has not drawn."""
    def cell(mean, std, n=3):
        return {"mean": mean, "std": std, "n": n, "values": [mean] * n, "p_vs_control": float("nan")}

    agg = {"control": {"worst-linf.robust@0.1": cell(0.40, 0.02), "worst-linf.robust@0.05": cell(0.79, 0.01),
                       "clean_accuracy": cell(0.95, 0.0)},
           "sleep": {"worst-linf.robust@0.1": cell(0.44, 0.01), "worst-linf.robust@0.05": cell(0.78, 0.0)},
           "other": {"clean_accuracy": cell(0.9, 0.0)}}  # fmt: skip
    paths = plots.robust_at_budgets(agg, tmp_path, {"linf": "over autoattack-linf; 1000 test images"})
    assert [p.name for p in paths] == ["robust_vs_linf.png"]  # no L2 worst case anywhere: no L2 figure
    fig = drawn[-1]
    _check(fig)
    ax = fig.get_axes()[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["control", "sleep"]
    assert ax.get_title().startswith("robust accuracy, worst case per image (mean ± std, 3 seeds)\nover auto")
    control = ax.containers[0]  # the control's errorbar: sorted budgets, its means, drawn in black
    xs, ys = control.lines[0].get_data()
    assert list(xs) == [0.05, 0.1] and list(ys) == [0.79, 0.40] and control.lines[0].get_color() == "k"
