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

NAMES = ("hello", "lse", "llsq", "ode", "det", "kmeans", "gmm", "lstm", "ba")

# Evals that need nested differentiation, which llad does not offer (see docs/gradbench.md).
UNSUPPORTED = {
    "particle": "needs nested AD (a gradient inside a function that is itself differentiated); "
                "llad.autodiff cannot be called from @njit code and llad cannot differentiate its own derivatives",
    "saddle": "needs nested AD (argmin over x of argmax over y, both by gradient descent); "
              "llad.autodiff cannot be called from @njit code and llad cannot differentiate its own derivatives",
}


@dataclass(frozen=True)
class Function:
    prepare: Callable[[Any], Any]      # JSON input -> arguments of compute (untimed)
    compute: Callable[[Any], Any]      # the timed part
    to_json: Callable[[Any], Any]      # result -> JSON output (untimed)


def load(name: str) -> ModuleType:
    """The module implementing eval `name`; KeyError if llad has none."""
    if name not in NAMES:
        raise KeyError(UNSUPPORTED.get(name, f"no llad implementation of module {name!r}"))
    return importlib.import_module(f"{__name__}.{name}")


def floats(value: Any) -> np.ndarray:
    """A JSON number list (any nesting) as a C-contiguous float64 array."""
    return np.ascontiguousarray(np.asarray(value, dtype=np.float64))


def to_float(value: Any) -> float:
    return float(value)


def to_list(value: Any) -> list:
    return np.asarray(value, dtype=np.float64).tolist()
