"""Adapters that run other libraries' own neurons on the golden cases they can express.

* ``validation.peers.snntorch_adapter`` -- snnTorch's ``Synaptic`` neuron;
  ``python validation/peers/snntorch_adapter.py GOLDEN.h5 CANDIDATE.h5``.

See docs/peers.md for how each library's neurons map onto MODEL.md's switches.
"""
