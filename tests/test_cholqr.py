"""The compiled thin QR of the fused kernels (CholeskyQR2 with a Householder fallback) against LAPACK.

docs/performance.md (CholeskyQR2): the thin QR with a positive diagonal is unique, so the compiled
factorization must be LAPACK's (:func:`qr_positive`) up to rounding, at every condition number; the
derivative rules of docs/model.md §7 then hold for it unchanged (the flossing and spectrum checks of
tests/test_fused.py, tests/test_flossing.py and the golden file run through it).
"""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from refimpl.grad.qr import qr_positive
from refimpl.linalg import lapack
from refimpl.linalg.lapack import (QR_CHOLESKY, QR_CHOLESKY_ONE_PASS, QR_FALLBACK, QR_HOUSEHOLDER, QR_RETRY, UNIT_ROUNDOFF,
    qr_rows, qr_rows_householder, qr_work)  # fmt: skip

EPS = np.finfo(float).eps
CHOLESKY_PATHS = (QR_CHOLESKY, QR_CHOLESKY_ONE_PASS)


def conditioned(seed, M, k, kappa):
    """An ``M×k`` matrix with singular values spaced geometrically from 1 to ``1/kappa``."""
    rng = np.random.default_rng(seed)
    U = qr_positive(rng.standard_normal((M, k)))[0]
    V = qr_positive(rng.standard_normal((k, k)))[0]
    s = np.geomspace(1.0, 1.0 / kappa, k) if k > 1 else np.ones(1)
    return (U * s) @ V.T


def compiled_qr(A, fn=qr_rows):
    k, M = A.shape[1], A.shape[0]
    X = np.array(A.T, order="C")  # a copy: for k = 1, A.T is contiguous and would be factorized in place
    R = np.empty((k, k))
    path = fn(X, R, np.empty(k), qr_work(k, M))
    return X.T.copy(), R, path


def qr_errors(A, Q, R):
    """Orthogonality, relative reconstruction error, and the distance of ``Q, R`` to LAPACK's factors."""
    k = A.shape[1]
    Ql, Rl = qr_positive(A)
    return (
        np.max(np.abs(Q.T @ Q - np.eye(k))),
        np.max(np.abs(Q @ R - A)) / np.max(np.abs(A)),
        np.max(np.abs(Q - Ql)),
        np.max(np.abs(R - Rl)) / np.max(np.abs(Rl)),
    )


shapes = st.tuples(st.integers(1, 48), st.integers(0, 200)).map(lambda t: (t[0] + t[1], t[0]))


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**16), shapes, st.floats(0.0, 12.0))
def test_orthogonal_reconstructing_and_lapacks_factorization_at_every_condition(seed, shape, log_kappa):
    """Up to κ(A) = 1e12: ``QᵀQ = I`` and ``QR = A`` to rounding, ``diag R > 0``, and the factors are LAPACK's
    up to the forward error of a QR (∝ κ·u). A tall block (``2k ≤ M``) is factorized by CholeskyQR2 up to
    κ = 1e6 at least and never above 1e9, where the Householder fallback takes over; a wider one by
    Householder."""
    M, k = shape
    kappa = 10.0**log_kappa
    A = conditioned(seed, M, k, kappa)
    Q, R, path = compiled_qr(A)
    orth, rec, dQ, dR = qr_errors(A, Q, R)
    assert np.all(np.diag(R) > 0)
    assert np.all(np.tril(R, -1) == 0)
    assert orth <= 50 * M * EPS
    assert rec <= 50 * M * EPS
    assert dQ <= 50 * M * EPS * kappa and dR <= 50 * M * EPS * kappa
    if 2 * k > M:
        assert path == QR_HOUSEHOLDER
    elif kappa <= 1e6:
        assert path in CHOLESKY_PATHS
    elif kappa >= 1e9 and k > 1:
        assert path == QR_FALLBACK
    if path == QR_CHOLESKY_ONE_PASS:  # one pass only where it left Q orthonormal to rounding
        assert np.linalg.norm(Q.T @ Q - np.eye(k)) <= 4 * np.sqrt(M * k) * UNIT_ROUNDOFF + 2 * k * EPS


