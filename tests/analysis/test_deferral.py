"""llad.analysis.deferral: which loads' adjoints the reverse sweep defers, and their gather groups."""
from __future__ import annotations

from llad.analysis.activity import analyse_activity
from llad.analysis.cfg import analyse_cfg
from llad.analysis.deferral import deferrable_loads, gather_groups
from llad.analysis.recompute import induction_variables, simple_loop_entry, trip_count
from llad.ir.parser import parse_function


def analyse(ir: str, dup=("u", "out"), const=(), counted=True):
    fn = parse_function(ir, "f")
    cfg = analyse_cfg(fn)
    act = analyse_activity(fn, set(), set(dup), set(const), lambda ins=None: "test.py:1")
    ivs = induction_variables(fn, cfg)
    counted_loops = {lp.index for lp in cfg.loops if simple_loop_entry(fn, lp) is not None
                     and trip_count(fn, cfg, ivs, lp) is not None} if counted else set()
    return fn, cfg, act, ivs, counted_loops


def deferred(ir: str, **kw) -> dict:
    fn, cfg, act, ivs, counted = analyse(ir, **kw)
    return deferrable_loads(fn, cfg, act, ivs, counted)


# out[i] = u[i-1] - 2 u[i] + u[i+1] for i in 1 .. n-2, the way Numba's O3 pipeline leaves it: one
# `getelementptr double` at the induction variable, the neighbours at byte offsets -8 and +8 from it
HEAT = """
define i32 @f(ptr %retptr, ptr %excinfo, ptr %u, ptr %out, i64 %n) {
entry:
  %last = add i64 %n, -2
  %empty = icmp slt i64 %last, 1
  br i1 %empty, label %exit, label %pre

pre:
  br label %body

body:
  %i = phi i64 [ %i.next, %body ], [ 1, %pre ]
  %i.next = add nuw i64 %i, 1
  %q = getelementptr double, ptr %u, i64 %i
  %pm = getelementptr i8, ptr %q, i64 -8
  %um = load double, ptr %pm, align 8
  %u0 = load double, ptr %q, align 8
  %t = fmul double %u0, 2.000000e+00
  %d = fsub double %um, %t
  %pp = getelementptr i8, ptr %q, i64 8
  %up = load double, ptr %pp, align 8
  %r = fadd double %up, %d
  %po = getelementptr double, ptr %out, i64 %i
  store double %r, ptr %po, align 8
  %done = icmp eq i64 %i, %last
  br i1 %done, label %exit, label %body

exit:
  ret i32 0
}
"""

# the same stencil indexed from the left neighbour: u[i], u[i+1], u[i+2]
HEAT_FROM_LEFT = """
define i32 @f(ptr %retptr, ptr %excinfo, ptr %u, ptr %out, i64 %n) {
entry:
  %last = add i64 %n, -3
  %empty = icmp slt i64 %last, 0
  br i1 %empty, label %exit, label %pre

pre:
  br label %body

body:
  %i = phi i64 [ %i.next, %body ], [ 0, %pre ]
  %i.next = add nuw i64 %i, 1
  %q = getelementptr double, ptr %u, i64 %i
  %a = load double, ptr %q, align 8
  %p1 = getelementptr i8, ptr %q, i64 8
  %b = load double, ptr %p1, align 8
  %p2 = getelementptr i8, ptr %q, i64 16
  %c = load double, ptr %p2, align 8
  %ab = fadd double %a, %b
  %r = fadd double %ab, %c
  %po = getelementptr double, ptr %out, i64 %i
  store double %r, ptr %po, align 8
  %done = icmp eq i64 %i, %last
  br i1 %done, label %exit, label %body

exit:
  ret i32 0
}
"""


def test_heat_stencil_loads_are_deferred():
    fn, cfg, act, ivs, counted = analyse(HEAT)
    assert counted == {0}
    d = deferrable_loads(fn, cfg, act, ivs, counted)
    (lp,) = cfg.loops
    assert d == {"um": lp, "u0": lp, "up": lp}


def test_heat_stencil_loads_form_one_gather_group_with_offsets_minus_one_to_one():
    fn, cfg, act, ivs, counted = analyse(HEAT)
    d = deferrable_loads(fn, cfg, act, ivs, counted)
    groups = gather_groups(fn, cfg.loops[0], sorted(d), ivs)
    assert len(groups) == 1
    q, members = groups[0]
    assert q == "q"
    assert sorted(members, key=lambda m: m[1]) == [("um", -1), ("u0", 0), ("up", 1)]


