"""The network map of docs/model.md §1–§5: what a step computes and what its derivative is.

* :mod:`~refimpl.model.config` — the frozen configs (network, readout, surrogate, loss, spectrum, flossing);
* :mod:`~refimpl.model.surrogate` — the spike H, the surrogate σ', σ'' and the smooth-mode primitive Φ (§2);
* :mod:`~refimpl.model.cell` — one layer: the per-neuron formulas (update, D_t, D_tᵀ) and the step kernels
  (forward, JVP, VJP, second order) side by side;
* :mod:`~refimpl.model.forward` — the batched forward pass of a layer with its linearization;
* :mod:`~refimpl.model.network` — layers stacked: parameters, simulation, ``D_t`` and ``D_tᵀ`` of the whole
  state, the dense Jacobian on request;
* :mod:`~refimpl.model.readout`, :mod:`~refimpl.model.losses` — the leaky readout and the losses (§1.2, §5);
* :mod:`~refimpl.model.init` — fluctuation-driven initialization (docs/derivations.md §5).
"""
