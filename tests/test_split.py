"""Split mode (`llad.autodiff_thunk`): a forward thunk that returns a tape, a reverse thunk that takes it.

On the whole corpus, fwd then rev must give what one `Reverse` call gives (shadows and Active
derivatives); a tape is consumed by one reverse call; a tape dropped unused frees its memory; a
checkpointed adjoint of a time loop built from split thunks gives the full gradient (examples/
checkpointed_adjoint.py, run by tests/test_examples.py).
"""
import gc
import math
import resource
import sys
from pathlib import Path

import numba
import numpy as np
import pytest

if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))

import corpus
from test_corpus import random_cots, ret_activity, reverse_args, same_tol

import llad

# split mode needs shadows laid out like their arrays (the tape may point into them between the calls)
SPLIT = [c for c in corpus.CASES if "forward-only" not in c.tags and all(s.shadow == "like" for s in c.specs())]


def _seed(case):
    return 1.0 if case.returns == "float" else None


@pytest.mark.parametrize("case", SPLIT, ids=lambda c: c.name)
@pytest.mark.parametrize("mode", [llad.ReverseSplitWithPrimal, llad.ReverseSplitNoPrimal], ids=lambda m: m.name)
def test_split_equals_reverse_on_the_corpus(case, mode):
    specs = case.specs()
    cots = random_cots(specs, np.random.default_rng(11))
    args, _, shadows = reverse_args(specs, cots)
    (expected,) = llad.autodiff(llad.Reverse, case.func, ret_activity(case), *args)
    split_args, primal, split_shadows = reverse_args(specs, cots)
    fwd, rev = llad.autodiff_thunk(mode, case.func, ret_activity(case), *split_args)
    tape, value, shadow_result = fwd(*split_args)
    assert shadow_result is None
    if mode is llad.ReverseSplitNoPrimal or case.returns != "float":
        assert value is None
    else:
        assert isinstance(value, float)
    (derivs,) = rev(*split_args, _seed(case), tape)
    tol = same_tol(specs)
    for i, (a, b) in enumerate(zip(derivs, expected)):
        assert (a is None) == (b is None), i
        if a is not None:
            assert a == pytest.approx(b, rel=tol, abs=tol)
    for i, (a, b) in enumerate(zip(split_shadows, shadows)):
        if a is not None:
            np.testing.assert_allclose(a, b, rtol=tol, atol=tol, err_msg=f"shadow of argument {i}")


@numba.njit
def overwrite(x, n):
    s = 0.0
    for i in range(n):
        x[i] = math.sin(x[i]) * x[i]
        s += x[i] * x[(i + 1) % n]
    return s


def _thunks(x, dx):
    return llad.autodiff_thunk(llad.ReverseSplitWithPrimal, overwrite, llad.Active, llad.Duplicated(x, dx),
                               llad.Const(x.size))


def test_seed_scales_the_gradient_and_primal_is_returned():
    x0 = np.random.default_rng(1).uniform(0.1, 1.0, 6)
    x, dx = x0.copy(), np.zeros(6)
    fwd, rev = _thunks(x, dx)
    tape, primal, _ = fwd(llad.Duplicated(x, dx), llad.Const(6))
    assert primal == pytest.approx(overwrite(x0.copy(), 6))
    rev(llad.Duplicated(x, dx), llad.Const(6), 2.5, tape)
    g = np.zeros(6)
    llad.autodiff(llad.Reverse, overwrite, llad.Active, llad.Duplicated(x0.copy(), g), llad.Const(6))
    np.testing.assert_allclose(dx, 2.5 * g, rtol=1e-13)


def test_a_tape_is_consumed_by_one_reverse_call():
    x, dx = np.random.default_rng(2).uniform(0.1, 1.0, 5), np.zeros(5)
    fwd, rev = _thunks(x, dx)
    tape, _, _ = fwd(llad.Duplicated(x, dx), llad.Const(5))
    rev(llad.Duplicated(x, dx), llad.Const(5), 1.0, tape)
    assert tape.consumed
    with pytest.raises(ValueError, match="already used"):
        rev(llad.Duplicated(x, dx), llad.Const(5), 1.0, tape)
    with pytest.raises(TypeError, match="tape"):
        rev(llad.Duplicated(x, dx), llad.Const(5), 1.0, object())
    with pytest.raises(TypeError, match="seed"):
        rev(llad.Duplicated(x, dx), llad.Const(5), None, fwd(llad.Duplicated(x, dx), llad.Const(5))[0])


def test_dropped_tapes_free_their_memory():
    x, dx = np.random.default_rng(3).uniform(0.1, 1.0, 64), np.zeros(64)
    fwd, _ = _thunks(x, dx)
    for _ in range(200):                      # warm up: allocator pools, caches
        fwd(llad.Duplicated(x.copy(), dx), llad.Const(64))
    gc.collect()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for _ in range(10000):
        tape, _, _ = fwd(llad.Duplicated(x.copy(), dx), llad.Const(64))
        del tape
    gc.collect()
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib <= 1024, f"resident memory grew by {grown_kib} KiB over 10,000 dropped tapes"


@numba.njit
def energy(y):
    s = 0.0
    for i in range(y.shape[0]):
        s += y[i] * y[i]
    return s


def test_forward_thunk_has_autodiffs_forward_layout():
    x = np.random.default_rng(5).uniform(0.1, 1.0, 4)
    fwd = llad.autodiff_thunk(llad.Forward, energy, llad.Duplicated(x, np.ones(4)))
    (t,) = fwd(llad.Duplicated(x, np.ones(4)))
    assert t == pytest.approx(2 * x.sum())


def test_autodiff_refuses_split_modes_with_a_pointer_to_the_thunks():
    x = np.ones(3)
    with pytest.raises(TypeError, match="autodiff_thunk"):
        llad.autodiff(llad.ReverseSplitWithPrimal, energy, llad.Active, llad.Duplicated(x, np.zeros(3)))