def test_stencil_from_the_left_gathers_offsets_zero_to_two():
    fn, cfg, act, ivs, counted = analyse(HEAT_FROM_LEFT)
    d = deferrable_loads(fn, cfg, act, ivs, counted)
    assert set(d) == {"a", "b", "c"}
    (group,) = gather_groups(fn, cfg.loops[0], sorted(d), ivs)
    assert group[0] == "q" and sorted(group[1], key=lambda m: m[1]) == [("a", 0), ("b", 1), ("c", 2)]


def test_stencil_indexed_by_shifted_counters_is_deferred_without_a_gather_group():
    """u[i-1] through `getelementptr double, %u, (i - 1)`: recomputable, so deferred; but not at a constant
    byte offset from one unit-stride address, so each load gets its own flush loop."""
    ir = """
define i32 @f(ptr %retptr, ptr %excinfo, ptr %u, ptr %out, i64 %n) {
entry:
  br label %body

body:
  %i = phi i64 [ %i.next, %body ], [ 1, %entry ]
  %i.next = add i64 %i, 1
  %im = add i64 %i, -1
  %pm = getelementptr double, ptr %u, i64 %im
  %um = load double, ptr %pm, align 8
  %pp = getelementptr double, ptr %u, i64 %i.next
  %up = load double, ptr %pp, align 8
  %r = fsub double %up, %um
  %po = getelementptr double, ptr %out, i64 %i
  store double %r, ptr %po, align 8
  %cont = icmp slt i64 %i.next, %n
  br i1 %cont, label %body, label %exit

exit:
  ret i32 0
}
"""
    fn, cfg, act, ivs, counted = analyse(ir)
    d = deferrable_loads(fn, cfg, act, ivs, counted)
    assert set(d) == {"um", "up"}
    assert gather_groups(fn, cfg.loops[0], sorted(d), ivs) == []


def test_one_load_per_array_is_not_deferred():
    """out[i] = u[i] * v[i]: nothing is carried between iterations of the reverse loop."""
    ir = """
define i32 @f(ptr %retptr, ptr %excinfo, ptr %u, ptr %v, ptr %out, i64 %n) {
entry:
  br label %body

body:
  %i = phi i64 [ %i.next, %body ], [ 0, %entry ]
  %i.next = add i64 %i, 1
  %pu = getelementptr double, ptr %u, i64 %i
  %a = load double, ptr %pu, align 8
  %pv = getelementptr double, ptr %v, i64 %i
  %b = load double, ptr %pv, align 8
  %r = fmul double %a, %b
  %po = getelementptr double, ptr %out, i64 %i
  store double %r, ptr %po, align 8
  %cont = icmp slt i64 %i.next, %n
  br i1 %cont, label %body, label %exit

exit:
  ret i32 0
}
"""
    fn, cfg, act, ivs, counted = analyse(ir, dup=("u", "v", "out"))
    assert counted == {0} and {"a", "b"} <= act.values
    assert deferrable_loads(fn, cfg, act, ivs, counted) == {}


def test_stencil_that_also_stores_to_its_array_is_not_deferred():
    """u[i] = u[i-1] - 2 u[i] + u[i+1] in place: the store's reverse reads and zeroes su[i], which the
    deferred adjoints of later iterations' loads would not have reached yet."""
    ir = HEAT.replace("%po = getelementptr double, ptr %out, i64 %i", "%po = getelementptr double, ptr %u, i64 %i")
    fn, cfg, act, ivs, counted = analyse(ir)
    assert {"um", "u0", "up"} <= act.values
    assert deferrable_loads(fn, cfg, act, ivs, counted) == {}


def test_stencil_in_an_uncounted_loop_is_not_deferred():
    assert deferred(HEAT, counted=False) == {}


def test_stencil_of_a_const_array_is_not_deferred():
    """Loads of a Const array carry no adjoint."""
    assert deferred(HEAT, dup=("out",), const=("u",)) == {}