@pytest.mark.parametrize("M, k", [(128, 64), (128, 16), (512, 64), (300, 1)])
def test_one_pass_where_the_first_is_orthonormal_two_where_not(M, k):
    """The second pass of CholeskyQR2 is skipped when the first left ``‖Q₁ᵀQ₁ − I‖_F ≤ √(Mk)·u`` (a block with
    κ = 1.5, as the QR iteration's are), and runs when it did not (κ = 100); both give LAPACK's factors, and the
    one-pass ``Q`` is as orthonormal as Householder's."""
    A = conditioned(5, M, k, 1.5)
    Q, R, path = compiled_qr(A)
    assert path == QR_CHOLESKY_ONE_PASS
    Qh, Rh, _ = compiled_qr(A, qr_rows_householder)
    np.testing.assert_allclose(Q, Qh, atol=1e-13)
    np.testing.assert_allclose(R, Rh, rtol=1e-13, atol=1e-15)
    orth, orth_h = (np.linalg.norm(q.T @ q - np.eye(k)) for q in (Q, Qh))
    assert orth <= max(2 * orth_h, np.sqrt(M * k) * UNIT_ROUNDOFF)
    if k > 1:
        assert compiled_qr(conditioned(5, M, k, 100.0))[2] == QR_CHOLESKY


@pytest.mark.parametrize("k", [1, 5, 40])
def test_rank_deficient_block_falls_back_to_householder(k):
    """A vanished direction (a zero column, as a zero-reset row of D_t can give) makes the Cholesky fail; the
    fallback gives LAPACK's ``R_ii = 0`` (to rounding) that the spectrum reports as ``-inf``."""
    A = conditioned(3, 120, k, 10.0)
    A[:, -1] = 0.0
    Q, R, path = compiled_qr(A)
    assert path == QR_FALLBACK
    _, Rl = qr_positive(A)
    assert abs(R[-1, -1]) <= 120 * EPS
    np.testing.assert_allclose(R[:-1, :-1], Rl[:-1, :-1], rtol=1e-12, atol=1e-14)


def test_both_paths_agree_with_each_other():
    A = conditioned(7, 300, 64, 1e3)
    Qc, Rc, path = compiled_qr(A)
    Qh, Rh, _ = compiled_qr(A, qr_rows_householder)
    assert path == QR_CHOLESKY
    np.testing.assert_allclose(Qc, Qh, atol=1e-12)
    np.testing.assert_allclose(Rc, Rh, rtol=1e-12, atol=1e-14)


def test_one_pass_cholesky_qr_fails_the_orthogonality_check():
    """The check above can fail: CholeskyQR with one pass (no re-orthogonalization) leaves ``QᵀQ − I`` at about
    ``κ²u``, far outside the bound at κ = 1e5."""
    M, k = 200, 20
    A = conditioned(11, M, k, 1e5)
    X = np.ascontiguousarray(A.T)
    G, Ui = np.empty(k * k), np.empty(k * k)
    info = np.zeros(1, np.int32)
    lapack.cholesky_qr_pass(X, G, Ui, info)
    assert info[0] == 0
    Q = X.T
    assert np.max(np.abs(Q.T @ Q - np.eye(k))) > 50 * M * EPS


def _triangle(k, lower):
    """The indices of the lower or upper triangle of a ``k×k`` matrix."""
    return np.tril_indices(k) if lower else np.triu_indices(k)


@settings(max_examples=40, deadline=None)
@given(k=st.integers(1, 70), extra=st.integers(0, 200), seed=st.integers(0, 2**31 - 1), lower=st.booleans())
def test_triangle_product_panels_form_the_triangle(k, extra, seed, lower):
    """``triangle_product`` forms ``alpha AᵀB`` in panels of ``GRAM_PANEL`` columns (lower) or rows (upper): its
    triangle, for any ``k`` (also not a multiple of the panel) and any length; nothing outside ``G`` is written.
    ``_gram``, CholeskyQR2's Gram matrix, is its lower triangle of ``AᵀA``."""
    M = k + extra
    rng = np.random.default_rng(seed)
    X, Y = rng.standard_normal((k, M)), rng.standard_normal((k, M))
    buf = np.full(k * k + 8, 7.0)
    lapack.triangle_product(X, Y, -2.0, buf[: k * k], lower)
    idx = _triangle(k, lower)
    np.testing.assert_allclose(buf[: k * k].reshape(k, k).T[idx], (-2.0 * X @ Y.T)[idx], rtol=1e-12, atol=1e-12 * M)
    assert np.all(buf[k * k :] == 7.0)
    lapack._gram(X, buf[: k * k])
    il = np.tril_indices(k)
    np.testing.assert_allclose(buf[: k * k].reshape(k, k).T[il], (X @ X.T)[il], rtol=1e-12, atol=1e-12 * M)
    assert np.all(buf[k * k :] == 7.0)


