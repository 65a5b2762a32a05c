"""Random 1-D stencils (offsets, weights, a nonlinearity, float32/float64, Const or Duplicated
weights): where the reverse sweep defers their accumulations (scratch arrays, gather loops) and where
it cannot (a loop starting past 1 keeps Numba's negative-index selects in the addresses), the gradient
must be exact: checked against forward mode (dot-product test) and central differences."""
from __future__ import annotations

import importlib.util
import os
import tempfile

import numpy as np
import pytest

import llad

_DIR = tempfile.mkdtemp(prefix="llad_stencils_")


def _stencil_source(offsets: list[int], nonlinear: bool, steps: int) -> str:
    lo, hi = -min(offsets), max(offsets)
    terms = " + ".join(f"w[{k}] * u[i + {o}]" if o >= 0 else f"w[{k}] * u[i - {-o}]" for k, o in enumerate(offsets))
    body = f"math.sin({terms})" if nonlinear else terms
    return (f"import math\nimport numpy as np\nfrom numba import njit\n\n\n@njit\n"
            f"def kern(u, w):\n    n = u.shape[0]\n    t = np.zeros_like(u)\n"
            f"    for _ in range({steps}):\n"
            f"        for i in range({lo}, n - {hi}):\n            t[i] = u[i] + 0.1 * ({body})\n"
            f"        for i in range(n):\n            u[i] = t[i]\n"
            f"    s = 0.0\n    for i in range(n):\n        s += u[i] * u[i] * (1.0 + 0.01 * i)\n    return s\n")


def _load(source: str, name: str):
    path = os.path.join(_DIR, f"{name}.py")
    with open(path, "w") as fh:
        fh.write(source)
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.kern


@pytest.mark.parametrize("seed", range(8))
def test_random_stencil_gradient(seed):
    rng = np.random.default_rng(100 + seed)
    offsets = sorted(set(int(o) for o in rng.integers(-3, 4, size=rng.integers(2, 6))))
    if len(offsets) < 2:
        offsets = [-1, 1]
    nonlinear, f32, w_dup = bool(seed % 2), seed % 4 == 3, seed % 3 == 0
    dtype = np.float32 if f32 else np.float64
    kern = _load(_stencil_source(offsets, nonlinear, steps=3), f"stencil_{seed}")
    n = 17
    u = rng.uniform(-1, 1, n).astype(dtype)
    w = rng.uniform(-1, 1, len(offsets)).astype(dtype)
    du, dw = np.zeros_like(u), np.zeros_like(w)
    wa = llad.Duplicated(w, dw) if w_dup else llad.Const(w)
    llad.autodiff(llad.Reverse, kern, llad.Active, llad.Duplicated(u.copy(), du), wa)
    vu = rng.standard_normal(n).astype(dtype)
    vw = rng.standard_normal(len(offsets)).astype(dtype) if w_dup else np.zeros(len(offsets), dtype)
    fw = llad.Duplicated(w, vw.copy()) if w_dup else llad.Const(w)
    (t,) = llad.autodiff(llad.Forward, kern, llad.Duplicated(u.copy(), vu.copy()), fw)
    lhs = float(np.dot(du.astype(np.float64), vu) + np.dot(dw.astype(np.float64), vw))
    tol = 1e-3 if f32 else 1e-10
    assert abs(lhs - t) <= tol * max(1.0, abs(t)), (offsets, lhs, t)
    if not f32:
        h = 1e-6
        fp = kern(u + h * vu, w + h * vw)
        fm = kern(u - h * vu, w - h * vw)
        assert abs((fp - fm) / (2 * h) - t) <= 1e-6 * max(1.0, abs(t)), offsets


# --- loads through a select of two addresses (analysis/deferral.py): a ring's neighbour ---------------
from numba import njit  # noqa: E402

from llad.testing import check_grads  # noqa: E402


@njit
def _ring_rhs(y, k, out):
    n = y.shape[0]
    for i in range(n):
        prev = y[i - 1] if i > 0 else y[n - 1]
        out[i] = -k * y[i] + np.sin(prev)


@njit
def ring_ode(y0, k, dt, steps):
    """Euler steps of the oscillator ring dy_i = -k y_i + sin(y_{i-1}) (tools/bench's RK4 kernel, shorter)."""
    y = y0.copy()
    f = np.empty_like(y)
    for _ in range(steps):
        _ring_rhs(y, k, f)
        for i in range(y.shape[0]):
            y[i] += dt * f[i]
    return np.sum(y * y)


@njit
def both_neighbours(u, out):
    """Two selects of IV-dependent addresses, one per side, each with a wrap-around arm."""
    n = u.shape[0]
    for i in range(n):
        left = u[i - 1] if i > 0 else u[n - 1]
        right = u[i + 1] if i < n - 1 else u[0]
        out[i] = left * right - 2.0 * u[i]
    return np.sum(out * out)


@njit
def alternating(u, out):
    """The select's condition is a remainder of the IV, its arms two IV-dependent addresses."""
    n = u.shape[0]
    for i in range(1, n - 1):
        v = u[i - 1] if i & 1 else u[i + 1]
        out[i] = v * u[i]
    return np.sum(out)


def test_ring_ode_every_mode():
    assert check_grads(ring_ode, np.linspace(-1.5, 2.0, 7), 0.5, 0.05, 20) > 0


def test_ring_ode_reverse_matches_forward_columns():
    y0 = np.linspace(-1.5, 2.0, 9)
    dy = np.zeros(9)
    llad.autodiff(llad.Reverse, ring_ode, llad.Active, llad.Duplicated(y0.copy(), dy), llad.Const(0.5),
                  llad.Const(0.05), llad.Const(30))
    for e in range(9):
        v = np.zeros(9)
        v[e] = 1.0
        (t,) = llad.autodiff(llad.Forward, ring_ode, llad.Duplicated(y0.copy(), v), llad.Const(0.5),
                             llad.Const(0.05), llad.Const(30))
        assert abs(t - dy[e]) <= 1e-12 * max(1.0, abs(t))


@pytest.mark.parametrize("f", [both_neighbours, alternating])
def test_selected_neighbours_every_mode(f):
    assert check_grads(f, np.linspace(0.3, 1.9, 8), np.zeros(8)) > 0
