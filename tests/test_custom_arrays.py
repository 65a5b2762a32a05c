"""Custom rules for functions with array arguments (llad/custom_arrays.py, docs/custom-rules.md).

Two rules carry the file: an implicit linear solve with a `custom_vjp` rule that solves the adjoint system
(reverse modes), and an elementwise map with a `custom_jvp` rule (forward modes).  Each is checked against
central differences, against a closed form, and against a deliberately scaled rule (so the rule, not
llad's own derivative of the body, is what ran), in every mode its rule serves.
"""
import math

import numba
import numpy as np
import pytest
from nrt_counts import leaks

import llad
from llad.testing import check_grads

# --- an implicit solve with a vjp rule ---------------------------------------------------------------


@llad.custom_vjp
@numba.njit
def solve(A, b, out):
    """out = A⁻¹ b."""
    out[:] = np.linalg.solve(A, b)


@numba.njit
def solve_fwd(A, b, out):
    solve(A, b, out)
    return None, (A.copy(), out.copy())


@numba.njit
def solve_bwd(res, dret, dA, db, dout):
    """x = A⁻¹ b: g = A⁻ᵀ x̄, b̄ += g, Ā -= g xᵀ; out is overwritten, so its shadow is reset."""
    A, x = res
    g = np.linalg.solve(A.T, dout)
    if db is not None:
        db += g
    if dA is not None:
        dA -= np.outer(g, x)
    dout[:] = 0.0
    return None, None, None


solve.defvjp(solve_fwd, solve_bwd)


@numba.njit
def solve_loss(A, b, out):
    solve(A, b, out)
    s = 0.0
    for i in range(out.size):
        s += math.sin(out[i]) * (i + 1.0)
    return s


def _system(n=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, n)) + n * np.eye(n), rng.normal(size=n)


def _solve_grads(A, b):
    x = np.linalg.solve(A, b)
    xbar = np.cos(x) * np.arange(1.0, x.size + 1)
    g = np.linalg.solve(A.T, xbar)
    return -np.outer(g, x), g


