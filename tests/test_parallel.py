"""`@njit(parallel=True)` functions: llad differentiates their serial copy (prange runs as range there,
docs/parallel.md), so their derivatives are those of the loop's mathematics, in every mode, and a
function that calls a parallel one is differentiated too."""
from __future__ import annotations

import numba
import numpy as np
import pytest

import llad
from llad import parallel
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


# --- the parallel reverse sweep (llad/parallel.py) ------------------------------------------------------------
@numba.njit(parallel=True)
def rows_written(X, w, out):            # independent rows, nothing returned: the shadow of out is the seed
    for i in numba.prange(X.shape[0]):
        acc = 0.0
        for j in range(X.shape[1]):
            acc += np.tanh(X[i, j] * w[j])
        out[i] = acc * acc


@numba.njit(parallel=True)
def scaled_reduction(x, w, a):           # an Active scalar, and x updated in place as it is read
    s = 0.0
    for i in numba.prange(x.shape[0]):
        v = np.exp(-a * x[i]) * w[i % 3]
        x[i] = v
        s += v * v
    return s


@numba.njit(parallel=True)
def neighbours(x, out):                 # x[i + 1] and x[i - 1] (x[-1] at i = 0): not owned rows of x
    for i in numba.prange(x.shape[0] - 1):
        out[i] = x[i + 1] * x[i - 1]


@numba.njit(parallel=True)
def reversed_copy(x, out):              # out[i] from x[n - 1 - i]: each thread's adjoints land in the other's half
    for i in numba.prange(x.shape[0]):
        out[i] = x[x.shape[0] - 1 - i] ** 2


@numba.njit(parallel=True)
def two_loops(x):                       # not of the shape: the serial derivative
    s = 0.0
    for i in numba.prange(x.shape[0]):
        s += x[i] * x[i]
    for i in numba.prange(x.shape[0]):
        s += np.sin(x[i])
    return s


def _both(f, make, parallel_sweep=True):
    """(parallel result, serial result): the call with Numba's two threads (through the parallel sweep, or
    not when `parallel_sweep` is False) and with one."""
    out = []
    for threads in (2, 1):
        calls = parallel.taken["calls"]
        saved = numba.get_num_threads()
        numba.set_num_threads(threads)
        try:
            out.append(make())
        finally:
            numba.set_num_threads(saved)
        assert parallel.taken["calls"] - calls == (threads == 2 and parallel_sweep), (f, threads)
    return out


def _grads(f, mode, ret, *arrays_and_consts, parallel_sweep=True):
    def make():
        args, shadows = [], []
        for kind, v, seed in arrays_and_consts:
            v = v.copy() if isinstance(v, np.ndarray) else v
            if kind == "dup":
                s = np.array(seed, copy=True)
                shadows.append(s)
                args.append(llad.Duplicated(v, s))
            elif kind == "active":
                args.append(llad.Active(v))
            else:
                args.append(llad.Const(v))
            if kind != "active" and isinstance(v, np.ndarray):
                shadows.append(v)        # the arrays' final values are compared too
        res = llad.autodiff(mode, f, *([ret] if ret else []), *args)
        return res, shadows
    return _both(f, make, parallel_sweep)


def _same(a, b, rtol=1e-12):
    (res_a, arr_a), (res_b, arr_b) = a, b
    for x, y in zip(arr_a, arr_b):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=1e-13)
    for x, y in zip(res_a[0], res_b[0]):
        assert (x is None) == (y is None)
        if x is not None:
            assert x == pytest.approx(y, rel=rtol)
    if len(res_a) > 1 and res_a[1] is not None:
        assert res_a[1] == pytest.approx(res_b[1], rel=rtol)


N = 4000


def test_the_shapes_parallel_reverse_recognises():
    assert parallel.shape_of(prange_reduction).reduction
    assert parallel.shape_of(row_updates).post is not None
    assert parallel.shape_of(rows_written).owned == frozenset({"X", "out"})
    assert parallel.shape_of(scaled_reduction).written == frozenset({"x"})
    assert parallel.shape_of(two_loops) is None


