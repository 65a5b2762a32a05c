"""Exceptions raised inside the differentiated function.

A Python exception raised by `f` (Numba's bounds check, float division by zero under Numba's default
error_model='python', a user `raise`) must come out of `llad.autodiff` as the same exception type with
the same message, in every mode.  In the reverse modes the reverse sweep never runs, so no partial
adjoint may reach a shadow: every shadow holds exactly what it held before the call.  In the forward
modes tangents are written alongside primal values, so a shadow of an array `f` writes holds the
tangents of the elements written before the exception (as the array holds their primal values), and
the shadows of arrays `f` only reads are untouched.  Repeated failing calls must not leak memory
(the tape, allocations made by `f`, the exception object).
"""
from __future__ import annotations

import gc
import math
import os

import numba
import numpy as np
import pytest

import llad
from llad import Active, Const, Duplicated, Forward, ForwardWithPrimal, Reverse, ReverseWithPrimal

MODES = [Forward, ForwardWithPrimal, Reverse, ReverseWithPrimal]
MODE_IDS = [m.name for m in MODES]


# --------------------------------------------------------------------------------------- kernels

@numba.njit(boundscheck=True)
def read_past_end(x, n):
    s = 0.0
    for i in range(n):
        s += x[i] * x[i]
    return s


@numba.njit(boundscheck=True)
def write_past_end(x, y, n):
    for i in range(n):
        y[i] = math.sin(x[i])
    return y[0]


@numba.njit
def divide_by(x, d):
    s = 0.0
    for i in range(x.shape[0]):
        s += x[i] * x[i]
    return s / d


@numba.njit
def divide_by_element(x):
    """Writes x in place, then divides by an element that became 0."""
    s = 0.0
    for i in range(x.shape[0]):
        x[i] = x[i] * 2.0
        s += 1.0 / x[i]
    return s


@numba.njit
def raise_when_large(x, limit):
    s = 0.0
    for i in range(x.shape[0]):
        s += math.exp(x[i])
        if s > limit:
            raise ValueError("sum of exponentials is too large")
    return s


@numba.njit
def _checked_sqrt(v):
    if v < 0.0:
        raise ArithmeticError("negative argument to the helper")
    return math.sqrt(v)


@numba.njit
def calls_raising_helper(x):
    s = 0.0
    for i in range(x.shape[0]):
        s += _checked_sqrt(x[i])
    return s


@numba.njit
def allocates_then_raises(x, limit):
    """An allocation and a long loop (a big tape in reverse mode) before the raise."""
    tmp = np.empty(x.shape[0])
    s = 0.0
    for i in range(x.shape[0]):
        tmp[i] = math.sin(x[i]) * x[i]
        s += tmp[i] * tmp[i]
    if s > limit:
        raise ValueError("limit exceeded")
    return s


@numba.njit
def scalar_raise(a, b):
    if a > b:
        raise KeyError("a > b")
    return a * b


# ------------------------------------------------------------------------------------- the cases

def _x(n=5):
    return np.linspace(0.3, 1.5, n)


CASES = {
    # name: (function, args builder -> list of (annotation kind, value), exception type, message regex)
    "index_read": (read_past_end, lambda: [("dup", _x()), ("const", 7)], IndexError, "index is out of bounds"),
    "index_write": (write_past_end, lambda: [("dup", _x()), ("dup", np.zeros(3)), ("const", 5)], IndexError,
                    "index is out of bounds"),
    "zero_division_scalar": (divide_by, lambda: [("dup", _x()), ("const", 0.0)], ZeroDivisionError,
                             "division by zero"),
    "zero_division_element": (divide_by_element, lambda: [("dup", np.array([0.5, 1.0, 0.0, 2.0]))],
                              ZeroDivisionError, "division by zero"),
    "user_raise": (raise_when_large, lambda: [("dup", _x()), ("const", 5.0)], ValueError,
                   "sum of exponentials is too large"),
    "helper_raise": (calls_raising_helper, lambda: [("dup", np.array([1.0, 4.0, -1.0, 9.0]))], ArithmeticError,
                     "negative argument to the helper"),
    "after_allocation": (allocates_then_raises, lambda: [("dup", _x(2000)), ("const", 1.0)], ValueError,
                         "limit exceeded"),
}


def _annotate(mode, spec, rng):
    """Annotated arguments for `mode`; returns (args, shadows)."""
    args, shadows = [], []
    for kind, v in spec:
        if kind == "dup":
            dv = rng.standard_normal(v.shape)       # nonzero: a reverse seed, a forward tangent
            args.append(Duplicated(v, dv))
            shadows.append(dv)
        elif kind == "active":
            args.append(Active(v) if mode.reverse else Const(v))
        else:
            args.append(Const(v))
    return args, shadows


@pytest.mark.parametrize("mode", MODES, ids=MODE_IDS)
@pytest.mark.parametrize("case", list(CASES))
def test_exception_type_and_message_pass_through(case, mode):
    f, build, exc, msg = CASES[case]
    spec = build()
    # the exception Numba itself raises from the primal
    with pytest.raises(exc, match=msg):
        f(*[v.copy() if isinstance(v, np.ndarray) else v for _, v in spec])
    rng = np.random.default_rng(0)
    args, shadows = _annotate(mode, spec, rng)
    before = [s.copy() for s in shadows]
    with pytest.raises(exc, match=msg) as info:
        llad.autodiff(mode, f, *args)
    assert type(info.value) is exc
    if mode.reverse:
        # no partial adjoint reaches any shadow
        for s, b in zip(shadows, before):
            np.testing.assert_array_equal(s, b)


