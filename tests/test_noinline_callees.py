"""Functions Numba keeps out of line (`noinline`) stay calls: they must not break differentiation.

Numba marks the `__excinfo_unwrap_args` helper of an exception raised with run-time arguments
`noinline`; marking it `alwaysinline` too made the derivative module invalid IR (a raw LLVM verifier
error) for every mode of any function using `np.diff`, `np.ediff1d`, `np.kron`, or `raise E("...", i)`.
"""
from __future__ import annotations

import numba
import numpy as np
import pytest

import llad


def central_gradient(f, x, h=1e-6):
    out = np.empty_like(x)
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = h
        out[i] = (f(x + e) - f(x - e)) / (2 * h)
    return out


@numba.njit
def diff_loss(x):
    d = np.diff(x)
    return np.sum(d * d)


@numba.njit
def ediff_loss(x):
    d = np.ediff1d(x)
    return np.sum(d * d * d)


@numba.njit
def kron_loss(x, y):
    k = np.kron(x, y)
    return np.sum(k * k)


@numba.njit
def raise_with_index(x, n):
    s = 0.0
    for i in range(n):
        if x[i] > 100.0:
            raise ValueError("entry too large at", i)
        s += x[i] * x[i] * x[i]
    return s


def _reverse(f, *args, diff=(0,)):
    shadows = [np.zeros_like(a) for a in args]
    ann = [llad.Duplicated(a.copy(), s) if i in diff else llad.Const(a) for i, (a, s) in enumerate(zip(args, shadows))]
    llad.autodiff(llad.Reverse, f, llad.Active, *ann)
    return shadows


def _forward(f, x, v, *rest):
    (t,) = llad.autodiff(llad.Forward, f, llad.Duplicated(x.copy(), v), *rest)
    return t


@pytest.mark.parametrize("f", [diff_loss, ediff_loss], ids=["diff", "ediff1d"])
def test_diff_family_differentiates_in_both_modes(f):
    rng = np.random.default_rng(1)
    x = rng.normal(size=7)
    (g,) = _reverse(f, x)
    np.testing.assert_allclose(g, central_gradient(lambda v: f(v), x), rtol=1e-6, atol=1e-8)
    v = rng.normal(size=7)
    assert _forward(f, x, v) == pytest.approx(g @ v, rel=1e-10)


def test_kron_differentiates_in_both_modes():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=3), rng.normal(size=4)
    gx, gy = _reverse(kron_loss, x, y, diff=(0, 1))
    np.testing.assert_allclose(gx, central_gradient(lambda v: kron_loss(v, y), x), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(gy, central_gradient(lambda v: kron_loss(x, v), y), rtol=1e-6, atol=1e-8)


def test_raise_with_runtime_argument_differentiates_and_still_raises():
    x = np.array([0.5, 1.5, 2.0, 3.0])
    g, _ = _reverse(raise_with_index, x, np.int64(4))
    np.testing.assert_allclose(g, 3 * x * x)
    assert _forward(raise_with_index, x, np.ones(4), 4) == pytest.approx(np.sum(3 * x * x))
    bad, dbad = x.copy(), np.zeros(4)
    bad[2] = 1e3
    with pytest.raises(ValueError, match="entry too large at"):
        llad.autodiff(llad.Reverse, raise_with_index, llad.Active, llad.Duplicated(bad, dbad), 4)
    assert not dbad.any()


def test_linalg_solve_differentiates():
    """np.linalg.solve (whose __excinfo_unwrap_args helper Numba keeps out of line) has a LAPACK rule now
    (tests/test_blas.py has the rest): d sum(A⁻¹ b) / dA = -A⁻ᵀ 1 xᵀ."""
    @numba.njit
    def solve_loss(a, b):
        return np.sum(np.linalg.solve(a, b))

    a, b = np.eye(3) * 2.0 + 0.1, np.ones(3)
    da = np.zeros_like(a)
    llad.autodiff(llad.Reverse, solve_loss, llad.Active, llad.Duplicated(a, da), llad.Const(b))
    x = np.linalg.solve(a, b)
    np.testing.assert_allclose(da, -np.outer(np.linalg.solve(a.T, np.ones(3)), x), rtol=1e-12)
