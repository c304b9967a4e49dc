"""Products with spike rasters: spike inputs are mostly zeros, so the products with them are formed
from the nonzero entries where that pays (and by BLAS where it does not)."""

from __future__ import annotations

from numba import njit

from refimpl.linalg.lapack import gemm

#: a row block with at most this fraction of nonzeros is multiplied sparsely
SPARSE_DENSITY = 0.125


@njit(cache=True)
def _nonzeros(X):
    n = 0
    for r in range(X.shape[0]):
        for j in range(X.shape[1]):
            if X[r, j] != 0.0:
                n += 1
    return n


@njit(cache=True, inline="always")
def _axpy(x, src, dst):
    """``dst += x src`` for one row: the product with one nonzero entry of a spike matrix."""
    for i in range(dst.shape[0]):
        dst[i] += x * src[i]


@njit(cache=True)
def matmul_wt(X, W, WT, beta, out):
    """``out = X Wᵀ + beta·out`` (``X (B, n)``, ``W (N, n)``, ``WT = Wᵀ`` contiguous).

    Sparse ``X`` (at most :data:`SPARSE_DENSITY` nonzeros, e.g. spikes) is
    multiplied as a sum of the rows of ``WT`` that its nonzeros select; the
    result is the same up to the order of the additions.
    """
    B, n = X.shape
    if _nonzeros(X) > SPARSE_DENSITY * B * n:
        gemm(False, True, 1.0, X, W, beta, out)
        return
    N = out.shape[1]
    for r in range(B):
        if beta == 0.0:
            for i in range(N):
                out[r, i] = 0.0
        elif beta != 1.0:
            for i in range(N):
                out[r, i] *= beta
        for j in range(n):
            x = X[r, j]
            if x != 0.0:
                _axpy(x, WT[j], out[r])


@njit(cache=True)
def outer_acc_t(J, X, GT):
    """``GT += Xᵀ J`` i.e. ``G += Jᵀ X`` stored transposed (``GT (n, N)``), skipping zeros of ``X``."""
    B, n = X.shape
    if _nonzeros(X) > SPARSE_DENSITY * B * n:
        gemm(True, False, 1.0, X, J, 1.0, GT)
        return
    for r in range(B):
        for j in range(n):
            x = X[r, j]
            if x != 0.0:
                _axpy(x, J[r], GT[j])
