"""A function returning a float array: forward modes return its tangent (API.md, "Returned arrays and
scalar tangents").  Checked against central differences along the direction, against reverse mode (the
dot-product test through a loss that sums the result against a cotangent), in batch mode, inside
`@njit`, and for the references the tangent array holds (none leaked)."""
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

import llad
from llad import BatchDuplicated, Const, Duplicated, Forward, ForwardWithPrimal, Reverse


@numba.njit
def fresh(x):                 # a new array, active
    return np.sin(x) * x


@numba.njit
def zeros_like_result(x):     # a new array no active value reaches: a zero tangent
    x[0] = x[0] * 2.0
    return np.zeros(3)


@numba.njit
def view_of_argument(x):      # a view of a Duplicated argument: the same view of its shadow
    x[0] = x[0] * x[1]
    return x[1:]


@numba.njit
def matrix(x, c):             # a 2-D result mixing a Const array in
    out = np.empty((x.size, 2))
    for i in range(x.size):
        out[i, 0] = x[i] ** 3
        out[i, 1] = c[i] * np.exp(x[i])
    return out


@numba.njit
def either(x, flag):          # the result is one of two allocations
    if flag > 0:
        return np.cos(x)
    return x * x


@numba.njit
def float32_result(x):
    return x * x * np.float32(0.5)


def _jvp_fd(f, x, v, *ctx, h=1e-6):
    return (f(x + h * v, *ctx) - f(x - h * v, *ctx)) / (2 * h)


CASES = [(fresh, ()), (zeros_like_result, ()), (view_of_argument, ()), (matrix, (np.linspace(1, 2, 6),)),
         (either, (1,)), (either, (-1,))]


@pytest.mark.parametrize("f,ctx", CASES, ids=lambda c: getattr(c, "__name__", ""))
def test_tangent_of_returned_array_matches_differences(f, ctx):
    x, v = np.linspace(0.2, 1.1, 6), np.linspace(1.0, -0.5, 6)
    (t,) = llad.autodiff(Forward, f, Duplicated(x.copy(), v.copy()), *[Const(c) for c in ctx])
    expected = _jvp_fd(f, x, v, *ctx)
    assert t.shape == expected.shape and t.dtype == np.float64
    np.testing.assert_allclose(t, expected, rtol=1e-7, atol=1e-8)
    t2, primal = llad.autodiff(ForwardWithPrimal, f, Duplicated(x.copy(), v.copy()), *[Const(c) for c in ctx])
    np.testing.assert_array_equal(t2, t)
    # the primal llad computes: f's up to the last bits (vector math, docs/vector-math.md)
    np.testing.assert_allclose(primal, f(x.copy(), *ctx), rtol=1e-14, atol=0)


def test_zero_tangent_is_exactly_zero():
    x = np.linspace(0.2, 1.1, 6)
    (t,) = llad.autodiff(Forward, zeros_like_result, Duplicated(x, np.ones(6)))
    np.testing.assert_array_equal(t, np.zeros(3))


@pytest.mark.parametrize("f,ctx", CASES, ids=lambda c: getattr(c, "__name__", ""))
def test_batch_tangents_of_returned_array(f, ctx):
    x = np.linspace(0.2, 1.1, 6)
    vs = (np.linspace(1.0, -0.5, 6), np.cos(np.arange(6.0)), np.ones(6))
    (ts,) = llad.autodiff(Forward, f, BatchDuplicated(x.copy(), tuple(v.copy() for v in vs)),
                          *[Const(c) for c in ctx])
    assert len(ts) == 3
    for t, v in zip(ts, vs):
        np.testing.assert_allclose(t, _jvp_fd(f, x, v, *ctx), rtol=1e-7, atol=1e-8)


@numba.njit
def weighted(x, w, c):
    """<w, matrix(x, c)>: reverse mode's loss for the dot-product test."""
    out = matrix(x, c)
    s = 0.0
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            s += w[i, j] * out[i, j]
    return s


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(-1.5, 1.5), min_size=6, max_size=6), st.lists(st.floats(-2, 2), min_size=6, max_size=6),
       st.lists(st.floats(-2, 2), min_size=12, max_size=12))