def test_vjp_rule_gives_the_adjoint_system_gradient():
    A, b = _system()
    dA, db, dout = np.zeros_like(A), np.zeros_like(b), np.zeros_like(b)
    out = np.zeros_like(b)
    (grads,) = llad.autodiff(llad.Reverse, solve_loss, llad.Active, llad.Duplicated(A, dA), llad.Duplicated(b, db),
                             llad.Duplicated(out, dout))
    assert grads == (None, None, None)
    gA, gb = _solve_grads(A, b)
    np.testing.assert_allclose(db, gb, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(dA, gA, rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(dout, 0.0)
    np.testing.assert_allclose(out, np.linalg.solve(A, b), rtol=1e-14)


def test_vjp_rule_in_every_reverse_mode_against_differences():
    A, b = _system(3, seed=1)
    assert check_grads(solve_loss, A, b, np.zeros(3), modes=llad.testing.REVERSE_MODES) > 0


def test_vjp_rule_is_the_one_used():
    """A bwd that doubles b's cotangent shows up doubled: llad did not differentiate the solve itself."""
    @llad.custom_vjp
    @numba.njit
    def solve2(A, b, out):
        out[:] = np.linalg.solve(A, b)

    @numba.njit
    def bwd2(res, dret, dA, db, dout):
        A, x = res
        g = np.linalg.solve(A.T, dout)
        db += 2.0 * g
        dout[:] = 0.0
        return None, None, None

    @numba.njit
    def fwd2(A, b, out):
        solve2(A, b, out)
        return None, (A.copy(), out.copy())

    solve2.defvjp(fwd2, bwd2)

    @numba.njit
    def loss2(A, b, out):
        solve2(A, b, out)
        return np.sum(out * out)

    A, b = _system()
    db = np.zeros_like(b)
    llad.autodiff(llad.Reverse, loss2, llad.Active, llad.Const(A), llad.Duplicated(b, db),
                  llad.Duplicated(np.zeros(4), np.zeros(4)))
    x = np.linalg.solve(A, b)
    np.testing.assert_allclose(db, 2.0 * np.linalg.solve(A.T, 2.0 * x), rtol=1e-12)


def test_vjp_rule_in_a_loop_with_split_mode_and_inside_njit():
    """The residuals of every iteration's call travel on the loop's tape; split mode and a gradient
    inside @njit give the same numbers as Reverse."""
    @numba.njit
    def relax(A, b, out, steps):
        s = 0.0
        rhs = b.copy()
        for _ in range(steps):
            solve(A, rhs, out)
            for i in range(out.size):
                rhs[i] = b[i] + 0.1 * math.tanh(out[i])
                s += out[i] * out[i]
        return s

    A, b = _system(5, seed=2)

    def reverse():
        dA, db = np.zeros_like(A), np.zeros_like(b)
        llad.autodiff(llad.Reverse, relax, llad.Active, llad.Duplicated(A, dA), llad.Duplicated(b, db),
                      llad.Duplicated(np.zeros(5), np.zeros(5)), llad.Const(6))
        return dA, db

    dA, db = reverse()
    h = 1e-6
    for i in range(5):
        bp, bm = b.copy(), b.copy()
        bp[i] += h
        bm[i] -= h
        fd = (relax(A, bp, np.zeros(5), 6) - relax(A, bm, np.zeros(5), 6)) / (2 * h)
        assert abs(db[i] - fd) <= 1e-6 * max(1.0, abs(fd))

    dA2, db2 = np.zeros_like(A), np.zeros_like(b)
    out, dout = np.zeros(5), np.zeros(5)
    fwd, rev = llad.autodiff_thunk(llad.ReverseSplitWithPrimal, relax, llad.Active, llad.Duplicated(A, dA2),
                                   llad.Duplicated(b, db2), llad.Duplicated(out, dout), llad.Const(6))
    tape, primal, _ = fwd(llad.Duplicated(A, dA2), llad.Duplicated(b, db2), llad.Duplicated(out, dout), llad.Const(6))
    rev(llad.Duplicated(A, dA2), llad.Duplicated(b, db2), llad.Duplicated(out, dout), llad.Const(6), 1.0, tape)
    assert primal == pytest.approx(relax(A, b, np.zeros(5), 6), rel=1e-14)
    np.testing.assert_allclose(dA2, dA, rtol=1e-13)
    np.testing.assert_allclose(db2, db, rtol=1e-13)

    @numba.njit
    def grad_in_njit(A, b):
        dA, db = np.zeros_like(A), np.zeros_like(b)
        out, dout = np.zeros(b.size), np.zeros(b.size)
        llad.autodiff(llad.Reverse, relax, llad.Active, llad.Duplicated(A, dA), llad.Duplicated(b, db),
                      llad.Duplicated(out, dout), llad.Const(6))
        return dA, db

    dA3, db3 = grad_in_njit(A, b)
    np.testing.assert_allclose(dA3, dA, rtol=1e-13)
    np.testing.assert_allclose(db3, db, rtol=1e-13)


@llad.custom_vjp
@numba.njit
def logsumexp(x, t):
    """t log Σ exp(x_i / t), computed stably."""
    m = x.max()
    s = 0.0
    for v in x:
        s += math.exp((v - m) / t)
    return m + t * math.log(s)


@numba.njit
def logsumexp_fwd(x, t):
    r = logsumexp(x, t)
    return r, (x.copy(), t, r)


@numba.njit
def logsumexp_bwd(res, dret, dx, dt):
    x, t, r = res
    p = np.exp((x - r) / t)                       # softmax(x / t)
    if dx is not None:
        dx += dret * p
    dt_ = dret * (r - np.sum(p * x)) / t
    return None, dt_


logsumexp.defvjp(logsumexp_fwd, logsumexp_bwd)


@numba.njit
def lse_loss(x, t):
    return logsumexp(x, t) ** 2 + x[0]


def test_vjp_rule_with_a_float_result_and_an_active_float_argument():
    x, t = np.array([0.3, -1.2, 2.0, 0.5]), 0.7
    assert check_grads(lse_loss, x, t, modes=llad.testing.REVERSE_MODES) > 0
    dx = np.zeros(4)
    (grads,) = llad.autodiff(llad.Reverse, lse_loss, llad.Active, llad.Duplicated(x, dx), llad.Active(t))
    r = t * np.log(np.sum(np.exp(x / t)))
    p = np.exp((x - r) / t)
    np.testing.assert_allclose(dx, 2 * r * p + np.eye(4)[0], rtol=1e-12)
    assert grads[1] == pytest.approx(2 * r * (r - np.sum(p * x)) / t, rel=1e-12)


def test_vjp_rule_refuses_forward_modes():
    with pytest.raises(llad.NoRuleError, match=r"`logsumexp` with array arguments at .*test_custom_arrays.py:\d+ "
                                                r"\(in lse_loss\): forward modes use its jvp rule"):
        llad.autodiff(llad.Forward, lse_loss, llad.Duplicated(np.ones(3), np.ones(3)), llad.Const(1.0))


def test_a_const_array_the_function_writes_is_refused():
    A, b = _system()
    with pytest.raises(llad.ActivityError, match=r"may write its argument `out`, an array annotated Const"):
        llad.autodiff(llad.Reverse, solve_loss, llad.Active, llad.Const(A), llad.Duplicated(b, np.zeros(4)),
                      llad.Const(np.zeros(4)))


def test_an_exception_in_fwd_propagates():
    A = np.zeros((3, 3))
    with pytest.raises(np.linalg.LinAlgError):
        llad.autodiff(llad.Reverse, solve_loss, llad.Active, llad.Duplicated(A, np.zeros_like(A)),
                      llad.Duplicated(np.ones(3), np.zeros(3)), llad.Duplicated(np.zeros(3), np.zeros(3)))


def test_residuals_are_released():
    """NRT statistics: every box (and the arrays in its residuals) is freed, after Reverse, after a split
    tape that is used, and after one that is dropped."""
    leaked, allocated, raw_leaked = leaks("""
        import numpy as np, llad
        from tests.test_custom_arrays import solve_loss, _system
        A, b = _system()
        args = lambda: (llad.Duplicated(A, np.zeros_like(A)), llad.Duplicated(b, np.zeros(4)),
                        llad.Duplicated(np.zeros(4), np.zeros(4)))
        fwd, rev = llad.autodiff_thunk(llad.ReverseSplitNoPrimal, solve_loss, llad.Active, *args())
    """, """
        llad.autodiff(llad.Reverse, solve_loss, llad.Active, *args())
        a = args()
        tape, _, _ = fwd(*a)
        rev(*a, 1.0, tape)
        tape, _, _ = fwd(*args())
        del tape
    """)
    assert allocated > 0 and leaked == 0 and raw_leaked == 0


# --- an elementwise map with a jvp rule -----------------------------------------------------------------


@llad.custom_jvp
@numba.njit
def scaled_squares(x, c, out):
    """out = c x², returns Σ out."""
    s = 0.0
    for i in range(x.size):
        out[i] = c * x[i] ** 2
        s += out[i]
    return s


@scaled_squares.defjvp
@numba.njit
def scaled_squares_jvp(x, c, out, dx, dc, dout):
    s = scaled_squares(x, c, out)
    ds = 0.0
    for i in range(x.size):
        d = dc * x[i] ** 2
        if dx is not None:
            d += 2.0 * c * x[i] * dx[i]
        dout[i] = d
        ds += d
    return s, ds


@numba.njit
def map_loss(x, c, out):
    s = scaled_squares(x, c, out)
    t = 0.0
    for i in range(out.size):
        t += math.sin(out[i])
    return t * s


def test_jvp_rule_in_every_forward_mode_against_differences():
    x = np.array([0.3, -0.5, 1.2])
    assert check_grads(map_loss, x, 0.7, np.zeros(3), modes=(*llad.testing.FORWARD_MODES, llad.testing.BATCH)) > 0


def test_jvp_rule_batched_matches_one_direction_at_a_time():
    x, c = np.array([0.3, -0.5, 1.2]), 0.7
    dirs = tuple(np.eye(3)[i].copy() for i in range(3))
    (batch,) = llad.autodiff(llad.Forward, map_loss, llad.BatchDuplicated(x, dirs), llad.Const(c),
                             llad.BatchDuplicated(np.zeros(3), tuple(np.zeros(3) for _ in range(3))))
    for i in range(3):
        (one,) = llad.autodiff(llad.Forward, map_loss, llad.Duplicated(x, dirs[i]), llad.Const(c),
                               llad.Duplicated(np.zeros(3), np.zeros(3)))
        assert batch[i] == pytest.approx(one, rel=1e-14)


def test_jvp_rule_in_place_batched():
    """A function that updates its argument in place: every direction sees the input as it was."""
    @llad.custom_jvp
    @numba.njit
    def square_in_place(x):
        for i in range(x.size):
            x[i] = x[i] * x[i]

    @square_in_place.defjvp
    @numba.njit
    def square_in_place_jvp(x, dx):
        for i in range(x.size):
            dx[i] = 2.0 * x[i] * dx[i]
            x[i] = x[i] * x[i]
        return None, None

    @numba.njit
    def g(x):
        square_in_place(x)
        return np.sum(x * x * x)          # Σ x⁶

    x0 = np.array([0.5, -1.5, 2.0])
    dirs = tuple(np.eye(3)[i].copy() for i in range(3))
    x = x0.copy()
    (batch,) = llad.autodiff(llad.Forward, g, llad.BatchDuplicated(x, dirs))
    np.testing.assert_allclose(batch, 6 * x0 ** 5, rtol=1e-14)
    np.testing.assert_allclose(x, x0 ** 2, rtol=1e-14)


def test_jvp_rule_is_the_one_used_and_works_inside_njit():
    @llad.custom_jvp
    @numba.njit
    def double(x, out):
        for i in range(x.size):
            out[i] = 2.0 * x[i]

    @double.defjvp
    @numba.njit
    def double_jvp(x, out, dx, dout):
        double(x, out)
        for i in range(x.size):
            dout[i] = 3.0 * dx[i]           # deliberately wrong: 3, not 2
        return None, None

    @numba.njit
    def h(x, out):
        double(x, out)
        return np.sum(out)

    x = np.array([1.0, 2.0])
    (t,) = llad.autodiff(llad.Forward, h, llad.Duplicated(x, np.ones(2)), llad.Duplicated(np.zeros(2), np.zeros(2)))
    assert t == 6.0

    @numba.njit
    def tangent_in_njit(x):
        return llad.autodiff(llad.Forward, h, llad.Duplicated(x, np.ones(2)),
                             llad.Duplicated(np.zeros(2), np.zeros(2)))[0]

    assert tangent_in_njit(x) == 6.0


def test_jvp_rule_refuses_reverse_modes():
    with pytest.raises(llad.NoRuleError, match=r"`scaled_squares` with array arguments at .*: reverse modes use "
                                                r"its vjp rule"):
        llad.autodiff(llad.Reverse, map_loss, llad.Active, llad.Duplicated(np.ones(3), np.zeros(3)), llad.Const(1.0),
                      llad.Duplicated(np.zeros(3), np.zeros(3)))


def test_an_exception_in_a_jvp_rule_propagates():
    @llad.custom_jvp
    @numba.njit
    def checked(x):
        return np.sum(x)

    @checked.defjvp
    @numba.njit
    def checked_jvp(x, dx):
        if x[0] < 0:
            raise ValueError("negative input")
        return np.sum(x), np.sum(dx)

    @numba.njit
    def k(x):
        return checked(x) * 2.0

    assert llad.autodiff(llad.Forward, k, llad.Duplicated(np.ones(2), np.ones(2)))[0] == 4.0
    with pytest.raises(ValueError, match="negative input"):
        llad.autodiff(llad.Forward, k, llad.Duplicated(-np.ones(2), np.ones(2)))


def test_a_rule_that_does_not_compile_names_itself():
    @llad.custom_jvp
    @numba.njit
    def f1(x, c):
        return np.sum(x) * c

    @f1.defjvp
    @numba.njit
    def f1_jvp(x, c, dx, dc):
        return f1(x, c), np.sum(dx) * c + dc * np.sum(x)     # dx is None when x is Const

    @numba.njit
    def k(x, c):
        return f1(x, c)

    with pytest.raises(llad.DifferentiationError, match=r"the jvp rule of f1 .*None for an argument without a "
                                                         r"derivative"):
        llad.autodiff(llad.Forward, k, llad.Const(np.ones(2)), llad.Duplicated(1.0, 1.0))
