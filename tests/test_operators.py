"""The operator layer (DifferentiationInterface's names): each operator against central differences
and against another mode, float and array arguments, contexts, `make_zero` layouts, and `prepare`
(compiled ahead, `out=`, pickling, scipy.optimize)."""
from __future__ import annotations

import math
import pickle

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import llad


@numba.njit
def energy(x, scale):
    s = 0.0
    for i in range(x.size - 1):
        s += scale * (x[i + 1] - x[i] ** 2) ** 2 + (1.0 - x[i]) ** 2
    return s


@numba.njit
def curve(t, a):
    """A float t to an array."""
    out = np.empty(3)
    out[0] = math.sin(a * t)
    out[1] = t ** 3
    out[2] = math.exp(-t) * a
    return out


@numba.njit
def bump(t):
    return math.exp(-t * t) * math.cos(3.0 * t)


@numba.njit
def field(x):
    """An array to an array of another size."""
    out = np.empty(x.size + 1)
    out[0] = np.sum(x * x)
    for i in range(x.size):
        out[i + 1] = math.tanh(x[i]) * x[(i + 1) % x.size]
    return out


def fd(fun, x, v, h=1e-6):
    return (fun(x + h * v) - fun(x - h * v)) / (2 * h)


X = np.array([0.3, -0.7, 1.1, 0.4, -0.2])


def test_gradient_and_value():
    g = llad.gradient(energy, X, 100.0)
    for v in np.eye(X.size):
        assert abs(g @ v - fd(lambda z: energy(z, 100.0), X, v)) < 1e-5 * max(1, abs(g @ v))
    value, g2 = llad.value_and_gradient(energy, X, llad.Const(100.0))
    assert value == pytest.approx(energy(X, 100.0), rel=1e-14)   # vector math: last bits may differ
    np.testing.assert_array_equal(g, g2)


def test_gradient_of_a_float_argument_is_a_float():
    g = llad.gradient(bump, 0.4)
    assert isinstance(g, float)
    assert abs(g - fd(bump, 0.4, 1.0)) < 1e-8


def test_derivative_of_float_and_array_results():
    d = llad.derivative(bump, 0.4)
    assert abs(d - fd(bump, 0.4, 1.0)) < 1e-8
    d = llad.derivative(curve, 0.4, 2.0)
    np.testing.assert_allclose(d, fd(lambda t: curve(t, 2.0), 0.4, 1.0), rtol=1e-7)
    with pytest.raises(TypeError, match="t must be a float"):
        llad.derivative(curve, np.array([0.4]), 2.0)


@settings(max_examples=20, deadline=None)
@given(st.lists(st.floats(-2, 2), min_size=5, max_size=5), st.lists(st.floats(-2, 2), min_size=6, max_size=6))
def test_pushforward_and_pullback_are_adjoint(vs, ws):
    """<w, J v> (pushforward) == <J^T w, v> (pullback), and J v against differences."""
    v, w = np.array(vs), np.array(ws)
    jv = llad.pushforward(field, X, v)
    np.testing.assert_allclose(jv, fd(field, X, v), rtol=1e-6, atol=1e-7)
    jtw = llad.pullback(field, X, w)
    lhs, rhs = float(w @ jv), float(jtw @ v)
    assert abs(lhs - rhs) <= 1e-12 * max(1.0, abs(lhs) + abs(rhs))


def test_pullback_of_a_float_result_scales_the_gradient():
    np.testing.assert_allclose(llad.pullback(energy, X, 2.5, 100.0), 2.5 * llad.gradient(energy, X, 100.0),
                               rtol=1e-13)
    assert abs(llad.pullback(bump, 0.4, -2.0) + 2.0 * llad.gradient(bump, 0.4)) < 1e-13


def test_pushforward_of_a_float_result():
    v = np.linspace(-1, 1, X.size)
    t = llad.pushforward(energy, X, v, 100.0)
    assert abs(t - llad.gradient(energy, X, 100.0) @ v) < 1e-10 * max(1, abs(t))


def test_gradient_refuses_a_non_float_result():
    with pytest.raises(TypeError, match="needs a float result|reverse modes seed a float result"):
        llad.gradient(field, X)


@pytest.mark.parametrize("make", [
    lambda: np.arange(6.0),
    lambda: np.arange(12.0).reshape(3, 4),
    lambda: np.asfortranarray(np.arange(12.0).reshape(3, 4)),
    lambda: np.arange(12.0)[::3],
    lambda: np.arange(24.0, dtype=np.float32).reshape(4, 6)[:, 1::2],
], ids=["1d", "C", "F", "strided", "view-f32"])
def test_make_zero_keeps_the_layout(make):
    x = make()
    z = llad.make_zero(x)
    assert z.shape == x.shape and z.dtype == x.dtype and z.strides == x.strides
    assert not np.shares_memory(z, x) and not z.any()
    assert llad.make_zero(2.5) == 0.0 and llad.make_zero((x, 1.0))[1] == 0.0


def test_prepared_operators_match_and_write_out():
    p = llad.prepare(llad.gradient, energy, X, 100.0)
    out = np.full(X.size, 7.0)                       # out is overwritten, not accumulated into
    assert p(X, 100.0, out=out) is out
    np.testing.assert_array_equal(out, llad.gradient(energy, X, 100.0))
    np.testing.assert_array_equal(p(X, 100.0), out)
    pv = llad.prepare(llad.value_and_gradient, energy, X, 100.0)
    value, g = pv(X, 100.0)
    assert value == pytest.approx(energy(X, 100.0), rel=1e-14)   # vector math: last bits may differ
    pf = llad.prepare(llad.pushforward, field, X)
    v = np.ones(X.size)
    np.testing.assert_array_equal(pf(X, v), llad.pushforward(field, X, v))
    pb = llad.prepare(llad.pullback, field, X)
    w = np.ones(X.size + 1)
    np.testing.assert_array_equal(pb(X, w), llad.pullback(field, X, w))
    pj = llad.prepare(llad.jacobian, field, X)
    J = np.empty((X.size + 1, X.size))
    assert pj(X, out=J) is J
    np.testing.assert_allclose(J @ v, pf(X, v), rtol=1e-12)
    with pytest.raises(TypeError, match="takes x and 1 context"):
        p(X)
    with pytest.raises(TypeError, match="op must be one of llad's operators"):
        llad.prepare(np.sum, energy, X)


def test_prepared_operator_pickles():
    p = llad.prepare(llad.gradient, energy, X, 100.0)
    q = pickle.loads(pickle.dumps(p))
    np.testing.assert_array_equal(q(X, 100.0), p(X, 100.0))


def test_prepared_gradient_drives_scipy_minimize():
    from scipy.optimize import minimize
    x0 = np.full(6, -0.5)
    res = minimize(energy, x0, args=(100.0,), jac=llad.prepare(llad.gradient, energy, x0, 100.0), method="BFGS",
                   options={"gtol": 1e-9})
    assert res.success and np.allclose(res.x, 1.0, atol=1e-6)
