"""Adapters that run other libraries' own neurons on the golden cases they can express.

* ``snntorch_adapter`` -- snnTorch's ``Synaptic`` neuron;
* ``spyx_adapter`` -- spyx's ``RLIF`` and ``LI`` (JAX, float64);
* ``stork_adapter`` -- stork's ``LIFGroup`` with its own surrogates;
* ``norse_adapter`` -- Norse's ``lif_step`` / ``lif_feed_forward_step`` (no exact mapping:
  the adapter measures the disagreement that docs/peers.md predicts);
* ``references`` -- refimpl-made reference files for peer configurations that the shipped
  golden file does not contain; ``common`` -- what the adapters share: the
  golden file in, the candidate out, the case loop, the command line, the losses and the
  wiring of a torch network around a per-step neuron.

Each runs as ``python validation/peers/<name>.py GOLDEN.h5 CANDIDATE.h5``. The libraries are
not dependencies: docs/peers.md gives each one's install command (``--no-deps``, so that
``torch==2.13.0`` stays) and the measured agreement.
"""
