"""Reverse mode: what goes on the tape (FileCheck on llad.dump)."""
from __future__ import annotations

import math

import numba
import numpy as np

import llad
from tests.test_tape import _lse_tape


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


@numba.njit
def logsumexp(x):
    s = 0.0
    for i in range(x.shape[0]):
        s += math.exp(x[i])
    return math.log(s)


def test_a_running_sum_read_after_its_loop_is_kept_once_not_per_iteration(filecheck):
    # log(s) needs s after the loop only: the loop's record holds exp(x[i]) alone (one double), and the
    # running sum goes to a slot the whole loop overwrites (a register after SROA); the reverse divides
    # by the value in that slot
    filecheck(rev(logsumexp, 5), """
        CHECK-LABEL: define i32 @"llad.rev.{{[0-9a-f]+}}"(
        CHECK: %slot.[[S:[0-9]+]] = alloca double
        CHECK: %[[E:[^ ]+]] = {{(tail )?}}call double @llad.exp.f64(
        CHECK-NEXT: %[[T:[^ ]+]] = load ptr, ptr %tape.0
        CHECK: store double %[[E]], ptr
        CHECK-NEXT: %[[SUM:[^ ]+]] = fadd reassoc double
        CHECK-NEXT: store double %[[SUM]], ptr %slot.[[S]]
        CHECK-NOT: store double %[[SUM]], ptr %{{[^s]}}
        CHECK: {{^}}}
    """)
    assert "%llad.tape.0 = type { double }" in rev(logsumexp, 5)


def test_derivatives_called_from_python_take_and_give_back_their_tapes(filecheck):
    """Each loop's buffer is taken from its keep in the entry block and given back at the end, not freed;
    derivatives compiled for calls inside @njit (which nesting differentiates again) keep plain malloc/free,
    tested by tests/test_nested.py's forward over reverse."""
    x = np.linspace(0.0, 1.0, 5)
    text = llad.dump(llad.Reverse, _lse_tape, llad.Active, llad.Duplicated(x, np.zeros(5)))
    filecheck(text, """
        CHECK-LABEL: define i32 @"llad.rev.{{[0-9a-f]+}}"(
        CHECK: %[[T0:[^ ]+]] = call ptr @llad.tape.take(ptr @"llad.keep.0", ptr %cap.0)
        CHECK-NEXT: store ptr %[[T0]], ptr %tape.0
        CHECK: %[[T1:[^ ]+]] = call ptr @llad.tape.take(ptr @"llad.keep.1", ptr %cap.1)
        CHECK-LABEL: llad.done:
        CHECK-NOT: call void @free(
        CHECK: call void @llad.tape.give(ptr @"llad.keep.0",
        CHECK: call void @llad.tape.give(ptr @"llad.keep.1",
        CHECK: {{^}}}
    """)


def test_a_comparison_with_a_running_maximum_is_taped_as_one_byte(filecheck):
    # `x[i] > m` needs the running maximum m of the iteration, which only the tape has: the tape keeps the
    # comparison's result (i1) instead of m (double), and the reverse sweep reads it back
    x = np.linspace(0.0, 1.0, 5)
    text = llad.dump(llad.Reverse, _lse_tape, llad.Active, llad.Duplicated(x, np.zeros(5)))
    filecheck(text, """
        CHECK: %llad.tape.0 = type { i1 }
        CHECK-LABEL: define i32 @"llad.rev.{{[0-9a-f]+}}"(
        CHECK: %[[C:[^ ]+]] = fcmp ogt double
        CHECK: store i1 %[[C]], ptr
        CHECK-LABEL: rev.entry:
        CHECK: = load i1, ptr
        CHECK: {{^}}}
    """)