@pytest.mark.parametrize("mode", MODES, ids=MODE_IDS)
def test_forward_tangents_follow_the_primal_writes(mode):
    """Forward modes: the shadow of a written array holds tangents exactly for the elements written
    before the exception, and keeps its old values elsewhere; the shadow of a read-only array is
    unchanged.  Reverse modes: nothing changes in any shadow."""
    x = np.array([0.5, 1.0, 0.0, 2.0])
    v = np.array([0.1, 0.2, 0.3, 0.4])
    dx = v.copy()
    with pytest.raises(ZeroDivisionError):
        llad.autodiff(mode, divide_by_element, Duplicated(x, dx))
    # the primal: elements 0..2 doubled (element 2 is 0 and raises), element 3 untouched
    np.testing.assert_array_equal(x, [1.0, 2.0, 0.0, 2.0])
    if mode.reverse:
        np.testing.assert_array_equal(dx, v)
    else:
        np.testing.assert_allclose(dx, [0.2, 0.4, 0.6, 0.4], rtol=1e-15)


@pytest.mark.parametrize("mode", [Reverse, ReverseWithPrimal], ids=["Reverse", "ReverseWithPrimal"])
def test_active_scalar_exception(mode):
    with pytest.raises(KeyError, match="a > b"):
        llad.autodiff(mode, scalar_raise, Active(3.0), Active(1.0))
    # and the same derivative still works on good inputs afterwards
    res = llad.autodiff(mode, scalar_raise, Active(1.0), Active(3.0))
    assert res[0] == (3.0, 1.0)


@pytest.mark.parametrize("mode", MODES, ids=MODE_IDS)
def test_good_call_after_failing_call(mode):
    """The failing call leaves nothing behind (a half-written tape, a stale adjoint) that a later
    successful call would see."""
    rng = np.random.default_rng(1)
    for limit in (1.0, 1e9, 1.0, 1e9):
        x = rng.random(50)
        dx = np.zeros(50) if mode.reverse else np.ones(50)
        if limit < 10:
            with pytest.raises(ValueError):
                llad.autodiff(mode, allocates_then_raises, Duplicated(x, dx), Const(limit))
            continue
        res = llad.autodiff(mode, allocates_then_raises, Duplicated(x, dx), Const(limit))
        t = np.sin(x) * x
        dt = np.cos(x) * x + np.sin(x)
        if mode.reverse:
            np.testing.assert_allclose(dx, 2 * t * dt, rtol=1e-12)
        else:
            np.testing.assert_allclose(res[0], np.sum(2 * t * dt), rtol=1e-12)


# ------------------------------------------------------------------------------------- leaks

def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@numba.njit
def long_loop_then_raises(x, limit):
    """No allocation in f; in reverse mode a tape of a 2000-trip loop (s is needed by the reverse sweep)."""
    s = 0.0
    for i in range(x.shape[0]):
        s += math.sin(x[i]) * s + x[i]
    if s > limit:
        raise ValueError("limit exceeded")
    return s


def _leak_params():
    return [pytest.param(kernel, m, id=f"{kernel}-{m.name}")
            for kernel in ("long_loop_then_raises", "allocates_then_raises") for m in MODES]


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc/self/statm")
@pytest.mark.parametrize("kernel, mode", _leak_params())
def test_failing_calls_do_not_leak(kernel, mode):
    """2000 failing calls, each after a 2000-trip loop (a 16+ kB tape in reverse mode) and, for
    allocates_then_raises, an allocation of 16 kB in f (and its 16 kB shadow in reverse mode): a leak of
    either grows RSS by about 30 MB."""
    f = globals()[kernel]
    x = _x(2000)
    dx = np.zeros_like(x)

    def fail():
        try:
            llad.autodiff(mode, f, Duplicated(x, dx), Const(1.0))
        except ValueError:
            pass
        else:
            raise AssertionError("expected ValueError")

    for _ in range(200):                   # warm up: compile, fill caches, grow the allocator's pools
        fail()
    gc.collect()
    start = _rss_bytes()
    for _ in range(2000):
        fail()
    gc.collect()
    grown = _rss_bytes() - start
    assert grown < 4 * 2**20, f"RSS grew by {grown / 2**20:.1f} MB over 2000 failing calls"
    if mode.reverse:
        assert not dx.any()


def test_successful_calls_do_not_leak():
    """The same allocating kernel, not raising: nothing grows either (the reference for the test above)."""
    x = _x(2000)
    dx = np.zeros_like(x)
    for _ in range(200):
        llad.autodiff(Reverse, allocates_then_raises, Duplicated(x, dx), Const(1e300))
    gc.collect()
    start = _rss_bytes()
    for _ in range(2000):
        llad.autodiff(Reverse, allocates_then_raises, Duplicated(x, dx), Const(1e300))
    gc.collect()
    assert _rss_bytes() - start < 4 * 2**20
