"""`llad.testing.check_grads`: passes on kernels llad differentiates (every mode and activity
combination), and fails, naming the combination and the element, where a derivative disagrees with
central differences."""
from __future__ import annotations

import math

import numba
import numpy as np
import pytest

import llad
from llad.testing import BATCH, check_grads


@numba.njit
def scaled_sines(x, a, n):            # in-place update, a float and an int argument
    s = 0.0
    for i in range(n):
        s += math.sin(x[i]) * a
        x[i] = x[i] * a
    return s


@numba.njit
def accumulate(x, y):                 # returns None, writes y
    for i in range(x.size):
        y[i] = x[i] ** 2 + y[i] * x[(i + 1) % x.size]


@numba.njit
def softplus_rows(m, t):              # a 2-D argument, an array result
    out = np.empty(m.shape[0])
    for i in range(m.shape[0]):
        s = 0.0
        for j in range(m.shape[1]):
            s += math.log1p(math.exp(m[i, j] * t))
        out[i] = s
    return out


@numba.njit
def branchy(x):
    s = 0.0
    for i in range(x.size):
        s += x[i] ** 3 if x[i] > 0.5 else math.cos(x[i])
    return s


CASES = [
    (scaled_sines, (np.linspace(0.1, 1.0, 4), 1.5, 4)),
    (accumulate, (np.linspace(0.1, 1.0, 4), np.linspace(-1.0, 1.0, 4))),
    (softplus_rows, (np.linspace(-1, 1, 6).reshape(3, 2), 0.7)),
    (branchy, (np.array([0.2, 0.7, 0.9, 0.3]),)),
]


@pytest.mark.parametrize("f,args", CASES, ids=lambda c: getattr(c, "__name__", ""))
def test_every_mode_and_combination_passes(f, args):
    before = [np.array(a, copy=True) for a in args]
    assert check_grads(f, *args) >= 7            # 2 forward + batch + 4 reverse modes, at least one combination
    for a, b in zip(args, before):
        np.testing.assert_array_equal(a, b)      # the caller's arguments are never written


def test_second_order():
    x = np.array([0.2, 0.7, 0.9, 0.3])
    assert check_grads(branchy, x, order=2) == check_grads(branchy, x) + 1


def test_float32_arguments():
    x = np.linspace(0.1, 1.0, 4).astype(np.float32)
    assert check_grads(branchy, x, rtol=2e-3, atol=2e-3) >= 7


def test_a_mode_subset():
    assert check_grads(branchy, np.array([0.2, 0.7]), modes=(llad.Reverse,)) == 1
    assert check_grads(branchy, np.array([0.2, 0.7]), modes=(llad.Forward, BATCH)) == 2


@numba.njit
def kink(x):
    return abs(x[0]) + x[1]


def test_a_disagreement_names_mode_combination_and_element():
    """At the kink of |x| llad's derivative (sign convention) differs from central differences: the
    checker must say so, with where."""
    with pytest.raises(AssertionError, match=r"llad\.Forward with \(Duplicated\): tangent of output 0 "
                                             r"\(direction 0\), element 0: llad gives .*central differences"):
        check_grads(kink, np.array([0.0, 1.0]))
    with pytest.raises(AssertionError, match=r"llad\.Reverse with \(Duplicated\): derivative with respect to "
                                             r"argument 0, element 0"):
        check_grads(kink, np.array([0.0, 1.0]), modes=(llad.Reverse,))


def test_refuses_what_it_cannot_check():
    @numba.njit
    def nothing_float(n):
        return n + 1
    with pytest.raises(AssertionError, match="nothing was checked"):
        check_grads(nothing_float, 3)
    with pytest.raises(ValueError, match="order must be 1 or 2"):
        check_grads(branchy, np.ones(2), order=3)


# --- the whole corpus through the checker: every mode and activity combination ---------------------------

import sys  # noqa: E402
from pathlib import Path  # noqa: E402

if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))

import corpus  # noqa: E402
from corpus.registry import fresh_args, is_float32  # noqa: E402


@pytest.mark.parametrize("case", corpus.CASES, ids=lambda c: c.name)
def test_corpus_kernel_in_every_mode_and_combination(case):
    specs = case.specs()
    tol = 1e-3 if is_float32(specs) else 1e-5
    assert check_grads(case.func, *fresh_args(specs), rtol=tol, atol=tol / 10 if tol < 1e-3 else tol) >= 7
