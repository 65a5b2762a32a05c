"""llad on the kernel corpus (tests/corpus), checked against finite differences.

Conventions (see tests/fdcheck.py for the error measure and FD steps):
* Forward modes: every dup array is ``Duplicated`` with a random tangent; Active-spec
  scalars are passed as ``Const``; Const arrays are wrapped in ``Const``, other Const
  values passed bare.  The return activity is left to llad's default.
* Reverse modes: return activity ``Active`` (float result) or ``Const`` (None result);
  shadows of read-only arrays start at zero, shadows of written arrays hold a random output
  cotangent.  Afterwards each shadow must hold the gradient of
  ``ret + sum <cotangent, final array>`` w.r.t. the values the array held on entry, and the
  shadow of a write-only ("out") array must be exactly zero.
* Tolerances: 1e-6 (float64) / 1e-3 (float32) against FD; 1e-10 / 1e-4 for the dot-product
  test; 1e-12 / 1e-5 where two llad results (or llad and the kernel) must agree.
* Reverse tests carry ``pytest.mark.reverse``; a reverse call that raises
  NotImplementedError xfails with that reason, everything else fails loudly.
"""
import sys
from pathlib import Path

import numpy as np
import pytest

if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))

import corpus
import fdcheck
from corpus.registry import fresh_args, is_float32, make_shadow

import llad

CASES = corpus.CASES
FWD = [c for c in CASES if "reverse-only" not in c.tags]
REV = [c for c in CASES if "forward-only" not in c.tags]
BOTH = [c for c in FWD if "forward-only" not in c.tags]
WRITERS = [c for c in FWD if any(s.written for s in c.specs())]
ACCUM = [c for c in REV if c.returns == "float" and not any(s.written for s in c.specs())]
K = 4


def _ids(case):
    return case.name


def same_tol(specs):
    return 1e-5 if is_float32(specs) else 1e-12


# ------------------------------------------------------------------ building calls

def _shape(spec):
    return fresh_args([spec])[0].shape


def random_dirs(specs, rng):
    """A random tangent (in the array's dtype) for every dup argument, None elsewhere."""
    return [rng.normal(size=_shape(s)).astype(s.value.dtype) if s.kind == "dup" else None
            for s in specs]


def random_cots(specs, rng):
    """A random output cotangent for every written dup argument, None elsewhere."""
    return [rng.normal(size=_shape(s)).astype(s.value.dtype) if s.written else None for s in specs]


def _const(spec, value):
    if spec.kind == "active" or isinstance(value, np.ndarray):
        return llad.Const(value)
    return value


def forward_args(specs, dirs, noneed=False):
    """(llad args, primal args, shadows); with noneed, written arrays are DuplicatedNoNeed."""
    primal = fresh_args(specs)
    args, shadows = [], []
    for s, p, d in zip(specs, primal, dirs):
        if s.kind == "dup":
            sh = make_shadow(s, d)
            ann = llad.DuplicatedNoNeed if (noneed and s.written) else llad.Duplicated
            args.append(ann(p, sh))
            shadows.append(sh)
        else:
            args.append(_const(s, p))
            shadows.append(None)
    return args, primal, shadows


def batch_args(specs, dirs_k):
    """BatchDuplicated arguments with one shadow per direction set in ``dirs_k``."""
    primal = fresh_args(specs)
    args, shadows = [], []
    for i, (s, p) in enumerate(zip(specs, primal)):
        if s.kind == "dup":
            shs = tuple(make_shadow(s, dirs[i]) for dirs in dirs_k)
            args.append(llad.BatchDuplicated(p, shs))
            shadows.append(shs)
        else:
            args.append(_const(s, p))
            shadows.append(None)
    return args, primal, shadows


