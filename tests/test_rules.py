"""Every rule in llad/rules.py, checked in both modes against central finite differences.

Each case is a one-line expression in a loop over two input arrays; hypothesis picks the points.
"""
from __future__ import annotations

import math  # noqa: F401  (used by the generated kernels)

import numba
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import llad
from llad.rules import RULES

# (rule exercised, expression in a and b, domain of a, domain of b)
CASES = [
    ("fadd", "a + b", (-3, 3), (-3, 3)),
    ("fsub", "a - b", (-3, 3), (-3, 3)),
    ("fmul", "a * b", (-3, 3), (-3, 3)),
    ("fdiv", "a / b", (-3, 3), (0.5, 3)),
    ("fneg", "-a * b", (-3, 3), (-3, 3)),
    ("frem", "a % b", (1.6, 1.8), (1.0, 1.1)),
    ("sin", "math.sin(a)", (-3, 3), (0, 1)),
    ("cos", "np.cos(a)", (-3, 3), (0, 1)),
    ("tan", "math.tan(a)", (-1.2, 1.2), (0, 1)),
    ("exp", "math.exp(a)", (-3, 3), (0, 1)),
    ("exp2", "np.exp2(a)", (-3, 3), (0, 1)),
    ("expm1", "math.expm1(a)", (-3, 3), (0, 1)),
    ("log", "math.log(a)", (0.1, 5), (0, 1)),
    ("log2", "math.log2(a)", (0.1, 5), (0, 1)),
    ("log10", "math.log10(a)", (0.1, 5), (0, 1)),
    ("log1p", "math.log1p(a)", (-0.8, 5), (0, 1)),
    ("sqrt", "math.sqrt(a)", (0.1, 5), (0, 1)),
    ("pow", "a ** b", (0.1, 3), (-2, 2)),
    ("powi", "a ** 3 + a ** 2 + a ** -2", (0.3, 3), (0, 1)),
    ("fabs", "math.fabs(a) * b", (0.2, 3), (-3, 3)),
    ("floor", "math.floor(a) * a", (0.1, 3.9), (0, 1)),
    ("ceil", "math.ceil(a) * a", (0.1, 3.9), (0, 1)),
    ("trunc", "math.trunc(a) * a", (0.1, 3.9), (0, 1)),
    ("copysign", "math.copysign(a, b)", (0.2, 3), (0.1, 3)),
    ("copysign", "math.copysign(a, b)", (0.2, 3), (-3, -0.1)),
    ("tanh", "math.tanh(a)", (-3, 3), (0, 1)),
    ("sinh", "math.sinh(a)", (-3, 3), (0, 1)),
    ("cosh", "math.cosh(a)", (-3, 3), (0, 1)),
    ("asin", "math.asin(a)", (-0.9, 0.9), (0, 1)),
    ("acos", "math.acos(a)", (-0.9, 0.9), (0, 1)),
    ("atan", "math.atan(a)", (-3, 3), (0, 1)),
    ("asinh", "math.asinh(a)", (-3, 3), (0, 1)),
    ("acosh", "math.acosh(a)", (1.1, 4), (0, 1)),
    ("atanh", "math.atanh(a)", (-0.9, 0.9), (0, 1)),
    ("erf", "math.erf(a)", (-2, 2), (0, 1)),
    ("erfc", "math.erfc(a)", (-2, 2), (0, 1)),
    ("lgamma", "math.lgamma(a)", (0.1, 12), (0, 1)),
    ("lgamma", "math.lgamma(a)", (-2.9, -2.1), (0, 1)),
    ("numba_gamma", "math.gamma(a)", (0.2, 4), (0, 1)),
    ("atan2", "math.atan2(a, b)", (-3, 3), (0.2, 3)),
    ("hypot", "math.hypot(a, b)", (0.2, 3), (-3, -0.2)),
    ("minnum", "min(a, b)", (-3, 3), (-3, 3)),
    ("maxnum", "max(a, b) + np.minimum(a, b) * np.maximum(a, b)", (-3, 3), (-3, 3)),
    ("cbrt", "np.cbrt(a)", (0.2, 3), (0, 1)),
    ("select", "a if a > b else b * b", (-3, 3), (-3, 3)),
    ("fptrunc", "np.float64(np.float32(a)) * b", (-3, 3), (-3, 3)),
]

_kernels: dict = {}


