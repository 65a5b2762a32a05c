"""BLAS rules (llad/blas.py): `np.dot` and `@` on float arrays, in every mode and activity combination
(`check_grads`: central differences and the dot-product test between modes), against hand-derived
gradients, without leaks; the derivative is BLAS calls, not loops."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numba.np.linalg import _LAPACK

import llad
from llad.testing import BATCH, check_grads


@numba.njit
def least_squares(A, x, b):             # gemv, then elementwise
    r = A @ x - b
    return np.sum(r * r)


@numba.njit
def chained(A, B):                      # gemm of a temporary: its inputs are copied for the reverse sweep
    C = A @ B
    D = C.T @ A
    return np.sum(np.sin(D))


@numba.njit
def written_after(A, x):                # the input is overwritten after the call: copied, not read in place
    y = A @ x
    A[0, 0] = 5.0 * A[0, 0]
    return np.sum(y * y) + A[0, 0]


@numba.njit
def recurrent(W, x0, steps):            # gemv in a loop; x starts as a copy of a Const array: mixed shadows
    x = x0.copy()
    s = 0.0
    for _ in range(steps):
        x = np.tanh(W @ x)
        s += np.dot(x, x)
    return s


@numba.njit
def vector_matrix(x, A):                # vector @ matrix: gemv with the transposed flag
    return np.sum(np.exp(x @ A))


@numba.njit
def temporary_matrix(x, A):             # the matrix a copy only BLAS reads (its copy's adjoint needs the type)
    return np.sum((x @ A.copy()) ** 2) + np.sum((A.copy() @ x) ** 2)


@numba.njit
def against_transpose(A, B):            # a transposed view
    return np.sum((A @ B.T) ** 2)


@numba.njit
def strided(A, x):                      # non-contiguous views (Numba copies them for BLAS)
    return np.sum((A[:, ::2] @ x[::2]) ** 2)


@numba.njit
def one_row(A, B):                      # a 1 x n result: Numba's gemv path of a matrix product
    return np.sum((A[0:1, :] @ B) ** 2)


@numba.njit
def into_out(A, B, C):                  # np.dot with out=: C's old values (and derivative) are overwritten
    np.dot(A, B, C)
    return np.sum(C * C)


@numba.njit
def empty_inner(A, B):                  # k = 0: the product is zeros
    return np.sum(A @ B) + 1.0


@numba.njit
def dot_value(x, y):                    # a scalar dot product (its value goes through a stack slot)
    return np.dot(x, y) * np.dot(x, x)


@numba.njit
def solve_loss(A, b):                   # LAPACK gesv: A and b copied by Numba, overwritten in place
    return np.sum(np.linalg.solve(A, b) ** 2)


@numba.njit
def solve_many(A, B):                   # several right-hand sides
    return np.sum(np.sin(np.linalg.solve(A, B)))


@numba.njit
def ridge(X, y, lam):                   # ridge regression: normal equations, then the fit's loss
    n = X.shape[1]
    w = np.linalg.solve(X.T @ X + lam * np.eye(n), X.T @ y)
    r = X @ w - y
    return np.sum(r * r) + lam * np.sum(w * w)


@numba.njit
def ridge_fixed(X, y):                  # the penalty fixed: fewer activity combinations to check
    return ridge(X, y, 0.3)


@numba.njit
def norm_cubed(x):                      # BLAS nrm2
    return np.linalg.norm(x) ** 3


@numba.njit
def norm_of_view(x):                    # nrm2 with an increment
    return np.linalg.norm(x[::2]) + np.sum(x)


@numba.njit
def frobenius(A):                       # a matrix's Frobenius norm: nrm2 over its elements
    return np.sin(np.linalg.norm(A))


@numba.njit
def norm_reversed(x):
    return np.linalg.norm(x[::-1])


@numba.njit
def log_determinant(A):                 # LAPACK getrf, then Numba's walk along U's diagonal
    return np.linalg.slogdet(A)[1]


@numba.njit
def determinant(A):
    return np.linalg.det(A)


@numba.njit
def gaussian_nll(S, x):                 # a Gaussian's negative log-likelihood: slogdet and solve
    return 0.5 * np.linalg.slogdet(S)[1] + 0.5 * np.dot(x, np.linalg.solve(S, x))


@numba.njit
def cholesky_sines(A):                  # LAPACK potrf on one triangle ('U' in Fortran order), Numba zeroes the other
    return np.sum(np.sin(np.linalg.cholesky(A)))


@numba.njit
def gaussian_nll_cholesky(S, x):        # the textbook way: log det from the factor's diagonal, then a solve
    L = np.linalg.cholesky(S)
    half_logdet = 0.0
    for i in range(L.shape[0]):
        half_logdet += np.log(L[i, i])
    z = np.linalg.solve(L, x)
    return half_logdet + 0.5 * np.dot(z, z)


_potrf = _LAPACK().numba_xxpotrf(numba.float64)


@numba.njit
def lower_factor(A):                    # potrf with 'L' (Numba itself only passes 'U'): the rule's other half
    n = A.shape[0]
    a = A.copy().T.copy().T             # a Fortran-order copy
    _potrf(100, 76, n, a.ctypes, n)
    s = 0.0
    for j in range(n):
        for i in range(n):
            s += np.sin(a[i, j]) * (i + 2 * j + 1)     # the untouched upper triangle too
    return s


@numba.njit
def inverse_sines(A):                   # getrf, then getri in place of the factors
    return np.sum(np.sin(np.linalg.inv(A)))


@numba.njit
def convolved(x, k):                    # np.convolve / np.correlate: Numba lowers them to BLAS dot
    return np.sum(np.convolve(x, k) ** 2) + np.sum(np.sin(np.correlate(x, k)))


@numba.njit
def outer_trace(x, y, A):
    return np.trace(A @ np.outer(x, y))


def _spd(r, n):
    m = r.random((n, n))
    return m @ m.T + np.eye(n)


def _rng(seed=0):
    return np.random.default_rng(seed)


def _cases():
    r = _rng()
    f32 = np.float32
    return [
        ("least_squares", least_squares, (r.random((4, 3)), r.random(3), r.random(4))),
        ("chained", chained, (r.random((3, 4)), r.random((4, 2)))),
        ("chained-F", chained, (np.asfortranarray(r.random((3, 4))), np.asfortranarray(r.random((4, 2))))),
        ("written_after", written_after, (r.random((3, 3)), r.random(3))),
        ("recurrent", recurrent, (0.5 * r.random((3, 3)), r.random(3), 3)),
        ("vector_matrix", vector_matrix, (r.random(3), r.random((3, 4)))),
        ("against_transpose", against_transpose, (r.random((3, 4)), r.random((2, 4)))),
        ("strided", strided, (r.random((3, 4)), r.random(4))),
        ("one_row", one_row, (r.random((3, 4)), r.random((4, 2)))),
        ("into_out", into_out, (r.random((3, 4)), r.random((4, 2)), r.random((3, 2)))),
        ("empty_inner", empty_inner, (np.zeros((3, 0)), np.zeros((0, 2)))),
        ("dot_value", dot_value, (r.random(4), r.random(4))),
        ("least_squares-f32", least_squares, (r.random((4, 3)).astype(f32), r.random(3).astype(f32),
                                              r.random(4).astype(f32))),
        ("temporary_matrix", temporary_matrix, (r.random(3), r.random((3, 3)))),
        ("temporary_matrix-f32", temporary_matrix, (r.random(3).astype(f32), r.random((3, 3)).astype(f32))),
        ("chained-f32", chained, (r.random((3, 4)).astype(f32), r.random((4, 2)).astype(f32))),
        ("solve_loss", solve_loss, (r.random((4, 4)) + 3 * np.eye(4), r.random(4))),
        ("solve_many-F", solve_many, (np.asfortranarray(r.random((4, 4)) + 3 * np.eye(4)), r.random((4, 2)))),
        ("norm_cubed", norm_cubed, (r.random(5),)),
        ("norm_of_view", norm_of_view, (r.random(6),)),
        ("frobenius-F", frobenius, (np.asfortranarray(r.random((3, 4))),)),
        ("log_determinant", log_determinant, (_spd(r, 4),)),
        ("determinant", determinant, (r.random((4, 4)) - 0.5,)),
        ("determinant-F", determinant, (np.asfortranarray(r.random((3, 3)) - 0.5),)),
        ("gaussian_nll", gaussian_nll, (_spd(r, 3), r.random(3))),
        ("cholesky_sines", cholesky_sines, (_spd(r, 4),)),
        ("gaussian_nll_cholesky", gaussian_nll_cholesky, (_spd(r, 3), r.random(3))),
        ("lower_factor-F", lower_factor, (np.asfortranarray(_spd(r, 4)),)),
        ("inverse_sines", inverse_sines, (r.random((4, 4)) - 0.5 + 2 * np.eye(4),)),
        ("inverse_sines-F", inverse_sines, (np.asfortranarray(r.random((3, 3)) - 0.5 + 2 * np.eye(3)),)),
        ("convolved", convolved, (r.random(6), r.random(3))),
        ("outer_trace", outer_trace, (r.random(3), r.random(3), r.random((3, 3)))),
        ("ridge", ridge_fixed, (r.random((6, 3)), r.random(6))),
        ("solve_loss-f32", solve_loss, ((r.random((3, 3)) + 3 * np.eye(3)).astype(f32), r.random(3).astype(f32))),
    ]


# Forward, batch, Reverse and split mode for these; Forward and Reverse for the others (the rules are the
# same in the other modes, which tests/test_check_grads.py covers on other kernels): the file's CI budget
_MORE_MODES = {"least_squares", "chained", "recurrent", "solve_loss", "determinant", "cholesky_sines"}
_MODES = (llad.Forward, BATCH, llad.Reverse, llad.ReverseSplitNoPrimal)


@pytest.mark.filterwarnings("ignore::numba.NumbaPerformanceWarning")
@pytest.mark.parametrize("name,f,args", _cases(), ids=[c[0] for c in _cases()])
def test_every_mode_and_activity_combination(name, f, args):
    tol = dict(rtol=3e-2, atol=3e-2) if args[0].dtype == np.float32 else {}
    check_grads(f, *args, modes=_MODES if name in _MORE_MODES else (llad.Forward, llad.Reverse), **tol)


def test_least_squares_gradient_is_the_normal_equations():
    r = _rng(1)
    A, x, b = r.random((6, 4)), r.random(4), r.random(6)
    dA, dx = np.zeros_like(A), np.zeros_like(x)
    llad.autodiff(llad.Reverse, least_squares, llad.Active, llad.Duplicated(A, dA), llad.Duplicated(x, dx),
                  llad.Const(b))
    res = A @ x - b
    np.testing.assert_allclose(dx, 2 * A.T @ res, rtol=1e-13)
    np.testing.assert_allclose(dA, 2 * np.outer(res, x), rtol=1e-13)


def test_solve_gradient_is_the_adjoint_system():
    """L = sum(x²) with A x = b: b̄ = A⁻ᵀ (2x), Ā = -b̄ xᵀ."""
    r = _rng(6)
    A, b = r.random((5, 5)) + 4 * np.eye(5), r.random(5)
    dA, db = np.zeros_like(A), np.zeros_like(b)
    llad.autodiff(llad.Reverse, solve_loss, llad.Active, llad.Duplicated(A, dA), llad.Duplicated(b, db))
    x = np.linalg.solve(A, b)
    bbar = np.linalg.solve(A.T, 2 * x)
    np.testing.assert_allclose(db, bbar, rtol=1e-12)
    np.testing.assert_allclose(dA, -np.outer(bbar, x), rtol=1e-12)
    (t,) = llad.autodiff(llad.Forward, solve_loss, llad.Duplicated(A, np.eye(5)), llad.Duplicated(b, np.ones(5)))
    assert t == pytest.approx(np.sum(dA * np.eye(5)) + np.sum(db), rel=1e-12)


@pytest.mark.parametrize("n", [1, 2, 5, 9])
def test_determinant_gradient_is_the_cofactor_matrix(n):
    """d det(A) / dA = det(A) A⁻ᵀ; d log|det A| / dA = A⁻ᵀ (Jacobi's formula), with row pivoting at work."""
    r = _rng(7 + n)
    A = r.standard_normal((n, n))
    dA = np.zeros_like(A)
    llad.autodiff(llad.Reverse, determinant, llad.Active, llad.Duplicated(A, dA))
    np.testing.assert_allclose(dA, np.linalg.det(A) * np.linalg.inv(A).T, rtol=1e-10, atol=1e-12)
    dA[:] = 0
    llad.autodiff(llad.Reverse, log_determinant, llad.Active, llad.Duplicated(A, dA))
    np.testing.assert_allclose(dA, np.linalg.inv(A).T, rtol=1e-10, atol=1e-12)
    V = r.standard_normal((n, n))
    (t,) = llad.autodiff(llad.Forward, log_determinant, llad.Duplicated(A, V))
    assert t == pytest.approx(np.trace(np.linalg.solve(A, V)), rel=1e-10, abs=1e-12)


def test_cholesky_gradient_of_the_log_determinant():
    """sum(log diag(L)) = log det(S) / 2: its gradient is S⁻¹ / 2 read on the triangle potrf uses (C order:
    the lower one), the off-diagonal entries counting twice (they stand for both halves of S)."""
    r = _rng(11)
    S = _spd(r, 5)
    dS = np.zeros_like(S)
    llad.autodiff(llad.Reverse, gaussian_nll_cholesky, llad.Active, llad.Duplicated(S, dS),
                  llad.Const(np.zeros(5)))
    G = 0.5 * np.linalg.inv(S)
    np.testing.assert_allclose(dS, np.tril(2 * G, -1) + np.diag(np.diag(G)), rtol=1e-10, atol=1e-13)


def test_inverse_gradient_and_tangent():
    """d(xᵀ A⁻¹ y) / dA = -A⁻ᵀ x yᵀ A⁻ᵀ; the tangent of A⁻¹ along V is -A⁻¹ V A⁻¹."""
    r = _rng(12)
    A = r.standard_normal((5, 5)) + 3 * np.eye(5)
    x, y, V = r.standard_normal(5), r.standard_normal(5), r.standard_normal((5, 5))

    @numba.njit
    def bilinear(A, x, y):
        return np.dot(x, np.linalg.inv(A) @ y)
    dA = np.zeros_like(A)
    llad.autodiff(llad.Reverse, bilinear, llad.Active, llad.Duplicated(A, dA), llad.Const(x), llad.Const(y))
    Ai = np.linalg.inv(A)
    np.testing.assert_allclose(dA, -Ai.T @ np.outer(x, y) @ Ai.T, rtol=1e-10, atol=1e-13)
    (t,) = llad.autodiff(llad.Forward, bilinear, llad.Duplicated(A, V), llad.Const(x), llad.Const(y))
    assert t == pytest.approx(-x @ Ai @ V @ Ai @ y, rel=1e-10)


@numba.njit
def squared_dot(x, y):
    return np.dot(x, y) ** 2


@numba.njit
def squared_product(a, B, W):
    A = a.reshape(B.shape).copy()
    C = A @ B
    return np.sum(W * C * C)


def test_hvp_through_a_dot_product():
    """Forward over reverse through the dot rule (whose derivative is dot calls and loops): H v = 2 y yᵀ v."""
    r = _rng(13)
    x, y, v = r.random(4), r.random(4), r.random(4)
    np.testing.assert_allclose(llad.hvp(squared_dot, x, v, y), 2 * y * (y @ v), rtol=1e-12)


def test_hvp_through_a_matrix_product():
    """Forward over reverse through the gemm rule, whose reverse keeps its operands' copies on the tape as
    pointers (refused until the outer forward mode could follow pointers kept in memory): for
    f(A) = sum(W * (A B)^2), H[V] = 2 (W * (V B)) B^T exactly."""
    r = _rng(14)
    B, W = r.random((3, 3)), r.random((3, 3))
    a, v = r.random(9), r.random(9)
    exact = 2.0 * (W * (v.reshape(3, 3) @ B)) @ B.T
    np.testing.assert_allclose(llad.hvp(squared_product, a, v, B, W), exact.ravel(), rtol=1e-12, atol=1e-13)


@numba.njit
def eigen_loss(a):
    s = np.sum(a)
    return np.linalg.eigh(a)[0][0] + s


def test_a_refused_lapack_call_names_its_own_line():
    """Not the `def` line: the line of the NumPy call that lowered to Numba's helper."""
    line = eigen_loss.py_func.__code__.co_firstlineno + 3      # the decorator, def, s = ..., return ...
    with pytest.raises(llad.NoRuleError, match=rf"numba_ez_xxxevd` at .*test_blas.py:{line} "):
        llad.autodiff(llad.Reverse, eigen_loss, llad.Active, llad.Duplicated(np.eye(3), np.zeros((3, 3))))


def test_norm_at_the_origin_has_the_zero_subgradient():
    dx = np.zeros(3)
    llad.autodiff(llad.Reverse, norm_cubed, llad.Active, llad.Duplicated(np.zeros(3), dx))
    assert np.all(dx == 0.0)
    (t,) = llad.autodiff(llad.Forward, frobenius, llad.Duplicated(np.zeros((2, 2)), np.ones((2, 2))))
    assert t == 0.0


@pytest.mark.filterwarnings("ignore::numba.NumbaPerformanceWarning")
def test_norm_of_a_reversed_view_is_nan_not_silently_wrong():
    """Numba passes a reversed view to BLAS with a negative increment and reads outside the array (its
    primal is garbage); llad's derivative there is NaN."""
    dx = np.zeros(4)
    llad.autodiff(llad.Reverse, norm_reversed, llad.Active, llad.Duplicated(np.linspace(1, 2, 4), dx))
    assert np.all(np.isnan(dx))


def test_a_singular_system_raises_as_numba_does():
    A = np.ones((3, 3))
    with pytest.raises(np.linalg.LinAlgError):
        llad.autodiff(llad.Reverse, solve_loss, llad.Active, llad.Duplicated(A, np.zeros_like(A)),
                      llad.Duplicated(np.ones(3), np.zeros(3)))


@numba.njit
def weighted_product(A, B, W):
    return np.sum(W * (A @ B))


_layouts = st.sampled_from(["C", "F", "T"])      # C order, Fortran order, a transposed view


def _as(layout, a):
    if layout == "C":
        return np.ascontiguousarray(a)
    if layout == "F":
        return np.asfortranarray(a)
    return np.ascontiguousarray(a.T).T        # a view whose transpose is C-contiguous


@settings(max_examples=25, deadline=None)
@given(m=st.integers(1, 5), k=st.integers(1, 5), n=st.integers(1, 5), la=_layouts, lb=_layouts,
       seed=st.integers(0, 2**16))
def test_matrix_product_gradient_and_tangent_match_the_closed_form(m, k, n, la, lb, seed):
    """d/dA sum(W * (A B)) = W Bᵀ, d/dB = Aᵀ W; the tangent along (U, V) is sum(W * (U B + A V))."""
    r = _rng(seed)
    A, B, W = _as(la, r.standard_normal((m, k))), _as(lb, r.standard_normal((k, n))), r.standard_normal((m, n))
    dA, dB = np.zeros((m, k)), np.zeros((k, n))
    llad.autodiff(llad.Reverse, weighted_product, llad.Active, llad.Duplicated(A, _as(la, dA)),
                  llad.Duplicated(B, _as(lb, dB)), llad.Const(W))
    U, V = _as(la, r.standard_normal((m, k))), _as(lb, r.standard_normal((k, n)))
    (t,) = llad.autodiff(llad.Forward, weighted_product, llad.Duplicated(A, U), llad.Duplicated(B, V),
                         llad.Const(W))
    assert t == pytest.approx(np.sum(W * (U @ B + A @ V)), rel=1e-12, abs=1e-12)


@settings(max_examples=15, deadline=None)
@given(m=st.integers(1, 5), k=st.integers(1, 5), n=st.integers(1, 5), la=_layouts, lb=_layouts,
       seed=st.integers(0, 2**16))
def test_matrix_product_reverse_matches_the_closed_form(m, k, n, la, lb, seed):
    r = _rng(seed)
    A, B, W = _as(la, r.standard_normal((m, k))), _as(lb, r.standard_normal((k, n))), r.standard_normal((m, n))
    dA, dB = _as(la, np.zeros((m, k))), _as(lb, np.zeros((k, n)))
    llad.autodiff(llad.Reverse, weighted_product, llad.Active, llad.Duplicated(A, dA), llad.Duplicated(B, dB),
                  llad.Const(W))
    np.testing.assert_allclose(dA, W @ B.T, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dB, A.T @ W, rtol=1e-12, atol=1e-12)


def test_batch_directions_are_k_products():
    r = _rng(2)
    A, B, W = r.random((3, 4)), r.random((4, 2)), r.random((3, 2))
    Us, Vs = [r.random((3, 4)) for _ in range(3)], [r.random((4, 2)) for _ in range(3)]
    (ts,) = llad.autodiff(llad.Forward, weighted_product, llad.BatchDuplicated(A, tuple(Us)),
                          llad.BatchDuplicated(B, tuple(Vs)), llad.Const(W))
    for t, U, V in zip(ts, Us, Vs):
        assert t == pytest.approx(np.sum(W * (U @ B + A @ V)), rel=1e-12)


def test_inside_njit():
    @numba.njit
    def grad(A, x, b):
        dA, dx = np.zeros_like(A), np.zeros_like(x)
        llad.autodiff(llad.Reverse, least_squares, llad.Active, llad.Duplicated(A, dA), llad.Duplicated(x, dx),
                      llad.Const(b))
        return dx

    r = _rng(3)
    A, x, b = r.random((5, 3)), r.random(3), r.random(5)
    np.testing.assert_allclose(grad(A, x, b), 2 * A.T @ (A @ x - b), rtol=1e-13)


LEAKS = textwrap.dedent("""
    import numpy as np, numba, llad
    from numba.core.runtime import rtsys

    @numba.njit
    def chained(A, B):
        C = A @ B
        D = C.T @ A
        return np.sum(np.sin(D))

    A, B = np.random.rand(3, 4), np.random.rand(4, 2)
    dA, dB = np.zeros_like(A), np.zeros_like(B)
    fwd, rev = llad.autodiff_thunk(llad.ReverseSplitWithPrimal, chained, llad.Active, llad.Duplicated(A, dA),
                                   llad.Duplicated(B, dB))

    def once():
        llad.autodiff(llad.Reverse, chained, llad.Active, llad.Duplicated(A, dA), llad.Duplicated(B, dB))
        tape, _, _ = fwd(llad.Duplicated(A, dA), llad.Duplicated(B, dB))
        rev(llad.Duplicated(A, dA), llad.Duplicated(B, dB), 1.0, tape)
        fwd(llad.Duplicated(A, dA), llad.Duplicated(B, dB))      # a tape dropped without its reverse

    once()
    s0 = rtsys.get_allocation_stats()
    for _ in range(20):
        once()
    s1 = rtsys.get_allocation_stats()
    print((s1.mi_alloc - s0.mi_alloc) - (s1.mi_free - s0.mi_free), (s1.alloc - s0.alloc) - (s1.free - s0.free))
""")


def test_copies_are_freed_in_every_mode():
    env = dict(os.environ, NUMBA_NRT_STATS="1")
    out = subprocess.run([sys.executable, "-c", LEAKS], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["0", "0"]
