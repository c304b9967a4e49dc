"""refimpl: the reference implementation of surrogate gradients, surrogate
Lyapunov exponents and surrogate gradient flossing in spiking networks.

The mathematics is fixed in MODEL.md (the model contract); docs/ explains the
conventions and derivations. Start with :mod:`refimpl.cell`.
"""
__version__ = "0.1.0"

from .memory import keep_freed_memory

keep_freed_memory()   # a third of a training step was page faults (refimpl/memory.py)

from .config import (DIALECTS, FlossConfig, LossConfig, LyapunovConfig, NetworkConfig, Readout,
                     Surrogate, network_config)

__all__ = ["DIALECTS", "FlossConfig", "LossConfig", "LyapunovConfig", "NetworkConfig", "Readout",
           "Surrogate", "network_config", "__version__"]
