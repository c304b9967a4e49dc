"""Checks of the derivatives and of other implementations: :mod:`~refimpl.check.gradcheck` (every derivative
two ways, with deliberately wrong ones that must fail, docs/model.md §8) and :mod:`~refimpl.check.golden`
(the golden vectors: export, read, compare; docs/golden-format.md)."""
