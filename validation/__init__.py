"""Independent implementations used to validate the reference library.

Nothing in this package imports from ``refimpl``: it is written from the
model contract (``docs/model.md``), the golden-vector format
(``docs/golden-format.md``) and ``docs/conventions.md`` alone.

* ``validation.torch_reference`` -- a PyTorch (float64, autograd) reference;
  also a script: ``python validation/torch_reference.py GOLDEN.h5 CANDIDATE.h5``.
* ``validation.cases`` -- random test cases (``make_case``) and a writer of
  golden-like input files (``write_golden_like``); needs only numpy and h5py.
"""
