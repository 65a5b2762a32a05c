"""One module per GradBench eval.  Each defines

* ``FUNCTIONS``: function name -> :class:`Function` (prepare the input, compute, encode the output);
* ``warm_up()``: compiles every kernel and every llad derivative the functions use, on a tiny input of
  the same argument types (dtype, ndim, layout) as the real ones, so that ``define`` pays for
  compilation and ``evaluate`` times only the computation.

Every derivative comes from ``llad.autodiff`` on a plain ``@numba.njit`` kernel.  The return
activity is left implicit (Active for a float result in reverse mode): naming it, as in
``autodiff(Reverse, f, Active, ...)``, currently sends every call down llad's slow dispatch path
(about 30-70 us instead of 3-7 us; see docs/gradbench.md).
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

NAMES = ("hello", "lse", "llsq", "ode", "det", "kmeans", "gmm", "lstm", "ba", "particle", "saddle")


@dataclass(frozen=True)
class Function:
    prepare: Callable[[Any], Any]      # JSON input -> arguments of compute (untimed)
    compute: Callable[[Any], Any]      # the timed part
    to_json: Callable[[Any], Any]      # result -> JSON output (untimed)


def load(name: str) -> ModuleType:
    """The module implementing eval `name`; KeyError if llad has none."""
    if name not in NAMES:
        raise KeyError(f"no llad implementation of module {name!r}")
    return importlib.import_module(f"{__name__}.{name}")


def floats(value: Any) -> np.ndarray:
    """A JSON number list (any nesting) as a C-contiguous float64 array."""
    return np.ascontiguousarray(np.asarray(value, dtype=np.float64))


def to_float(value: Any) -> float:
    return float(value)


def to_list(value: Any) -> list:
    return np.asarray(value, dtype=np.float64).tolist()


def multivariate_argmin(f, grad, x):
    """GradBench's `multivariate_argmin` (its Futhark tool's solver.fut): gradient steps from x with a
    rate that doubles after 10 improving steps and halves after a step that does not improve; stops when
    the gradient or the step is at most 1e-5 long.  x is a float or a float array."""
    def norm(v):
        return float(np.sqrt(np.sum(np.square(v))))
    fx, gx, eta, i = f(x), grad(x), 1e-5, 0
    while True:
        if norm(gx) <= 1e-5:
            return x
        if i == 10:
            eta, i = 2.0 * eta, 0
            continue
        x_new = x - eta * gx
        if norm(x - x_new) <= 1e-5:
            return x
        f_new = f(x_new)
        if f_new < fx:
            x, fx, gx, i = x_new, f_new, grad(x_new), i + 1
        else:
            eta, i = eta / 2.0, 0
