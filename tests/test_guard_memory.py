"""`llad.config.guard_memory`: derivatives compiled with bounds-checked tapes and canaries around shadows
give the same derivatives, and an out-of-bounds write (here: by f itself, which Numba does not check)
is reported after the call with the kernel's name instead of corrupting memory silently."""
from __future__ import annotations

import math
import os
import subprocess
import sys

import numba
import numpy as np
import pytest

import llad
from llad.testing import check_grads


@pytest.fixture
def guarded():
    llad.config.guard_memory = True
    yield
    llad.config.guard_memory = False


@numba.njit
def looped(x, n):                       # a loop tape, an allocation with a shadow, a loop-carried value
    s = 0.0
    y = np.zeros(n)
    for i in range(n):
        y[i] = math.sin(x[i]) * x[i] + (y[i - 1] if i > 0 else 0.0)
        s += y[i] * y[i]
    return s


@numba.njit
def writes_past_its_array(x, n):
    y = np.zeros(n)
    for i in range(n + 1):              # one element too far
        y[i] = x[i % n] * 2.0
    return np.sum(y[:n] * y[:n])


@numba.njit
def writes_past_an_argument(x, y):
    for i in range(x.size + 2):
        y[i] = x[i % x.size] ** 2
    return np.sum(y[:x.size])


def test_guarded_derivatives_are_the_same(guarded):
    x = np.linspace(0.1, 1.0, 7)
    assert check_grads(looped, x, 7) > 5
    dx = np.zeros_like(x)
    llad.autodiff(llad.Reverse, looped, llad.Active, llad.Duplicated(x, dx), llad.Const(7))
    llad.config.guard_memory = False
    plain = np.zeros_like(x)
    llad.autodiff(llad.Reverse, looped, llad.Active, llad.Duplicated(x, plain), llad.Const(7))
    np.testing.assert_array_equal(dx, plain)


@pytest.mark.parametrize("mode", [llad.Reverse, llad.Forward])
def test_a_write_past_an_allocated_shadow_is_reported(guarded, mode):
    x = np.linspace(0.1, 1.0, 10)
    args = (llad.Active,) if mode is llad.Reverse else ()
    with pytest.raises(llad.MemoryGuardError, match=r"the derivative of writes_past_its_array \(llad\.\w+\.[0-9a-f]+\) "
                                                    r"wrote past the end of a shadow llad allocated: either "
                                                    r"writes_past_its_array itself indexes outside an array"):
        llad.autodiff(mode, writes_past_its_array, *args, llad.Duplicated(x, np.ones(10)), llad.Const(10))


def test_a_write_outside_an_argument_shadow_is_reported_and_the_shadow_kept(guarded):
    x, y = np.linspace(0.1, 1.0, 10), np.zeros(12)
    dx, dy = np.zeros(10), np.zeros(10)
    with pytest.raises(llad.MemoryGuardError, match=r"outside the shadow of 1 array argument"):
        llad.autodiff(llad.Reverse, writes_past_an_argument, llad.Active, llad.Duplicated(x, dx),
                      llad.Duplicated(y[:10], dy))
    # delivered: y[10] and y[11] lie outside the view the sum reads, so they add nothing
    np.testing.assert_allclose(dx, 2 * x, rtol=1e-14)


def test_split_thunks_report_too(guarded):
    x = np.linspace(0.1, 1.0, 10)
    fwd, rev = llad.autodiff_thunk(llad.ReverseSplitWithPrimal, writes_past_its_array, llad.Active,
                                   llad.Duplicated(x, np.zeros(10)), llad.Const(10))
    tape, _, _ = fwd(llad.Duplicated(x, np.zeros(10)), llad.Const(10))
    with pytest.raises(llad.MemoryGuardError, match="past the end of a shadow llad allocated"):
        rev(llad.Duplicated(x, np.zeros(10)), llad.Const(10), 1.0, tape)


def test_reverse_tape_accesses_are_bounds_checked():
    x = np.linspace(0.1, 1.0, 7)
    ann = (llad.Active, llad.Duplicated(x, np.zeros(7)), llad.Const(7))
    plain = llad.dump(llad.Reverse, looped, *ann, depth="deriv")
    llad.config.guard_memory = True
    try:
        text = llad.dump(llad.Reverse, looped, *ann, depth="deriv")
    finally:
        llad.config.guard_memory = False
    assert "llad.guard.sink" not in plain
    # each loop-tape record address: index < capacity, else the scratch word
    checks = [ln for ln in text.splitlines() if "select i1" in ln and '@"llad.guard.sink"' in ln]
    records = [ln for ln in text.splitlines() if "getelementptr %llad.tape." in ln]
    assert records and len(checks) == len(records)


def test_the_environment_switch():
    code = "import llad; print(llad.config.guard_memory)"
    env = dict(os.environ, LLAD_GUARD_MEMORY="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.split() == ["True"], out.stderr
