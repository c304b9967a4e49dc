"""Linear algebra below the model: the LAPACK binding that compiled kernels call (``gemm``, Householder QR
of row blocks, triangular solves; :mod:`~refimpl.linalg.lapack`) and the products with sparse spike
rasters (:mod:`~refimpl.linalg.sparse`). Nothing here knows about neurons."""
