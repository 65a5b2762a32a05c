"""Checks of the corpus and of fdcheck itself; needs Numba and NumPy but not llad.

* every kernel compiles, runs, returns what its case says, and touches its arrays only as
  their roles say ("in" unchanged, "out" independent of its initial contents);
* the inputs sit away from kinks: finite differences at two step sizes agree;
* fdcheck's gradient, JVP and dot-product helpers agree with each other and with
  hand-derived derivatives for a handful of kernels.
"""
import dataclasses
import math
import sys
from pathlib import Path

import numpy as np
import pytest

if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))

import corpus
import fdcheck
from corpus.registry import fresh_args, is_float32

CASES = corpus.CASES


def _ids(case):
    return case.name



def test_registry():
    names = [c.name for c in CASES]
    assert len(names) == len(set(names))
    core = {c.func for c in CASES if c.group in ("core", "mathfns")}
    rev = {c.func for c in CASES if c.group == "reverse"}
    assert len(core) >= 30 and len(rev) >= 15, (len(core), len(rev))
    for c in CASES:
        specs = c.specs()
        kinds = [s.kind for s in specs]
        assert len(specs) == c.func.py_func.__code__.co_argcount, c.name
        assert "dup" in kinds or "active" in kinds, c.name
        assert ("dup" in kinds) != ("reverse-only" in c.tags), c.name
        if c.returns == "none":
            assert any(s.written for s in specs), f"{c.name} returns None and writes nothing"


def _modified(specs, rng):
    """Specs whose "out" arrays start with other contents."""
    return [dataclasses.replace(s, value=rng.normal(size=s.value.shape).astype(s.value.dtype))
            if s.kind == "dup" and s.role == "out" else s for s in specs]


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_kernel_contract(case):
    specs = case.specs()
    args = fresh_args(specs)
    before = [np.array(a) if isinstance(a, np.ndarray) else None for a in args]
    ret = case.func(*args)
    if case.returns == "none":
        assert ret is None
    else:
        assert isinstance(ret, (float, np.floating)) and math.isfinite(ret), ret
    for s, a, b in zip(specs, args, before):
        if b is None:
            continue
        assert np.all(np.isfinite(a))
        if s.kind == "const" or s.role == "in":
            np.testing.assert_array_equal(a, b, err_msg="read-only argument was written")
        elif s.role == "inout":
            assert not np.array_equal(a, b), "inout array not written"
    ret2, outs2 = fdcheck.evaluate(case.func, specs, cast64=False)
    ret3, outs3 = fdcheck.evaluate(case.func, _modified(specs, np.random.default_rng(1)),
                                   cast64=False)
    assert ret2 == ret3 and ret2 == (None if ret is None else float(ret))
    for s, a, b in zip(specs, outs2, outs3):
        if s.kind == "dup" and s.role != "in":
            np.testing.assert_array_equal(a, b, err_msg="output depends on garbage")
    if is_float32(specs):
        r64, o64 = fdcheck.evaluate(case.func, specs, cast64=True)
        assert fdcheck.rel_err([r64, *o64], [ret2, *outs2]) < 1e-4


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_fd_smooth_and_consistent(case):
    """FD gradients at steps 1e-6 and 1e-4 agree (no kink within 1e-4 of the inputs), and
    <FD gradient, v> matches the FD directional derivative (the dot-product helper)."""
    specs = case.specs()
    rng = np.random.default_rng(7)
    cot = [rng.normal(size=fresh_args([s])[0].shape) if s.written else None for s in specs]
    seed = 1.0 if case.returns == "float" else 0.0
    g6 = fdcheck.fd_gradient(case.func, specs, seed, cot, h_rel=1e-6)
    g4 = fdcheck.fd_gradient(case.func, specs, seed, cot, h_rel=1e-4)
    fdcheck.assert_close(g6, g4, 1e-6 if not is_float32(specs) else 1e-5, "FD step 1e-6 vs 1e-4")
    assert np.max(np.abs(fdcheck.flat(g6))) > 1e-3, "gradient is identically ~0"
    dirs = [rng.normal(size=fresh_args([s])[0].shape) if s.kind == "dup" else None
            for s in specs]
    if all(d is None for d in dirs):
        return                               # reverse-only: nothing to move along
    rt, ot = fdcheck.fd_directional(case.func, specs, dirs)
    lhs, rhs, err = fdcheck.dot_product_error(g6, dirs, seed, rt, cot, ot)
    assert err < 1e-7, (lhs, rhs, err)


# --------------------------------------------------------- hand-derived gradients

def _grad(name, ret_seed=1.0, cot=None):
    c = corpus.get(name)
    specs = c.specs()
    return specs, fdcheck.fd_gradient(c.func, specs, ret_seed, cot)


