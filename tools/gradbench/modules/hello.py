"""hello: square(x) = x*x and double(x) = d(x*x)/dx, by llad reverse mode."""
from __future__ import annotations

import numba

import llad

from . import Function, to_float


@numba.njit
def square(x):
    return x * x


def double(x: float) -> float:
    (derivs,) = llad.autodiff(llad.Reverse, square, llad.Active(x))
    return derivs[0]


def warm_up() -> None:
    square(1.0)
    double(1.0)


FUNCTIONS = {
    "square": Function(float, square, to_float),
    "double": Function(float, double, to_float),
}
