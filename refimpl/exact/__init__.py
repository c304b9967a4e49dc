"""Exact event-based simulation of current-based LIF networks in continuous time (docs/exact.md): the
closed-form flow and threshold crossings of one neuron (:mod:`~refimpl.exact.flow`), the event loop and
its forward sensitivities (:mod:`~refimpl.exact.events`), the adjoint (EventProp) pass
(:mod:`~refimpl.exact.adjoint`), losses and gradients (:mod:`~refimpl.exact.gradients`), the exact
Lyapunov spectrum (:mod:`~refimpl.exact.lyapunov`), a time-stepped reference built on the library's
discrete model (:mod:`~refimpl.exact.reference`), the surrogate gradient of that model against the exact
one (:mod:`~refimpl.exact.surrogate`), and escape-noise neurons by exact enumeration
(:mod:`~refimpl.exact.escape`)."""
