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