def test_forward_tangent_agrees_with_reverse(xs, vs, ws):
    """<w, J v> from the returned tangent equals <J^T w, v> from reverse mode."""
    x, v, w, c = np.array(xs), np.array(vs), np.array(ws).reshape(6, 2), np.linspace(1, 2, 6)
    (t,) = llad.autodiff(Forward, matrix, Duplicated(x.copy(), v), Const(c))
    gx = np.zeros(6)
    llad.autodiff(Reverse, weighted, Duplicated(x.copy(), gx), Const(w), Const(c))
    lhs, rhs = float(np.sum(w * t)), float(gx @ v)
    assert abs(lhs - rhs) <= 1e-12 * max(1.0, abs(lhs) + abs(rhs))


def test_float32_result():
    x, v = np.linspace(0.2, 1.1, 6, dtype=np.float32), np.ones(6, dtype=np.float32)
    (t,) = llad.autodiff(Forward, float32_result, Duplicated(x, v))
    assert t.dtype == np.float32
    np.testing.assert_allclose(t, x, rtol=1e-6)


@numba.njit
def jvp_inside(x, v):
    (t,) = llad.autodiff(llad.Forward, fresh, llad.Duplicated(x, v))
    return t


def test_tangent_of_returned_array_inside_njit():
    x, v = np.linspace(0.2, 1.1, 6), np.linspace(1.0, -0.5, 6)
    np.testing.assert_allclose(jvp_inside(x.copy(), v.copy()), _jvp_fd(fresh.py_func, x, v), rtol=1e-7)


def test_returned_tangents_hold_their_own_reference():
    """Repeated calls free every shadow allocation: NRT counts in a fresh process (stats are read at
    start-up)."""
    code = textwrap.dedent("""
        import numba, numpy as np, llad
        from numba.core.runtime import rtsys

        @numba.njit
        def f(x):
            return np.sin(x) * 2.0

        @numba.njit
        def g(x):
            x[0] = x[0] * x[1]
            return x[1:]

        x, dx = np.linspace(0, 1, 5), np.ones(5)
        for fun in (f, g):
            for ret in (llad.Duplicated, llad.Const):
                llad.autodiff(llad.Forward, fun, ret, llad.Duplicated(x, dx))
                s0 = rtsys.get_allocation_stats()
                for _ in range(50):
                    r = llad.autodiff(llad.Forward, fun, ret, llad.Duplicated(x, dx))
                del r
                s1 = rtsys.get_allocation_stats()
                print(s1.mi_alloc - s0.mi_alloc - (s1.mi_free - s0.mi_free))
    """)
    env = dict(os.environ, NUMBA_NRT_STATS="1")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert out.split() == ["0", "0", "0", "0"], out


def test_reverse_on_array_result_points_to_split_mode():
    with pytest.raises(TypeError, match="llad.autodiff_thunk"):
        llad.autodiff(Reverse, fresh, Duplicated(np.ones(3), np.zeros(3)))
    gx = np.zeros(3)      # an explicit Const return: the gradient of what f writes (nothing here)
    assert llad.autodiff(Reverse, fresh, Const, Duplicated(np.ones(3), gx)) == ((None,),)
    np.testing.assert_array_equal(gx, 0.0)


# --- split mode: the forward thunk returns the result's shadow, the caller seeds it ------------------------

@pytest.mark.parametrize("mode", [llad.ReverseSplitWithPrimal, llad.ReverseSplitNoPrimal], ids=str)
@pytest.mark.parametrize("f,ctx", CASES, ids=lambda c: getattr(c, "__name__", ""))
def test_split_mode_seeds_a_returned_array(mode, f, ctx):
    """rev after seeding shadow_result with w gives J^T w, which the forward tangent checks: <J^T w, v> =
    <w, J v> (and J v against differences above)."""
    x, v = np.linspace(0.2, 1.1, 6), np.linspace(1.0, -0.5, 6)
    consts = [Const(c) for c in ctx]
    gx = np.zeros(6)
    fwd, rev = llad.autodiff_thunk(mode, f, Duplicated(x.copy(), gx), *consts)
    xx = x.copy()
    tape, primal, shadow = fwd(Duplicated(xx, gx), *consts)
    expected_primal = f(x.copy(), *ctx)
    if mode.with_primal:
        np.testing.assert_allclose(primal, expected_primal, rtol=1e-14, atol=0)
    else:
        assert primal is None
    assert shadow.shape == expected_primal.shape
    np.testing.assert_array_equal(shadow, 0.0)
    w = np.cos(np.arange(shadow.size, dtype=np.float64)).reshape(shadow.shape) + 0.5
    shadow[...] = w
    assert rev(Duplicated(xx, gx), *consts, None, tape) == ((None,) + (None,) * len(ctx),)
    (t,) = llad.autodiff(Forward, f, Duplicated(x.copy(), v.copy()), *consts)
    lhs, rhs = float(np.sum(w * t)), float(gx @ v)
    assert abs(lhs - rhs) <= 1e-12 * max(1.0, abs(lhs) + abs(rhs))


