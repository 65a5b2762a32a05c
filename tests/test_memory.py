"""Memory: repeated calls leave resident memory flat; the tape keeps little more than it must."""
from __future__ import annotations

import math
import os

import numba
import numpy as np

import llad
from llad.demo import heat_stencil, rk4_decay


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@numba.njit
def overwrite_sin(x, steps):
    for _ in range(steps):
        for i in range(x.shape[0]):
            x[i] = math.sin(x[i])
    s = 0.0
    for i in range(x.shape[0]):
        s += x[i]
    return s


def test_repeated_calls_leave_memory_flat():
    y0, k = np.random.rand(20), np.random.rand(20)
    g = np.zeros(20)
    for _ in range(200):
        llad.autodiff(llad.Reverse, rk4_decay, llad.Duplicated(y0, g), k, 20, 0.01)
    before = rss_mb()
    for _ in range(10_000):
        llad.autodiff(llad.Reverse, rk4_decay, llad.Duplicated(y0, g), k, 20, 0.01)
    assert rss_mb() <= before * 1.05


def test_tape_keeps_about_what_must_be_kept():
    n, steps = 1000, 50
    x = np.random.rand(n)
    report = llad.tape_report(llad.Reverse, overwrite_sin, llad.Duplicated(x, np.zeros(n)), steps)
    must_keep = 8 * n * steps                      # every overwritten value, once
    assert must_keep <= report["used_bytes"] <= 1.5 * must_keep
    assert report["reserved_bytes"] <= 1.5 * must_keep


def test_tape_report_leaves_gradient_correct():
    x = np.random.rand(8)
    g = np.zeros(8)
    llad.tape_report(llad.Reverse, overwrite_sin, llad.Duplicated(x.copy(), g), 2)
    expected = np.cos(np.sin(x)) * np.cos(x)
    np.testing.assert_allclose(g, expected, rtol=1e-12)


def test_linear_stencil_keeps_no_values():
    """The heat stencil (n = 1000, T = 500) is linear: no value must be kept.  The final sum re-reads u
    (nothing writes it afterwards), counted loops recompute where their iterations start, and the loop
    guards' branches are recomputed: the tape holds a few bytes, whatever n and T."""
    n, steps, r = 1000, 500, 0.4
    u = np.random.default_rng(5).random(n)
    g = np.zeros(n)
    report = llad.tape_report(llad.Reverse, heat_stencil, llad.Duplicated(u.copy(), g), steps, r)
    assert report["used_bytes"] <= 64, report
    # the gradient: 2 u_T pushed back through the transposed (here symmetric) stencil
    final = u.copy()
    heat_stencil(final, steps, r)
    adj = 2.0 * final
    for _ in range(steps):
        prev = adj.copy()
        adj[1:-1] = prev[1:-1] * (1.0 - 2.0 * r)
        adj[0], adj[-1] = prev[0], prev[-1]
        adj[:-2] += r * prev[1:-1]
        adj[2:] += r * prev[1:-1]
    np.testing.assert_allclose(g, adj, rtol=1e-10, atol=1e-12)
