"""llsq: 0.5 * sum_i (sign(t_i) - sum_j x_j t_i^j)^2 on t_i = -1 + 2i/(n-1), gradient by llad reverse."""
from __future__ import annotations

import numba
import numpy as np

import llad

from . import Function, floats, to_float, to_list


@numba.njit
def least_squares(x, n):
    total = 0.0
    for i in range(n):
        t = -1.0 + i * 2.0 / (n - 1.0)
        residual = 1.0 if t > 0.0 else (-1.0 if t < 0.0 else 0.0)
        power = 1.0
        for j in range(x.shape[0]):
            residual -= x[j] * power
            power *= t
        total += residual * residual
    return total / 2.0


def primal(args: tuple) -> float:
    return least_squares(*args)


def gradient(args: tuple) -> np.ndarray:
    x, n = args
    dx = np.zeros_like(x)
    llad.autodiff(llad.Reverse, least_squares, llad.Duplicated(x, dx), n)
    return dx


def prepare(raw: dict) -> tuple:
    return floats(raw["x"]), int(raw["n"])


def warm_up() -> None:
    args = (np.array([0.1, 0.2, 0.3]), 4)
    primal(args)
    gradient(args)


FUNCTIONS = {
    "primal": Function(prepare, primal, to_float),
    "gradient": Function(prepare, gradient, to_list),
}
