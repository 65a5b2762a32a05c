"""lse: log(sum(exp(x))), computed stably around max(x), and its gradient by llad reverse mode."""
from __future__ import annotations

import math

import numba
import numpy as np

import llad

from . import Function, floats, to_float, to_list


@numba.njit
def logsumexp(x):
    top = x[0]
    for i in range(1, x.shape[0]):
        top = max(top, x[i])
    total = 0.0
    for i in range(x.shape[0]):
        total += math.exp(x[i] - top)
    return math.log(total) + top


def gradient(x: np.ndarray) -> np.ndarray:
    dx = np.zeros_like(x)
    llad.autodiff(llad.Reverse, logsumexp, llad.Duplicated(x, dx))
    return dx


def prepare(raw: dict) -> np.ndarray:
    return floats(raw["x"])


def warm_up() -> None:
    x = np.array([0.5, 1.5, -1.0])
    logsumexp(x)
    gradient(x)


FUNCTIONS = {
    "primal": Function(prepare, logsumexp, to_float),
    "gradient": Function(prepare, gradient, to_list),
}
