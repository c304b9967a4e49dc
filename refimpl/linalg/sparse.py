"""Products with spike rasters: spike inputs are mostly zeros, so the products with them are formed
from the nonzero entries where that pays (and by BLAS where it does not)."""

from __future__ import annotations

import numpy as np
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
def nonzeros_by_step(X):
    """The nonzero entries of a raster ``X (T, B, n)``, step by step: ``(ptr, idx)``.

    Step ``t``'s entries are ``idx[ptr[t]:ptr[t+1]]``, each the flat index ``r·n + j`` of ``X[t, r, j]``,
    in row-major order (the order in which the products below add them). One pass over ``X``, so that
    the per-step products need not scan it again (spikes are ~1 % of the entries).
    """
    T, B, n = X.shape
    ptr = np.empty(T + 1, np.int64)
    idx = np.empty(T * B * n, np.int64)
    k = 0
    for t in range(T):
        ptr[t] = k
        for r in range(B):
            for j in range(n):
                if X[t, r, j] != 0.0:
                    idx[k] = r * n + j
                    k += 1
    ptr[T] = k
    return ptr, idx[:k].copy()


@njit(cache=True, inline="always")
def _sparse(X, count):
    """Whether a row block with ``count`` nonzeros is multiplied from its nonzeros (else by BLAS)."""
    return count <= SPARSE_DENSITY * X.shape[0] * X.shape[1]


@njit(cache=True)
def matmul_wt(X, lo, hi, idx, W, WT, beta, out):
    """``out = X Wᵀ + beta·out`` (``X (B, n)``, ``W (N, n)``, ``WT = Wᵀ`` contiguous); ``idx[lo:hi]`` lists
    the nonzeros of ``X`` (:func:`nonzeros_by_step`).

    Sparse ``X`` (at most :data:`SPARSE_DENSITY` nonzeros, e.g. spikes) is multiplied as a sum of the
    rows of ``WT`` that its nonzeros select; the result is the same up to the order of the additions.
    """
    B, n = X.shape
    if not _sparse(X, hi - lo):
        gemm(False, True, 1.0, X, W, beta, out)
        return
    if beta != 1.0:
        for r in range(B):
            for i in range(out.shape[1]):
                out[r, i] = 0.0 if beta == 0.0 else beta * out[r, i]
    for q in range(lo, hi):
        r, j = divmod(idx[q], n)
        _axpy(X[r, j], WT[j], out[r])


@njit(cache=True)
def outer_acc_listed(J, X, lo, hi, idx, GT):
    """``GT += Xᵀ J`` i.e. ``G += Jᵀ X`` stored transposed (``GT (n, N)``); ``idx[lo:hi]`` lists the
    nonzeros of ``X (B, n)`` (:func:`nonzeros_by_step`), which alone contribute when they are few."""
    B, n = X.shape
    if not _sparse(X, hi - lo):
        gemm(True, False, 1.0, X, J, 1.0, GT)
        return
    for q in range(lo, hi):
        r, j = divmod(idx[q], n)
        _axpy(X[r, j], J[r], GT[j])


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
