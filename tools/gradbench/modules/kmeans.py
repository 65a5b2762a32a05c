"""kmeans: cost = sum_i min_j |p_i - c_j|^2, and dir = J / diag(H) with J, H the gradient and
Hessian of the cost with respect to the centroids.

J comes from llad reverse mode on `cost`.  diag(H) needs a second derivative, and llad has no
nested differentiation (a derivative cannot be differentiated again, see docs/gradbench.md).  So,
as a last resort, `cost_gradient` is the gradient of `cost` written by hand as a plain loop, and
llad forward mode differentiates *it*: since H is diagonal (each centroid coordinate only meets
itself), one tangent of ones gives H @ 1 = diag(H) in a single forward pass.  The hand-written
gradient is used only as the function that forward mode differentiates; J itself is llad's.
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
def cost_gradient(p, c, grad):
    """Hand-written d cost / d c, only differentiated (forward mode) to get diag(H)."""
    grad[:] = 0.0
    for i in range(p.shape[0]):
        j = closest_centroid(p, i, c)[0]
        for e in range(c.shape[1]):
            grad[j, e] += 2.0 * (c[j, e] - p[i, e])


def direction(args: tuple) -> np.ndarray:
    p, c = args
    jac = np.zeros_like(c)
    llad.autodiff(llad.Reverse, cost, p, llad.Duplicated(c, jac))
    hess_diag = np.zeros_like(c)
    llad.autodiff(llad.Forward, cost_gradient, p, llad.Duplicated(c, np.ones_like(c)),
                  llad.Duplicated(np.empty_like(c), hess_diag))
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
