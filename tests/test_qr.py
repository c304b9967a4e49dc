"""docs/model.md §7: the QR reverse and tangent rules against finite differences."""

import numpy as np
from hypothesis import given, strategies as st

from refimpl.check import gradcheck
from refimpl.grad.qr import qr_backward, qr_jvp, qr_positive, qr_reverse_rows
from refimpl.linalg.lapack import TRI_INVERSE_ONLY_FROM


def _problem(seed, m, n):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((m, n))
    return rng, A, rng.standard_normal((m, n)), rng.standard_normal((m, n)), rng.standard_normal((n, n))


shapes = st.tuples(st.integers(1, 7), st.integers(0, 4)).map(lambda t: (t[0] + t[1], t[0]))


@given(st.integers(0, 2**16), shapes)
def test_positive_diagonal_and_reconstruction(seed, shape):
    _, A, *_ = _problem(seed, *shape)
    Q, R = qr_positive(A)
    assert np.all(np.diag(R) > 0)
    np.testing.assert_allclose(Q @ R, A, atol=1e-12)
    np.testing.assert_allclose(Q.T @ Q, np.eye(shape[1]), atol=1e-12)


@given(st.integers(0, 2**16), shapes)
def test_tangent_rule_against_finite_differences(seed, shape):
    _, A, dA, *_ = _problem(seed, *shape)
    Q, R = qr_positive(A)
    dQ, dR = qr_jvp(Q, R, dA)
    num_Q = gradcheck.richardson(lambda h: qr_positive(A + h * dA)[0], 1e-4)
    num_R = gradcheck.richardson(lambda h: qr_positive(A + h * dA)[1], 1e-4)
    assert np.max(np.abs(num_Q - dQ)) <= 1e-6 * max(1, np.max(np.abs(dQ)))
    assert np.max(np.abs(num_R - dR)) <= 1e-6 * max(1, np.max(np.abs(dR)))


def _scalar(A, Qw, Rw):
    Q, R = qr_positive(A)
    return np.sum(Qw * Q) + np.sum(Rw * R)


@given(st.integers(0, 2**16), shapes)
def test_reverse_rule_against_finite_differences_and_tangent(seed, shape):
    _, A, dA, Qbar, Rbar = _problem(seed, *shape)
    Rbar = np.triu(Rbar)
    Q, R = qr_positive(A)
    Abar = qr_backward(Q, R, Qbar, Rbar)
    fd = gradcheck.richardson(lambda h: _scalar(A + h * dA, Qbar, Rbar), 1e-4)
    assert abs(fd - np.sum(Abar * dA)) <= 1e-6 * max(1.0, abs(fd))
    dQ, dR = qr_jvp(Q, R, dA)
    fwd = np.sum(Qbar * dQ) + np.sum(Rbar * dR)
    assert abs(fwd - np.sum(Abar * dA)) <= 1e-10 * max(1.0, abs(fwd))


def _rows(rule, Q, R, Qbar, rbar, counted):
    """Ā of the compiled row-layout rule, in the column layout of :func:`qr_backward`."""
    k = R.shape[0]
    out = np.empty((k, Q.shape[0]))
    rule(np.ascontiguousarray(Q.T), R, np.ascontiguousarray(Qbar.T), rbar, counted, np.empty((k, k)), np.empty((k, k)), out)
    return out.T


#: blocks tall enough (m ≥ TRI_INVERSE_ONLY_FROM · n) for the rule's triangular solve to run by the inverse of R
#: (the others run blocked)
tall_shapes = st.tuples(st.integers(1, 9), st.integers(0, 30)).map(lambda t: (TRI_INVERSE_ONLY_FROM * t[0] + t[1], t[0]))


@given(st.integers(0, 2**16), st.one_of(shapes, tall_shapes), st.booleans())
def test_compiled_rule_is_the_numpy_rule_for_a_diagonal_rbar(seed, shape, counted):
    """The one compiled reverse rule that both flossing paths use equals the NumPy rule for the diagonal
    R̄ = diag(r̄ / diag R) of a loss of the exponents (and R̄ = 0 at uncounted steps), on blocks whose
    triangular solve runs blocked and on tall ones where it runs by the inverse."""
    rng, A, _, Qbar, _ = _problem(seed, *shape)
    Q, R = qr_positive(A)
    rbar = rng.standard_normal(R.shape[0])
    Rbar = np.diag(rbar / np.diag(R)) if counted else np.zeros_like(R)
    want = qr_backward(Q, R, Qbar, Rbar)
    np.testing.assert_allclose(_rows(qr_reverse_rows, Q, R, Qbar, rbar, counted), want, rtol=1e-10, atol=1e-10)


def test_wrong_reverse_rule_fails():
    """The deliberate fault of gradcheck (copyltu(M) -> tril(M) + tril(M)ᵀ), compiled into the rule, fails finite differences."""
    rng, A, dA, Qbar, _ = _problem(5, 6, 3)
    Q, R = qr_positive(A)
    rbar = rng.standard_normal(3)
    Rbar = np.diag(rbar / np.diag(R))
    fd = gradcheck.richardson(lambda h: _scalar(A + h * dA, Qbar, Rbar), 1e-4)
    right = _rows(qr_reverse_rows, Q, R, Qbar, rbar, True)
    assert abs(fd - np.sum(right * dA)) <= 1e-6 * max(1.0, abs(fd))
    wrong = _rows(gradcheck._qr_reverse_wrong_copyltu(), Q, R, Qbar, rbar, True)
    assert abs(fd - np.sum(wrong * dA)) > 1e-6 * max(1.0, abs(fd))
