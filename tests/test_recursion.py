"""Recursion (llad/recursion.py): a call llad cannot inline stays a call, and llad's own derivative of the
callee is its rule (a forward derivative in forward modes; a split derivative's two phases in reverse modes,
its frame on the caller's tape).  The three kernels of the issue (a recursive tree sum, a Fibonacci-style
float recurrence, divide-and-conquer pairwise summation) and two more (recursion in a loop, recursion
that updates an array in place) against central differences in every mode, and against closed forms.
"""
import math

import numba
import numpy as np
import pytest
from nrt_counts import leaks

import llad
from llad.testing import check_grads


@numba.njit
def tree(v, w, node):
    """Σ over a binary tree stored as a heap: tanh(v[node]) + w (subtree sums of its two children)."""
    s = math.tanh(v[node])
    left, right = 2 * node + 1, 2 * node + 2
    if left < v.size:
        s += w * tree(v, w, left)
    if right < v.size:
        s += w * tree(v, w, right)
    return s


@numba.njit
def tree_loss(v, w):
    return tree(v, w, 0)


@numba.njit
def fib(a, n):
    """F(n) = F(n-1) + sin(F(n-2)) / 2, F(0) = a, F(1) = 2a."""
    if n < 2:
        return a * (n + 1.0)
    return fib(a, n - 1) + 0.5 * math.sin(fib(a, n - 2))


@numba.njit
def pairwise(x, lo, hi):
    """Σ sin(x_i) x_i over [lo, hi), halving the range."""
    if hi - lo <= 2:
        s = 0.0
        for i in range(lo, hi):
            s += math.sin(x[i]) * x[i]
        return s
    mid = (lo + hi) // 2
    return pairwise(x, lo, mid) + pairwise(x, mid, hi)


@numba.njit
def pairwise_loss(x):
    return pairwise(x, 0, x.size) ** 2


@numba.njit
def nary(x, node, k):
    """A k-ary tree: the recursive calls sit in a loop (their frames go on the loop's tape)."""
    s = x[node] * x[node]
    for c in range(1, k + 1):
        child = k * node + c
        if child < x.size:
            s += math.cos(x[node]) * nary(x, child, k)
    return s


@numba.njit
def smooth(x, lo, hi):
    """In place: sin on the leaves, then each half mixes into the other (returns None)."""
    if hi - lo < 2:
        for i in range(lo, hi):
            x[i] = math.sin(x[i])
        return
    mid = (lo + hi) // 2
    smooth(x, lo, mid)
    smooth(x, mid, hi)
    for i in range(lo, mid):
        a, b = x[i], x[mid + (i - lo) % (hi - mid)]
        x[i] = a + 0.3 * b * b


@numba.njit
def smooth_loss(x):
    y = x.copy()
    smooth(y, 0, y.size)
    return np.sum(y * y)


def _x(n, seed=0):
    return np.random.default_rng(seed).uniform(-1.0, 1.0, n)


@pytest.mark.parametrize("f, args", [
    (tree_loss, lambda: (_x(11), 0.6)),
    (fib, lambda: (0.3, 7)),
    (pairwise_loss, lambda: (_x(13),)),
    (nary, lambda: (_x(14, 1), 0, 3)),
    (smooth_loss, lambda: (_x(9, 2),)),
], ids=["tree", "fib", "pairwise", "nary-loop", "in-place"])
def test_recursive_kernels_in_every_mode(f, args):
    assert check_grads(f, *args()) > 0


def test_pairwise_gradient_is_the_closed_form():
    x = _x(37, 3)
    dx = np.zeros_like(x)
    llad.autodiff(llad.Reverse, pairwise_loss, llad.Active, llad.Duplicated(x, dx))
    s = np.sum(np.sin(x) * x)
    np.testing.assert_allclose(dx, 2 * s * (np.cos(x) * x + np.sin(x)), rtol=1e-13)
    (t,) = llad.autodiff(llad.Forward, pairwise_loss, llad.Duplicated(x, np.ones_like(x)))
    assert t == pytest.approx(np.sum(dx), rel=1e-13)


def test_fib_derivative_follows_the_recurrence():
    """dF(n) = dF(n-1) + cos(F(n-2)) dF(n-2) / 2, from dF(0) = 1, dF(1) = 2."""
    a, n = 0.3, 12
    F, dF = [a, 2 * a], [1.0, 2.0]
    for _ in range(2, n + 1):
        F.append(F[-1] + 0.5 * math.sin(F[-2]))
        dF.append(dF[-1] + 0.5 * math.cos(F[-3]) * dF[-2])
    ((d, _),) = llad.autodiff(llad.Reverse, fib, llad.Active, llad.Active(a), llad.Const(n))
    assert d == pytest.approx(dF[n], rel=1e-13)
    (t,) = llad.autodiff(llad.Forward, fib, llad.Duplicated(a, 1.0), llad.Const(n))
    assert t == pytest.approx(dF[n], rel=1e-13)


def test_recursive_derivative_inside_njit():
    @numba.njit
    def grad(x):
        dx = np.zeros_like(x)
        llad.autodiff(llad.Reverse, pairwise_loss, llad.Active, llad.Duplicated(x, dx))
        return dx

    x = _x(10, 4)
    dx = np.zeros_like(x)
    llad.autodiff(llad.Reverse, pairwise_loss, llad.Active, llad.Duplicated(x, dx))
    np.testing.assert_array_equal(grad(x), dx)


def test_recursion_frames_are_freed():
    """Each recursive call's frame is calloc'ed in the forward sweep and freed in the reverse one: many
    calls do not grow the process (a leak of one 80-byte frame per call would be 8 MB here)."""
    import resource
    x = _x(64, 5)
    dx = np.zeros_like(x)
    llad.autodiff(llad.Reverse, pairwise_loss, llad.Active, llad.Duplicated(x, dx))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for _ in range(2000):
        llad.autodiff(llad.Reverse, pairwise_loss, llad.Active, llad.Duplicated(x, dx))
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 4096


def test_nested_differentiation_through_recursion_is_refused():
    with pytest.raises(llad.NoRuleError, match=r"llad's derivative of a recursive function .*nested "
                                                r"differentiation such as llad.hvp"):
        llad.hvp(pairwise_loss, _x(8), np.ones(8))


def test_frames_are_released_in_every_mode():
    """NRT statistics: every recursive call's frame (a meminfo) is freed after Reverse, after a split
    tape's reverse, and when a split tape is dropped (the callee's release phase runs)."""
    leaked, allocated, raw_leaked = leaks("""
        import numpy as np, llad
        from tests.test_recursion import pairwise_loss, _x
        x = _x(12)
        dx = np.zeros_like(x)
        fwd, rev = llad.autodiff_thunk(llad.ReverseSplitWithPrimal, pairwise_loss, llad.Active,
                                       llad.Duplicated(x, dx))
    """, """
        llad.autodiff(llad.Reverse, pairwise_loss, llad.Active, llad.Duplicated(x, dx))
        tape, _, _ = fwd(llad.Duplicated(x, dx))
        rev(llad.Duplicated(x, dx), 1.0, tape)
        fwd(llad.Duplicated(x, dx))          # a tape dropped: its recursive calls' frames released
    """)
    assert allocated > 0 and leaked == 0 and raw_leaked == 0
