"""llad.analysis.recompute: induction variables, trip counts, and the loads the reverse sweep can redo."""
from __future__ import annotations

import itertools

import pytest

from llad.analysis.activity import pointer_roots
from llad.analysis.cfg import analyse_cfg
from llad.analysis.recompute import (
    final_value_loads,
    induction_variables,
    readonly_load,
    simple_loop_entry,
    trip_count,
    written_roots,
)
from llad.ir.parser import parse_function


def parse(ir: str):
    return parse_function(ir, "f")


def analyse(ir: str):
    fn = parse(ir)
    cfg = analyse_cfg(fn)
    return fn, cfg, induction_variables(fn, cfg)


# `for i in range(a, b)` as Numba lowers it: a guard, a preheader, a header, a separate latch that tests
# the incremented counter
RANGE_LOOP = """
define void @f(ptr %x, i64 %a, i64 %b) {
entry:
  %guard = icmp slt i64 %a, %b
  br i1 %guard, label %pre, label %exit

pre:
  br label %header

header:
  %i = phi i64 [ %a, %pre ], [ %i.next, %latch ]
  %j = phi i64 [ 10, %pre ], [ %j.next, %latch ]
  %p = getelementptr double, ptr %x, i64 %i
  %v = load double, ptr %p, align 8
  br label %latch

latch:
  %i.next = add nuw nsw i64 %i, 1
  %j.next = sub i64 %j, 3
  %cont = icmp slt i64 %i.next, %b
  br i1 %cont, label %header, label %exit

exit:
  ret void
}
"""

# `while x[i] > 0: i += 1`: the exit depends on data
WHILE_LOOP = """
define void @f(ptr %x, i64 %a) {
entry:
  br label %header

header:
  %i = phi i64 [ %a, %entry ], [ %i.next, %header ]
  %p = getelementptr double, ptr %x, i64 %i
  %v = load double, ptr %p, align 8
  %i.next = add i64 %i, 1
  %pos = fcmp ogt double %v, 0.0
  br i1 %pos, label %header, label %exit

exit:
  ret void
}
"""


def test_simple_loop_entry_is_the_preheader():
    fn, cfg, _ = analyse(RANGE_LOOP)
    (lp,) = cfg.loops
    assert simple_loop_entry(fn, lp) == "pre"


def test_induction_variable_start_and_step():
    fn, cfg, ivs = analyse(RANGE_LOOP)
    (lp,) = cfg.loops
    assert set(ivs) == {"i", "j"}
    i, j = ivs["i"], ivs["j"]
    assert i.loop is lp
    assert i.start.text == "%a" and i.step.text == "1" and not i.negate
    assert j.start.text == "10" and j.step.text == "3" and j.negate


def test_variant_step_is_not_an_induction_variable():
    ir = RANGE_LOOP.replace("%j.next = sub i64 %j, 3", "%vi = fptosi double %v to i64\n  %j.next = sub i64 %j, %vi")
    _, _, ivs = analyse(ir)
    assert "j" not in ivs and "i" in ivs


def test_float_phi_is_not_an_induction_variable():
    ir = """
define void @f(i64 %n) {
entry:
  br label %h

h:
  %s = phi double [ 0.0, %entry ], [ %s.next, %h ]
  %i = phi i64 [ 0, %entry ], [ %i.next, %h ]
  %s.next = fadd double %s, 1.0
  %i.next = add i64 %i, 1
  %c = icmp slt i64 %i.next, %n
  br i1 %c, label %h, label %exit

exit:
  ret void
}
"""
    _, _, ivs = analyse(ir)
    assert set(ivs) == {"i"}


def test_trip_count_of_a_range_loop():
    fn, cfg, ivs = analyse(RANGE_LOOP)
    (lp,) = cfg.loops
    tc = trip_count(fn, cfg, ivs, lp)
    assert tc is not None
    assert tc.start.text == "%a" and tc.bound.text == "%b"
    assert tc.sign == 1
    # b - (a + 1) + 1 iterations: the test sees the incremented counter
    assert tc.start_offset == 1 and tc.extra == 1


def test_no_trip_count_for_a_data_dependent_while_loop():
    fn, cfg, ivs = analyse(WHILE_LOOP)
    (lp,) = cfg.loops
    assert "i" in ivs                      # it does have a counter, but the exit does not test it
    assert trip_count(fn, cfg, ivs, lp) is None


def test_no_trip_count_when_the_bound_changes_in_the_loop():
    ir = RANGE_LOOP.replace("%cont = icmp slt i64 %i.next, %b", "%bb = fptosi double %v to i64\n"
                            "  %cont = icmp slt i64 %i.next, %bb")
    fn, cfg, ivs = analyse(ir)
    assert trip_count(fn, cfg, ivs, cfg.loops[0]) is None


