"""refimpl: the reference implementation of surrogate gradients, surrogate
Lyapunov exponents and surrogate gradient flossing in spiking networks.

The mathematics is fixed in docs/model.md (the model contract); docs/ explains the
conventions and derivations. Start with :mod:`refimpl.model.cell`.

The public API, for a network on Poisson input::

    >>> import refimpl
    >>> cfg = refimpl.network_config(cell="clif", layers=(32,), n_in=20, n_out=1)
    >>> params = refimpl.init_params(cfg, seed=0, w_in=6.0, g_rec=2.0)
    >>> u = refimpl.poisson_inputs(T=200, batch=1, n_in=20, rate_hz=10.0, seed=1, dt=cfg.dt)
    >>> traj = refimpl.simulate(cfg, params, u)                       # states V, I, S; readout y
    >>> traj.S[0].shape
    (201, 1, 32)
    >>> lcfg = refimpl.LyapunovConfig(k=4)
    >>> res = refimpl.spectrum(cfg, params, u, lcfg)                  # docs/model.md §6
    >>> res.exponents.shape
    (4,)
    >>> fl = refimpl.floss_value_and_grad(cfg, params, u, lcfg)       # docs/model.md §7
    >>> sorted(fl.grads)
    ['layer1/W_in', 'layer1/W_rec', 'layer1/b']

``refimpl.value_and_grad(cfg, params, inputs, targets, loss)`` is the task loss and its
BPTT gradient (docs/model.md §5), with a trajectory that keeps what the reverse pass reads
(``store="all"`` keeps everything, docs/performance.md, "BPTT"); ``refimpl.spectra`` and ``refimpl.floss_mean`` do the
spectrum and the flossing gradient for every trajectory of a batch, one thread a core
(docs/performance.md, "Threads"). Everything is imported on first use, so that
``import refimpl`` and ``refimpl --help`` are immediate.
"""

__version__ = "0.1.0"

from refimpl.memory import keep_freed_memory

keep_freed_memory()  # a third of a training step was page faults (refimpl/memory.py)

#: public name -> (module, attribute)
_API = {
    **{
        n: ("model.config", n)
        for n in (
            "DIALECTS",
            "FlossConfig",
            "LossConfig",
            "LyapunovConfig",
            "NetworkConfig",
            "Readout",
            "Surrogate",
            "network_config",
        )
    },
    "init_params": ("model.network", "init_params"),
    "simulate": ("model.network", "simulate"),
    "poisson_inputs": ("tasks.generators", "poisson_inputs"),
    "value_and_grad": ("grad.adjoint", "value_and_grad"),
    "spectrum": ("dynamics.lyapunov", "spectrum"),
    "floss_value_and_grad": ("dynamics.flossing", "value_and_grad"),
    "spectra": ("dynamics.batched", "spectra"),
    "floss_mean": ("dynamics.batched", "floss_mean"),
}

__all__ = sorted(_API) + ["__version__"]


def __getattr__(name):
    # NumPy and Numba are loaded on first use of the API, so that `refimpl --help` is immediate
    if name in _API:
        import importlib

        module, attr = _API[name]
        return getattr(importlib.import_module(f"refimpl.{module}"), attr)
    raise AttributeError(f"module 'refimpl' has no attribute {name!r}")
