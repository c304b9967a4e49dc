"""Gradients of the task loss (docs/model.md §4, §5): reverse mode (:mod:`~refimpl.grad.adjoint`, BPTT),
forward mode (:mod:`~refimpl.grad.tangent`), the QR factorization with its reverse rule
(:mod:`~refimpl.grad.qr`, §7) and the BPTT measurements — state adjoints, error norm against lag
(:mod:`~refimpl.grad.measures`)."""