def reverse_args(specs, cots, initial=None):
    """(llad args, primal args, shadows): shadows hold ``cots`` (written) or zeros/``initial``."""
    primal = fresh_args(specs)
    args, shadows = [], []
    for i, (s, p, c) in enumerate(zip(specs, primal, cots)):
        if s.kind == "dup":
            sh = make_shadow(s, c if c is not None else (None if initial is None else initial[i]))
            args.append(llad.Duplicated(p, sh))
            shadows.append(sh)
        elif s.kind == "active":
            args.append(llad.Active(p))
            shadows.append(None)
        else:
            args.append(_const(s, p))
            shadows.append(None)
    return args, primal, shadows


def ret_activity(case):
    return llad.Active if case.returns == "float" else llad.Const


def call_reverse(mode, case, args):
    try:
        return llad.autodiff(mode, case.func, ret_activity(case), *args)
    except NotImplementedError as e:
        pytest.xfail(f"llad raised NotImplementedError for a reverse mode: {e}")


def unpack(res, n, what):
    assert isinstance(res, tuple) and len(res) == n, f"{what} returned {res!r}, want a {n}-tuple"
    return res


def check_scalar_or_none(case, value, what):
    if case.returns == "none":
        assert value is None, f"{what}: want None for a None-returning kernel, got {value!r}"
    else:
        assert isinstance(value, (float, np.floating)), f"{what}: want a float, got {value!r}"


def check_derivs(specs, derivs, what):
    assert isinstance(derivs, tuple) and len(derivs) == len(specs), \
        f"{what}: derivs must be a tuple with one entry per parameter, got {derivs!r}"
    for i, (s, d) in enumerate(zip(specs, derivs)):
        if s.kind == "active":
            assert isinstance(d, (float, np.floating)), f"{what}: derivs[{i}] (Active) = {d!r}"
        else:
            assert d is None, f"{what}: derivs[{i}] (not Active) should be None, got {d!r}"


def check_primal_arrays(case, specs, primal, what):
    """After a call with Duplicated arrays, written arrays hold what f itself leaves there."""
    _, ref_outs = fdcheck.evaluate(case.func, specs, cast64=False)
    for i, (s, p) in enumerate(zip(specs, primal)):
        if s.written:
            fdcheck.assert_close([p], [ref_outs[i]], same_tol(specs), f"{what}: primal argument {i} after the call")


def check_primal_value(case, specs, value, what):
    check_scalar_or_none(case, value, what)
    ref, _ = fdcheck.evaluate(case.func, specs, cast64=False)
    if ref is not None:
        fdcheck.assert_close([value], [ref], same_tol(specs), f"{what} vs f's own result")


def reverse_gradient(specs, derivs, shadows):
    return [derivs[i] if s.kind == "active" else shadows[i] for i, s in enumerate(specs)]


def dups(values, specs):
    return [v for v, s in zip(values, specs) if s.kind == "dup"]


# ----------------------------------------------------------------- forward modes

@pytest.mark.parametrize("case", FWD, ids=_ids)
def test_forward_vs_fd(case):
    specs = case.specs()
    dirs = random_dirs(specs, np.random.default_rng(11))
    args, primal, shadows = forward_args(specs, dirs)
    (tangent,) = unpack(llad.autodiff(llad.Forward, case.func, *args), 1, "Forward")
    check_scalar_or_none(case, tangent, "Forward tangent")
    fd_ret, fd_outs = fdcheck.fd_directional(case.func, specs, dirs)
    fdcheck.assert_close([tangent, *dups(shadows, specs)], [fd_ret, *dups(fd_outs, specs)],
                         fdcheck.tolerance(specs), "Forward [return tangent, shadows] vs FD")
    check_primal_arrays(case, specs, primal, "Forward")