def test_split_mode_array_result_misuse():
    x = np.linspace(0.2, 1.1, 6)
    fwd, rev = llad.autodiff_thunk(llad.ReverseSplitNoPrimal, fresh, Duplicated(x, np.zeros(6)))
    tape, _, shadow = fwd(Duplicated(x, np.zeros(6)))
    with pytest.raises(TypeError, match="seeded through the forward thunk's shadow_result"):
        rev(Duplicated(x, np.zeros(6)), 1.0, tape)
    with pytest.raises(TypeError, match="Duplicated is for a returned array"):
        llad.autodiff_thunk(llad.ReverseSplitNoPrimal, weighted, Duplicated, Duplicated(x, np.zeros(6)),
                            Const(np.ones((6, 2))), Const(x))


def test_split_mode_array_results_free_what_they_hold():
    """Seeded and reversed, or dropped unused: every allocation is freed, results stay valid."""
    code = textwrap.dedent("""
        import gc, numba, numpy as np, llad
        from numba.core.runtime import rtsys

        @numba.njit
        def f(x):
            out = np.empty(x.size)
            for i in range(x.size):
                out[i] = np.sin(x[i]) * x[i]
            return out

        @numba.njit
        def g(x):
            x[0] = x[0] * x[1]
            return x[1:]

        x = np.linspace(0.2, 1, 5)
        for fun in (f, g):
            for ret in (llad.Duplicated, llad.Const):
                dx = np.zeros(5)
                fwd, rev = llad.autodiff_thunk(llad.ReverseSplitWithPrimal, fun, ret, llad.Duplicated(x.copy(), dx))
                def once(use):
                    xx = x.copy()
                    tape, primal, shadow = fwd(llad.Duplicated(xx, dx))
                    if use:
                        if shadow is not None:
                            shadow[:] = 1.0
                        rev(llad.Duplicated(xx, dx), None, tape)
                    return primal, shadow
                once(True), once(False)
                gc.collect()
                s0 = rtsys.get_allocation_stats()
                kept = [once(i % 2 == 0) for i in range(40)]
                assert all(np.allclose(p, fun(x.copy()), rtol=1e-14, atol=0) for p, _ in kept)
                kept = None
                gc.collect()
                s1 = rtsys.get_allocation_stats()
                print(s1.mi_alloc - s0.mi_alloc - (s1.mi_free - s0.mi_free), s1.alloc - s0.alloc - (s1.free - s0.free))
    """)
    env = dict(os.environ, NUMBA_NRT_STATS="1")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert out.split() == ["0"] * 8, out


@numba.njit
def pair_with_array(x):
    y = x * 2.0
    x[0] = x[0] * x[1]
    return (1.0, y)


def test_split_mode_refuses_a_result_holding_arrays_in_a_tuple():
    """Both thunks return the primal result; for a tuple holding an array that would hand one reference to
    two owners (heap corruption): refused before anything runs.  Reverse itself is fine."""
    x = np.linspace(0.2, 1.0, 4)
    with pytest.raises(llad.DifferentiationError, match=r"a result of type Tuple\(float64, array.*return the "
                                                        r"array alone"):
        llad.autodiff_thunk(llad.ReverseSplitWithPrimal, pair_with_array, Const, Duplicated(x.copy(), np.ones(4)))
    dx = np.ones(4)
    (_, (one, y)) = llad.autodiff(llad.ReverseWithPrimal, pair_with_array, Const, Duplicated(x.copy(), dx))
    np.testing.assert_array_equal(y, 2 * x)
    np.testing.assert_allclose(dx, [x[1], 1 + x[0], 1, 1])
