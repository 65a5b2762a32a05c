"""Split-mode thunks inside @njit (llad/jitted_thunks.py): the same numbers as Reverse, a tape consumed
once, a tape dropped unused frees its memory, and a checkpointed adjoint of a time loop written entirely in
jitted code."""
import math
import resource

import numba
import numpy as np
import pytest
from numba.core.errors import TypingError

import llad


@numba.njit
def energy(x, c):
    s = 0.0
    for i in range(x.size):
        s += math.sin(x[i]) * c + x[i] * x[i]
    return s


@numba.njit
def split_in_njit(x, dx, c):
    fwd, rev = llad.autodiff_thunk(llad.ReverseSplitWithPrimal, energy, llad.Active, llad.Duplicated(x, dx),
                                   llad.Active(c))
    tape, primal, shadow = fwd(llad.Duplicated(x, dx), llad.Active(c))
    (derivs,) = rev(llad.Duplicated(x, dx), llad.Active(c), 1.0, tape)
    return primal, derivs[1], shadow


def test_split_thunks_in_njit_match_reverse():
    x, c = np.array([0.1, -0.5, 1.3]), 2.0
    dx = np.zeros(3)
    primal, dc, shadow = split_in_njit(x, dx, c)
    dx2 = np.zeros(3)
    ((_, dc2), primal2) = llad.autodiff(llad.ReverseWithPrimal, energy, llad.Active, llad.Duplicated(x, dx2),
                                        llad.Active(c))
    assert primal == primal2 and dc == dc2 and shadow is None
    np.testing.assert_array_equal(dx, dx2)
    np.testing.assert_allclose(dx, c * np.cos(x) + 2 * x, rtol=1e-15)


@numba.njit
def heat(u, steps):
    """`steps` explicit steps of a nonlinear heat equation, in place."""
    for _ in range(steps):
        prev = u[0]
        for i in range(1, u.size - 1):
            cur = u[i]
            u[i] = cur + 0.2 * (prev - 2.0 * cur + u[i + 1]) + 0.01 * math.sin(cur)
            prev = cur


@numba.njit
def whole(u, steps):
    heat(u, steps)
    return np.sum(u * u)


@numba.njit
def checkpointed_gradient(u0, steps, every):
    """Store the state every `every` steps; then, segment by segment from the last, rerun the segment
    under a forward thunk and pull the adjoint back through it with the reverse thunk."""
    n = steps // every
    checkpoints = np.empty((n, u0.size))
    u = u0.copy()
    for k in range(n):
        checkpoints[k] = u
        heat(u, every)
    du = 2.0 * u                                  # d(sum u²)/du at the end
    seg, dseg = u0.copy(), np.zeros_like(u0)
    fwd, rev = llad.autodiff_thunk(llad.ReverseSplitNoPrimal, heat, llad.Const, llad.Duplicated(seg, dseg),
                                   llad.Const(every))
    for k in range(n - 1, -1, -1):
        seg[:] = checkpoints[k]
        tape, _, _ = fwd(llad.Duplicated(seg, du), llad.Const(every))
        rev(llad.Duplicated(seg, du), llad.Const(every), None, tape)
    return du


def test_checkpointed_adjoint_in_njit_equals_the_whole_loop_gradient():
    u0 = np.sin(np.linspace(0.0, math.pi, 40)) + 0.1
    g = checkpointed_gradient(u0, 1000, 100)
    dw = np.zeros_like(u0)
    llad.autodiff(llad.Reverse, whole, llad.Active, llad.Duplicated(u0.copy(), dw), llad.Const(1000))
    np.testing.assert_allclose(g, dw, rtol=1e-12, atol=1e-14)


@numba.njit
def used_twice(u, du):
    fwd, rev = llad.autodiff_thunk(llad.ReverseSplitNoPrimal, whole, llad.Active, llad.Duplicated(u, du),
                                   llad.Const(3))
    tape, _, _ = fwd(llad.Duplicated(u, du), llad.Const(3))
    rev(llad.Duplicated(u, du), llad.Const(3), 1.0, tape)
    rev(llad.Duplicated(u, du), llad.Const(3), 1.0, tape)


def test_a_tape_used_twice_raises():
    with pytest.raises(ValueError, match="this tape was already used by a reverse call"):
        used_twice(np.ones(8), np.zeros(8))


@numba.njit
def dropped(u, du, times):
    fwd, rev = llad.autodiff_thunk(llad.ReverseSplitNoPrimal, whole, llad.Active, llad.Duplicated(u, du),
                                   llad.Const(200))
    for _ in range(times):
        tape, _, _ = fwd(llad.Duplicated(u, du), llad.Const(200))


def test_dropped_tapes_free_their_memory():
    """Each forward thunk's tape holds ~0.8 MB of loop records; 300 of them dropped unused do not grow the
    process (without the release phase they would by ~240 MB)."""
    u, du = np.linspace(0.0, 1.0, 500), np.zeros(500)
    dropped(u.copy(), du, 2)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    dropped(u.copy(), du, 300)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 32 * 1024


def test_thunk_arguments_of_another_type_are_a_typing_error():
    @numba.njit
    def wrong(x, dx):
        fwd, rev = llad.autodiff_thunk(llad.ReverseSplitWithPrimal, energy, llad.Active, llad.Duplicated(x, dx),
                                       llad.Active(1.0))
        return fwd(llad.Duplicated(x, dx), llad.Const(1.0))

    with pytest.raises(TypingError, match="differ in type or annotation"):
        wrong(np.ones(3), np.zeros(3))