@pytest.mark.parametrize("case", FWD, ids=_ids)
def test_forward_with_primal(case):
    specs = case.specs()
    dirs = random_dirs(specs, np.random.default_rng(12))
    args, primal, shadows = forward_args(specs, dirs)
    tangent, value = unpack(llad.autodiff(llad.ForwardWithPrimal, case.func, *args), 2,
                            "ForwardWithPrimal")
    check_primal_value(case, specs, value, "ForwardWithPrimal primal")
    check_primal_arrays(case, specs, primal, "ForwardWithPrimal")
    args1, _, shadows1 = forward_args(specs, dirs)
    (tangent1,) = unpack(llad.autodiff(llad.Forward, case.func, *args1), 1, "Forward")
    fdcheck.assert_close([tangent, *dups(shadows, specs)], [tangent1, *dups(shadows1, specs)],
                         same_tol(specs), "ForwardWithPrimal vs Forward tangents")


@pytest.mark.parametrize("case", FWD, ids=_ids)
def test_forward_batch_equals_singles(case):
    specs = case.specs()
    rng = np.random.default_rng(13)
    dirs_k = [random_dirs(specs, rng) for _ in range(K)]
    args, primal, shadows = batch_args(specs, dirs_k)
    (tangents,) = unpack(llad.autodiff(llad.Forward, case.func, *args), 1, "Forward (batch)")
    if case.returns == "none":
        assert tangents is None or tangents == (None,) * K, tangents
        tangents = (None,) * K
    else:
        assert isinstance(tangents, tuple) and len(tangents) == K, f"want {K} tangents: {tangents!r}"
    check_primal_arrays(case, specs, primal, "Forward (batch)")
    for j in range(K):
        a1, _, sh1 = forward_args(specs, dirs_k[j])
        (t1,) = unpack(llad.autodiff(llad.Forward, case.func, *a1), 1, "Forward")
        batch_j = [sh[j] for sh in shadows if sh is not None]
        fdcheck.assert_close([tangents[j], *batch_j], [t1, *dups(sh1, specs)], same_tol(specs),
                             f"BatchDuplicated direction {j} vs a single Forward call")


@pytest.mark.parametrize("case", WRITERS, ids=_ids)
def test_forward_noneed_tangents(case):
    """DuplicatedNoNeed on the written arrays: the tangents are still exact."""
    specs = case.specs()
    dirs = random_dirs(specs, np.random.default_rng(14))
    args, _, shadows = forward_args(specs, dirs, noneed=True)
    (tangent,) = unpack(llad.autodiff(llad.Forward, case.func, *args), 1, "Forward")
    fd_ret, fd_outs = fdcheck.fd_directional(case.func, specs, dirs)
    fdcheck.assert_close([tangent, *dups(shadows, specs)], [fd_ret, *dups(fd_outs, specs)],
                         fdcheck.tolerance(specs), "Forward with DuplicatedNoNeed vs FD")
    # llad may drop the primal results of those arrays (llad/analysis/deadprimal.py): the tangents stay
    # Duplicated's, to rounding
    args, _, full = forward_args(specs, dirs)
    (tangent_full,) = llad.autodiff(llad.Forward, case.func, *args)
    fdcheck.assert_close([tangent, *dups(shadows, specs)], [tangent_full, *dups(full, specs)], same_tol(specs),
                         "Forward with DuplicatedNoNeed vs Duplicated")


# ----------------------------------------------------------------- reverse modes

@pytest.mark.reverse
@pytest.mark.parametrize("case", REV, ids=_ids)
def test_reverse_vs_fd(case):
    specs = case.specs()
    cots = random_cots(specs, np.random.default_rng(21))
    args, primal, shadows = reverse_args(specs, cots)
    (derivs,) = unpack(call_reverse(llad.Reverse, case, args), 1, "Reverse")
    check_derivs(specs, derivs, "Reverse")
    seed = 1.0 if case.returns == "float" else 0.0
    expected = fdcheck.fd_gradient(case.func, specs, seed, [None if c is None else c.astype(float)
                                                            for c in cots])
    fdcheck.assert_close(reverse_gradient(specs, derivs, shadows), expected,
                         fdcheck.tolerance(specs), "Reverse [Active derivs, shadows] vs FD")
    for i, s in enumerate(specs):
        if s.kind == "dup" and s.role == "out":
            assert np.all(shadows[i] == 0), f"shadow of output argument {i} not zeroed: {shadows[i]}"
    check_primal_arrays(case, specs, primal, "Reverse")


