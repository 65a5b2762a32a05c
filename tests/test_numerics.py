"""What llad returns at non-differentiable points and for NaN / Inf inputs (docs/errors.md, "Numerics").

Each row: a one-line kernel ``f(x) -> float`` of a 2-element array, a point, the reverse-mode gradient
(``Duplicated(x, dx)``, ``dx`` starting at 0) and the forward-mode tangents along e0 and e1.  The values
were measured and are the documented behaviour; NaN compares equal to NaN, and the sign of infinities
and zeros of a gradient is checked (``-0.0`` and ``0.0`` are not distinguished).
"""
from __future__ import annotations

import math

import numba
import numpy as np
import pytest

import llad
from llad import Duplicated, Forward, Reverse, ReverseWithPrimal

nan, inf = math.nan, math.inf

EXPRS = {
    "abs": "abs(x[0])",
    "np.abs": "np.abs(x[0])",
    "sqrt": "math.sqrt(x[0])",
    "pow0.5": "x[0] ** 0.5",
    "square": "x[0] ** 2",
    "log": "math.log(x[0])",
    "floor": "math.floor(x[0]) + 0.0",
    "np.floor": "np.floor(x[0])",
    "ceil": "math.ceil(x[0]) + 0.0",
    "round": "np.round(x[0])",
    "trunc": "math.trunc(x[0]) + 0.0",
    "min": "min(x[0], x[1])",
    "max": "max(x[0], x[1])",
    "np.minimum": "np.minimum(x[0], x[1])",
    "np.maximum": "np.maximum(x[0], x[1])",
    "np.fmin": "np.fmin(x[0], x[1])",
    "np.fmax": "np.fmax(x[0], x[1])",
    "relu": "max(x[0], 0.0)",
    "branch": "x[0] if x[0] > x[1] else x[1]",
    "hypot": "math.hypot(x[0], x[1])",
    "atan2": "math.atan2(x[0], x[1])",
    "mul": "x[0] * x[1]",
    "div": "x[0] / x[1]",
    "sin": "math.sin(x[0])",
    "exp": "math.exp(x[0])",
    "tanh": "math.tanh(x[0])",
    "copysign": "math.copysign(x[0], x[1])",
}

