"""Nested differentiation: derivatives of functions that call `llad.autodiff` inside `@njit`.

Forward over reverse (Hessian-vector products), k directions over reverse (Hessian columns), forward
over forward and reverse over forward, each against central differences of the gradient and against
each other; `llad.hvp` / `llad.hessian` against scipy's Rosenbrock Hessian.  Reverse over reverse is
refused with a DifferentiationError.
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numba
import numpy as np
import pytest
import scipy.optimize

import llad


@numba.njit
def rosen(x):
    s = 0.0
    for i in range(x.shape[0] - 1):
        s += 100.0 * (x[i + 1] - x[i] ** 2) ** 2 + (1.0 - x[i]) ** 2
    return s


@numba.njit
def gmm_loglik(params, data):
    """Negative log-likelihood of a 1-D mixture of k Gaussians; params = (logit weights, means, log sds)."""
    k = params.shape[0] // 3
    total = 0.0
    for n in range(data.shape[0]):
        m = -1e300
        for j in range(k):
            z = (data[n] - params[k + j]) * math.exp(-params[2 * k + j])
            a = params[j] - 0.5 * z * z - params[2 * k + j]
            m = max(m, a)
        s = 0.0
        for j in range(k):
            z = (data[n] - params[k + j]) * math.exp(-params[2 * k + j])
            s += math.exp(params[j] - 0.5 * z * z - params[2 * k + j] - m)
        total -= m + math.log(s)
    norm = -1e300
    for j in range(k):
        norm = max(norm, params[j])
    z = 0.0
    for j in range(k):
        z += math.exp(params[j] - norm)
    return total + data.shape[0] * (norm + math.log(z))


@numba.njit
def rk4_loss(y0, dt, steps):
    """A ring of nonlinear oscillators integrated by RK4; the loss is the final state's energy."""
    n = y0.shape[0]
    y = y0.copy()
    k1, k2, k3, k4, t = np.empty(n), np.empty(n), np.empty(n), np.empty(n), np.empty(n)
    for _ in range(steps):
        for i in range(n):
            k1[i] = math.sin(y[(i + 1) % n]) - y[i] * y[i] * 0.1
        for i in range(n):
            t[i] = y[i] + 0.5 * dt * k1[i]
        for i in range(n):
            k2[i] = math.sin(t[(i + 1) % n]) - t[i] * t[i] * 0.1
        for i in range(n):
            t[i] = y[i] + 0.5 * dt * k2[i]
        for i in range(n):
            k3[i] = math.sin(t[(i + 1) % n]) - t[i] * t[i] * 0.1
        for i in range(n):
            t[i] = y[i] + dt * k3[i]
        for i in range(n):
            k4[i] = math.sin(t[(i + 1) % n]) - t[i] * t[i] * 0.1
        for i in range(n):
            y[i] += dt / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i])
    s = 0.0
    for i in range(n):
        s += y[i] * y[i]
    return s


@numba.njit
def inplace_loop(x):
    """Overwrites its input; the loop keeps sin(x[i]) on the tape."""
    s = 0.0
    for i in range(x.shape[0]):
        x[i] = math.sin(x[i]) * x[i]
        s += x[i] * x[(i + 1) % x.shape[0]]
    return s


@numba.njit
def branchy(x):
    s = 0.0
    i = 0
    while s < 4.0 and i < 50:
        v = x[i % x.shape[0]]
        if v > 0.5:
            s += v ** 3
        else:
            s += math.log(v) * v + 1.0
        i += 1
    return s * s


@numba.njit
def multi_exit(x):
    """Loops with a data-dependent break and an early return: their reverse sweeps have several entries,
    which forward mode over them (HVP) must take as they are."""
    s = 0.0
    for i in range(x.shape[0]):
        s += math.sin(x[i]) * x[i] ** 2
        if s > 2.5:
            break
    for j in range(x.shape[0]):
        if x[j] > 1.4:
            return s * x[j]
        s += x[j] * s * 0.1
    return s


