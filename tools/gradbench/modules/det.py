"""det: determinant of an ell x ell matrix by expansion by minors, gradient by llad reverse mode.

GradBench's reference recurses (det_of_minor calls itself on each sub-minor).  llad cannot
differentiate a recursive call (it inlines callees; a self-call stays a call without a rule, see
docs/gradbench.md), so the same expansion is written as an explicit depth-first walk: level i
expands the minor made of rows i..ell-1 and the columns not used by levels 0..i-1, along its first
row, in the same order and with the same products and sums as the recursion.
"""
from __future__ import annotations

import numba
import numpy as np

import llad

from . import Function, floats, to_float, to_list


@numba.njit
def det_by_minors(a, ell):
    """a: the matrix, row-major, flat."""
    minor_det = np.zeros(ell)          # running sum of the minor being expanded at each level
    sign = np.ones(ell)                # sign of the next term at each level
    column = np.full(ell, -1)          # column expanded at each level (-1: none yet)
    used = np.zeros(ell, np.bool_)     # columns taken by the levels above
    level = 0
    while level >= 0:
        if column[level] >= 0:
            used[column[level]] = False
        j = column[level] + 1
        while j < ell and used[j]:
            j += 1
        finished = j == ell
        if not finished and level + 1 < ell:   # descend into the sub-minor without column j
            column[level] = j
            used[j] = True
            level += 1
            minor_det[level] = 0.0
            sign[level] = 1.0
            column[level] = -1
            continue
        if not finished:                       # a 1x1 minor: the entry itself
            minor_det[level] = a[level * ell + j]
            column[level] = -1
        level -= 1                             # return the finished minor to the level above
        if level >= 0:
            minor_det[level] += sign[level] * a[level * ell + column[level]] * minor_det[level + 1]
            sign[level] = -sign[level]
    return minor_det[0]


def primal(args: tuple) -> float:
    return det_by_minors(*args)


def gradient(args: tuple) -> np.ndarray:
    a, ell = args
    da = np.zeros_like(a)
    llad.autodiff(llad.Reverse, det_by_minors, llad.Duplicated(a, da), ell)
    return da


def prepare(raw: dict) -> tuple:
    return floats(raw["A"]), int(raw["ell"])


def warm_up() -> None:
    args = (np.array([2.0, 1.0, 0.5, 3.0]), 2)
    primal(args)
    gradient(args)


FUNCTIONS = {
    "primal": Function(prepare, primal, to_float),
    "gradient": Function(prepare, gradient, to_list),
}