@pytest.mark.parametrize("mode", [llad.Reverse, llad.ReverseWithPrimal])
def test_a_reduction_in_parallel_is_the_serial_gradient(mode):
    r = _rng(3)
    x, w = r.uniform(0.1, 1.0, N), np.array([0.7])
    _same(*_grads(prange_reduction, mode, llad.Active, ("dup", x, np.zeros(N)), ("dup", w, np.ones(1))))
    _same(*_grads(prange_reduction, mode, None, ("dup", x, np.zeros(N)), ("const", w, None)))


@pytest.mark.parametrize("mode", [llad.Reverse, llad.ReverseWithPrimal])
def test_row_updates_in_parallel_are_the_serial_gradient(mode):
    r = _rng(4)
    X, w = r.standard_normal((600, 7)), r.uniform(0.1, 0.5, 7)
    seeds = r.standard_normal(600)
    _same(*_grads(rows_written, mode, None, ("dup", X, np.zeros_like(X)), ("dup", w, np.zeros(7)),
                  ("dup", np.zeros(600), seeds)))
    _same(*_grads(row_updates, mode, llad.Active, ("dup", X, np.zeros_like(X)), ("dup", w, np.zeros(7)),
                  ("dup", np.zeros(600), seeds)))


def test_rows_read_by_several_iterations_get_private_shadows():
    """x[i + 1] and x[i - 1] (Python's x[-1] at i = 0, kept by the chunk's typing): the adjoints of x from
    both threads meet, so each thread has its own shadow of x, summed afterwards."""
    r = _rng(8)
    x = r.uniform(0.1, 1.0, N)
    assert parallel.shape_of(neighbours).owned == frozenset({"out"})
    _same(*_grads(neighbours, llad.Reverse, None, ("dup", x, r.standard_normal(N)),
                  ("dup", np.zeros(N), r.standard_normal(N))))
    _same(*_grads(reversed_copy, llad.Reverse, None, ("dup", x, np.zeros(N)), ("dup", np.zeros(N), np.ones(N))))


def test_a_chunk_llad_cannot_build_falls_back_for_good(monkeypatch):
    """Anything failing while the chunk's derivative or driver is built (a chunk that does not type, a
    refusal) gives the serial derivative, now and for later calls."""
    @numba.njit(parallel=True)
    def cubes(x):
        s = 0.0
        for i in numba.prange(x.shape[0]):
            s += x[i] ** 3
        return s

    def broken(*args):
        raise RuntimeError("no driver")

    monkeypatch.setattr(parallel, "_chunk_driver", broken)
    x = _rng(9).uniform(0.1, 1.0, N)
    _same(*_grads(cubes, llad.Reverse, llad.Active, ("dup", x, np.zeros(N)), parallel_sweep=False))
    assert parallel.shape_of(cubes) is None


def test_an_active_scalar_and_an_array_updated_in_place():
    r = _rng(5)
    x, w = r.uniform(0.1, 1.0, N), np.array([0.5, 1.5, -0.25])
    for mode in (llad.Reverse, llad.ReverseWithPrimal):
        _same(*_grads(scaled_reduction, mode, llad.Active, ("dup", x, r.standard_normal(N)),
                      ("dup", w, np.zeros(3)), ("active", 0.8, None)))


