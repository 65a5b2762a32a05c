"""`llad.config.vector_math`: llad's branch-free exp in derivative code.  Accuracy against NumPy's
(glibc) exp over 10^7 points and at the special values; derivatives stay right; the setting is part of
the plan, so turning it off gives libm's exp (the primal bit for bit) again."""
from __future__ import annotations

import math

import numba
import numpy as np
import pytest

import llad


@numba.njit
def elementwise_exp(x, y):
    for i in range(x.size):
        y[i] = math.exp(x[i])


@numba.njit
def elementwise_exp32(x, y):
    for i in range(x.size):
        y[i] = math.exp(x[i])


@pytest.fixture
def vector_math():
    old = llad.config.vector_math
    llad.config.vector_math = True
    yield
    llad.config.vector_math = old


# IEEE special values, the overflow and underflow boundaries, subnormal results: identical to libm
SPECIAL = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 709.782712893384, 709.7827128933841, -745.1332191019412,
                    -745.1332191019411, -708.4, -709.0, -744.44, 1e-300, -1e-300, 5e-324])


def _ulps(a, b):
    return np.abs(a.view(np.int64) - b.view(np.int64))


def test_exp_within_one_ulp_of_libm(vector_math):
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(-745.2, 709.8, 4_000_000), rng.uniform(-20, 20, 4_000_000),
                        rng.standard_normal(2_000_000), SPECIAL])
    y, ty = np.zeros_like(x), np.zeros_like(x)
    with np.errstate(over="ignore"):
        expected = np.exp(x)
    llad.autodiff(llad.Forward, elementwise_exp, llad.Duplicated(x, np.ones_like(x)), llad.Duplicated(y, ty))
    nan = np.isnan(expected)
    assert np.array_equal(np.isnan(y), nan)
    assert _ulps(y[~nan], expected[~nan]).max() <= 1
    tail = slice(len(x) - len(SPECIAL), None)
    np.testing.assert_array_equal(y[tail][~nan[tail]], expected[tail][~nan[tail]])
    np.testing.assert_array_equal(ty[~nan], y[~nan])          # d exp = exp: the tangent of ones is the value


def test_float32_exp(vector_math):
    x = np.linspace(-103.0, 88.5, 100_001, dtype=np.float32)
    y, ty = np.zeros_like(x), np.zeros_like(x)
    llad.autodiff(llad.Forward, elementwise_exp32, llad.Duplicated(x, np.ones_like(x)), llad.Duplicated(y, ty))
    with np.errstate(over="ignore"):
        expected = np.exp(x.astype(np.float64)).astype(np.float32)   # correctly rounded up to double rounding
    assert _ulps(y.view(np.int32).astype(np.int64), expected.view(np.int32).astype(np.int64)).max() <= 1


@numba.njit
def lse(x):
    m = -np.inf
    for i in range(x.size):
        m = max(m, x[i])
    s = 0.0
    for i in range(x.size):
        s += math.exp(x[i] - m)
    return m + math.log(s)


def test_gradients_through_the_vectorised_exp(vector_math):
    x = np.random.default_rng(1).standard_normal(300) * 3
    g = np.zeros_like(x)
    llad.autodiff(llad.Reverse, lse, llad.Duplicated(x, g))
    soft = np.exp(x - x.max())
    np.testing.assert_allclose(g, soft / soft.sum(), rtol=1e-12)
    assert llad.testing.check_grads(lse, x[:6]) >= 7


def test_the_switch_is_part_of_the_plan():
    x = np.random.default_rng(2).uniform(-30, 30, 10_000)
    old = llad.config.vector_math
    try:
        results = {}
        for on in (True, False):
            llad.config.vector_math = on
            y = np.zeros_like(x)
            llad.autodiff(llad.ForwardWithPrimal, elementwise_exp, llad.Duplicated(x, np.ones_like(x)),
                          llad.Duplicated(y, np.zeros_like(y)))
            results[on] = y
    finally:
        llad.config.vector_math = old
    expected = np.zeros_like(x)
    elementwise_exp(x, expected)
    np.testing.assert_array_equal(results[False], expected)       # libm's exp: Numba's primal bit for bit
    assert 0 < np.count_nonzero(results[True] != expected) and _ulps(results[True], expected).max() <= 1
