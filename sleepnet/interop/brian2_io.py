"""The sleep network as a Brian2 script: one Python file that rebuilds it, plasticity included, with
nothing but ``brian2`` and ``numpy`` (``sleepnet export --format brian2``).

The file holds the network's weights, per-layer gains and thresholds and the sleep settings (an npz, base64
in the file), and the very code of sleepnet's Brian2 backend (``converters/brian2_backend.build`` and its
equations, copied from the installed module), so that it builds the network that backend builds, whose
spikes and weights agree with the Numba kernel to rounding (``tests/test_brian2_backend.py``).
``load(input_spikes=None)`` returns the built network (``.network``, ``.layers``, ``.synapses``,
``.monitors``, ``.weights()``); ``python FILE`` prints what it holds.
"""

from __future__ import annotations

import base64
import inspect
import io
from pathlib import Path

import numpy as np

from ..errors import SleepnetError
from .snn import network

_HEADER = '''"""Sleep network exported by sleepnet {version} from {source}.

Rebuilds the network in Brian2 with its plasticity rule (docs/algorithm.md section 3 of sleepnet):
    net = load(input_spikes)            # input_spikes: bool array (steps, {n_in}), or None
    net.network.run(steps * DT * brian2.second)
Needs brian2 and numpy only. The code below `build` is sleepnet's Brian2 backend, unchanged.
"""

import base64
import io
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np

DT = {dt!r}
_DATA = "{data}"


def _arrays():
    with np.load(io.BytesIO(base64.b64decode(_DATA))) as f:
        return {{k: f[k] for k in f.files}}

'''

_FOOTER = '''

def load(input_spikes=None, record=True):
    """The network, built (not run); ``input_spikes``: bool ``(steps, n_inputs)`` or None."""
    a = _arrays()
    weights = [a[f"W{{l}}"] for l in range(int(a["n_layers"]))]
    params = SimpleNamespace(alphas=tuple(a["alphas"]), thresholds=tuple(a["thresholds"]),
                             decay=float(a["decay"]), dc=float(a["dc"]), w_inh=float(a["w_inh"]),
                             inc=float(a["inc"]), dec=float(a["dec"]))
    return build(weights, params, input_spikes, DT, record)


if __name__ == "__main__":
    a = _arrays()
    sizes = [a["W0"].shape[1]] + [a[f"W{{l}}"].shape[0] for l in range(int(a["n_layers"]))]
    print("sleep network", "-".join(map(str, sizes)), "dt", DT, "alphas", [float(x) for x in a["alphas"]],
          "thresholds", [float(x) for x in a["thresholds"]])
'''


def write_brian2(model, meta: dict, out: Path, config=None, data_dir: str | None = None,
                 source: str = "a model folder", dataset: str | None = None) -> Path:  # fmt: skip
    """Write the Brian2 script of ``model``'s sleep network to ``out`` (atomically); returns ``out``."""
    from .. import __version__
    from ..converters import brian2_backend as backend
    from ..fsio import atomic_write

    weights, alpha, config = network(model, meta, config, data_dir, dataset)
    arrays = {f"W{l}": np.asarray(w, dtype=np.float64) for l, w in enumerate(weights)}
    arrays |= {"n_layers": np.asarray(len(weights)), "alphas": np.asarray(alpha, dtype=np.float64),
               "thresholds": np.asarray([config.threshold * b for b in config.beta], dtype=np.float64),
               "decay": np.asarray(config.decay), "dc": np.asarray(config.dc),
               "w_inh": np.asarray(config.w_inh), "inc": np.asarray(config.inc),
               "dec": np.asarray(config.dec)}  # fmt: skip
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    code = "\n\n".join(_source(backend, name) for name in ("_NEURON_EQS", "_COLLECT", "_INTEGRATE",
                                                           "_INHIBIT",
                                                          "_ON_PRE", "_ON_POST"))  # fmt: skip
    code += "\n\n\n" + "\n\n\n".join(inspect.getsource(obj) for obj in (backend.Brian2Sleep,
                                                                        backend._spike_arrays,
                                                                       backend.build))  # fmt: skip
    text = _HEADER.format(version=__version__, source=source, n_in=weights[0].shape[1], dt=config.dt,
                          data=data)
    text += code.replace("params: KernelParams", "params") + _FOOTER.format()
    compile(text, str(out), "exec")  # a script that does not parse is never written
    return atomic_write(out, text)


def _source(module, name: str) -> str:
    value = getattr(module, name)
    if not isinstance(value, str):
        raise SleepnetError(f"the Brian2 backend's {name} is not text")
    return f"{name} = {value!r}"