def test_shapes_it_cannot_take_get_the_serial_derivative():
    r = _rng(6)
    x = r.uniform(0.1, 1.0, N)
    _same(*_grads(two_loops, llad.Reverse, llad.Active, ("dup", x, np.zeros(N)), parallel_sweep=False))

    small = x[:10]                        # too few iterations to share
    _same(*_grads(prange_reduction, llad.Reverse, llad.Active, ("dup", small, np.zeros(10)),
                  ("const", np.array([0.7]), None), parallel_sweep=False))
    def strided():                        # a strided array: the chunks' private shadows could not be its layout
        x2 = np.repeat(x, 2)[::2]
        dx = np.zeros(N)
        llad.autodiff(llad.Reverse, prange_reduction, llad.Active, llad.Duplicated(x2, dx), llad.Const(np.ones(1)))
        return ((None, None),), [dx]
    _same(*_both(prange_reduction, strided, parallel_sweep=False))


def test_the_parallel_sweep_is_taken_and_matches_differences():
    """With two threads the chunk derivative runs (its driver is compiled) and the gradient matches central
    differences of the parallel function itself."""
    r = _rng(7)
    x, w = r.uniform(0.1, 1.0, N), np.array([0.7])
    before = len(parallel._drivers)
    (_, arrays), _ = _grads(prange_reduction, llad.Reverse, llad.Active, ("dup", x, np.zeros(N)),
                            ("const", w, None))
    dx = arrays[0]
    assert len(parallel._drivers) >= max(before, 1)
    assert any(k[0] == id(parallel.shape_of(prange_reduction)) for k in parallel._drivers)
    h, k = 1e-6, 17
    e = np.zeros(N)
    e[k] = h
    fd = (prange_reduction(x + e, w) - prange_reduction(x - e, w)) / (2 * h)
    assert dx[k] == pytest.approx(fd, rel=1e-7)


@numba.njit(parallel=True)
def inverse_sum(x):
    s = 0.0
    for i in numba.prange(x.shape[0]):
        s += 1.0 / x[i]
    return s


@numba.njit(parallel=True)
def inverse_in_place(x):
    s = 0.0
    for i in numba.prange(x.shape[0]):
        x[i] = 1.0 / x[i]
        s += x[i]
    return s


def test_an_exception_in_a_chunk_is_raised_not_lost():
    """Numba's parallel region drops an exception its body raises: the sweep notices the chunk that stopped
    and raises its exception (the loop writes no array: f's chunk runs again on that range) or says what
    happened (it does), never returns what the stopped chunk left."""
    x = np.ones(N)
    x[N - 7] = 0.0
    for threads in (2, 1):
        saved = numba.get_num_threads()
        numba.set_num_threads(threads)
        try:
            with pytest.raises(ZeroDivisionError):
                llad.autodiff(llad.Reverse, inverse_sum, llad.Active, llad.Duplicated(x.copy(), np.zeros(N)))
            expected = RuntimeError if threads == 2 else ZeroDivisionError
            with pytest.raises(expected, match=None if threads == 1 else "parallel reverse sweep"):
                llad.autodiff(llad.Reverse, inverse_in_place, llad.Active, llad.Duplicated(x.copy(), np.zeros(N)))
        finally:
            numba.set_num_threads(saved)


@numba.njit
def _grow(x):
    x[0] += 1.0
    return x.shape[0]


@numba.njit(parallel=True)
def counted_by_a_call(x):               # the trip count's call writes x: not the shape
    s = 0.0
    for i in numba.prange(_grow(x)):
        s += x[i] * x[i]
    return s


def test_a_trip_count_with_a_call_or_overlapping_shadows_take_the_serial_derivative():
    assert parallel.shape_of(counted_by_a_call) is None
    x = _rng(10).uniform(0.1, 1.0, N)

    def overlapping():                   # x's and w's shadows are one array
        shadow = np.zeros(N)
        llad.autodiff(llad.Reverse, rows_written, llad.Duplicated(x.reshape(N // 4, 4), shadow.reshape(N // 4, 4)),
                      llad.Duplicated(np.ones(4), shadow[:4]), llad.Duplicated(np.zeros(N // 4), np.ones(N // 4)))
        return ((None, None, None),), [shadow]
    _same(*_both(rows_written, overlapping, parallel_sweep=False))
