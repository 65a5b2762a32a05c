"""particle: a charged particle's path by naive Euler steps under the field of two charges, one of
which moves with a control w; w is chosen by gradient descent so that the path meets the origin.

Nested AD by the eval's own specification (Pearlmutter and Siskind's benchmark): the force is the
gradient of the potential, taken by llad *inside* the `@njit` path function (inner mode), and the
argmin's gradient is llad's derivative of that whole path function with respect to w (outer mode),
so the outer derivative differentiates the inner derivative's code.  The four functions are the four
(outer, inner) combinations: `ff`, `fr`, `rf`, `rr`.  The solver follows GradBench's
`multivariate_argmin` (tools/futhark/solver.fut).
"""
from __future__ import annotations

import math

import numba
import numpy as np

import llad

from . import Function, multivariate_argmin, to_float


@numba.njit
def potential(x, w):
    """p(x; w) = 1/|x - (10, 10 - w)| + 1/|x - (10, 0)|."""
    return (1.0 / math.sqrt((x[0] - 10.0) ** 2 + (x[1] - (10.0 - w)) ** 2)
            + 1.0 / math.sqrt((x[0] - 10.0) ** 2 + x[1] ** 2))


@numba.njit
def grad_potential_r(x, w, g):
    """g = grad_x p(x; w), reverse mode."""
    g[0] = 0.0
    g[1] = 0.0
    llad.autodiff(llad.Reverse, potential, llad.Active, llad.Duplicated(x, g), llad.Const(w))


@numba.njit
def grad_potential_f(x, w, g):
    """g = grad_x p(x; w), forward mode: one tangent per coordinate."""
    e = np.zeros(2)
    e[0] = 1.0
    (g[0],) = llad.autodiff(llad.Forward, potential, llad.Duplicated(x, e), llad.Const(w))
    e[0], e[1] = 0.0, 1.0
    (g[1],) = llad.autodiff(llad.Forward, potential, llad.Duplicated(x, e), llad.Const(w))


def _path(grad_potential):
    @numba.njit
    def naive_euler(w):
        """x(t_f)[0]^2, where the path meets the x axis at t_f (Euler steps of 0.1, then a linear
        interpolation)."""
        x = np.array([0.0, 8.0])
        xdot = np.array([0.75, 0.0])
        g = np.empty(2)
        dt = 0.1
        while True:
            grad_potential(x, w, g)             # the acceleration is -g
            x0, x1 = x[0] + dt * xdot[0], x[1] + dt * xdot[1]
            if x1 > 0.0:
                x[0], x[1] = x0, x1
                xdot[0] -= dt * g[0]
                xdot[1] -= dt * g[1]
            else:
                break
        dt_f = -x[1] / xdot[1]
        x_f = x[0] + dt_f * xdot[0]
        return x_f * x_f
    return naive_euler


PATHS = {"f": _path(grad_potential_f), "r": _path(grad_potential_r)}


def _outer_gradient(mode: str, path):
    if mode == "r":
        def grad(w: float) -> float:
            (derivs,) = llad.autodiff(llad.Reverse, path, llad.Active(w))
            return derivs[0]
    else:
        def grad(w: float) -> float:
            (tangent,) = llad.autodiff(llad.Forward, path, llad.Duplicated(w, 1.0))
            return tangent
    return grad


def _function(outer: str, inner: str):
    path = PATHS[inner]
    grad = _outer_gradient(outer, path)

    def compute(w0: float) -> float:
        return multivariate_argmin(path, grad, w0)
    return compute


VARIANTS = {o + i: _function(o, i) for o in "fr" for i in "fr"}


def prepare(raw: dict) -> float:
    return float(raw["w"])


def warm_up() -> None:
    for compute in VARIANTS.values():
        compute(0.0)


FUNCTIONS = {name: Function(prepare, compute, to_float) for name, compute in VARIANTS.items()}
