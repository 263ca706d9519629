"""The spiking network of a model folder, as an exporter needs it: weights, per-layer gains, settings."""

from __future__ import annotations

from ..errors import SleepnetError


def network(model, meta: dict, config=None, data_dir: str | None = None, dataset: str | None = None):
    """``(weights, alpha, config)`` of ``model``'s spiking network: a slept model's own sleep settings and
    gains, else ``config``'s with the scale factors ``sleep`` would use: the record's activation maxima
    where they fit (``workflow.cached_maxima``: the same data, the max statistic), else computed on the
    training data (the record's dataset, or ``dataset``)."""
    from ..config import from_mapping
    from ..converters import check_sequential, from_torch

    idx = check_sequential(model)
    weights = [model[k].weight.detach().double().cpu().numpy() for k in idx]
    sleep = meta.get("sleep") or {}
    if config is None and sleep.get("config"):
        config = from_mapping(sleep["config"], "the record's sleep config")
        alpha = [float(a) for a in sleep.get("conversion", {}).get("alpha", [])]
        if len(alpha) == len(weights):
            return _checked(weights, alpha, config)
    if config is None:
        raise SleepnetError("this model has not slept: give the spiking network's settings with --preset or "
                            "--config")  # fmt: skip
    from ..workflow import cached_maxima, dataset_for

    data = dataset_for(meta, data_dir, dataset)
    net = from_torch(model, data.x_train, config.percentile, cached_maxima(meta, data, config))
    return _checked(weights, config.alpha(net.factors), config)


def _checked(weights, alpha, config):
    if len(config.beta) != len(weights):
        raise SleepnetError(f"config {config.name!r} has {len(config.beta)} beta values but the network has "
                            f"{len(weights)} weight layers")  # fmt: skip
    return weights, alpha, config
