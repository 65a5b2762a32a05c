"""`@njit(parallel=True)` functions: llad differentiates their serial copy (prange runs as range there,
docs/parallel.md), so their derivatives are those of the loop's mathematics, in every mode, and a
function that calls a parallel one is differentiated too."""
from __future__ import annotations

import numba
import numpy as np

import llad
from llad.testing import check_grads


@numba.njit(parallel=True)
def prange_reduction(x, w):             # a prange loop with a sum reduction
    s = 0.0
    for i in numba.prange(x.shape[0]):
        s += np.sin(x[i] * w[0]) * x[i]
    return s


@numba.njit(parallel=True)
def row_updates(X, w, out):             # independent rows written in place, then reduced
    for i in numba.prange(X.shape[0]):
        acc = 0.0
        for j in range(X.shape[1]):
            acc += np.tanh(X[i, j] * w[j])
        out[i] = acc * acc
    return out.sum()


@numba.njit
def calls_a_parallel_function(x, w):    # a serial function with a parallel callee
    return 2.0 * prange_reduction(x, w) + x[0]


@numba.njit
def gradient_inside_njit(x, w, gx):
    llad.autodiff(llad.Reverse, prange_reduction, llad.Active, llad.Duplicated(x, gx), llad.Const(w))


def _rng(seed):
    return np.random.default_rng(seed)


def test_a_prange_reduction_in_every_mode():
    r = _rng(1)
    assert check_grads(prange_reduction, r.uniform(0.1, 1.0, 40), np.array([0.7])) > 0


def test_row_updates_in_every_mode():
    r = _rng(2)
    assert check_grads(row_updates, r.standard_normal((12, 5)), r.uniform(0.1, 0.5, 5), np.zeros(12)) > 0


def test_the_gradient_is_the_loops_own():
    x, w = np.linspace(0.1, 1.0, 50), np.array([0.7])
    dx, dw = np.zeros(50), np.zeros(1)
    (_, primal) = llad.autodiff(llad.ReverseWithPrimal, prange_reduction, llad.Active, llad.Duplicated(x, dx),
                                llad.Duplicated(w, dw))
    np.testing.assert_allclose(dx, np.cos(x * 0.7) * 0.7 * x + np.sin(x * 0.7), rtol=1e-13)
    np.testing.assert_allclose(dw, [np.sum(np.cos(x * 0.7) * x * x)], rtol=1e-13)
    assert primal == np.float64(prange_reduction(x, w)) or abs(primal - prange_reduction(x, w)) < 1e-12


def test_a_parallel_callee_and_a_call_inside_njit():
    x, w = np.linspace(0.1, 1.0, 30), np.array([1.3])
    expected = np.cos(x * 1.3) * 1.3 * x + np.sin(x * 1.3)
    dx = np.zeros(30)
    llad.autodiff(llad.Reverse, calls_a_parallel_function, llad.Active, llad.Duplicated(x, dx), llad.Const(w))
    expected_caller = 2.0 * expected
    expected_caller[0] += 1.0
    np.testing.assert_allclose(dx, expected_caller, rtol=1e-13)
    gx = np.zeros(30)
    gradient_inside_njit(x, w, gx)
    np.testing.assert_allclose(gx, expected, rtol=1e-13)
