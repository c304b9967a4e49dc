"""Thin QR with positive diagonal and its derivative rules (docs/model.md §7).

``A = QR`` (``A`` is ``m×n``, ``m ≥ n``, full rank) is unique once ``diag R > 0``.
The reverse rule maps ``(Q̄, R̄)`` to ``Ā``; the tangent rule maps ``dA`` to
``(dQ, dR)``. Both use triangular solves with ``R``, never an inverse.

The flossing gradient (both its paths: the fused one-layer kernel and the step-by-step pass of
several layers) uses one compiled form of the reverse rule, :func:`qr_reverse_rows`, for the
diagonal ``R̄`` that a loss of the exponents has; :func:`qr_backward` is the same rule in NumPy for
any ``R̄``, against which tests/test_qr.py holds it.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from scipy.linalg.blas import dtrsm

from refimpl.linalg.lapack import gemm, solve_rt_rows, triangle_product


def qr_positive(A: np.ndarray):
    """Thin QR of ``A`` through LAPACK, with the signs fixed so that ``diag R ≥ 0``."""
    Q, R = np.linalg.qr(A, mode="reduced")
    sign = np.sign(np.diag(R))
    sign[sign == 0] = 1.0
    return Q * sign, R * sign[:, None]


def right_solve(R: np.ndarray, B: np.ndarray, transpose: bool) -> np.ndarray:
    """``B R⁻¹`` (or ``B R⁻ᵀ``) for upper triangular ``R``: one BLAS triangular solve (dtrsm)."""
    return dtrsm(1.0, R, B, side=1, lower=0, trans_a=int(transpose))


def copyltu(M: np.ndarray) -> np.ndarray:
    """``tril(M) + tril(M, -1)ᵀ``: the symmetric matrix with ``M``'s lower triangle."""
    return np.tril(M) + np.tril(M, -1).T


def qr_backward(Q, R, Qbar, Rbar):
    """Reverse rule: ``Ā = (Q̄ + Q copyltu(M)) R⁻ᵀ`` with ``M = R R̄ᵀ - Q̄ᵀ Q``."""
    M = R @ Rbar.T - Qbar.T @ Q
    B = Qbar + Q @ copyltu(M)
    return right_solve(R, B, transpose=True)


def qr_jvp(Q, R, dA):
    """Tangent rule: ``X = Qᵀ dA R⁻¹``, ``Ω = tril(X,-1) - tril(X,-1)ᵀ``,
    ``dR = (X - Ω) R``, ``dQ = dA R⁻¹ - Q (X - Ω)``."""
    Y = right_solve(R, dA, transpose=False)
    X = Q.T @ Y
    L = np.tril(X, -1)
    Xm = X - (L - L.T)
    return Y - Q @ Xm, Xm @ R


@njit(cache=True, inline="always")
def copyltu_into(M, out):
    """``out = tril(M) + tril(M, -1)ᵀ`` (:func:`copyltu`) into a preallocated array.

    A function of its own so that a deliberate fault (``gradcheck``, ``qr_backward_wrong_copyltu``) can replace
    it in the compiled rule that uses it."""
    k = M.shape[0]
    for r in range(k):
        for cc in range(k):
            out[r, cc] = M[r, cc] if r >= cc else M[cc, r]


@njit(cache=True)
def qr_reverse_rows(Q, R, Qbar, rbar, counted, M, C, Abar):
    """The reverse rule of :func:`qr_backward` for ``R̄ = diag(rbar / diag R)`` (``counted``; else ``R̄ = 0``),
    in the row layout of the fused kernels: ``Q``, ``Q̄`` and ``Ā`` are ``(k, m)``, their rows the columns
    of the thin factors. ``M``, ``C (k, k)`` are workspace. Writes ``Ā = (Q̄ + Q copyltu(M)) R⁻ᵀ``,
    ``M = R R̄ᵀ - Q̄ᵀ Q``, into ``Abar``.

    ``copyltu`` reads the lower triangle of ``M`` only, so only it is formed (``M`` holds no meaning above its
    diagonal): ``-Q̄ᵀQ`` by :func:`~refimpl.linalg.lapack.triangle_product`, half the products of the full
    matrix. A loss of the exponents ``λ_i = (1/n) Σ log R_ii`` has a diagonal ``R̄``, so ``R R̄ᵀ`` is upper
    triangular and enters through its diagonal alone, ``R_ii R̄_ii = rbar_i``."""
    k = R.shape[0]
    # copyltu reads the lower triangle of M only: -Q̄ᵀQ there (the upper triangle of its transpose, in panels)
    triangle_product(Q, Qbar, -1.0, M.reshape(k * k), False)
    if counted:  # R R̄ᵀ is upper triangular: in the lower triangle only its diagonal, R_ii R̄_ii = rbar_i
        for r in range(k):
            M[r, r] += rbar[r]
    copyltu_into(M, C)
    Abar[:, :] = Qbar
    gemm(False, False, 1.0, C, Q, 1.0, Abar)
    solve_rt_rows(R, Abar, C)  # C is free again: the solve's workspace
