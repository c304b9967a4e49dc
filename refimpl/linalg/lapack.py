"""Dense linear algebra inside Numba kernels: BLAS/LAPACK through SciPy's Cython exports.

The fused kernels of :mod:`refimpl.model.cell` call dgemm, dtrsm, dgeqrf/dorgqr
(or the blocked dgeqrt/dgemqrt) directly on preallocated buffers, without
copies: a block of ``k`` state vectors stored as rows ``X (k, M)`` (C order)
is the column-major ``M×k`` matrix that LAPACK factorizes in place. This
module is only plumbing; the mathematics of the thin QR and its derivative
rules is in :mod:`refimpl.grad.qr`.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# The fused single-layer kernels of refimpl.model.cell call dgemm, dtrsm, dgeqrf and dorgqr
# directly, on preallocated buffers and without copies: a block of ``k``
# state vectors is stored as rows ``X (k, M)`` (C order), which is the
# column-major ``M×k`` matrix that LAPACK factorizes in place. The symbols are
# registered with LLVM under our own names at import time, so that the
# kernels stay cacheable (``cache=True``).

import llvmlite.binding as _llvm  # noqa: E402
from numba import types as _nt  # noqa: E402
from numba.core import cgutils as _cgutils  # noqa: E402
from numba.extending import get_cython_function_address as _cython_address  # noqa: E402
from numba.extending import intrinsic as _intrinsic  # noqa: E402

_PI = _nt.CPointer(_nt.int32)
_PD = _nt.CPointer(_nt.float64)
_PC = _nt.CPointer(_nt.int8)


def _bind(module, name, *argtypes):
    symbol = "refimpl_" + name
    _llvm.add_symbol(symbol, _cython_address(module, name))
    return _nt.ExternalFunction(symbol, _nt.void(*argtypes))


_dgemm = _bind("scipy.linalg.cython_blas", "dgemm", _PC, _PC, _PI, _PI, _PI, _PD, _PD, _PI, _PD, _PI, _PD, _PD, _PI)
_dtrsm = _bind("scipy.linalg.cython_blas", "dtrsm", _PC, _PC, _PC, _PC, _PI, _PI, _PD, _PD, _PI, _PD, _PI)
_dgeqrf = _bind("scipy.linalg.cython_lapack", "dgeqrf", _PI, _PI, _PD, _PI, _PD, _PD, _PI, _PI)
_dorgqr = _bind("scipy.linalg.cython_lapack", "dorgqr", _PI, _PI, _PI, _PD, _PI, _PD, _PD, _PI, _PI)
_dgeqrt = _bind("scipy.linalg.cython_lapack", "dgeqrt", _PI, _PI, _PI, _PD, _PI, _PD, _PI, _PD, _PI)
_dsyrk = _bind("scipy.linalg.cython_blas", "dsyrk", _PC, _PC, _PI, _PI, _PD, _PD, _PI, _PD, _PD, _PI)
_dtrmm = _bind("scipy.linalg.cython_blas", "dtrmm", _PC, _PC, _PC, _PC, _PI, _PI, _PD, _PD, _PI, _PD, _PI)
_dpotrf = _bind("scipy.linalg.cython_lapack", "dpotrf", _PC, _PI, _PD, _PI, _PI)
_dtrtri = _bind("scipy.linalg.cython_lapack", "dtrtri", _PC, _PC, _PI, _PD, _PI, _PI)
_dgemqrt = _bind("scipy.linalg.cython_lapack", "dgemqrt", _PC, _PC, _PI, _PI, _PI, _PI, _PD, _PI, _PD, _PI, _PD, _PI, _PD, _PI)


def _stack_ptr(ptr_type, value_type, what):
    """An intrinsic giving a pointer to a stack copy of its argument as ``value_type`` (the Fortran calling
    convention passes every scalar by reference)."""

    @_intrinsic
    def ptr(typingctx, x):
        def codegen(context, builder, sig, args):
            return _cgutils.alloca_once_value(builder, context.cast(builder, args[0], sig.args[0], value_type))

        return ptr_type(x), codegen

    ptr.__doc__ = f"Pointer to a stack copy of ``x`` as {what}."
    return ptr


_int_ptr = _stack_ptr(_PI, _nt.int32, "a Fortran INTEGER")
_dbl_ptr = _stack_ptr(_PD, _nt.float64, "a DOUBLE PRECISION")
_chr_ptr = _stack_ptr(_PC, _nt.int8, "the character code")


@_intrinsic
def _data_ptr(typingctx, a):
    """The data pointer of a float64 array."""

    def codegen(context, builder, sig, args):
        return context.make_array(sig.args[0])(context, builder, args[0]).data

    return _PD(a), codegen


_N, _T, _L, _R, _U = 78, 84, 76, 82, 85  # 'N', 'T', 'L', 'R', 'U'


@njit(cache=True)
def _check_rows(X):
    if X.size == 0:  # NumPy gives an empty array strides that say nothing of its layout
        return
    if (X.shape[1] > 1 and X.strides[1] != 8) or (X.shape[0] > 1 and X.strides[0] != 8 * X.shape[1]):
        raise ValueError("BLAS kernels need C-contiguous float64 arrays")


#: OpenBLAS (the x86-64 kernels SciPy's wheels select on this machine) runs a dgemm of ``m·n·k ≤ 10⁶`` without
#: transposes by its small-matrix kernel, which does not pack its operands, and larger ones by the packed
#: kernel, which at the shapes of these kernels (``k`` to 64 rows times a 128–512 kB matrix) runs 1.1–1.6× slower
#: per flop (``16×256 · 256×256``: 53 µs in one call, 36 µs in two of 8 rows; ``64×256 · 256×256``: 172 against
#: 146 µs; measured over 64–512 inner and outer sizes, docs/performance.md). :func:`gemm` therefore splits such
#: a product into panels of ``GEMM_ROW_PANEL`` rows whenever one panel is small enough for that kernel: the same
#: products, to rounding. (Operands over 1 MB keep one call: there the panels would each stream ``B`` from
#: memory, 0.7× as fast.)
GEMM_SMALL_MNK = 1_000_000
GEMM_ROW_PANEL = 8


@njit(cache=True)
def gemm(trans_a, trans_b, alpha, A, B, beta, C):
    """``C = alpha op(A) op(B) + beta C`` for C-contiguous 2-d arrays (row-major dgemm; in panels of rows,
    :data:`GEMM_ROW_PANEL`)."""
    m, n = C.shape
    kk = A.shape[0] if trans_a else A.shape[1]
    _check_rows(A)
    _check_rows(B)
    _check_rows(C)
    if m == 0 or n == 0:
        return
    if kk == 0:
        for i in range(m):
            for j in range(n):
                C[i, j] = beta * C[i, j] if beta != 0.0 else 0.0
        return
    panel = m
    if not trans_a and not trans_b and m * n * kk > GEMM_SMALL_MNK and GEMM_ROW_PANEL * n * kk <= GEMM_SMALL_MNK:
        panel = GEMM_ROW_PANEL
    for r0 in range(0, m, panel):
        r1 = min(m, r0 + panel)
        # column-major view: Cᵀ = op(B)ᵀ op(A)ᵀ (rows r0:r1 of C and of op(A), which is A itself when panelled)
        _dgemm(_chr_ptr(_T if trans_b else _N), _chr_ptr(_T if trans_a else _N), _int_ptr(n), _int_ptr(r1 - r0),
            _int_ptr(kk), _dbl_ptr(alpha), _data_ptr(B), _int_ptr(max(1, B.shape[1])), _data_ptr(A[r0:]),
            _int_ptr(max(1, A.shape[1])), _dbl_ptr(beta), _data_ptr(C[r0:]), _int_ptr(max(1, n)))  # fmt: skip


#: from this many columns (and rows) on, the Householder QR runs blocked (compact WY, LAPACK dgeqrt +
#: dgemqrt, panels of QR_BLOCK columns): LAPACK's dgeqrf/dorgqr stay unblocked below 128 columns,
#: and the blocked code is faster from about 32 columns of length 256 on (measured)
QR_BLOCKED_FROM = 32
QR_BLOCKED_ROWS = 256
QR_BLOCK = 16

#: CholeskyQR2 is accepted when the Gram matrix of its first pass is this close to the identity,
#: ``‖Q₁ᵀQ₁ − I‖_F ≤ CHOLQR_TOL`` (then ``κ(Q₁) ≤ 1.11`` and the second pass restores orthogonality to
#: rounding); that holds for ``κ(A)`` up to about ``√(CHOLQR_TOL / u) ≈ 2e7``. Otherwise, and when a
#: Cholesky factorization fails, the step falls back to Householder (docs/performance.md, CholeskyQR2).
CHOLQR_TOL = 1e-2
#: unit roundoff of float64, ``2⁻⁵³``
UNIT_ROUNDOFF = 2.0**-53

#: what :func:`qr_rows` did: CholeskyQR2, Householder after CholeskyQR2 was rejected, Householder because the
#: block is not tall (``2k > M``: there CholeskyQR2's two passes cost more than Householder, measured),
#: nothing that can be used (CholeskyQR2 was rejected after its first pass and ``A`` was not kept,
#: ``keep_A``), or CholeskyQR's first pass alone, already orthonormal to rounding (:func:`qr_rows`)
QR_CHOLESKY, QR_FALLBACK, QR_HOUSEHOLDER, QR_RETRY, QR_CHOLESKY_ONE_PASS = 0, 1, 2, 3, 4


@njit(cache=True, inline="always")
def _householder_work(k, M):
    """Length of the part of :func:`qr_work` that :func:`qr_rows_householder` uses (LAPACK's workspace)."""
    return max(64 * k, QR_BLOCK * (k + M) + k * M)


@njit(cache=True)
def qr_work(k, M):
    """Workspace of :func:`qr_rows` for ``k`` columns of length ``M``: Householder's, then CholeskyQR2's
    ``G₁, G₂, U⁻¹`` (``k²`` each) and the copy of ``A`` for the fallback."""
    return np.empty(_householder_work(k, M) + 3 * k * k + k * M)


@njit(cache=True)
def qr_rows_householder(X, R, tau, work):
    """Thin QR with ``diag R ≥ 0`` by Householder reflections (LAPACK): the fallback of :func:`qr_rows`,
    same arguments. dgeqrf + dorgqr, or for ``k ≥ QR_BLOCKED_FROM, M ≥ QR_BLOCKED_ROWS`` the blocked
    dgeqrt + dgemqrt (the same factorization up to rounding)."""
    k, M = X.shape
    info = np.zeros(1, np.int32)
    if k >= QR_BLOCKED_FROM and M >= QR_BLOCKED_ROWS:
        nb = QR_BLOCK
        Tw = work[: nb * k]
        lw = work[nb * k : nb * (k + M)]
        Y = work[nb * (k + M) : nb * (k + M) + k * M]
        _dgeqrt(_int_ptr(M), _int_ptr(k), _int_ptr(nb), _data_ptr(X), _int_ptr(M), _data_ptr(Tw), _int_ptr(nb),
            _data_ptr(lw), info.ctypes)  # fmt: skip
        for i in range(k):
            for j in range(k):
                R[i, j] = X[j, i] if j >= i else 0.0
        for j in range(k * M):
            Y[j] = 0.0
        for i in range(k):
            Y[i * M + i] = 1.0
        # Q = H_1 ⋯ H_b [I_k; 0], applied to the first k columns of the identity
        _dgemqrt(_chr_ptr(_L), _chr_ptr(_N), _int_ptr(M), _int_ptr(k), _int_ptr(k), _int_ptr(nb), _data_ptr(X),
            _int_ptr(M), _data_ptr(Tw), _int_ptr(nb), _data_ptr(Y), _int_ptr(M), _data_ptr(lw), info.ctypes)  # fmt: skip
        for i in range(k):
            for j in range(M):
                X[i, j] = Y[i * M + j]
    else:
        _dgeqrf(_int_ptr(M), _int_ptr(k), _data_ptr(X), _int_ptr(M), _data_ptr(tau), _data_ptr(work),
            _int_ptr(64 * k), info.ctypes)  # fmt: skip
        for i in range(k):
            for j in range(k):
                R[i, j] = X[j, i] if j >= i else 0.0
        _dorgqr(_int_ptr(M), _int_ptr(k), _int_ptr(k), _data_ptr(X), _int_ptr(M), _data_ptr(tau), _data_ptr(work),
            _int_ptr(64 * k), info.ctypes)  # fmt: skip
    for i in range(k):
        if R[i, i] < 0.0:
            for j in range(k):
                R[i, j] = -R[i, j]
            for j in range(M):
                X[i, j] = -X[i, j]


#: a triangular solve ``B ← B T⁻¹`` with ``B`` of ``M×k`` runs blocked (:func:`_blocked_solve`) while ``B`` fits in
#: about 1 MiB (``k·M ≤`` this many entries) and is not much taller than wide (``M < TRI_INVERSE_ONLY_FROM · k``):
#: OpenBLAS's dtrsm runs these shapes at a third to a half of its dgemm rate, and the explicit inverse costs an
#: unblocked dtrtri of ``k³/3`` (``128×64``: dtrsm 26.8 µs, dtrtri + dtrmm 32 µs, blocked 14.2 µs; ``512×64``:
#: 111, 65 and 50 µs; ``512×128``: 254 µs by the inverse, 179 µs blocked; measured, docs/performance.md)
TRI_BLOCKED_MAX_ENTRIES = 2**17
#: ... otherwise a tall ``B`` (``M ≥ TRI_INVERSE_FROM · k``) by dtrtri + dtrmm, whose triangular multiply runs
#: about twice as fast as the solve (``512×16``: dtrsm 13.7 µs, inverse 5.5, blocked 6.2; ``4096×64``: inverse
#: 405 µs, blocked 448), and the rest by dtrsm
TRI_INVERSE_FROM = 4
TRI_INVERSE_ONLY_FROM = 32
#: columns of the diagonal blocks of the blocked solve (2, 4 and 8 measured; 4 best or level at every shape)
TRI_BLOCK = 4


@njit(cache=True)
def right_solve(X, Tri, lower, Ti, info):
    """``B ← B T⁻¹`` for the column-major ``M×k`` matrix ``B`` whose columns are the rows of ``X (k, M)`` and the
    triangular ``T`` (``k²``, column-major; its lower triangle if ``lower``, else its upper; the other is not
    read). ``Ti`` (``k²``) is workspace. Blocked (:func:`_blocked_solve`), by the explicit inverse (dtrtri and
    one dtrmm) or by dtrsm, by the shape of ``B`` (:data:`TRI_BLOCKED_MAX_ENTRIES`); the first two are
    accurate to first order in ``κ(T) u``, as the solve. ``info[0] > 0`` when ``T`` has a zero on its diagonal
    on the first two paths (then ``X`` is untouched)."""
    k, M = X.shape
    uplo = _L if lower else _U
    info[0] = 0
    if k * M <= TRI_BLOCKED_MAX_ENTRIES and M < TRI_INVERSE_ONLY_FROM * k:
        for i in range(k):
            if Tri[i + i * k] == 0.0:
                info[0] = i + 1
                return
        _blocked_solve(X, Tri, lower, Ti, info)
        return
    if M >= TRI_INVERSE_FROM * k:
        for j in range(k * k):
            Ti[j] = Tri[j]
        _dtrtri(_chr_ptr(uplo), _chr_ptr(_N), _int_ptr(k), _data_ptr(Ti), _int_ptr(k), info.ctypes)
        if info[0] == 0:
            _dtrmm(_chr_ptr(_R), _chr_ptr(uplo), _chr_ptr(_N), _chr_ptr(_N), _int_ptr(M), _int_ptr(k),
                _dbl_ptr(1.0), _data_ptr(Ti), _int_ptr(k), _data_ptr(X), _int_ptr(M))  # fmt: skip
        return
    _trsm_right(X, Tri, lower)


@njit(cache=True)
def _blocked_solve(X, Tri, lower, Ti, info):
    """:func:`right_solve` by blocks of ``TRI_BLOCK`` columns of ``B``, left-looking: each block first receives
    the products with the columns already solved (one dgemm of ``M × b × j``), then is multiplied by the
    inverse of its ``b×b`` diagonal block of ``T`` (dtrtri of the small block, dtrmm). Every flop but the small
    inverses is level 3, where dtrsm itself runs these tall-skinny shapes mostly as level 2. For an upper ``T``
    the blocks go left to right, ``B_J ← (B_J − X_{<J} T_{<J,J}) T_JJ⁻¹``; for a lower one right to left, with
    ``X_{>J}``. ``T`` has no zero on its diagonal (checked by the caller). (With ``Tᵀ`` in place of ``T``,
    the products with the strips of ``T``'s rows ran 1.2–2× slower, measured: CholeskyQR2 transposes its
    Cholesky factor instead.)"""
    k, M = X.shape
    uplo = _L if lower else _U
    Xf = X.reshape(k * M)
    nblocks = (k + TRI_BLOCK - 1) // TRI_BLOCK
    for n in range(nblocks):
        j0 = (nblocks - 1 - n) * TRI_BLOCK if lower else n * TRI_BLOCK
        b = min(TRI_BLOCK, k - j0)
        s0, s1 = (j0 + b, k) if lower else (0, j0)  # the columns already solved
        if s1 > s0:
            # B[:, J] -= X[:, s0:s1] T[s0:s1, J]
            _dgemm(_chr_ptr(_N), _chr_ptr(_N), _int_ptr(M), _int_ptr(b), _int_ptr(s1 - s0), _dbl_ptr(-1.0),
                _data_ptr(Xf[s0 * M :]), _int_ptr(M), _data_ptr(Tri[s0 + j0 * k :]), _int_ptr(k), _dbl_ptr(1.0),
                _data_ptr(Xf[j0 * M :]), _int_ptr(M))  # fmt: skip
        for c in range(b):
            for r in range(b):
                Ti[r + c * b] = Tri[j0 + r + (j0 + c) * k]
        _dtrtri(_chr_ptr(uplo), _chr_ptr(_N), _int_ptr(b), _data_ptr(Ti), _int_ptr(b), info.ctypes)
        _dtrmm(_chr_ptr(_R), _chr_ptr(uplo), _chr_ptr(_N), _chr_ptr(_N), _int_ptr(M), _int_ptr(b), _dbl_ptr(1.0),
            _data_ptr(Ti), _int_ptr(b), _data_ptr(Xf[j0 * M :]), _int_ptr(M))  # fmt: skip


@njit(cache=True)
def _trsm_right(X, Tri, lower):
    """:func:`right_solve` by dtrsm (no test for singularity: a zero on the diagonal gives inf or nan)."""
    k, M = X.shape
    _dtrsm(_chr_ptr(_R), _chr_ptr(_L if lower else _U), _chr_ptr(_N), _chr_ptr(_N), _int_ptr(M), _int_ptr(k),
        _dbl_ptr(1.0), _data_ptr(Tri), _int_ptr(k), _data_ptr(X), _int_ptr(M))  # fmt: skip


#: a triangle of a product ``alpha AᵀB`` (the Gram matrices of CholeskyQR2, ``Q̄ᵀQ`` of its reverse rule) is formed
#: in panels of this many of its rows (or columns), each one dgemm over the part of the triangle it holds: that
#: runs at about the dgemm rate, where OpenBLAS's dsyrk, and dgemm forming both triangles at once, run at a
#: half to two thirds of it on these tall-skinny shapes (``k = 64, M = 512``: 42–59 µs against 88 µs for dsyrk
#: and 113 µs for dgemm; ``k = 16``: 3.1 µs against 5.0 µs for dgemm; panels of 1–16 rows measured, either
#: triangle as fast, docs/performance.md)
GRAM_PANEL = 4
#: ... while the block fits in about 2 MiB (``k·M ≤`` this many entries); larger blocks, which panels would
#: stream from memory ``k / (2·GRAM_PANEL)`` times, go to one call (``256×4096``: dsyrk 6.6 ms, panels of 4
#: rows 16.7 ms, of 64 rows 8.3 ms; ``64×4096`` and ``128×2048``: panels 0.50 and 0.98 ms, dsyrk 0.70 and
#: 1.00 ms; measured, docs/performance.md)
GRAM_PANEL_MAX_ENTRIES = 2**18


@njit(cache=True, inline="always")
def _in_panels(k, M):
    """Whether a product over the ``M×k`` block runs in panels (:data:`GRAM_PANEL_MAX_ENTRIES`)."""
    return k * M <= GRAM_PANEL_MAX_ENTRIES


@njit(cache=True)
def triangle_product(X, Y, alpha, G, lower):
    """The lower (``lower``) or upper triangle of ``G = alpha AᵀB`` (``k²``, column-major) for the ``M×k``
    matrices ``A, B`` whose columns are the rows of ``X, Y (k, M)``, in panels of ``GRAM_PANEL`` columns
    (lower) or rows (upper) of ``G`` (a block of more than ``GRAM_PANEL_MAX_ENTRIES``: all of ``G`` in one
    dgemm). Across the diagonal, ``G`` receives the entries of ``alpha AᵀB`` within a panel of it and is
    untouched further on."""
    k, M = X.shape
    _check_rows(X)
    _check_rows(Y)
    panel = GRAM_PANEL if _in_panels(k, M) else k  # a large block: one dgemm, both triangles
    for i0 in range(0, k, panel):
        b = min(panel, k - i0)
        m, n = (k - i0, b) if lower else (b, k - i0)
        # lower: G[i0:k, i0:i0+b] = alpha A[:, i0:k]ᵀ B[:, i0:i0+b]; upper: G[i0:i0+b, i0:k] = alpha A[:, i0:i0+b]ᵀ
        # B[:, i0:k] (column-major, leading dimensions M and k; both operands start at column i0)
        _dgemm(_chr_ptr(_T), _chr_ptr(_N), _int_ptr(m), _int_ptr(n), _int_ptr(M), _dbl_ptr(alpha),
            _data_ptr(X[i0:]), _int_ptr(M), _data_ptr(Y[i0:]), _int_ptr(M), _dbl_ptr(0.0),
            _data_ptr(G[i0 + i0 * k :]), _int_ptr(k))  # fmt: skip


@njit(cache=True)
def _gram(X, G):
    """The lower triangle of ``G = AᵀA`` (:func:`triangle_product`, or dsyrk for a block too large for panels);
    only it is read (dpotrf ``'L'``)."""
    k, M = X.shape
    if _in_panels(k, M):
        triangle_product(X, X, 1.0, G, True)
        return
    _check_rows(X)
    _dsyrk(_chr_ptr(_L), _chr_ptr(_T), _int_ptr(k), _int_ptr(M), _dbl_ptr(1.0), _data_ptr(X), _int_ptr(M),
        _dbl_ptr(0.0), _data_ptr(G), _int_ptr(k))  # fmt: skip


@njit(cache=True)
def cholesky_upper(G, info):
    """``G = UᵀU`` for the symmetric ``G`` (``k²``, column-major) given by its lower triangle: dpotrf ``'L'``
    (``U = Lᵀ``), then ``U`` copied into the upper triangle, which receives it (the lower keeps ``L``).
    ``info[0] > 0`` when ``G`` is not positive definite to working precision.

    Why ``'L'`` and a copy: OpenBLAS's ``'L'`` runs 1.3–1.4× faster than ``'U'`` from ``k = 64`` on (``k = 64``:
    7.8 against 10.9 µs; ``k = 256``: 205 against 262 µs; level at ``k = 16``, 0.3 µs slower at ``k = 32``;
    measured), and the solves with ``U`` run faster than with ``Lᵀ`` (:func:`_blocked_solve`)."""
    k = int(np.sqrt(G.size) + 0.5)
    _dpotrf(_chr_ptr(_L), _int_ptr(k), _data_ptr(G), _int_ptr(k), info.ctypes)
    if info[0] == 0:
        for j in range(k):
            for i in range(j + 1, k):
                G[j + i * k] = G[i + j * k]


@njit(cache=True)
def cholesky_qr_pass(X, G, Ui, info):
    """One CholeskyQR pass on the column-major ``M×k`` matrix ``A`` whose columns are the rows of ``X``:
    ``G = AᵀA`` (:func:`_gram`), ``G = UᵀU`` (:func:`cholesky_upper`), ``A ← A U⁻¹`` (:func:`right_solve`).
    ``G`` (``k²``, column-major) receives ``U`` in its upper triangle; ``info[0] > 0`` when the Cholesky
    factorization failed (then ``X`` is untouched)."""
    _gram(X, G)
    cholesky_upper(G, info)
    if info[0] == 0:
        right_solve(X, G, False, Ui, info)


@njit(cache=True)
def _upper_into(R, G, k, diag_only):
    """``R = U`` (row-major, zeros below the diagonal) for the Cholesky factor that :func:`cholesky_upper` left in
    ``G`` (``k²``, column-major): read from its lower triangle ``L = Uᵀ``, column by column (contiguous), into
    rows of ``R`` (contiguous). With ``diag_only``, the diagonal alone."""
    if diag_only:
        for i in range(k):
            R[i, i] = G[i + i * k]
        return
    _check_rows(R)
    for j in range(k):
        for i in range(j):
            R[j, i] = 0.0
        for i in range(j, k):
            R[j, i] = G[i + j * k]


@njit(cache=True)
def qr_rows(X, R, tau, work, diag_only=False, keep_A=True):
    """Thin QR with ``diag R > 0`` of the ``M×k`` matrix ``A`` whose columns are the rows of ``X (k, M)``.

    In place: ``X`` receives the rows of ``Q`` (``Qᵀ``), ``R`` the ``k×k`` factor (with ``diag_only``, as the
    spectrum needs, its diagonal at least: CholeskyQR2 then skips the product ``R = U₂ U₁``, a ``k×k``
    dtrmm, 8.4 µs of the 87 µs of a ``128×64`` QR, measured); ``tau (k,)`` and ``work`` (:func:`qr_work`)
    are workspace. Returns ``QR_CHOLESKY``, ``QR_CHOLESKY_ONE_PASS`` (below), ``QR_FALLBACK`` or
    ``QR_HOUSEHOLDER``; with ``keep_A=False`` the input is not copied for the fallback (2.3 µs of a ``128×64``
    QR), and when CholeskyQR2 is rejected after its first pass the call returns ``QR_RETRY`` with ``X`` holding
    neither ``A`` nor ``Q``: the caller, who can form ``A`` again, then calls :func:`qr_rows_householder` (the
    fused kernels, ``_step_qr``).

    CholeskyQR2 (docs/performance.md): ``AᵀA = U₁ᵀU₁``, ``Q₁ = A U₁⁻¹``, then the same on ``Q₁``:
    ``Q = Q₁ U₂⁻¹``, ``R = U₂ U₁``. Every operation is a level-3 BLAS call or a Cholesky of a ``k×k``
    matrix, where Householder QR of a tall-skinny block is mostly level-2. The thin QR with a positive
    diagonal is unique, so this is the factorization that :func:`refimpl.grad.qr.qr_positive` computes,
    up to rounding, and its derivative rules are unchanged. The first pass squares ``κ(A)``; when its
    Cholesky fails or ``‖Q₁ᵀQ₁ − I‖_F > CHOLQR_TOL``, ``A`` is restored and factorized by Householder
    (:func:`qr_rows_householder`), which has no such limit.

    **One pass when it is enough.** The second pass exists to make ``Q₁`` orthonormal; the Gram matrix
    ``Q₁ᵀQ₁`` that decides whether it may run says how far ``Q₁`` is from orthonormal. When
    ``‖Q₁ᵀQ₁ − I‖_F ≤ √(Mk)·u`` (``u = 2⁻⁵³``; Householder QR's own departure from orthogonality is of that
    size: ``√(Mk)·u`` = 1.0e-14 at ``128×64``, Householder's measured median 5.3e-15 there) the second pass has
    nothing left to do and is skipped: ``Q = Q₁``, ``R = U₁`` (``QR_CHOLESKY_ONE_PASS``). That is the case
    for well-conditioned blocks (up to ``κ(A) ≈ 10`` in tests/test_cholqr.py's blocks), as those of a QR
    iteration are: at every step of ``refimpl bench``'s spectra (``N = 64, 256``; ``k = 16, 64``) the first
    pass left ``‖Q₁ᵀQ₁ − I‖_F`` at 0.9–2.9e-15 and ``Q₁`` as orthonormal as CholeskyQR2's ``Q``
    (docs/performance.md). The second pass and the product ``U₂U₁`` were 40 % of a ``128×64`` QR.
    """
    k, M = X.shape
    if 2 * k > M:
        qr_rows_householder(X, R, tau, work)
        return QR_HOUSEHOLDER
    base = _householder_work(k, M)  # CholeskyQR2's part of the workspace follows Householder's
    G1 = work[base : base + k * k]
    G2 = work[base + k * k : base + 2 * k * k]
    Ui = work[base + 2 * k * k : base + 3 * k * k]
    A0 = work[base + 3 * k * k : base + 3 * k * k + k * M]
    info = np.zeros(1, np.int32)
    if keep_A:
        A0.reshape(k, M)[:, :] = X  # the fallback's input
    cholesky_qr_pass(X, G1, Ui, info)
    if info[0] != 0:  # the first Cholesky failed: X is still A
        qr_rows_householder(X, R, tau, work)
        return QR_FALLBACK
    # the Gram matrix of Q₁ says how far from orthonormal the first pass left it (its lower triangle)
    _gram(X, G2)
    err = 0.0
    for j in range(k):
        for i in range(j, k):
            e = G2[i + j * k] - (1.0 if i == j else 0.0)
            err += e * e if i == j else 2.0 * e * e
    if err <= M * k * UNIT_ROUNDOFF * UNIT_ROUNDOFF:  # Q₁ is orthonormal to rounding: Q = Q₁, R = U₁
        _upper_into(R, G1, k, diag_only)
        return QR_CHOLESKY_ONE_PASS
    ok = err <= CHOLQR_TOL * CHOLQR_TOL
    if ok:
        cholesky_upper(G2, info)
        ok = info[0] == 0
    if not ok:
        if not keep_A:
            return QR_RETRY
        X[:, :] = A0.reshape(k, M)
        qr_rows_householder(X, R, tau, work)
        return QR_FALLBACK
    right_solve(X, G2, False, Ui, info)
    if diag_only:  # the diagonal of a product of upper triangular matrices is the product of their diagonals
        for i in range(k):
            R[i, i] = G2[i + i * k] * G1[i + i * k]
        return QR_CHOLESKY
    # R = U₂ U₁ in R's own memory: row-major R is column-major Rᵀ = U₁ᵀ U₂ᵀ = L₁ L₂, and dpotrf 'L' left
    # Lᵢ in the lower triangle of Gᵢ, so R receives L₂ (column by column, zeros above the diagonal) and one
    # dtrmm multiplies it by L₁ from the left. No triangle to clear and no strided copy into R.
    _upper_into(R, G2, k, False)
    _dtrmm(_chr_ptr(_L), _chr_ptr(_L), _chr_ptr(_N), _chr_ptr(_N), _int_ptr(k), _int_ptr(k), _dbl_ptr(1.0),
        _data_ptr(G1), _int_ptr(k), _data_ptr(R), _int_ptr(k))  # fmt: skip
    return QR_CHOLESKY


@njit(cache=True)
def solve_rt_rows(R, X, Ri):
    """In place ``Bᵀ ← Bᵀ R⁻ᵀ`` for ``B`` given by its rows ``X (k, M)`` and the upper triangular ``R (k, k)``
    (:func:`right_solve`; ``Ri (k, k)`` is workspace)."""
    k = R.shape[0]
    info = np.zeros(1, np.int32)
    # column-major: X is B (M×k); R in row-major storage is Rᵀ (lower) in column-major
    right_solve(X, R.reshape(k * k), True, Ri.reshape(k * k), info)
    if info[0] != 0:  # a zero on R's diagonal: solve anyway (inf or nan), as the reverse rule always did
        _trsm_right(X, R.reshape(k * k), True)
