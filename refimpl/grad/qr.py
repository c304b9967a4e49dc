"""Thin QR with positive diagonal and its derivative rules (docs/model.md §7).

``A = QR`` (``A`` is ``m×n``, ``m ≥ n``, full rank) is unique once ``diag R > 0``.
The reverse rule maps ``(Q̄, R̄)`` to ``Ā``; the tangent rule maps ``dA`` to
``(dQ, dR)``. Both use triangular solves with ``R``, never an inverse.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg.blas import dtrsm


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
