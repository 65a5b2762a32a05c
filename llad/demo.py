"""`llad demo`: differentiate a few real kernels, check them against finite differences, time them."""
from __future__ import annotations

import math
import sys
import time

import numba
import numpy as np

import llad


@numba.njit
def rk4_decay(y0, k, steps, dt):
    """Integrate dy_i/dt = -k y_i + sin(y_{i-1}) with RK4 in place; loss = sum of squares at the end."""
    n = y0.shape[0]
    y = y0.copy()
    k1, k2, k3, k4, tmp = np.empty(n), np.empty(n), np.empty(n), np.empty(n), np.empty(n)
    for _ in range(steps):
        _rhs(y, k, k1)
        for i in range(n):
            tmp[i] = y[i] + 0.5 * dt * k1[i]
        _rhs(tmp, k, k2)
        for i in range(n):
            tmp[i] = y[i] + 0.5 * dt * k2[i]
        _rhs(tmp, k, k3)
        for i in range(n):
            tmp[i] = y[i] + dt * k3[i]
        _rhs(tmp, k, k4)
        for i in range(n):
            y[i] += dt / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i])
    s = 0.0
    for i in range(n):
        s += y[i] * y[i]
    return s


@numba.njit
def _rhs(y, k, out):
    n = y.shape[0]
    for i in range(n):
        out[i] = -k[i] * y[i] + math.sin(y[i - 1] if i > 0 else 0.0)


@numba.njit
def gmm_loglik(x, means, log_sigmas, logit_weights):
    """Log-likelihood of points x (n x d) under a diagonal Gaussian mixture (k components)."""
    n, d = x.shape
    k = means.shape[0]
    wmax = logit_weights.max()
    wsum = 0.0
    for j in range(k):
        wsum += math.exp(logit_weights[j] - wmax)
    log_wnorm = wmax + math.log(wsum)
    total = 0.0
    comp = np.empty(k)
    for i in range(n):
        for j in range(k):
            q = 0.0
            for m in range(d):
                z = (x[i, m] - means[j, m]) * math.exp(-log_sigmas[j, m])
                q += z * z + 2.0 * log_sigmas[j, m]
            comp[j] = logit_weights[j] - 0.5 * q
        cmax = comp.max()
        s = 0.0
        for j in range(k):
            s += math.exp(comp[j] - cmax)
        total += cmax + math.log(s) - log_wnorm
    return total - 0.5 * n * d * math.log(2.0 * math.pi)


@numba.njit
def heat_stencil(u, steps, alpha):
    """Explicit heat equation, overwriting u every step; loss = sum(u^2)."""
    n = u.shape[0]
    prev = np.empty(n)
    for _ in range(steps):
        for i in range(n):
            prev[i] = u[i]
        for i in range(1, n - 1):
            u[i] = prev[i] + alpha * (prev[i - 1] - 2.0 * prev[i] + prev[i + 1])
    s = 0.0
    for i in range(n):
        s += u[i] * u[i]
    return s


def _cases(rng):
    y0, kk = rng.random(100), 0.5 + rng.random(100)
    x, means = rng.standard_normal((1000, 10)), rng.standard_normal((25, 10))
    sig, w = 0.1 * rng.standard_normal((25, 10)), rng.standard_normal(25)
    u = rng.random(1000)
    return [
        ("RK4 ODE (100 states x 1000 steps)", rk4_decay, [y0, kk, 1000, 0.01], 0),
        ("GMM log-likelihood (n=1000, d=10, k=25)", gmm_loglik, [x, means, sig, w], 1),
        ("heat stencil (n=1000, 500 steps, in place)", heat_stencil, [u, 500, 0.2], 0),
    ]


def _time(fn, repeat=5) -> float:
    fn()
    best = math.inf
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def _annotate(args, wrt, shadow):
    return [llad.Duplicated(a.copy() if i == wrt else a, shadow) if i == wrt else a for i, a in enumerate(args)]


def _progress(text: str) -> None:
    """What the demo is doing while a row is not printed yet (compiling takes seconds), on a terminal only:
    one line on stderr, overwritten, cleared when the row comes."""
    if sys.stderr.isatty():
        sys.stderr.write("\r" + text[:100].ljust(100) + ("" if text else "\r"))
        sys.stderr.flush()


def run(out=print) -> int:
    rng = np.random.default_rng(0)
    out("llad demo: gradients of real kernels, checked against central finite differences\n")
    out(f"{'kernel':44} {'mode':8} {'max rel err':>11} {'primal':>10} {'derivative':>11} {'ratio':>6}")
    worst = 0.0
    for name, f, args, wrt in _cases(rng):
        x = args[wrt]
        v = rng.standard_normal(x.shape)
        def primal_at(xx):
            a = list(args)
            a[wrt] = xx.copy()
            return f(*a)
        h = 1e-6
        fd = (primal_at(x + h * v) - primal_at(x - h * v)) / (2 * h)
        t_primal = _time(lambda: primal_at(x))
        for mode in ("forward", "reverse"):
            _progress(f"{name}, {mode}: compiling the derivative and checking it ...")
            if mode == "forward":
                call = lambda: llad.autodiff(llad.Forward, f, *_annotate(args, wrt, v.copy()))[0]
                dirderiv = call()
            else:
                def call():
                    g = np.zeros_like(x)
                    llad.autodiff(llad.Reverse, f, *_annotate(args, wrt, g))
                    return g
                dirderiv = float(np.sum(call() * v))
            err = abs(dirderiv - fd) / max(1.0, abs(fd))
            worst = max(worst, err)
            t = _time(call)
            _progress("")
            out(f"{name:44} {mode:8} {err:11.2e} {t_primal * 1e3:8.2f}ms {t * 1e3:9.2f}ms {t / t_primal:6.2f}")
    out("\n(forward: one directional derivative; reverse: the whole gradient. Error vs central differences, "
        "h = 1e-6.)")
    return 0 if worst < 1e-5 else 1