def test_no_trip_count_for_a_loop_with_an_early_exit():
    ir = RANGE_LOOP.replace("  br label %latch\n", "  %neg = fcmp olt double %v, 0.0\n"
                            "  br i1 %neg, label %exit, label %latch\n")
    fn, cfg, ivs = analyse(ir)
    assert trip_count(fn, cfg, ivs, cfg.loops[0]) is None


def test_no_trip_count_for_a_step_of_two():
    ir = RANGE_LOOP.replace("%i.next = add nuw nsw i64 %i, 1", "%i.next = add nuw nsw i64 %i, 2")
    fn, cfg, ivs = analyse(ir)
    assert ivs["i"].step.text == "2"
    assert trip_count(fn, cfg, ivs, cfg.loops[0]) is None


# ---- the trip-count formula against a simulation of the loop ------------------------------------------

_PREDICATES = ("eq", "ne", "slt", "sle", "sgt", "sge", "ult", "ule", "ugt", "uge")
_MASK = (1 << 64) - 1


def _cmp(pred: str, x: int, y: int) -> bool:
    if pred.startswith("u"):
        x, y = x & _MASK, y & _MASK
    return {"eq": x == y, "ne": x != y, "slt": x < y, "sle": x <= y, "sgt": x > y, "sge": x >= y,
            "ult": x < y, "ule": x <= y, "ugt": x > y, "uge": x >= y}[pred]


def _latch_loop(op: str, step: str, pred: str, tested: str, bound_first: bool, stay_on_true: bool) -> str:
    lhs, rhs = ("%b", tested) if bound_first else (tested, "%b")
    targets = "label %loop, label %exit" if stay_on_true else "label %exit, label %loop"
    return f"""
define void @f(i64 %a, i64 %b) {{
entry:
  br label %loop

loop:
  %i = phi i64 [ %a, %entry ], [ %i.next, %loop ]
  %i.next = {op} i64 %i, {step}
  %c = icmp {pred} i64 {lhs}, {rhs}
  br i1 %c, {targets}

exit:
  ret void
}}
"""


def _simulate(op, step, pred, tested, bound_first, stay_on_true, a, b, cap=100):
    """Iterations of the do-while loop above, or None if it does not stop within cap."""
    s = int(step) if op == "add" else -int(step)
    v, n = a, 0
    while n < cap:
        n += 1
        nxt = v + s
        t = nxt if tested == "%i.next" else v
        c = _cmp(pred, b, t) if bound_first else _cmp(pred, t, b)
        if c != stay_on_true:
            return n
        v = nxt
    return None


_SHAPES = list(itertools.product(("add", "sub"), ("1", "-1"), _PREDICATES, ("%i", "%i.next"), (False, True),
                                 (False, True)))


@pytest.mark.parametrize("op,step,pred,tested,bound_first,stay_on_true", _SHAPES)
def test_trip_count_formula_matches_the_loop(op, step, pred, tested, bound_first, stay_on_true):
    """Wherever trip_count claims a count, max(sign * (bound - (start + start_offset)) + extra, 1) is the
    number of iterations the loop runs (for a, b where the loop stops; unsigned tests on non-negative
    values, the only ones LLVM turns a signed test into)."""
    fn, cfg, ivs = analyse(_latch_loop(op, step, pred, tested, bound_first, stay_on_true))
    tc = trip_count(fn, cfg, ivs, cfg.loops[0])
    if tc is None:
        return
    assert tc.start.text == "%a" and tc.bound.text == "%b"
    values = range(0, 8) if pred.startswith("u") else range(-4, 8)
    checked = 0
    for a, b in itertools.product(values, values):
        want = _simulate(op, step, pred, tested, bound_first, stay_on_true, a, b)
        if want is None:
            continue
        got = max(tc.sign * (b - (a + tc.start_offset)) + tc.extra, 1)
        assert got == want, (a, b, tc)
        checked += 1
    assert checked


@pytest.mark.parametrize("op,step,pred,tested,stay_on_true", [
    ("add", "1", "slt", "%i.next", True),        # for i in range(a, b)
    ("add", "1", "eq", "%i", False),             # Numba's `exitcond = icmp eq i64 %i, %bound`
    ("add", "1", "eq", "%i.next", False),
    ("add", "-1", "sgt", "%i.next", True),       # range(a, b, -1)
    ("sub", "1", "sgt", "%i", True),
    ("add", "1", "ult", "%i.next", True),
])
def test_trip_count_recognises_the_common_shapes(op, step, pred, tested, stay_on_true):
    fn, cfg, ivs = analyse(_latch_loop(op, step, pred, tested, False, stay_on_true))
    assert trip_count(fn, cfg, ivs, cfg.loops[0]) is not None


# ---- loads the reverse sweep can repeat ---------------------------------------------------------------

