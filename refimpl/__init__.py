"""refimpl: the reference implementation of surrogate gradients, surrogate
Lyapunov exponents and surrogate gradient flossing in spiking networks.

The mathematics is fixed in docs/model.md (the model contract); docs/ explains the
conventions and derivations. Start with :mod:`refimpl.cell`.
"""
__version__ = "0.1.0"

from .memory import keep_freed_memory

keep_freed_memory()   # a third of a training step was page faults (refimpl/memory.py)

__all__ = ["DIALECTS", "FlossConfig", "LossConfig", "LyapunovConfig", "NetworkConfig", "Readout",
           "Surrogate", "network_config", "__version__"]


def __getattr__(name):
    # the configuration classes load NumPy: imported on first use, so that `refimpl --help` is immediate
    if name in __all__:
        from . import config
        return getattr(config, name)
    raise AttributeError(f"module 'refimpl' has no attribute {name!r}")
