"""saddle: the saddle point of f(x1, y1, x2, y2) = (x1^2 + y1^2) - (x2^2 + y2^2) as
r1 = argmin_{p1} max_{p2} f(p1, p2) and r2 = argmax_{p2} f(r1, p2), every optimisation by gradient
steps from `start` (GradBench's `multivariate_argmin`, tools/futhark/solver.fut).

Nested AD by the eval's own specification: the inner maximisation over p2 runs in `@njit` code with its
gradient from llad (inner mode), and the outer minimisation over p1 differentiates that whole inner
solver, loop and inner derivative included (outer mode).  The four functions are the (outer, inner)
combinations `ff`, `fr`, `rf`, `rr`.
"""
from __future__ import annotations

import math

import numba
import numpy as np

import llad

from . import Function, floats, multivariate_argmin, to_list


@numba.njit
def objective(x1, y1, x2, y2):
    return (x1 * x1 + y1 * y1) - (x2 * x2 + y2 * y2)


@numba.njit
def descent_cost(p2, p1):
    """The inner solver minimises -f(p1, p2) over p2."""
    return -objective(p1[0], p1[1], p2[0], p2[1])


@numba.njit
def inner_grad_r(p2, p1, g):
    g[0] = 0.0
    g[1] = 0.0
    llad.autodiff(llad.Reverse, descent_cost, llad.Active, llad.Duplicated(p2, g), llad.Const(p1))


@numba.njit
def inner_grad_f(p2, p1, g):
    e = np.zeros(2)
    e[0] = 1.0
    (g[0],) = llad.autodiff(llad.Forward, descent_cost, llad.Duplicated(p2, e), llad.Const(p1))
    e[0], e[1] = 0.0, 1.0
    (g[1],) = llad.autodiff(llad.Forward, descent_cost, llad.Duplicated(p2, e), llad.Const(p1))


def _max_over_p2(inner_grad):
    @numba.njit
    def r1_cost(p1, start):
        """max over p2 of f(p1, p2), by the gradient solver from `start`."""
        x = start.copy()
        g = np.empty(2)
        fx = descent_cost(x, p1)
        inner_grad(x, p1, g)
        eta, i = 1e-5, 0
        while True:
            if math.sqrt(g[0] * g[0] + g[1] * g[1]) <= 1e-5:
                break
            if i == 10:
                eta, i = 2.0 * eta, 0
                continue
            x0, x1 = x[0] - eta * g[0], x[1] - eta * g[1]
            if math.sqrt((x[0] - x0) ** 2 + (x[1] - x1) ** 2) <= 1e-5:
                break
            f_new = -objective(p1[0], p1[1], x0, x1)
            if f_new < fx:
                x[0], x[1] = x0, x1
                fx = f_new
                inner_grad(x, p1, g)
                i += 1
            else:
                eta, i = eta / 2.0, 0
        return objective(p1[0], p1[1], x[0], x[1])
    return r1_cost


R1_COSTS = {"f": _max_over_p2(inner_grad_f), "r": _max_over_p2(inner_grad_r)}


def _outer_gradient(mode: str, cost, start: np.ndarray):
    """d cost(p1, start) / d p1, by llad in the outer mode (through the inner solver)."""
    if mode == "r":
        def grad(p1):
            g = np.zeros(2)
            llad.autodiff(llad.Reverse, cost, llad.Duplicated(p1.copy(), g), llad.Const(start))
            return g
    else:
        def grad(p1):
            (tangents,) = llad.autodiff(llad.Forward, cost, llad.BatchDuplicated(p1.copy(), (E[0], E[1])),
                                        llad.Const(start))
            return np.array(tangents)
    return grad


E = np.eye(2)


def _function(outer: str, inner: str):
    cost = R1_COSTS[inner]

    def compute(start: np.ndarray) -> np.ndarray:
        r1 = multivariate_argmin(lambda p1: cost(p1, start), _outer_gradient(outer, cost, start), start.copy())
        g = np.zeros(2)

        def ascent_grad(p2):                # r2 = argmax over p2 of f(r1, p2): a plain gradient
            g[:] = 0.0
            llad.autodiff(llad.Reverse, descent_cost, llad.Duplicated(p2.copy(), g), llad.Const(r1))
            return g.copy()
        r2 = multivariate_argmin(lambda p2: descent_cost(p2, r1), ascent_grad, start.copy())
        return np.concatenate([r1, r2])
    return compute


VARIANTS = {o + i: _function(o, i) for o in "fr" for i in "fr"}


def prepare(raw: dict) -> np.ndarray:
    return floats(raw["start"])


def warm_up() -> None:
    for compute in VARIANTS.values():
        compute(np.array([1.0, 1.0]))


FUNCTIONS = {name: Function(prepare, compute, to_list) for name, compute in VARIANTS.items()}
