"""kmeans: cost = sum_i min_j |p_i - c_j|^2, and dir = J / diag(H) with J, H the gradient and
Hessian of the cost with respect to the centroids.

J comes from llad reverse mode on `cost`, diag(H) from llad's forward-over-reverse Hessian-vector
product (`llad.hvp`: forward mode over the reverse-mode gradient, which runs inside `@njit`): H is
diagonal (each centroid coordinate only meets itself), so H @ 1 = diag(H) in one pass.
"""
from __future__ import annotations

import numba
import numpy as np

import llad

from . import Function, floats, to_float, to_list


@numba.njit
def closest_centroid(p, i, c):
    """(index, squared distance) of the centroid nearest to point i."""
    best, best_j = np.inf, 0
    for j in range(c.shape[0]):
        dist = 0.0
        for e in range(c.shape[1]):
            diff = p[i, e] - c[j, e]
            dist += diff * diff
        if dist < best:
            best, best_j = dist, j
    return best_j, best


@numba.njit
def cost(p, c):
    total = 0.0
    for i in range(p.shape[0]):
        total += closest_centroid(p, i, c)[1]
    return total


@numba.njit
def cost_of_centroids(c, p):
    """`cost` with the differentiated argument first, as `llad.hvp` takes it."""
    return cost(p, c)


def direction(args: tuple) -> np.ndarray:
    p, c = args
    jac = np.zeros_like(c)
    llad.autodiff(llad.Reverse, cost, p, llad.Duplicated(c, jac))
    hess_diag = llad.hvp(cost_of_centroids, c, np.ones_like(c), p)
    return jac / hess_diag


def primal(args: tuple) -> float:
    return cost(*args)


def prepare(raw: dict) -> tuple:
    return floats(raw["points"]), floats(raw["centroids"])


def warm_up() -> None:
    args = (np.array([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5]]), np.array([[1.0, 0.0], [0.5, 0.5]]))
    primal(args)
    direction(args)


FUNCTIONS = {
    "cost": Function(prepare, primal, to_float),
    "dir": Function(prepare, direction, to_list),
}
