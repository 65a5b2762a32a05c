"""Reverse mode: what goes on the tape (FileCheck on llad.dump)."""
from __future__ import annotations

import math

import numba
import numpy as np

import llad


@numba.njit
def straight(x):
    a = x[0] * x[1]
    return math.sin(a) + x[2] / a


@numba.njit
def sumsin(x):
    s = 0.0
    for i in range(x.shape[0]):
        s += math.sin(x[i])
    return s


@numba.njit
def inplace_loop(x):
    s = 0.0
    for i in range(x.shape[0]):
        x[i] = math.sin(x[i]) * x[i]
        s += x[i] * x[i]
    return s


def rev(f, n, depth="deriv", **kw):
    x = np.linspace(0.1, 0.9, n)
    return llad.dump(llad.Reverse, f, llad.Duplicated(x, np.zeros(n)), depth=depth, **kw)


NO_TAPE = """
    CHECK-LABEL: define i32 @"llad.rev.{{[0-9a-f]+}}"(
    CHECK-NOT: @llad.tape.reserve(
    CHECK-NOT: @realloc(
    CHECK: {{^}}}
"""


def test_straight_line_code_needs_no_tape(filecheck):
    filecheck(rev(straight, 3), NO_TAPE)


def test_read_only_loop_recomputes_instead_of_taping(filecheck):
    """sum(sin(x[i])): the counter and x[i] are recomputed in the reverse loop."""
    filecheck(rev(sumsin, 8), NO_TAPE)


def test_loop_overwriting_its_input_reserves_a_tape(filecheck):
    """x[i] = sin(x[i]) * x[i]: the reverse sweep cannot reload x[i], so the loop keeps it on a tape (and
    the module grows tapes with realloc): the companion of NO_TAPE's negative checks."""
    text = rev(inplace_loop, 8)
    filecheck(text, """
        CHECK-LABEL: define i32 @"llad.rev.{{[0-9a-f]+}}"(
        CHECK: call {{.*}}@llad.tape.reserve(
        CHECK: {{^}}}
    """)
    filecheck(text, "CHECK: call {{.*}}@realloc(")


def test_annotated_primal_marks_taped_values(filecheck):
    filecheck(rev(inplace_loop, 8, depth="llvm", annotate=True), """
        CHECK: = load double, ptr {{.*}}; active, tape: loop
        CHECK: store double {{.*}}; active store
    """)


def test_annotated_primal_of_read_only_loop_tapes_nothing(filecheck):
    filecheck(rev(sumsin, 8, depth="llvm", annotate=True), """
        CHECK-NOT: tape:
        CHECK: = load double, ptr {{.*}}; active
        CHECK-NOT: tape:
    """)
