"""Concurrency: many threads calling `llad.autodiff` at once on functions nobody compiled before.

Each thread makes 100 calls, cycling over three fresh functions and several modes, with its own
arrays.  Every result is checked against the closed form, and the number of derivatives compiled
(`llad.api.compile_count`) must equal the number of distinct (function, mode, activities, types)
keys: the per-key lock in `llad.api._get_derivative` must let exactly one thread build each one.
"""
from __future__ import annotations

import math
import sys
import threading

import numba
import numpy as np
import pytest

import llad
from llad import Active, Const, Duplicated, Forward, ForwardWithPrimal, Reverse, ReverseWithPrimal, api

N_THREADS = 8
CALLS_PER_THREAD = 100


def _fresh_functions():
    """Three functions created (and jitted) on each call, so no derivative of them exists yet."""

    @numba.njit
    def sumsq(x):
        s = 0.0
        for i in range(x.shape[0]):
            s += x[i] * x[i]
        return s

    @numba.njit
    def sin_scale(a, x):
        s = 0.0
        for i in range(x.shape[0]):
            s += a * math.sin(x[i])
        return s

    @numba.njit
    def square_into(x, y):
        for i in range(x.shape[0]):
            y[i] = x[i] * x[i] * 3.0

    return sumsq, sin_scale, square_into


def _jobs(sumsq, sin_scale, square_into):
    """(key, call) pairs; `call(rng)` runs one autodiff and checks its result."""

    def sumsq_rev(rng):
        x = rng.random(5)
        dx = np.zeros(5)
        derivs, p = llad.autodiff(ReverseWithPrimal, sumsq, Duplicated(x, dx))
        assert derivs == (None,)
        np.testing.assert_allclose(p, np.sum(x * x), rtol=1e-13)
        np.testing.assert_allclose(dx, 2 * x, rtol=1e-13)

    def sumsq_fwd(rng):
        x, v = rng.random(5), rng.random(5)
        (t,) = llad.autodiff(Forward, sumsq, Duplicated(x, v))
        np.testing.assert_allclose(t, np.dot(2 * x, v), rtol=1e-12)

    def sin_rev(rng):
        a, x = float(rng.random()), rng.random(4)
        dx = np.zeros(4)
        ((da, none),) = llad.autodiff(Reverse, sin_scale, Active(a), Duplicated(x, dx))
        assert none is None
        np.testing.assert_allclose(da, np.sum(np.sin(x)), rtol=1e-13)
        np.testing.assert_allclose(dx, a * np.cos(x), rtol=1e-13)

    def sin_fwd(rng):
        a, x, v = float(rng.random()), rng.random(4), rng.random(4)
        t, p = llad.autodiff(ForwardWithPrimal, sin_scale, Const(a), Duplicated(x, v))
        np.testing.assert_allclose(p, a * np.sum(np.sin(x)), rtol=1e-13)
        np.testing.assert_allclose(t, a * np.dot(np.cos(x), v), rtol=1e-12)

    def square_rev(rng):
        x, ybar = rng.random(6), rng.random(6)
        dx = np.zeros(6)
        dy = ybar.copy()
        y = np.zeros(6)
        llad.autodiff(Reverse, square_into, Duplicated(x, dx), Duplicated(y, dy))
        np.testing.assert_allclose(y, 3 * x * x, rtol=1e-13)
        np.testing.assert_allclose(dx, 6 * x * ybar, rtol=1e-13)

    def square_fwd(rng):
        x, v = rng.random(6), rng.random(6)
        y, dy = np.zeros(6), np.zeros(6)
        llad.autodiff(Forward, square_into, Duplicated(x, v), Duplicated(y, dy))
        np.testing.assert_allclose(dy, 6 * x * v, rtol=1e-13)

    return [sumsq_rev, sumsq_fwd, sin_rev, sin_fwd, square_rev, square_fwd]


def _run_threads(jobs, n_threads=N_THREADS, calls=CALLS_PER_THREAD):
    errors: list[BaseException] = []
    barrier = threading.Barrier(n_threads)

    def worker(k):
        rng = np.random.default_rng(1000 + k)
        try:
            barrier.wait()                 # start together so the first compilations race
            for i in range(calls):
                jobs[(i + k) % len(jobs)](rng)
        except BaseException as e:         # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(n_threads)]
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)            # switch threads often: more interleavings
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=600)
    finally:
        sys.setswitchinterval(old)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    if errors:
        raise errors[0]


def test_concurrent_calls_compile_each_derivative_once():
    jobs = _jobs(*_fresh_functions())
    before = api.compile_count["n"]
    _run_threads(jobs)
    # six distinct (function, mode, activities, argument types) keys: one derivative each
    assert api.compile_count["n"] - before == len(jobs)
    # and the cache now serves them without compiling
    _run_threads(jobs, n_threads=4, calls=12)
    assert api.compile_count["n"] - before == len(jobs)


def _plain_sumsq_job():
    def plain_sumsq(x):
        s = 0.0
        for i in range(x.shape[0]):
            s += x[i] * x[i]
        return s

    def job(rng):
        x = rng.random(5)
        dx = np.zeros(5)
        llad.autodiff(Reverse, plain_sumsq, Duplicated(x, dx))
        np.testing.assert_allclose(dx, 2 * x, rtol=1e-13)
    return job


def test_concurrent_calls_on_plain_python_function_results():
    """`f` given as a plain Python function (llad wraps it in numba.njit itself): correct results."""
    _run_threads([_plain_sumsq_job()], calls=20)


def test_concurrent_calls_on_plain_python_function_compile_once(monkeypatch):
    """As above, with the window between looking up and storing the wrapper widened (a short sleep in
    frontend.as_dispatcher), so that a race shows on every run rather than now and then.  (Until c335123
    each thread that first saw the function wrapped it in its own dispatcher and compiled its own
    derivative.)"""
    import time

    from llad import frontend
    real = frontend.as_dispatcher

    def slow_as_dispatcher(f):
        time.sleep(0.05)
        return real(f)

    monkeypatch.setattr(frontend, "as_dispatcher", slow_as_dispatcher)
    before = api.compile_count["n"]
    _run_threads([_plain_sumsq_job()], calls=5)
    assert api.compile_count["n"] - before == 1


@pytest.mark.parametrize("n_threads", [4])
def test_concurrent_errors_do_not_poison_the_cache(n_threads):
    """Threads that hit an annotation error while others compile: the good calls still succeed."""
    sumsq, _, _ = _fresh_functions()

    def good(rng):
        x = rng.random(3)
        dx = np.zeros(3)
        llad.autodiff(Reverse, sumsq, Duplicated(x, dx))
        np.testing.assert_allclose(dx, 2 * x, rtol=1e-13)

    def bad(rng):
        x = rng.random(3)
        with pytest.raises(ValueError, match="shadow of argument 0"):
            llad.autodiff(Reverse, sumsq, Duplicated(x, np.zeros(4)))

    before = api.compile_count["n"]
    _run_threads([good, bad], n_threads=n_threads, calls=20)
    assert api.compile_count["n"] - before == 1
