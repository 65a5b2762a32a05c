"""The tape of every loop shape is large enough (reserved >= used) and gradients stay right."""
from __future__ import annotations

import math

import numba
import numpy as np
import pytest

import llad


def _loop_kernels():
    src = {
        "range_n": "for i in range(n):\n        x[i] = math.sin(x[i])",
        "range_a_b": "for i in range(2, n):\n        x[i] = math.sin(x[i]) * x[i - 1]",
        "range_down": "for i in range(n - 1, 0, -1):\n        x[i] = math.sin(x[i] * x[i - 1])",
        "range_step2": "for i in range(0, n, 2):\n        x[i] = math.sin(x[i])",
        "while_lt": "i = 0\n    while i < n:\n        x[i] = math.sin(x[i])\n        i += 1",
        "while_le": "i = 1\n    while i <= n - 1:\n        x[i] = math.cos(x[i]) * x[i - 1]\n        i += 1",
        "triangular": ("for i in range(n):\n        for j in range(i + 1, n):\n"
                       "            x[j] = math.sin(x[j] + x[i])"),
        "triangular_down": ("for i in range(n):\n        for j in range(i, 0, -1):\n"
                            "            x[j] = math.sin(x[j] * x[j - 1])"),
        "break_early": "for i in range(n):\n        x[i] = math.sin(x[i])\n        if x[i] > 0.9:\n            break",
        "reversed_range": "for i in range(n):\n        k = n - 1 - i\n        x[k] = math.sin(x[k])",
        "zero_trip": "for i in range(n, 2):\n        x[i] = math.sin(x[i])",
    }
    out = {}
    for name, body in src.items():
        code = (f"def {name}(x, n):\n    {body}\n    s = 0.0\n    for i in range(x.shape[0]):\n"
                "        s += x[i]\n    return s\n")
        ns = {"math": math}
        exec(compile(code, f"<{name}>", "exec"), ns)
        out[name] = numba.njit(ns[name])
    return out


KERNELS = _loop_kernels()


def fd_gradient(f, x, n, h=1e-6):
    g = np.zeros_like(x)
    for i in range(x.size):
        xp, xm = x.copy(), x.copy()
        xp[i] += h
        xm[i] -= h
        g[i] = (f(xp, n) - f(xm, n)) / (2 * h)
    return g


@pytest.mark.parametrize("name", sorted(KERNELS))
@pytest.mark.parametrize("n", [0, 1, 3, 9])
def test_tape_large_enough_and_gradient_right(name, n):
    f = KERNELS[name]
    x = np.linspace(0.1, 0.8, 9)
    for _ in range(2):                      # the second call reserves from the first call's peak
        g = np.zeros_like(x)
        report = llad.tape_report(llad.Reverse, f, llad.Duplicated(x.copy(), g), n)
        assert report["reserved_bytes"] >= report["used_bytes"]
        np.testing.assert_allclose(g, fd_gradient(f, x, n), rtol=1e-6, atol=1e-8)


@numba.njit
def _lse_tape(x):
    m = x[0]
    for i in range(x.shape[0]):
        if x[i] > m:
            m = x[i]
    s = 0.0
    for i in range(x.shape[0]):
        s += math.exp(x[i] - m)
    return m + math.log(s)


@pytest.mark.parametrize("guard", [False, True], ids=["plain", "guarded"])
def test_kept_tape_buffers_serve_calls_of_any_length(guard):
    """A derivative called from Python keeps its tape buffers between calls (runtime.KEEP_MAX_BYTES): a
    longer call after a shorter one grows the kept buffer, a shorter one after a longer reuses it, split
    calls take and give it back too, and every gradient stays the softmax."""
    old = llad.config.guard_memory
    llad.config.guard_memory = guard
    try:
        rng = np.random.default_rng(5)
        for n in (7, 100_000, 3, 250_000, 1, 40):
            x = rng.standard_normal(n) * 3
            g = np.zeros(n)
            llad.autodiff(llad.Reverse, _lse_tape, llad.Active, llad.Duplicated(x, g))
            soft = np.exp(x - x.max())
            np.testing.assert_allclose(g, soft / soft.sum(), rtol=1e-12, atol=1e-300)
            gs = np.zeros(n)
            fwd, rev = llad.autodiff_thunk(llad.ReverseSplitNoPrimal, _lse_tape, llad.Active,
                                           llad.Duplicated(x, gs))
            tape, _, _ = fwd(llad.Duplicated(x, gs))
            fwd(llad.Duplicated(x, gs))                   # a second tape while the first is held: dropped
            rev(llad.Duplicated(x, gs), 1.0, tape)
            np.testing.assert_allclose(gs, g, rtol=1e-14, atol=1e-300)
    finally:
        llad.config.guard_memory = old
