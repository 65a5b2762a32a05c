"""`llad.autodiff` called inside `@numba.njit` code: the same modes, annotations and result tuples as a
call from Python, errors at compile time for wrong annotations, and at run time for wrong shadows."""
from __future__ import annotations

import math

import numba
import numpy as np
import pytest
from numba.core.errors import TypingError

import llad


@numba.njit
def least_squares(x, A, b):
    s = 0.0
    for i in range(A.shape[0]):
        r = -b[i]
        for j in range(x.shape[0]):
            r += A[i, j] * x[j]
        s += r * r
    return s


@numba.njit
def scaled_sin(x, a):
    s = 0.0
    for i in range(x.shape[0]):
        s += a * math.sin(x[i])
    return s


@numba.njit
def raises_when_negative(x):
    if x[0] < 0.0:
        raise ValueError("negative")
    return x[0] * x[0]


@numba.njit
def descend(x, dx, A, b, steps, lr):
    for _ in range(steps):
        dx[:] = 0.0
        llad.autodiff(llad.Reverse, least_squares, llad.Active, llad.Duplicated(x, dx), llad.Const(A), llad.Const(b))
        x -= lr * dx


def _problem(n=100, m=120, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(m, n)), rng.normal(size=m)


def test_gradient_descent_inside_njit_matches_the_python_loop():
    A, b = _problem()
    x_jit, dx = np.zeros(100), np.zeros(100)
    descend(x_jit, dx, A, b, 200, 1e-4)
    x_py = np.zeros(100)
    for _ in range(200):
        g = np.zeros(100)
        llad.autodiff(llad.Reverse, least_squares, llad.Active, llad.Duplicated(x_py, g), llad.Const(A), llad.Const(b))
        x_py -= 1e-4 * g
    np.testing.assert_allclose(x_jit, x_py, rtol=1e-12, atol=1e-14)
    # and the iterates really moved towards the least-squares solution
    assert least_squares(x_jit, A, b) < 0.5 * least_squares(np.zeros(100), A, b)


def test_reverse_returns_active_scalar_derivatives_in_place_of_parameters():
    @numba.njit
    def both(x, dx, a):
        return llad.autodiff(llad.ReverseWithPrimal, scaled_sin, llad.Active, llad.Duplicated(x, dx), llad.Active(a))

    x, dx = np.array([0.3, 1.2, -0.5]), np.zeros(3)
    (derivs, primal) = both(x, dx, 2.5)
    assert derivs[0] is None
    assert derivs[1] == pytest.approx(np.sum(np.sin(x)))
    assert primal == pytest.approx(2.5 * np.sum(np.sin(x)))
    np.testing.assert_allclose(dx, 2.5 * np.cos(x))
    dx2 = np.zeros(3)
    expected = llad.autodiff(llad.ReverseWithPrimal, scaled_sin, llad.Active, llad.Duplicated(x, dx2), llad.Active(2.5))
    assert (derivs, primal) == expected


def test_forward_and_batch_forward_inside_njit():
    @numba.njit
    def tangent(x, v, a):
        return llad.autodiff(llad.Forward, scaled_sin, llad.Duplicated(x, v), a)

    @numba.njit
    def tangents(x, v1, v2, a):
        return llad.autodiff(llad.ForwardWithPrimal, scaled_sin, llad.BatchDuplicated(x, (v1, v2)), llad.Const(a))

    x = np.array([0.3, 1.2, -0.5])
    v1, v2 = np.array([1.0, 0.0, 2.0]), np.array([0.0, 1.0, 0.0])
    (t,) = tangent(x, v1, 2.0)
    assert t == pytest.approx(2.0 * np.cos(x) @ v1)
    (ts, primal) = tangents(x, v1, v2, 2.0)
    assert ts == pytest.approx((2.0 * np.cos(x) @ v1, 2.0 * np.cos(x) @ v2))
    assert primal == pytest.approx(scaled_sin(x, 2.0))


