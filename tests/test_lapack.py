"""The BLAS plumbing of the fused kernels (refimpl/linalg/lapack.py) against NumPy and SciPy: the row-major
dgemm with its row panels, and the triangular solve ``B ← B T⁻¹`` on each of its three paths (blocked, by the
inverse, by dtrsm). docs/performance.md says why each path exists; these tests say that every one of them
computes the same thing."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from refimpl.linalg import lapack


@settings(max_examples=40, deadline=None)
@given(m=st.integers(1, 70), n=st.integers(1, 300), kk=st.integers(0, 300), ta=st.booleans(), tb=st.booleans(),
       beta=st.sampled_from([0.0, 1.0, -0.5]), seed=st.integers(0, 2**31 - 1))  # fmt: skip
def test_gemm_is_the_product(m, n, kk, ta, tb, beta, seed):
    """``gemm`` is ``alpha op(A) op(B) + beta C`` for every transpose, including products large enough to run
    in panels of ``GEMM_ROW_PANEL`` rows (m·n·k above ``GEMM_SMALL_MNK``, a panel below it) and ``m`` not a
    multiple of the panel."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((kk, m) if ta else (m, kk))
    B = rng.standard_normal((n, kk) if tb else (kk, n))
    C = rng.standard_normal((m, n))
    want = -1.5 * (A.T if ta else A) @ (B.T if tb else B) + beta * C
    lapack.gemm(ta, tb, -1.5, A, B, beta, C)
    np.testing.assert_allclose(C, want, rtol=1e-12, atol=1e-12 * max(1, kk))


@pytest.mark.parametrize("m, kk, n", [(16, 256, 256), (65, 128, 128), (17, 512, 128)])
def test_gemm_panels_at_the_shapes_that_use_them(m, kk, n):
    """The shapes of the kernels that run in panels (the tangent and adjoint products at N = 128–256, k = 16–64)
    give the product."""
    assert m * n * kk > lapack.GEMM_SMALL_MNK >= lapack.GEMM_ROW_PANEL * n * kk
    rng = np.random.default_rng(m)
    A, B = rng.standard_normal((m, kk)), rng.standard_normal((kk, n))
    C = np.empty((m, n))
    lapack.gemm(False, False, 1.0, A, B, 0.0, C)
    np.testing.assert_allclose(C, A @ B, rtol=1e-12, atol=1e-12 * kk)


def _solve_problem(seed, k, M, lower):
    """Rows ``X (k, M)``, a well-conditioned triangular ``T`` (column-major, garbage in its other triangle) and
    ``B T⁻¹`` in rows, ``T⁻ᵀ X`` (scipy)."""
    from scipy.linalg import solve_triangular

    rng = np.random.default_rng(seed)
    T = rng.standard_normal((k, k)) / np.sqrt(k) + np.diag(rng.uniform(1.0, 2.0, k) * rng.choice([-1.0, 1.0], k))
    T = np.tril(T) if lower else np.triu(T)
    X = rng.standard_normal((k, M))
    want = solve_triangular(T, X, trans=1, lower=lower)
    junk = T + (np.triu(rng.standard_normal((k, k)), 1) if lower else np.tril(rng.standard_normal((k, k)), -1))
    return X, np.asfortranarray(junk).reshape(-1, order="F").copy(), want


def _right_solve(X, Tf, lower):
    k = X.shape[0]
    info = np.zeros(1, np.int32)
    lapack.right_solve(X, Tf, lower, np.empty(k * k), info)
    return info[0]


@settings(max_examples=40, deadline=None)
@given(k=st.integers(1, 70), extra=st.integers(0, 300), seed=st.integers(0, 2**31 - 1), lower=st.booleans())
def test_right_solve_is_the_triangular_solve(k, extra, seed, lower):
    """``right_solve`` (blocked, by the inverse or by dtrsm, by shape) is ``B T⁻¹`` for upper and lower ``T``,
    any ``k`` (also not a multiple of ``TRI_BLOCK``), reading only ``T``'s own triangle."""
    X, Tf, want = _solve_problem(seed, k, k + extra, lower)
    assert _right_solve(X, Tf, lower) == 0
    np.testing.assert_allclose(X, want, rtol=1e-11, atol=1e-12 * np.abs(want).max())


@pytest.mark.parametrize("k, M", [(8, 2000), (40, 4000), (200, 700), (6, 60), (64, 128)])
def test_right_solve_on_every_path(k, M):
    """Shapes outside the blocked solve's range: very tall (by the inverse), large and tall (the inverse
    beyond ``TRI_BLOCKED_MAX_ENTRIES``), large and not tall (dtrsm); and two blocked ones."""
    blocked = k * M <= lapack.TRI_BLOCKED_MAX_ENTRIES and M < lapack.TRI_INVERSE_ONLY_FROM * k
    assert blocked == ((k, M) in ((6, 60), (64, 128)))
    for lower in (False, True):
        X, Tf, want = _solve_problem(k + M, k, M, lower)
        assert _right_solve(X, Tf, lower) == 0
        np.testing.assert_allclose(X, want, rtol=1e-11, atol=1e-12 * np.abs(want).max())


@pytest.mark.parametrize("k, M", [(9, 40), (8, 2000)])
def test_right_solve_reports_a_zero_on_the_diagonal(k, M):
    """A zero on ``T``'s diagonal: ``info > 0`` and ``X`` untouched, blocked (a zero in a later block) and by
    the inverse alike."""
    X, Tf, _ = _solve_problem(3, k, M, False)
    Tf[(k - 2) + (k - 2) * k] = 0.0
    X0 = X.copy()
    assert _right_solve(X, Tf, False) == k - 1
    np.testing.assert_array_equal(X, X0)
