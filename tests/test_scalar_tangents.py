"""Forward modes take `Duplicated(t, dt)` for a float scalar `t` (Enzyme.jl's form): the tangent of the
result along dt, alone or beside array tangents, in vector mode and inside `@njit`; reverse modes refuse
it (Active is the reverse annotation of a scalar)."""
import math

import numba
import numpy as np
import pytest

import llad


@numba.njit
def damped(x, t, rate):
    s = 0.0
    for i in range(x.shape[0]):
        s += math.sin(t * x[i]) * math.exp(-rate * i)
    return s * t


def _fd(f, *args, arg=1, h=1e-6):
    lo, hi = list(args), list(args)
    lo[arg], hi[arg] = args[arg] - h, args[arg] + h
    return (f(*hi) - f(*lo)) / (2 * h)


X = np.random.default_rng(3).uniform(-1, 1, 7)


def test_tangent_along_a_scalar_matches_differences():
    (t,) = llad.autodiff(llad.Forward, damped, llad.Const(X), llad.Duplicated(0.8, 1.0), 0.3)
    assert t == pytest.approx(_fd(damped, X, 0.8, 0.3), rel=1e-7)
    (t2, primal) = llad.autodiff(llad.ForwardWithPrimal, damped, llad.Const(X), llad.Duplicated(0.8, 2.5), 0.3)
    assert t2 == pytest.approx(2.5 * t, rel=1e-12) and primal == pytest.approx(damped(X, 0.8, 0.3))


def test_scalar_and_array_tangents_add_up():
    v = np.random.default_rng(4).normal(size=7)
    (both,) = llad.autodiff(llad.Forward, damped, llad.Duplicated(X, v), llad.Duplicated(0.8, 1.5), llad.Const(0.3))
    (only_x,) = llad.autodiff(llad.Forward, damped, llad.Duplicated(X, v), 0.8, 0.3)
    (only_t,) = llad.autodiff(llad.Forward, damped, llad.Const(X), llad.Duplicated(0.8, 1.5), 0.3)
    assert both == pytest.approx(only_x + only_t, rel=1e-12)


def test_batch_of_scalar_tangents():
    dirs = (1.0, -2.0, 0.5)
    (ts,) = llad.autodiff(llad.Forward, damped, llad.Const(X), llad.BatchDuplicated(0.8, dirs), 0.3)
    (one,) = llad.autodiff(llad.Forward, damped, llad.Const(X), llad.Duplicated(0.8, 1.0), 0.3)
    assert ts == pytest.approx(tuple(d * one for d in dirs), rel=1e-12)


def test_inside_njit():
    @numba.njit
    def tangent(x, t):
        return llad.autodiff(llad.Forward, damped, llad.Const(x), llad.Duplicated(t, 1.0), llad.Const(0.3))

    (one,) = llad.autodiff(llad.Forward, damped, llad.Const(X), llad.Duplicated(0.8, 1.0), 0.3)
    assert tangent(X, 0.8) == (one,)


def test_reverse_refuses_a_duplicated_scalar_and_bad_tangents_are_type_errors():
    with pytest.raises(TypeError, match="reverse modes take Active"):
        llad.autodiff(llad.Reverse, damped, llad.Active, llad.Const(X), llad.Duplicated(0.8, 1.0), 0.3)
    with pytest.raises(TypeError, match="must be a float"):
        llad.autodiff(llad.Forward, damped, llad.Const(X), llad.Duplicated(0.8, np.ones(2)), 0.3)