def kernel(expr: str):
    if expr not in _kernels:
        src = (f"def k(x, y):\n    s = 0.0\n    for i in range(x.shape[0]):\n        a = x[i]\n        b = y[i]\n"
               f"        s += {expr}\n    return s\n")
        ns = {"math": math, "np": np}
        exec(compile(src, f"<rule {expr}>", "exec"), ns)
        _kernels[expr] = numba.njit(ns["k"])
    return _kernels[expr]


def fd_gradient(f, x, y, h=1e-6):
    gx, gy = np.zeros_like(x), np.zeros_like(y)
    for arr, g in ((x, gx), (y, gy)):
        for i in range(arr.size):
            old = arr[i]
            step = h * max(1.0, abs(old))
            arr[i] = old + step
            fp = f(x, y)
            arr[i] = old - step
            fm = f(x, y)
            arr[i] = old
            g[i] = (fp - fm) / (2 * step)
    return gx, gy


def points(lo, hi):
    return st.lists(st.floats(lo, hi, allow_nan=False), min_size=3, max_size=3).map(np.array)


@pytest.mark.parametrize("rule,expr,da,db", CASES, ids=[f"{c[0]}:{c[1]}" for c in CASES])
def test_rule_against_finite_differences(rule, expr, da, db):
    f = kernel(expr)

    @settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
    @given(points(*da), points(*db))
    def check(x, y):
        # stay off the kinks: ties of min/max/select, integers for floor/ceil/trunc
        assume(np.abs(x - y).min() > 1e-3 and np.abs(x - np.round(x)).min() > 1e-3)
        fx, fy = fd_gradient(f, x.copy(), y.copy(), h=1e-3 if "float32" in expr else 1e-6)
        scale = max(1.0, np.abs(fx).max(), np.abs(fy).max())
        gx, gy = np.zeros_like(x), np.zeros_like(y)
        (_, primal) = llad.autodiff(llad.ReverseWithPrimal, f, llad.Duplicated(x, gx), llad.Duplicated(y, gy))
        assert primal == pytest.approx(f(x, y), rel=1e-12, abs=1e-12)
        tol = 1e-3 if "float32" in expr else 1e-6
        assert np.abs(gx - fx).max() / scale < tol
        assert np.abs(gy - fy).max() / scale < tol
        vx, vy = np.linspace(0.3, 1.1, 3), np.linspace(-0.7, 0.9, 3)
        (tangent,) = llad.autodiff(llad.Forward, f, llad.Duplicated(x, vx), llad.Duplicated(y, vy))
        dot = float(gx @ vx + gy @ vy)
        tol = 1e-6 if "float32" in expr else 1e-10      # a float32 cast rounds the tangent too
        assert tangent == pytest.approx(dot, rel=tol, abs=tol * scale)

    check()


def test_float32_rules():
    f = kernel("math.sin(a) * math.exp(b) + math.sqrt(a) + math.tanh(b) + a ** 2")
    x = np.array([0.3, 0.9, 1.7], dtype=np.float32)
    y = np.array([-0.4, 0.2, 1.1], dtype=np.float32)
    gx, gy = np.zeros_like(x), np.zeros_like(y)
    llad.autodiff(llad.Reverse, f, llad.Duplicated(x, gx), llad.Duplicated(y, gy))
    fx, fy = fd_gradient(f, x.astype(np.float64), y.astype(np.float64))
    assert np.abs(gx - fx).max() < 1e-3 * max(1, np.abs(fx).max())
    assert np.abs(gy - fy).max() < 1e-3 * max(1, np.abs(fy).max())


# Rules Numba never emits for Python code: tested through their neighbours, listed so a new rule
# cannot go untested silently.
NOT_EMITTED_BY_NUMBA = {"round", "rint", "nearbyint", "roundeven", "fma", "fmuladd", "minimum", "maximum", "fmin",
                        "fmax", "tgamma"}


def test_every_rule_has_a_case():
    covered = {c[0] for c in CASES}
    # user rules (llad.custom_jvp / custom_vjp) join the table as they are used: test_custom_rules.py
    builtin = {name for name in RULES if not name.startswith(llad.custom.VALUE_PREFIX)}
    missing = builtin - covered - NOT_EMITTED_BY_NUMBA
    assert not missing, f"rules without a finite-difference test: {sorted(missing)}"
