"""The tangent dynamics: the surrogate Lyapunov spectrum (:mod:`~refimpl.dynamics.lyapunov`, docs/model.md §6),
the flossing loss and its gradient through the QR steps (:mod:`~refimpl.dynamics.flossing`, §7), the
gradient dimensionality (:mod:`~refimpl.dynamics.dimensionality`), and the fused one-layer kernels that
compute the first two in one compiled call each (:mod:`~refimpl.dynamics.fused`)."""