@pytest.mark.parametrize("k, M", [(4, 70000), (40, 7000), (37, 7085)])
def test_large_blocks_form_the_same_triangles(k, M):
    """Blocks over ``GRAM_PANEL_MAX_ENTRIES`` take one call (dsyrk for the Gram matrix, one dgemm for
    ``triangle_product``) instead of panels: the same triangles, and a QR that is still LAPACK's."""
    assert k * M > lapack.GRAM_PANEL_MAX_ENTRIES
    rng = np.random.default_rng(k)
    X, Y = rng.standard_normal((k, M)), rng.standard_normal((k, M))
    il = np.tril_indices(k)
    G = np.empty(k * k)
    lapack._gram(X, G)
    np.testing.assert_allclose(G.reshape(k, k).T[il], (X @ X.T)[il], rtol=1e-12, atol=1e-12 * M)
    for lower in (False, True):
        idx = _triangle(k, lower)
        lapack.triangle_product(X, Y, -2.0, G, lower)
        np.testing.assert_allclose(G.reshape(k, k).T[idx], (-2.0 * X @ Y.T)[idx], rtol=1e-12, atol=1e-12 * M)
    Q, R, path = compiled_qr(np.ascontiguousarray(X.T))
    Ql, Rl = qr_positive(X.T)
    assert path in CHOLESKY_PATHS
    np.testing.assert_allclose(R, Rl, rtol=1e-11, atol=1e-11 * np.abs(Rl).max())


@settings(max_examples=20, deadline=None)
@given(shape=shapes, seed=st.integers(0, 2**31 - 1))
def test_diagonal_only_qr_gives_the_same_q_and_diagonal(shape, seed):
    """``qr_rows(..., diag_only=True)`` (the spectrum's QR) gives the same ``Q`` and ``diag R`` as the full one."""
    M, k = shape
    A = np.random.default_rng(seed).standard_normal((M, k))
    Q, R, _ = compiled_qr(A)
    X = np.array(A.T, order="C")
    Rd = np.zeros((k, k))
    qr_rows(X, Rd, np.empty(k), qr_work(k, M), True)
    np.testing.assert_array_equal(X.T, Q)
    np.testing.assert_allclose(np.diag(Rd), np.diag(R), rtol=1e-14)


def test_without_a_copy_a_rejected_block_asks_for_a_retry():
    """``qr_rows(..., keep_A=False)`` (the fused kernels' call) does not keep ``A`` for the fallback: where the
    copying call falls back after CholeskyQR2's first pass (κ = 10⁸), it returns ``QR_RETRY``; an accepted
    block gives the same factors either way."""
    k, M = 20, 200
    A = conditioned(0, M, k, 1e8)
    assert compiled_qr(A)[2] == QR_FALLBACK
    X = np.array(A.T, order="C")
    assert qr_rows(X, np.empty((k, k)), np.empty(k), qr_work(k, M), False, False) == QR_RETRY
    for kappa, want in ((100.0, QR_CHOLESKY), (1.5, QR_CHOLESKY_ONE_PASS)):  # two passes, and one
        B = conditioned(1, M, k, kappa)
        Q, R, path = compiled_qr(B)
        X, R2 = np.array(B.T, order="C"), np.empty((k, k))
        assert path == qr_rows(X, R2, np.empty(k), qr_work(k, M), False, False) == want
        np.testing.assert_array_equal(X.T, Q)
        np.testing.assert_array_equal(R2, R)


def test_fused_step_forms_a_rejected_block_again():
    """The fused kernels' QR step (``fused._step_qr``) answers ``QR_RETRY`` by forming ``A = D_t Q_prev`` again
    from ``Q_prev`` and factorizing it by Householder: LAPACK's factors. Here ``D_t`` copies rows of
    ``W_recᵀ`` (``β = c = 0``, ``ρ = g = s = 1``, no current), so ``A`` is the ill-conditioned block of the
    test above."""
    from refimpl.dynamics.fused import _step_qr, tangent_rows

    k, N = 20, 200
    A = conditioned(0, N, k, 1e8)
    W_recT = np.zeros((N, N))
    W_recT[:k] = A.T
    ones, zeros = np.ones(N), np.zeros(N)
    args = (ones, ones, zeros, zeros, zeros, ones, False, False, W_recT)  # s, rho, c, alpha, beta, g, ...
    Qprev, X, a, H = np.eye(k, N), np.empty((k, N)), np.empty((k, N)), np.empty((k, N))
    tangent_rows(*args, Qprev, X, a, H)
    np.testing.assert_array_equal(X, A.T)
    R = np.empty((k, k))
    _step_qr(*args, Qprev, X, a, H, R, np.empty(k), qr_work(k, N), True)
    Ql, Rl = qr_positive(A)
    np.testing.assert_allclose(R, Rl, rtol=0, atol=1e-12 * np.abs(Rl).max())
    np.testing.assert_allclose(X.T, Ql, rtol=0, atol=1e-6)