# (expression, point, reverse gradient, forward tangent along e0, along e1)
ROWS = [
    # --- non-differentiable points ---------------------------------------------------------------
    ("abs", [0.0, 0.0], [1, 0], 1, 0),              # d|x|/dx = copysign(1, x): +1 at +0.0 ...
    ("abs", [-0.0, 0.0], [-1, 0], -1, 0),           # ... and -1 at -0.0
    ("np.abs", [0.0, 0.0], [1, 0], 1, 0),
    ("sqrt", [0.0, 0.0], [inf, 0], inf, nan),       # 0.5 / sqrt(0) = inf; 0 * inf = nan along e1
    ("sqrt", [-0.0, 0.0], [-inf, 0], -inf, nan),    # sqrt(-0.0) = -0.0
    ("pow0.5", [0.0, 0.0], [inf, 0], inf, nan),
    ("square", [0.0, 0.0], [0, 0], 0, 0),
    ("log", [0.0, 0.0], [inf, 0], inf, nan),
    ("floor", [2.0, 0.0], [0, 0], 0, 0),            # rounding functions: derivative 0, also at integers
    ("np.floor", [2.0, 0.0], [0, 0], 0, 0),
    ("ceil", [2.0, 0.0], [0, 0], 0, 0),
    ("round", [2.5, 0.0], [0, 0], 0, 0),
    ("trunc", [-1.0, 0.0], [0, 0], 0, 0),
    ("min", [1.0, 1.0], [1, 0], 1, 0),              # ties: the derivative follows the first operand
    ("max", [1.0, 1.0], [1, 0], 1, 0),
    ("np.minimum", [1.0, 1.0], [1, 0], 1, 0),
    ("np.maximum", [1.0, 1.0], [1, 0], 1, 0),
    ("np.fmin", [1.0, 1.0], [1, 0], 1, 0),
    ("np.fmax", [1.0, 1.0], [1, 0], 1, 0),
    ("relu", [0.0, 0.0], [1, 0], 1, 0),             # max(x, 0) at 0: the tie goes to x
    ("branch", [1.0, 1.0], [0, 1], 0, 1),           # a branch: the derivative of the branch taken
    ("hypot", [0.0, 0.0], [nan, nan], nan, nan),    # x / hypot = 0 / 0
    ("atan2", [0.0, 0.0], [nan, nan], nan, nan),
    # --- NaN and Inf inputs ------------------------------------------------------------------------
    ("sin", [nan, 1.0], [nan, 0], nan, nan),        # NaN propagates into the derivative ...
    ("mul", [nan, 1.0], [1, nan], nan, nan),        # ... of the operands it multiplies
    ("abs", [nan, 1.0], [1, 0], 1, 0),              # copysign(1, nan) = 1
    ("min", [nan, 1.0], [1, 0], 1, 0),              # Python min/max keep the first operand when NaN
    ("max", [nan, 1.0], [1, 0], 1, 0),
    ("np.fmin", [nan, 1.0], [0, 1], 0, 1),          # fmin/fmax ignore the NaN
    ("np.fmax", [nan, 1.0], [0, 1], 0, 1),
    ("floor", [nan, 0.0], [0, 0], 0, 0),
    ("exp", [inf, 0.0], [inf, 0], inf, nan),
    ("exp", [-inf, 0.0], [0, 0], 0, 0),
    ("tanh", [inf, 0.0], [0, 0], 0, 0),
    ("tanh", [-inf, 0.0], [0, 0], 0, 0),
    ("sqrt", [inf, 0.0], [0, 0], 0, 0),
    ("sqrt", [-inf, 0.0], [nan, 0], nan, nan),
    ("mul", [inf, 1.0], [1, inf], nan, inf),        # forward: 1*1 + 0*inf = nan (IEEE), reverse: 1
    ("div", [inf, 1.0], [1, -inf], nan, -inf),
    ("copysign", [-0.0, 0.0], [-1, 0], -1, 0),
    ("sin", [inf, 0.0], [nan, 0], nan, nan),
]


def _kernel(expr: str):
    ns = {"np": np, "math": math}
    exec(f"def k(x):\n    return {expr}\n", ns)
    return numba.njit(ns["k"])


_kernels: dict = {}


def kernel(name):
    if name not in _kernels:
        _kernels[name] = _kernel(EXPRS[name])
    return _kernels[name]


def _same(actual, expected) -> bool:
    a, e = np.asarray(actual, dtype=float), np.asarray(expected, dtype=float)
    return bool(np.all((np.isnan(a) & np.isnan(e)) | (a == e)))


@pytest.mark.parametrize("name, point, grad, t0, t1", ROWS,
                         ids=[f"{r[0]}@{','.join(map(str, r[1]))}" for r in ROWS])
def test_numerics(name, point, grad, t0, t1):
    f = kernel(name)
    x = np.array(point, dtype=float)
    dx = np.zeros(2)
    (derivs, primal) = llad.autodiff(ReverseWithPrimal, f, Duplicated(x.copy(), dx))
    assert _same(primal, f(x.copy())), (primal, f(x.copy()))
    assert _same(dx, grad), f"reverse gradient {dx.tolist()}, documented {grad}"
    tangents = [llad.autodiff(Forward, f, Duplicated(x.copy(), np.eye(2)[i].copy()))[0] for i in range(2)]
    assert _same(tangents, [t0, t1]), f"forward tangents {tangents}, documented {[t0, t1]}"


def test_docs_show_every_row():
    import os
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "errors.md")
    text = open(path).read()
    for name, *_ in ROWS:
        assert f"| `{EXPRS[name]}` |" in text, f"docs/errors.md has no row for {EXPRS[name]}"


