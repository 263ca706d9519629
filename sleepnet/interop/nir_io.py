"""The converted spiking network as NIR (the ``nir`` package): the graph Norse, snnTorch, Sinabs, Rockpool,
Lava and neuromorphic hardware exchange.

Mapping (``docs/design.md``, "Interchange"); layer ``l`` of the sleep network (``docs/algorithm.md`` §3),
``v_l(t) = decay * v_l(t-1) + alpha_l W_l s_{l-1}(t)``, spike where ``v_l >= threshold * beta_l``, then 0:

- ``linear{l}``: ``nir.Linear`` with weight ``alpha_l * W_l`` (the scale factor folded in);
- ``lif{l}``: ``nir.LIF`` with ``tau = dt / (1 - decay)``, ``r = tau / dt``, ``v_leak = 0``,
  ``v_threshold = threshold * beta_l``, ``v_reset = 0`` (every array one value per neuron); forward Euler
  at step ``dt`` gives exactly the update above. With ``decay = 1``, ``nir.IF`` (``dv/dt = R I``) with
  ``r = 1 / dt``.
- ``input`` (the Poisson spikes' layer size) and ``output``; edges chain them. The graph's metadata holds
  ``dt``, the sleep config and the sleepnet version.

What NIR cannot say is refused in one line: lateral inhibition (``w_inh``), a constant current (``dc``),
the plasticity rule itself (the graph is the network at export time: export a slept folder for the weights
after sleep). NIR fires above threshold (``>``), sleepnet at it (``>=``): they differ only where a potential
lands exactly on a threshold. Layer ``l+1`` sees layer ``l``'s spikes in the same step, as in sleepnet;
simulators that put a step of delay on every edge will lag by one step a layer.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import SleepnetError
from .snn import network


def _nir():
    try:
        import nir
    except ImportError:
        raise SleepnetError("NIR export needs the nir package: pip install nir") from None
    return nir


def write_nir(model, meta: dict, out: Path, config=None, data_dir: str | None = None,
              dataset: str | None = None) -> Path:  # fmt: skip
    """Write the spiking network of ``model`` as a NIR graph to ``out`` (atomically); returns ``out``."""
    import io

    from .. import __version__
    from ..config import config_to_toml
    from ..fsio import atomic_write

    nir = _nir()
    weights, alpha, config = network(model, meta, config, data_dir, dataset)
    if config.w_inh != 0 or config.dc != 0:
        raise SleepnetError("NIR has no lateral inhibition or constant current: export needs w_inh = 0 and "
                            f"dc = 0 (the config has {config.w_inh} and {config.dc})")  # fmt: skip
    nodes = {"input": nir.Input(input_type={"input": np.array([weights[0].shape[1]])})}
    edges, prev = [], "input"
    for l, (w, a, b) in enumerate(zip(weights, alpha, config.beta)):
        n = w.shape[0]
        nodes[f"linear{l}"] = nir.Linear(weight=(a * w).astype(np.float64))
        thr = np.full(n, config.threshold * b)
        if config.decay == 1.0:
            nodes[f"lif{l}"] = nir.IF(r=np.full(n, 1.0 / config.dt), v_threshold=thr, v_reset=np.zeros(n))
        else:
            tau = config.dt / (1.0 - config.decay)
            nodes[f"lif{l}"] = nir.LIF(tau=np.full(n, tau), r=np.full(n, tau / config.dt), v_leak=np.zeros(n),
                                       v_threshold=thr, v_reset=np.zeros(n))  # fmt: skip
        edges += [(prev, f"linear{l}"), (f"linear{l}", f"lif{l}")]
        prev = f"lif{l}"
    nodes["output"] = nir.Output(output_type={"output": np.array([weights[-1].shape[0]])})
    edges.append((prev, "output"))
    graph = nir.NIRGraph(nodes=nodes, edges=edges,
                         metadata={"sleepnet": __version__, "dt": config.dt,
                                   "config": config_to_toml(config)})
    buf = io.BytesIO()
    nir.write(buf, graph)
    return atomic_write(out, buf.getvalue())
