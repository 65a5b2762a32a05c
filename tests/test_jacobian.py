"""`llad.jacobian`: forward (batched columns) and reverse (split-mode rows) against central differences
and against each other, for results taller and wider than x."""
from __future__ import annotations

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import llad
import llad.operators as ops


@numba.njit
def tall(x):
    out = np.empty(3 * x.size)
    for i in range(x.size):
        out[3 * i] = np.sin(x[i])
        out[3 * i + 1] = x[i] * x[(i + 1) % x.size]
        out[3 * i + 2] = np.exp(-x[i])
    return out


@numba.njit
def wide(x, c):
    out = np.zeros(2)
    for i in range(x.size):
        out[0] += c * x[i] ** 2
        out[1] += np.cos(x[i]) * x[0]
    return out


@numba.njit
def matrix_result(x):          # a 2-D result from a 2-D x, flattened in C order on both sides
    out = np.empty((x.shape[1], x.shape[0]))
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            out[j, i] = x[i, j] * x[i, 0] + np.tanh(x[i, j])
    return out


@numba.njit
def scalar(x):
    return np.sum(x ** 3) * x[0]


def fd_jacobian(f, x, *ctx, h=1e-6):
    cols = []
    for j in range(x.size):
        e = np.zeros(x.size)
        e[j] = h
        e = e.reshape(x.shape)
        cols.append((np.ravel(f(x + e, *ctx)) - np.ravel(f(x - e, *ctx))) / (2 * h))
    return np.array(cols).T


CASES = [(tall, np.linspace(0.1, 1, 9), ()), (wide, np.linspace(0.1, 1, 20), (1.5,)),
         (matrix_result, np.linspace(0.1, 1, 12).reshape(3, 4), ()), (scalar, np.linspace(0.1, 1, 5), ()),
         (tall, np.array([0.3]), ())]


@pytest.mark.parametrize("batch", [1, 8, 10**9], ids=["reverse-when-m<=n", "auto", "forward"])
@pytest.mark.parametrize("f,x,ctx", CASES, ids=lambda c: getattr(c, "__name__", ""))
def test_jacobian_matches_differences(monkeypatch, batch, f, x, ctx):
    monkeypatch.setattr(ops, "JACOBIAN_BATCH", batch)
    x0 = x.copy()
    J = llad.jacobian(f, x, *ctx)
    np.testing.assert_array_equal(x, x0)          # x is not written
    expected = fd_jacobian(f, x, *ctx)
    assert J.shape == expected.shape == (np.size(f(x, *ctx)), x.size)
    np.testing.assert_allclose(J, expected, rtol=1e-6, atol=1e-7)


@settings(max_examples=20, deadline=None)
@given(st.lists(st.floats(-2, 2), min_size=2, max_size=12))
def test_forward_and_reverse_jacobians_agree(xs):
    x = np.array(xs)
    old = ops.JACOBIAN_BATCH
    try:
        ops.JACOBIAN_BATCH = 10**9
        forward = llad.jacobian(tall, x)
        ops.JACOBIAN_BATCH = 1
        reverse_rows = llad.jacobian(wide, x, 0.7)
        ops.JACOBIAN_BATCH = 10**9
        forward_wide = llad.jacobian(wide, x, 0.7)
    finally:
        ops.JACOBIAN_BATCH = old
    np.testing.assert_allclose(reverse_rows, forward_wide, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(forward, fd_jacobian(tall, x), rtol=1e-5, atol=1e-6)


def test_jacobian_refuses_what_it_cannot_compute():
    @numba.njit
    def ints(x):
        return np.arange(3)
    with pytest.raises(TypeError, match="f must return a float or a float array"):
        llad.jacobian(ints, np.ones(3))
    with pytest.raises(TypeError, match="x must be a float32 or float64 array"):
        llad.jacobian(tall, [1.0, 2.0])