def test_shadow_of_another_shape_raises_before_anything_is_written():
    @numba.njit
    def wrong(x, dx, A, b):
        llad.autodiff(llad.Reverse, least_squares, llad.Active, llad.Duplicated(x, dx), llad.Const(A), llad.Const(b))

    A, b = _problem(3, 4)
    dx = np.full(2, 7.0)
    with pytest.raises(ValueError, match="shadow of argument 0"):
        wrong(np.zeros(3), dx, A, b)
    assert (dx == 7.0).all()


@pytest.mark.parametrize("body, message", [
    ("llad.autodiff(llad.Reverse, scaled_sin, llad.Active, llad.Active(x), a)", "Active is for float scalars"),
    ("llad.autodiff(llad.Forward, scaled_sin, llad.Duplicated(x, dx), llad.Active(a))", "forward modes do not take"),
    ("llad.autodiff(llad.Reverse, scaled_sin, llad.Active, llad.Duplicated(x, dx))", "takes 2 arguments"),
    ("llad.autodiff(1, scaled_sin, llad.Duplicated(x, dx), a)", "must be a mode"),
])
def test_wrong_annotations_are_typing_errors_naming_the_rule(body, message):
    namespace = {"llad": llad, "scaled_sin": scaled_sin, "numba": numba}
    exec(f"@numba.njit\ndef bad(x, dx, a):\n    return {body}\n", namespace)
    with pytest.raises(TypingError, match=message):
        namespace["bad"](np.ones(3), np.zeros(3), 1.0)


def test_exceptions_of_the_function_propagate_from_jitted_code():
    @numba.njit
    def grad(x, dx):
        llad.autodiff(llad.Reverse, raises_when_negative, llad.Active, llad.Duplicated(x, dx))

    dx = np.zeros(1)
    grad(np.array([3.0]), dx)
    assert dx[0] == pytest.approx(6.0)
    with pytest.raises(ValueError, match="negative"):
        grad(np.array([-1.0]), np.zeros(1))


@numba.njit
def weighted(x, y):
    s = 0.0
    for i in range(x.shape[0]):
        x[i] = x[i] * y[i]
        s += x[i] * y[(i + 1) % y.shape[0]]
    return s


@numba.njit
def grad_weighted(x, dx, y):
    llad.autodiff(llad.Reverse, weighted, llad.Active, llad.Duplicated(x, dx), llad.Const(y))


def test_overlapping_arrays_take_the_variant_that_assumes_nothing():
    """x is written and y re-read: the fast variant would re-read y in the reverse sweep, which is wrong
    when y is x itself; the run-time overlap check must pick the safe variant, as the Python path does."""
    rng = np.random.default_rng(9)
    x0 = rng.uniform(0.5, 1.5, 6)
    for same in (False, True):
        x, dx = x0.copy(), np.zeros(6)
        y = x if same else x0.copy()
        grad_weighted(x, dx, y)
        xp, dxp = x0.copy(), np.zeros(6)
        yp = xp if same else x0.copy()
        llad.autodiff(llad.Reverse, weighted, llad.Active, llad.Duplicated(xp, dxp), llad.Const(yp))
        np.testing.assert_allclose(dx, dxp, rtol=1e-13, err_msg=f"same={same}")
    from llad.jitted import overlaps
    a = np.arange(10.0)
    assert overlaps(a[2:5], a[4:8]) and not overlaps(a[:4], a[4:]) and overlaps(a[::-1], a[3:4])
    assert not overlaps(np.zeros(0), a)


def test_split_modes_are_refused_inside_njit():
    @numba.njit
    def bad(x, dx, a):
        return llad.autodiff(llad.ReverseSplitWithPrimal, scaled_sin, llad.Active, llad.Duplicated(x, dx), a)

    with pytest.raises(TypingError, match="split mode"):
        bad(np.ones(3), np.zeros(3), 1.0)