@numba.njit
def sum_sqrt(x):
    s = 0.0
    for i in range(x.shape[0]):
        s += math.sqrt(x[i])
    return s


def test_nan_in_one_element_stays_in_that_element():
    """A NaN input poisons the derivative only where it flows: other elements' gradients stay finite."""
    x = np.array([1.0, nan, 4.0])
    dx = np.zeros(3)
    llad.autodiff(Reverse, sum_sqrt, Duplicated(x, dx))
    assert np.isnan(dx[1])
    np.testing.assert_allclose(dx[[0, 2]], [0.5, 0.25])


@numba.njit
def guarded_log(x):
    s = 0.0
    for i in range(x.shape[0]):
        if x[i] > 0.0:
            s += math.log(x[i])
    return s


def test_untaken_branch_does_not_leak_inf():
    """A branch not taken contributes nothing, even where its derivative would be infinite."""
    x = np.array([0.0, 2.0, -1.0])
    dx = np.zeros(3)
    llad.autodiff(Reverse, guarded_log, Duplicated(x, dx))
    np.testing.assert_array_equal(dx, [0.0, 0.5, 0.0])
    (t,) = llad.autodiff(Forward, guarded_log, Duplicated(x, np.ones(3)))
    assert t == 0.5


@numba.njit
def select_sqrt(x):
    # Numba/LLVM turns this into a select: both sides are computed, one is chosen
    return math.sqrt(x[0]) if x[0] > 0.0 else 0.0


def test_select_strong_zero():
    """At x = 0 the unchosen sqrt side has an infinite partial; the derivative is still 0, not NaN."""
    x = np.array([0.0])
    dx = np.zeros(1)
    llad.autodiff(Reverse, select_sqrt, Duplicated(x, dx))
    assert dx[0] == 0.0
    (t,) = llad.autodiff(Forward, select_sqrt, Duplicated(x, np.ones(1)))
    assert t == 0.0


def _fmt(v) -> str:
    v = float(v)
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return f"{v:g}".replace("-0", "0") if v == 0 else f"{v:g}"


def markdown_table() -> str:
    """The measured table of docs/errors.md (section Numerics)."""
    rows = ["| f(x) | x | f | reverse gradient | forward tangents (e0, e1) |", "|---|---|---|---|---|"]
    for name, point, _, _, _ in ROWS:
        f = kernel(name)
        x = np.array(point, dtype=float)
        dx = np.zeros(2)
        _, primal = llad.autodiff(ReverseWithPrimal, f, Duplicated(x.copy(), dx))
        ts = [llad.autodiff(Forward, f, Duplicated(x.copy(), np.eye(2)[i].copy()))[0] for i in range(2)]
        pt = ", ".join(_fmt(p) if p != 0 or math.copysign(1, p) > 0 else "-0.0" for p in point)
        rows.append(f"| `{EXPRS[name]}` | ({pt}) | {_fmt(primal)} | ({_fmt(dx[0])}, {_fmt(dx[1])}) | "
                    f"({_fmt(ts[0])}, {_fmt(ts[1])}) |")
    return "\n".join(rows)


def write_docs_table(name: str, table: str) -> None:
    """Replace the table between `<!-- table NAME ... -->` and `<!-- end NAME -->` in docs/errors.md."""
    import os
    import re
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "errors.md")
    with open(path) as fh:
        text = fh.read()
    pattern = re.compile(rf"(<!-- table {name}:[^\n]*-->\n).*?(<!-- end {name} -->)", re.S)
    assert pattern.search(text), f"no table {name} in {path}"
    text = pattern.sub(lambda m: m.group(1) + table + "\n" + m.group(2), text)
    with open(path, "w") as fh:
        fh.write(text)


if __name__ == "__main__":
    import sys
    if "--write-docs" in sys.argv:
        write_docs_table("numerics", markdown_table())
    else:
        print(markdown_table())