LOADS = """
define i32 @f(ptr %retptr, ptr %excinfo, ptr %x, ptr %y, ptr %z) {
entry:
  %early = load double, ptr %x, align 8
  %fromy = load double, ptr %y, align 8
  %fromz = load double, ptr %z, align 8
  br label %write

write:
  %s = fadd double %early, %fromy
  store double %s, ptr %x, align 8
  %late = load double, ptr %x, align 8
  store double %late, ptr %retptr, align 8
  ret i32 0
}
"""


def test_final_value_loads_vs_loads_followed_by_a_write():
    fn = parse(LOADS)
    roots = pointer_roots(fn)
    final = final_value_loads(fn, roots, {"x", "y"})
    assert "early" not in final          # x is written afterwards: the reverse sweep would read the new value
    assert "late" in final               # nothing writes x after it
    assert "fromy" in final              # y is never written
    assert "fromz" not in final          # z is not an array parameter llad may assume unaliased


def test_write_later_in_the_same_block_prevents_final_value():
    ir = LOADS.replace("  br label %write\n\nwrite:\n", "")
    fn = parse(ir)
    final = final_value_loads(fn, pointer_roots(fn), {"x", "y"})
    assert "early" not in final and "late" in final and "fromy" in final


def test_write_in_the_next_loop_iteration_prevents_final_value():
    """In a loop, a store before the load in the block still runs after it, in the next iteration."""
    ir = """
define void @f(ptr %x, i64 %n) {
entry:
  br label %h

h:
  %i = phi i64 [ 0, %entry ], [ %i.next, %h ]
  store double 1.0, ptr %x, align 8
  %v = load double, ptr %x, align 8
  %i.next = add i64 %i, 1
  %c = icmp slt i64 %i.next, %n
  br i1 %c, label %h, label %exit

exit:
  %after = load double, ptr %x, align 8
  ret void
}
"""
    fn = parse(ir)
    final = final_value_loads(fn, pointer_roots(fn), {"x"})
    assert "v" not in final and "after" in final


def test_call_receiving_the_array_counts_as_a_write_but_refcounting_does_not():
    ir = """
define void @f(ptr %x, ptr %mi) {
entry:
  %v = load double, ptr %x, align 8
  call void @NRT_decref(ptr %mi)
  br label %next

next:
  %w = load double, ptr %x, align 8
  call void @mystery(ptr %x)
  ret void
}

declare void @NRT_decref(ptr)
declare void @mystery(ptr)
"""
    fn = parse(ir)
    roots = pointer_roots(fn)
    assert ("param", "x") in written_roots(fn, roots)
    assert ("param", "mi") not in written_roots(fn, roots)
    final = final_value_loads(fn, roots, {"x"})
    assert "v" not in final and "w" not in final


def test_readonly_loads():
    fn = parse(LOADS)
    roots = pointer_roots(fn)
    written = written_roots(fn, roots)
    assert written == {("param", "x"), ("param", "retptr")}
    data = {"x", "y", "z"}
    assert readonly_load(fn.defs["fromy"], roots, written, data)
    assert readonly_load(fn.defs["fromz"], roots, written, data)
    assert not readonly_load(fn.defs["early"], roots, written, data)
    assert not readonly_load(fn.defs["late"], roots, written, data)
    assert not readonly_load(fn.defs["fromy"], roots, written, {"x", "z"})   # not a data parameter


def test_readonly_load_through_a_select_needs_every_root_unwritten():
    ir = """
define void @f(ptr %x, ptr %y, ptr %z, i1 %c) {
entry:
  %xy = select i1 %c, ptr %x, ptr %y
  %yz = select i1 %c, ptr %y, ptr %z
  %a = load double, ptr %xy, align 8
  %b = load double, ptr %yz, align 8
  store double %a, ptr %x, align 8
  ret void
}
"""
    fn = parse(ir)
    roots = pointer_roots(fn)
    written = written_roots(fn, roots)
    data = {"x", "y", "z"}
    assert not readonly_load(fn.defs["a"], roots, written, data)
    assert readonly_load(fn.defs["b"], roots, written, data)


def test_load_from_an_allocation_is_not_readonly():
    ir = """
define void @f() {
entry:
  %mi = call ptr @NRT_MemInfo_alloc_aligned(i64 8, i32 32)
  %d = call ptr @NRT_MemInfo_data_fast(ptr %mi)
  %v = load double, ptr %d, align 8
  ret void
}

declare ptr @NRT_MemInfo_alloc_aligned(i64, i32)
declare ptr @NRT_MemInfo_data_fast(ptr)
"""
    fn = parse(ir)
    roots = pointer_roots(fn)
    assert roots["d"] == {("alloc", "mi")}
    assert not readonly_load(fn.defs["v"], roots, written_roots(fn, roots), set())
    assert "v" not in final_value_loads(fn, roots, set())
