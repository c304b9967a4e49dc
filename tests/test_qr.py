"""docs/model.md §7: the QR reverse and tangent rules against finite differences."""

import numpy as np
from hypothesis import given, strategies as st

from refimpl.check import gradcheck
from refimpl.grad.qr import qr_backward, qr_jvp, qr_positive


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


def test_wrong_reverse_rule_fails():
    _, A, dA, Qbar, Rbar = _problem(5, 6, 3)
    Rbar = np.triu(Rbar)
    Q, R = qr_positive(A)
    fd = gradcheck.richardson(lambda h: _scalar(A + h * dA, Qbar, Rbar), 1e-4)
    wrong = gradcheck._qr_backward_no_copyltu(qr_backward)(Q, R, Qbar, Rbar)
    assert abs(fd - np.sum(wrong * dA)) > 1e-6 * max(1.0, abs(fd))