@numba.njit
def median_in_a_loop(x):
    """np.median's temporary in a loop: the inner reverse derivative keeps the temporary's shadow data
    pointer at byte 24 of a tape record, where a meminfo keeps its data pointer (it is not a meminfo)."""
    s = 0.0
    for i in range(3):
        m = np.median(x)
        s += m * m * x[i]
        x[i + 1] = x[i + 1] * m
    return s


@numba.njit
def cumsum_exit(x):
    """A temporary whose shadow the inner reverse derivative zeroes with a memset after reading it back from
    its tape, where the outer forward mode may find no tangent for it (mixed memory)."""
    s = 0.0
    for i in range(x.shape[0] - 1):
        s += x[i] * x[i] * x[i + 1]
        if np.cumsum(x)[i + 1] < 0.0:
            break
    return s


def _gradient(f, x, *ctx):
    g = np.zeros_like(x)
    llad.autodiff(llad.Reverse, f, llad.Active, llad.Duplicated(x.copy(), g), *(llad.Const(c) for c in ctx))
    return g


def _fd_hvp(f, x, v, *ctx, h=1e-6):
    return (_gradient(f, x + h * v, *ctx) - _gradient(f, x - h * v, *ctx)) / (2 * h)


CASES = {
    "gmm": (gmm_loglik, lambda r: (np.concatenate([r.normal(size=3), r.normal(size=3), 0.3 * r.normal(size=3)]),
                                   r.normal(size=40))),
    "rk4": (rk4_loss, lambda r: (r.uniform(-1, 1, 6), 0.05, 40)),
    "inplace": (inplace_loop, lambda r: (r.uniform(0.2, 1.5, 7),)),
    "branches": (branchy, lambda r: (r.uniform(0.2, 0.9, 6),)),
    "rosen": (rosen, lambda r: (r.uniform(-1.5, 1.5, 8),)),
    "multi-exit-taken": (multi_exit, lambda r: (np.array([1.2, 0.9, 1.3, 1.45, 0.8, 1.1]),)),
    "multi-exit-not-taken": (multi_exit, lambda r: (r.uniform(0.1, 0.4, 6),)),
    "median-in-a-loop": (median_in_a_loop, lambda r: (r.uniform(-1.0, 1.0, 7),)),
    "cumsum-exit": (cumsum_exit, lambda r: (np.array([0.8, 0.6, -1.9, 0.7, 0.4]),)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_hvp_agrees_with_differences_of_the_gradient_and_with_the_hessian(name):
    f, make = CASES[name]
    rng = np.random.default_rng(7)
    x, *ctx = make(rng)
    v = rng.normal(size=x.shape)
    hv = llad.hvp(f, x, v, *ctx)
    fd = _fd_hvp(f, x, v, *ctx)
    assert np.max(np.abs(hv - fd)) <= 1e-6 * max(1.0, np.max(np.abs(fd)))
    H = llad.hessian(f, x, *ctx)
    assert np.max(np.abs(H - H.T)) <= 1e-10 * max(1.0, np.max(np.abs(H)))
    np.testing.assert_allclose(H @ v, hv, rtol=1e-10, atol=1e-10 * max(1.0, np.max(np.abs(hv))))


def test_rosenbrock_against_scipy():
    rng = np.random.default_rng(3)
    x, v = rng.uniform(-2, 2, 12), rng.normal(size=12)
    np.testing.assert_allclose(llad.hvp(rosen, x, v), scipy.optimize.rosen_hess_prod(x, v), rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(llad.hessian(rosen, x), scipy.optimize.rosen_hess(x), rtol=1e-12, atol=1e-9)


@numba.njit
def grad_rosen(x, gx):
    llad.autodiff(llad.Reverse, rosen, llad.Active, llad.Duplicated(x, gx))


@numba.njit
def jvp_rosen(x, v):
    return llad.autodiff(llad.Forward, rosen, llad.Duplicated(x, v))[0]


def test_forward_over_reverse_written_by_hand():
    rng = np.random.default_rng(4)
    x, v = rng.uniform(-1, 1, 9), rng.normal(size=9)
    hv, gx = np.zeros(9), np.zeros(9)
    llad.autodiff(llad.Forward, grad_rosen, llad.Duplicated(x, v), llad.Duplicated(gx, hv))
    np.testing.assert_allclose(gx, _gradient(rosen, x), rtol=1e-14)        # the primal of the outer call
    np.testing.assert_allclose(hv, scipy.optimize.rosen_hess_prod(x, v), rtol=1e-12, atol=1e-9)


def test_forward_over_forward_and_reverse_over_forward_give_the_hessian():
    rng = np.random.default_rng(5)
    x, v, w = rng.uniform(-1, 1, 9), rng.normal(size=9), rng.normal(size=9)
    H = scipy.optimize.rosen_hess(x)
    (t,) = llad.autodiff(llad.Forward, jvp_rosen, llad.Duplicated(x, w), llad.Const(v))
    assert t == pytest.approx(v @ H @ w, rel=1e-12)
    g = np.zeros(9)
    llad.autodiff(llad.Reverse, jvp_rosen, llad.Active, llad.Duplicated(x, g), llad.Const(v))
    np.testing.assert_allclose(g, H @ v, rtol=1e-12, atol=1e-9)


def test_batch_over_reverse_gives_hessian_columns_in_one_pass():
    rng = np.random.default_rng(6)
    x = rng.uniform(-1, 1, 5)
    dirs = tuple(np.eye(5)[j] for j in range(5))
    cols = tuple(np.zeros(5) for _ in range(5))
    llad.autodiff(llad.Forward, grad_rosen, llad.BatchDuplicated(x, dirs), llad.BatchDuplicated(np.zeros(5), cols))
    np.testing.assert_allclose(np.array(cols).T, scipy.optimize.rosen_hess(x), rtol=1e-12, atol=1e-9)


def test_reverse_over_reverse_is_refused_with_a_clear_error():
    @numba.njit
    def grad_then_sum(x, gx):
        llad.autodiff(llad.Reverse, inplace_loop, llad.Active, llad.Duplicated(x, gx))
        s = 0.0
        for i in range(gx.shape[0]):
            s += gx[i]
        return s

    x = np.random.default_rng(8).uniform(0.2, 1.0, 5)
    with pytest.raises(llad.DifferentiationError, match="reverse over reverse"):
        llad.autodiff(llad.Reverse, grad_then_sum, llad.Active, llad.Duplicated(x, np.zeros(5)),
                      llad.Duplicated(np.zeros(5), np.zeros(5)))


@pytest.mark.parametrize("name", ["lstm", "ba"])
def test_hvp_of_benchmark_kernels_with_multi_exit_loops(name):
    """The LSTM and bundle-adjustment kernels of tools/bench (quick size): their reverse sweeps have loops
    with several entries; forward over reverse against differences of the gradient, all differentiated
    arguments along one direction."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tools.bench import hvp as bench_hvp
    from tools.bench.kernels import KERNELS
    kernel = KERNELS[name]
    args = kernel.make_args("quick")
    rng = np.random.default_rng(3)
    directions = [rng.standard_normal(a.shape) if i in kernel.diff else None for i, a in enumerate(args)]
    hvp = bench_hvp.LladHVP(kernel, args, directions)
    got = hvp([a.copy() if isinstance(a, np.ndarray) else a for a in args])

    def gradient(shift):
        moved = [a + shift * directions[i] if i in kernel.diff else (a.copy() if isinstance(a, np.ndarray) else a)
                 for i, a in enumerate(args)]
        ann, gs = [], []
        for i, a in enumerate(moved):
            if i in kernel.diff:
                gs.append(np.zeros_like(a))
                ann.append(llad.Duplicated(a, gs[-1]))
            else:
                ann.append(llad.Const(a))
        llad.autodiff(llad.Reverse, kernel.func, llad.Active, *ann)
        return gs
    h = 1e-6
    for g, up, down in zip(got, gradient(h), gradient(-h)):
        fd = (up - down) / (2 * h)
        assert np.max(np.abs(g - fd)) <= 1e-5 * max(1.0, np.max(np.abs(fd)))


@numba.njit
def _mixed(x, c, flag):
    y = x if flag > 0 else c          # y's shadow is dx or nothing: the reverse writes through a stand-in
    s = 0.0
    for i in range(y.size):
        s += math.sin(y[i]) * x[i] * y[i]
    return s


@numba.njit
def _mixed_grad(x, g, c, flag):
    llad.autodiff(llad.Reverse, _mixed, llad.Active, llad.Duplicated(x, g), llad.Const(c), llad.Const(flag))


@pytest.mark.parametrize("flag", [1, -1])
def test_forward_over_a_reverse_that_writes_through_the_null_shadow_stand_in(flag):
    """The inner reverse derivative stores adjoints into llad's sink when y's shadow is null (y is the Const
    c); the outer forward mode treats the sink and the zeros as memory without a derivative (it used to
    refuse with an ActivityError, and, treated as memory with one, crashed on the null tangent pointer)."""
    x, c, v = np.linspace(0.1, 1.0, 5), np.linspace(-1.0, 1.0, 5), np.linspace(1.0, -1.0, 5)
    hv = np.zeros(5)
    llad.autodiff(llad.Forward, _mixed_grad, llad.Duplicated(x.copy(), v), llad.Duplicated(np.zeros(5), hv),
                  llad.Const(c), llad.Const(flag))
    # closed forms: flag > 0: s = sum x^2 sin x, H = diag(2 sin x + 4 x cos x - x^2 sin x); else s = sum x c sin c
    expected = (2 * np.sin(x) + 4 * x * np.cos(x) - x * x * np.sin(x)) * v if flag > 0 else np.zeros(5)
    np.testing.assert_allclose(hv, expected, rtol=1e-12, atol=1e-14)


@numba.njit
def temporaries_in_a_loop(x):
    """An array allocated in every iteration: the inner reverse derivative keeps each one's shadow on its
    tape as a pointer and reads it back, which the outer forward mode follows through the tape's shadow."""
    s = 0.0
    for i in range(x.shape[0] - 1):
        t = x * x[i]
        s += np.var(t) * x[i + 1]
    return s


@numba.njit
def _grad_temporaries(x, gx):
    llad.autodiff(llad.Reverse, temporaries_in_a_loop, llad.Active, llad.Duplicated(x, gx))


def _gradient_temporaries(x):
    g = np.zeros_like(x)
    llad.autodiff(llad.Reverse, temporaries_in_a_loop, llad.Active, llad.Duplicated(x.copy(), g))
    return g


def test_hvp_through_shadows_kept_on_the_inner_tape():
    rng = np.random.default_rng(21)
    x, v = rng.uniform(0.3, 1.5, 6), rng.standard_normal(6)
    hv = np.zeros(6)
    llad.autodiff(llad.Forward, _grad_temporaries, llad.Duplicated(x, v.copy()), llad.Duplicated(np.zeros(6), hv))
    e = 1e-6
    fd = (_gradient_temporaries(x + e * v) - _gradient_temporaries(x - e * v)) / (2 * e)
    np.testing.assert_allclose(hv, fd, rtol=1e-6, atol=1e-8)
    # k directions at once (BatchDuplicated over reverse): the Hessian, symmetric, its columns the HVPs
    cols = np.eye(6)
    outs = tuple(np.zeros(6) for _ in range(6))
    llad.autodiff(llad.Forward, _grad_temporaries, llad.BatchDuplicated(x, tuple(cols)),
                  llad.BatchDuplicated(np.zeros(6), outs))
    hess = np.array(outs)
    np.testing.assert_allclose(hess, hess.T, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(hess @ v, hv, rtol=1e-10, atol=1e-12)