def test_hand_sum_squares_and_quad_form():
    specs, (g,) = _grad("sum_squares")
    fdcheck.assert_close([g], [2 * specs[0].value], 1e-8, "sum_squares")
    specs, (gA, gx) = _grad("quad_form")
    A, x = specs[0].value, specs[1].value
    fdcheck.assert_close([gA, gx], [np.outer(x, x), (A + A.T) @ x], 1e-8, "quad_form")


def test_hand_math_kernels():
    w = 1.0 + 0.1 * np.arange(7)
    table = {"math_sin": np.cos, "math_tan": lambda x: 1 / np.cos(x) ** 2,
             "math_erf": lambda x: 2 / np.sqrt(np.pi) * np.exp(-x * x),
             "math_acosh": lambda x: 1 / np.sqrt(x * x - 1), "math_log2": lambda x: 1 / (x * np.log(2)),
             "math_floor": lambda x: np.floor(x) + 1, "builtin_abs": lambda x: 2 * np.abs(x)}
    for name, deriv in table.items():
        specs, (g,) = _grad(name)
        fdcheck.assert_close([g], [w * deriv(specs[0].value)], 1e-8, name)
    specs, (gy, gx) = _grad("math_atan2")
    y, x = specs[0].value, specs[1].value
    r2 = x * x + y * y
    fdcheck.assert_close([gy, gx], [w * x / r2, -w * y / r2], 1e-8, "math_atan2")


def test_hand_matvec_and_softmax_with_cotangents():
    rng = np.random.default_rng(3)
    c = rng.normal(size=4)
    specs, (gA, gx, gy) = _grad("matvec_out", 0.0, [None, None, c])
    A, x = specs[0].value, specs[1].value
    fdcheck.assert_close([gA, gx, gy], [np.outer(c, x), A.T @ c, np.zeros(4)], 1e-8, "matvec")
    c = rng.normal(size=7)
    specs, (gx, gout) = _grad("softmax_out", 0.0, [None, c])
    x = specs[0].value
    p = np.exp(x - x.max()) / np.exp(x - x.max()).sum()
    fdcheck.assert_close([gx, gout], [p * (c - p @ c), np.zeros(7)], 1e-8, "softmax")


def test_hand_heat_lu_kmeans():
    rng = np.random.default_rng(4)
    c = rng.normal(size=12)
    specs, (gu, _, _) = _grad("heat_inplace", 0.0, [c, None, None])
    M = np.eye(12)
    for i in range(1, 11):
        M[i, i - 1:i + 2] += 0.25 * np.array([1.0, -2.0, 1.0])
    fdcheck.assert_close([gu], [np.linalg.matrix_power(M, 15).T @ c], 1e-8, "heat")
    specs, (gA,) = _grad("lu_det")
    A = specs[0].value
    fdcheck.assert_close([gA], [np.linalg.det(A) * np.linalg.inv(A).T], 1e-7, "lu_det")
    specs, (gX, gC) = _grad("kmeans_cost")
    X, C = specs[0].value, specs[1].value
    near = np.argmin(((X[:, None, :] - C[None]) ** 2).sum(-1), axis=1)
    eC = np.zeros_like(C)
    np.add.at(eC, near, -2 * (X - C[near]))
    fdcheck.assert_close([gX, gC], [2 * (X - C[near]), eC], 1e-8, "kmeans")


def test_hand_scalars_and_float32():
    specs, (ga, gx) = _grad("active_scale")
    a, x = specs[0].value, specs[1].value
    fdcheck.assert_close([ga, gx], [np.sum(np.sin(a * x) + a * x * np.cos(a * x)),
                                    a * a * np.cos(a * x)], 1e-8, "active_scale")
    specs, (gx, gy) = _grad("float32_dot")
    x, y = (s.value.astype(np.float64) for s in specs)
    fdcheck.assert_close([gx, gy], [y + x, x], 1e-8, "float32_dot")
    specs, (ga,) = _grad("newton_cuberoot")
    a = specs[0].value
    fdcheck.assert_close([ga], [np.arange(1, 7) / (3 * np.cbrt(a) ** 2)], 1e-8, "cuberoot")


def test_hand_jvp():
    c = corpus.get("matvec_out")
    specs = c.specs()
    rng = np.random.default_rng(5)
    dA, dx = rng.normal(size=(4, 6)), rng.normal(size=6)
    rt, (tA, tx, ty) = fdcheck.fd_directional(c.func, specs, [dA, dx, np.ones(4)])
    A, x = specs[0].value, specs[1].value
    assert rt is None
    fdcheck.assert_close([tA, tx, ty], [dA, dx, dA @ x + A @ dx], 1e-8, "matvec JVP")
