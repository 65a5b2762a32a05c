"""llad.analysis.layout: which shadows vector mode lays out interleaved, and when layouts conflict."""
from __future__ import annotations

import pytest

from llad.analysis.activity import analyse_activity
from llad.analysis.layout import LayoutConflict, interleaved_shadows, written_params
from llad.ir.parser import parse_function

DECLS = """
declare ptr @NRT_MemInfo_alloc_aligned(i64, i32)
declare ptr @NRT_MemInfo_new(ptr, i64, ptr, ptr)
declare ptr @NRT_MemInfo_data_fast(ptr)
declare void @llvm.memcpy.p0.p0.i64(ptr, ptr, i64, i1)
"""


def analyse(body: str, dup=("x", "y"), const=("k",)):
    ir = f"""
define i32 @f(ptr %retptr, ptr %excinfo, ptr %x, ptr %y, ptr %k, i1 %c) {{
entry:
{body}
  ret i32 0
}}
{DECLS}"""
    fn = parse_function(ir, "f")
    act = analyse_activity(fn, set(), set(dup), set(const), lambda ins=None: "test.py:1")
    return fn, act


# an allocation that receives x[0]
SCRATCH = """
  %ma = call ptr @NRT_MemInfo_alloc_aligned(i64 64, i32 32)
  %da = call ptr @NRT_MemInfo_data_fast(ptr %ma)
  %v = load double, ptr %x, align 8
  store double %v, ptr %da, align 8
  %pa = getelementptr double, ptr %da, i64 3
  %w = load double, ptr %pa, align 8
  %py = getelementptr double, ptr %y, i64 1
  store double %w, ptr %py, align 8"""


def test_an_allocation_is_interleaved():
    fn, act = analyse(SCRATCH)
    assert act.allocations == {"ma"}
    out = interleaved_shadows(fn, act, set(), {"x", "y"})     # even when every argument is split
    assert {"ma", "da", "pa"} <= out
    assert not {"x", "y", "py"} & out


def test_interleaved_and_split_arguments_keep_their_layouts_apart():
    fn, act = analyse(SCRATCH)
    out = interleaved_shadows(fn, act, {"x"}, {"y"})
    assert "x" in out and "y" not in out and "py" not in out
    assert {"ma", "da", "pa"} <= out


def test_interleaved_and_split_arguments_meeting_in_a_select_conflict():
    body = """
  %z = select i1 %c, ptr %x, ptr %y
  %v = load double, ptr %z, align 8
  store double %v, ptr %y, align 8"""
    fn, act = analyse(body)
    assert "z" in act.pointers
    with pytest.raises(LayoutConflict):
        interleaved_shadows(fn, act, {"x"}, {"y"})
    # the same select is fine when both share a layout
    assert "z" in interleaved_shadows(fn, act, {"x", "y"}, set())
    assert "z" not in interleaved_shadows(fn, act, set(), {"x", "y"})


def test_interleaved_and_split_arguments_meeting_in_a_phi_conflict():
    body = """
  br i1 %c, label %l, label %r

l:
  br label %j

r:
  br label %j

j:
  %z = phi ptr [ %x, %l ], [ %y, %r ]
  %v = load double, ptr %z, align 8
  store double %v, ptr %y, align 8"""
    fn, act = analyse(body)
    with pytest.raises(LayoutConflict):
        interleaved_shadows(fn, act, {"y"}, {"x"})


def test_memcpy_between_interleaved_and_split_arguments_conflicts():
    body = """
  call void @llvm.memcpy.p0.p0.i64(ptr %y, ptr %x, i64 64, i1 false)"""
    fn, act = analyse(body)
    with pytest.raises(LayoutConflict):
        interleaved_shadows(fn, act, {"x"}, {"y"})


def test_a_const_array_meeting_an_interleaved_one_is_no_conflict():
    """Const memory has the null shadow: it takes no layout."""
    body = """
  %z = select i1 %c, ptr %x, ptr %k
  %v = load double, ptr %z, align 8
  store double %v, ptr %y, align 8"""
    fn, act = analyse(body)
    assert "z" in act.maybe_null
    out = interleaved_shadows(fn, act, {"x"}, {"y"})
    assert {"x", "z"} <= out


def test_an_allocation_meeting_a_split_argument_is_split():
    body = SCRATCH + """
  %z = select i1 %c, ptr %da, ptr %y
  %u = load double, ptr %z, align 8"""
    fn, act = analyse(body)
    out = interleaved_shadows(fn, act, {"x"}, {"y"})
    assert not {"ma", "da", "pa", "z"} & out
    assert "x" in out


def test_an_allocation_meeting_an_interleaved_argument_is_interleaved():
    body = SCRATCH + """
  %z = select i1 %c, ptr %da, ptr %x
  %u = load double, ptr %z, align 8"""
    fn, act = analyse(body)
    assert {"ma", "da", "z", "x"} <= interleaved_shadows(fn, act, {"x"}, {"y"})


def test_memory_wrapped_by_meminfo_new_is_split():
    """llad cannot scale the size of memory it did not allocate."""
    body = """
  %mw = call ptr @NRT_MemInfo_new(ptr null, i64 64, ptr null, ptr null)
  %dw = call ptr @NRT_MemInfo_data_fast(ptr %mw)
  %v = load double, ptr %x, align 8
  store double %v, ptr %dw, align 8"""
    fn, act = analyse(body)
    assert act.allocations == {"mw"}
    out = interleaved_shadows(fn, act, {"x", "y"}, set())
    assert "mw" not in out and "dw" not in out and "x" in out


def test_written_params():
    body = """
  %v = load double, ptr %x, align 8
  %py = getelementptr double, ptr %y, i64 2
  store double %v, ptr %py, align 8
  call void @llvm.memcpy.p0.p0.i64(ptr %k, ptr %x, i64 8, i1 false)
  store double %v, ptr %retptr, align 8"""
    fn, act = analyse(body, dup=("x", "y", "retptr"), const=())
    assert written_params(fn, act) == {"y", "k", "retptr"}
