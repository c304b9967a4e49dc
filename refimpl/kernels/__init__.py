"""Compiled kernels beyond the one-step rules of :mod:`refimpl.cell`.

* :mod:`~refimpl.kernels.batched`: the batched forward pass of one layer with its linearization, and the
  sparse products with spike rasters that BPTT uses;
* :mod:`~refimpl.kernels.fused`: the whole QR iteration of the spectrum and the whole reverse pass of the
  flossing loss of a one-layer network, one compiled call each.

Both compute the formulas of :mod:`refimpl.cell` (docs/model.md §4, docs/derivations.md); the tests hold
them to the step-by-step path (tests/test_fused.py).
"""
