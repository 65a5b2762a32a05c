"""ode: s classic Runge-Kutta steps to t = 2 of y0' = x0, yi' = xi * y(i-1), from y = 0.

gradient: d y[n-1](2) / dx by llad reverse mode through all s steps.
"""
from __future__ import annotations

import numba
import numpy as np

import llad

from . import Function, floats, to_list


@numba.njit
def slope(x, y, dy):
    dy[0] = x[0]
    for i in range(1, x.shape[0]):
        dy[i] = x[i] * y[i - 1]


@numba.njit
def runge_kutta(x, s, y):
    """Overwrites y with y(2)."""
    n = x.shape[0]
    h = 2.0 / s
    k1, k2, k3, k4 = np.empty(n), np.empty(n), np.empty(n), np.empty(n)
    y_mid = np.empty(n)
    y[:] = 0.0
    for _ in range(s):
        slope(x, y, k1)
        for i in range(n):
            y_mid[i] = y[i] + h * k1[i] / 2.0
        slope(x, y_mid, k2)
        for i in range(n):
            y_mid[i] = y[i] + h * k2[i] / 2.0
        slope(x, y_mid, k3)
        for i in range(n):
            y_mid[i] = y[i] + h * k3[i]
        slope(x, y_mid, k4)
        for i in range(n):
            y[i] += h * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i]) / 6.0


@numba.njit
def last_component(x, s):
    y = np.empty(x.shape[0])
    runge_kutta(x, s, y)
    return y[x.shape[0] - 1]


def primal(args: tuple) -> np.ndarray:
    x, s = args
    y = np.empty_like(x)
    runge_kutta(x, s, y)
    return y


def gradient(args: tuple) -> np.ndarray:
    x, s = args
    dx = np.zeros_like(x)
    llad.autodiff(llad.Reverse, last_component, llad.Duplicated(x, dx), s)
    return dx


def prepare(raw: dict) -> tuple:
    return floats(raw["x"]), int(raw["s"])


def warm_up() -> None:
    args = (np.array([0.3, 0.6, 0.9]), 2)
    primal(args)
    gradient(args)


FUNCTIONS = {
    "primal": Function(prepare, primal, to_list),
    "gradient": Function(prepare, gradient, to_list),
}