@pytest.mark.reverse
@pytest.mark.parametrize("case", REV, ids=_ids)
def test_reverse_with_primal(case):
    specs = case.specs()
    cots = random_cots(specs, np.random.default_rng(22))
    args, primal, shadows = reverse_args(specs, cots)
    derivs, value = unpack(call_reverse(llad.ReverseWithPrimal, case, args), 2, "ReverseWithPrimal")
    check_derivs(specs, derivs, "ReverseWithPrimal")
    check_primal_value(case, specs, value, "ReverseWithPrimal primal")
    check_primal_arrays(case, specs, primal, "ReverseWithPrimal")
    args1, _, shadows1 = reverse_args(specs, cots)
    (derivs1,) = unpack(call_reverse(llad.Reverse, case, args1), 1, "Reverse")
    fdcheck.assert_close(reverse_gradient(specs, derivs, shadows),
                         reverse_gradient(specs, derivs1, shadows1), same_tol(specs),
                         "ReverseWithPrimal vs Reverse derivatives")


@pytest.mark.reverse
@pytest.mark.parametrize("case", ACCUM, ids=_ids)
def test_reverse_shadows_accumulate(case):
    """Shadows are += targets: start at r, after two calls they hold r + 2 g."""
    specs = case.specs()
    rng = np.random.default_rng(23)
    none = [None] * len(specs)
    args, _, shadows = reverse_args(specs, none)
    (derivs,) = unpack(call_reverse(llad.Reverse, case, args), 1, "Reverse")
    g = reverse_gradient(specs, derivs, shadows)
    r = random_dirs(specs, rng)
    _, _, acc = reverse_args(specs, none, initial=r)
    for n in (1, 2):
        primal = fresh_args(specs)
        call_args = [llad.Duplicated(p, acc[i]) if s.kind == "dup" else
                     (llad.Active(p) if s.kind == "active" else _const(s, p))
                     for i, (s, p) in enumerate(zip(specs, primal))]
        (dn,) = unpack(call_reverse(llad.Reverse, case, call_args), 1, "Reverse")
        want = [None if gi is None else (gi if s.kind == "active" else r[i] + n * gi)
                for i, (s, gi) in enumerate(zip(specs, g))]
        fdcheck.assert_close(reverse_gradient(specs, dn, acc), want, same_tol(specs),
                             f"after {n} Reverse call(s) on the same shadows (want r + {n} g)")


@pytest.mark.reverse
@pytest.mark.parametrize("case", BOTH, ids=_ids)
def test_dot_product_reverse_vs_forward(case):
    """<reverse gradient, v> == <seeds, forward JVP(v)> for random v and random seeds."""
    specs = case.specs()
    rng = np.random.default_rng(24)
    dirs, cots = random_dirs(specs, rng), random_cots(specs, rng)
    fargs, _, fshadows = forward_args(specs, dirs)
    (tangent,) = unpack(llad.autodiff(llad.Forward, case.func, *fargs), 1, "Forward")
    rargs, _, rshadows = reverse_args(specs, cots)
    unpack(call_reverse(llad.Reverse, case, rargs), 1, "Reverse")
    seed = 1.0 if case.returns == "float" else 0.0
    lhs, rhs, err = fdcheck.dot_product_error(rshadows, dirs, seed, tangent, cots, fshadows)
    assert err <= fdcheck.dot_tolerance(specs), \
        f"dot-product test: <grad, v> = {lhs!r}, <seed, JVP(v)> = {rhs!r}, rel err {err:.3e}"