def test_conditional_stencil_load_is_not_deferred():
    """A load in a block that does not run every iteration would leave its scratch element unwritten."""
    ir = """
define i32 @f(ptr %retptr, ptr %excinfo, ptr %u, ptr %out, i64 %n, i1 %c) {
entry:
  br label %body

body:
  %i = phi i64 [ %i.next, %latch ], [ 1, %entry ]
  %q = getelementptr double, ptr %u, i64 %i
  %u0 = load double, ptr %q, align 8
  br i1 %c, label %side, label %latch

side:
  %pp = getelementptr i8, ptr %q, i64 8
  %up = load double, ptr %pp, align 8
  br label %latch

latch:
  %r = phi double [ %u0, %body ], [ %up, %side ]
  %po = getelementptr double, ptr %out, i64 %i
  store double %r, ptr %po, align 8
  %i.next = add i64 %i, 1
  %cont = icmp slt i64 %i.next, %n
  br i1 %cont, label %body, label %exit

exit:
  ret i32 0
}
"""
    fn, cfg, act, ivs, counted = analyse(ir)
    assert counted == {0} and {"u0", "up"} <= act.values
    # `up` does not qualify, which leaves `u0` the only load of u: nothing is deferred
    assert deferrable_loads(fn, cfg, act, ivs, counted) == {}


def test_stencil_through_a_maybe_null_shadow_is_not_deferred():
    """A pointer that selects between a Duplicated and a Const array may have a null shadow."""
    ir = (HEAT.replace("%q = getelementptr double, ptr %u, i64 %i", "%q = getelementptr double, ptr %base, i64 %i")
          .replace("pre:\n", "pre:\n  %base = select i1 %empty, ptr %k, ptr %u\n")
          .replace("ptr %out, i64 %n", "ptr %out, ptr %k, i64 %n"))
    fn, cfg, act, ivs, counted = analyse(ir, const=("k",))
    assert "q" in act.maybe_null and {"um", "u0", "up"} <= act.values
    assert deferrable_loads(fn, cfg, act, ivs, counted) == {}


def test_stencil_in_the_inner_loop_of_a_nest_is_deferred_but_not_the_outer():
    ir = """
define i32 @f(ptr %retptr, ptr %excinfo, ptr %u, ptr %out, i64 %n) {
entry:
  br label %outer

outer:
  %k = phi i64 [ 0, %entry ], [ %k.next, %outer.latch ]
  %row = mul i64 %k, %n
  %ru = getelementptr double, ptr %u, i64 %row
  br label %inner

inner:
  %i = phi i64 [ 1, %outer ], [ %i.next, %inner ]
  %i.next = add i64 %i, 1
  %q = getelementptr double, ptr %ru, i64 %i
  %pm = getelementptr i8, ptr %q, i64 -8
  %um = load double, ptr %pm, align 8
  %pp = getelementptr i8, ptr %q, i64 8
  %up = load double, ptr %pp, align 8
  %r = fsub double %up, %um
  %po = getelementptr double, ptr %out, i64 %i
  store double %r, ptr %po, align 8
  %cont = icmp slt i64 %i.next, %n
  br i1 %cont, label %inner, label %outer.latch

outer.latch:
  %k.next = add i64 %k, 1
  %ocont = icmp slt i64 %k.next, %n
  br i1 %ocont, label %outer, label %exit

exit:
  ret i32 0
}
"""
    fn, cfg, act, ivs, counted = analyse(ir)
    inner = next(lp for lp in cfg.loops if lp.header == "inner")
    assert counted == {lp.index for lp in cfg.loops}
    d = deferrable_loads(fn, cfg, act, ivs, counted)
    assert d == {"um": inner, "up": inner}
    (group,) = gather_groups(fn, inner, sorted(d), ivs)
    assert group[0] == "q" and sorted(group[1], key=lambda m: m[1]) == [("um", -1), ("up", 1)]


def test_gather_group_needs_two_members():
    fn, cfg, act, ivs, counted = analyse(HEAT)
    assert gather_groups(fn, cfg.loops[0], ["u0"], ivs) == []


def test_stencil_whose_array_a_memset_touches_is_not_deferred():
    ir = HEAT.replace("  %done = icmp eq", "  call void @llvm.memset.p0.i64(ptr %q, i8 0, i64 8, i1 false)\n"
                      "  %done = icmp eq") + "\ndeclare void @llvm.memset.p0.i64(ptr, i8, i64, i1)\n"
    fn, cfg, act, ivs, counted = analyse(ir)
    assert {"um", "u0", "up"} <= act.values
    assert deferrable_loads(fn, cfg, act, ivs, counted) == {}
