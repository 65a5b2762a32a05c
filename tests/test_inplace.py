"""In-place updates `a[p] = a[p] ± e` whose reverse leaves the adjoint in the shadow instead of zeroing
it and adding it back (analysis/inplace.py): every mode against central differences and against each
other, where the update's other reads may alias its element and where a write in between rules it out."""
from __future__ import annotations

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import llad
from llad.testing import check_grads


@numba.njit
def eliminate(a):
    """Row elimination without pivoting: `a[i, j] -= f * a[k, j]`, rows of one array."""
    n = a.shape[0]
    s = 0.0
    for k in range(n - 1):
        for i in range(k + 1, n):
            f = a[i, k] / a[k, k]
            for j in range(k + 1, n):
                a[i, j] -= f * a[k, j]
        s += a[k, k] * a[k, k]
    return s + a[n - 1, n - 1]


@numba.njit
def gather_add(a, idx, c):
    """`a[i] += c * a[idx[i]]`: the other read may be the updated element itself (idx[i] == i)."""
    for i in range(a.shape[0]):
        a[i] += c * a[idx[i]]
    s = 0.0
    for i in range(a.shape[0]):
        s += a[i] * a[i]
    return s


@numba.njit
def subtract_from(a, b):
    """`a[i] = a[i] - b[i] * a[i]`: the loaded value is used twice (not an in-place update)."""
    for i in range(a.shape[0]):
        a[i] = a[i] - b[i] * a[i]
    return np.sum(a * a)


@numba.njit
def written_between(y, x, b):
    for i in range(y.shape[0]):
        t = y[i]
        b[i] = 3.0 * x[i]
        y[i] = t + x[i]
    s = 0.0
    for i in range(y.shape[0]):
        s += y[i] * y[i] + b[i]
    return s


@numba.njit
def axpy_inplace(y, x):
    for i in range(y.shape[0]):
        y[i] += 2.0 * x[i]
    s = 0.0
    for i in range(y.shape[0]):
        s += y[i] * y[i]
    return s


def _spd(n, seed):
    rng = np.random.default_rng(seed)
    m = rng.standard_normal((n, n))
    return m @ m.T + n * np.eye(n)


def test_elimination_every_mode():
    assert check_grads(eliminate, _spd(5, 1)) > 0


def test_elimination_gradient_matches_forward_columns():
    """The reverse gradient against forward mode, one direction per element."""
    a = _spd(4, 2)
    da = np.zeros_like(a)
    llad.autodiff(llad.Reverse, eliminate, llad.Active, llad.Duplicated(a.copy(), da))
    fwd = np.empty_like(a)
    for e in range(a.size):
        v = np.zeros(a.size)
        v[e] = 1.0
        (t,) = llad.autodiff(llad.Forward, eliminate, llad.Duplicated(a.copy(), v.reshape(a.shape)))
        fwd.flat[e] = t
    np.testing.assert_allclose(da, fwd, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("idx", [np.arange(6), np.array([0, 0, 1, 3, 3, 5]), np.array([5, 4, 3, 2, 1, 0])])
def test_gather_add_aliasing_reads(idx):
    a = np.linspace(-1.0, 2.0, 6)
    assert check_grads(gather_add, a, idx, 0.7) > 0


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(0, 7), min_size=8, max_size=8), st.floats(-2.0, 2.0))
def test_gather_add_random_indices(idx, c):
    """Against a hand-derived adjoint: a_new[i] = a[i] + c * a_cur[idx[i]], in order."""
    idx = np.array(idx, dtype=np.int64)
    a0 = np.linspace(0.3, 1.7, 8)
    da = np.zeros(8)
    llad.autodiff(llad.Reverse, gather_add, llad.Active, llad.Duplicated(a0.copy(), da), llad.Const(idx), llad.Const(c))
    # forward sweep by hand, then the reverse of each update
    a = a0.copy()
    for i in range(8):
        a[i] += c * a[idx[i]]
    g = 2.0 * a
    for i in reversed(range(8)):
        g[idx[i]] += c * g[i]
    np.testing.assert_allclose(da, g, rtol=1e-12, atol=1e-12)


def test_not_in_place_every_mode():
    assert check_grads(subtract_from, np.linspace(0.5, 2.0, 5), np.linspace(-0.3, 0.9, 5)) > 0


def test_written_between_every_mode():
    assert check_grads(written_between, np.linspace(0.5, 2.0, 4), np.linspace(-1.0, 1.0, 4), np.zeros(4)) > 0


def test_axpy_every_mode():
    assert check_grads(axpy_inplace, np.linspace(0.5, 2.0, 4), np.linspace(-1.0, 1.0, 4)) > 0
