"""llad.analysis.cfg: reverse post-order, dominators, natural loops, on hand-written IR."""
from __future__ import annotations

import pytest

import llad
from llad.analysis.cfg import analyse_cfg
from llad.ir.parser import parse_function


def parse(ir: str):
    return parse_function(ir, "f")


DIAMOND = """
define void @f(i1 %c) {
entry:
  br i1 %c, label %then, label %else

then:
  br label %join

else:
  br label %join

join:
  ret void
}
"""

# entry -> outer.h -> inner.h <-> inner.body -> outer.latch -> outer.h ; outer.h -> exit
NESTED = """
define void @f(i64 %n) {
entry:
  br label %outer.h

outer.h:
  %i = phi i64 [ 0, %entry ], [ %i.next, %outer.latch ]
  %oc = icmp slt i64 %i, %n
  br i1 %oc, label %inner.h, label %exit

inner.h:
  %j = phi i64 [ 0, %outer.h ], [ %j.next, %inner.body ]
  %ic = icmp slt i64 %j, %n
  br i1 %ic, label %inner.body, label %outer.latch

inner.body:
  %j.next = add i64 %j, 1
  br label %inner.h

outer.latch:
  %i.next = add i64 %i, 1
  br label %outer.h

exit:
  ret void
}
"""

# two loops one after the other: siblings, neither a parent of the other
SEQUENTIAL = """
define void @f(i64 %n) {
entry:
  br label %a

a:
  %i = phi i64 [ 0, %entry ], [ %i.next, %a ]
  %i.next = add i64 %i, 1
  %ca = icmp slt i64 %i.next, %n
  br i1 %ca, label %a, label %mid

mid:
  br label %b

b:
  %k = phi i64 [ 0, %mid ], [ %k.next, %b ]
  %k.next = add i64 %k, 1
  %cb = icmp slt i64 %k.next, %n
  br i1 %cb, label %b, label %exit

exit:
  ret void
}
"""

# a loop entered at two places (entry branches into both `left` and `right`, which branch to each other)
IRREDUCIBLE = """
define void @f(i1 %c, i1 %d) {
entry:
  br i1 %c, label %left, label %right

left:
  br i1 %d, label %right, label %exit

right:
  br i1 %d, label %left, label %exit

exit:
  ret void
}
"""


def test_rpo_starts_at_entry_and_visits_each_block_after_its_forward_predecessors():
    cfg = analyse_cfg(parse(DIAMOND))
    assert cfg.rpo[0] == "entry" and cfg.rpo[-1] == "join"
    assert sorted(cfg.rpo) == ["else", "entry", "join", "then"]


def test_rpo_of_nested_loops_puts_headers_before_their_bodies():
    cfg = analyse_cfg(parse(NESTED))
    pos = {b: i for i, b in enumerate(cfg.rpo)}
    assert pos["entry"] < pos["outer.h"] < pos["inner.h"] < pos["inner.body"]
    assert pos["inner.h"] < pos["outer.latch"]
    assert len(cfg.rpo) == 6


def test_rpo_leaves_out_unreachable_blocks():
    ir = DIAMOND.replace("join:\n  ret void", "join:\n  ret void\n\ndead:\n  br label %join")
    fn = parse(ir)
    assert "dead" in fn.block_map
    cfg = analyse_cfg(fn)
    assert "dead" not in cfg.rpo
    assert not cfg.dominates("entry", "dead")       # unreachable: nothing claims to dominate it


def test_immediate_dominators_of_a_diamond():
    cfg = analyse_cfg(parse(DIAMOND))
    assert cfg.idom == {"then": "entry", "else": "entry", "join": "entry"}
    assert "entry" not in cfg.idom


def test_dominates_is_reflexive_and_not_symmetric():
    cfg = analyse_cfg(parse(DIAMOND))
    for b in cfg.rpo:
        assert cfg.dominates(b, b)
        assert cfg.dominates("entry", b)
    assert not cfg.dominates("then", "join")        # join is also reached through else
    assert not cfg.dominates("else", "join")
    assert not cfg.dominates("join", "entry")
    assert not cfg.dominates("then", "else")


def test_dominators_of_nested_loops():
    cfg = analyse_cfg(parse(NESTED))
    assert cfg.idom["outer.h"] == "entry"
    assert cfg.idom["inner.h"] == "outer.h"
    assert cfg.idom["inner.body"] == "inner.h"
    assert cfg.idom["outer.latch"] == "inner.h"
    assert cfg.idom["exit"] == "outer.h"
    assert cfg.dominates("outer.h", "inner.body")
    assert not cfg.dominates("inner.body", "outer.latch")   # the inner loop may run zero times


def test_nested_loops_their_blocks_latches_and_parents():
    cfg = analyse_cfg(parse(NESTED))
    assert len(cfg.loops) == 2
    by_header = {lp.header: lp for lp in cfg.loops}
    outer, inner = by_header["outer.h"], by_header["inner.h"]
    assert inner.blocks == {"inner.h", "inner.body"}
    assert outer.blocks == {"outer.h", "inner.h", "inner.body", "outer.latch"}
    assert inner.latches == ["inner.body"] and outer.latches == ["outer.latch"]
    assert inner.parent is outer and outer.parent is None
    assert outer.children == [inner] and inner.children == []
    assert inner.depth == 2 and outer.depth == 1
    assert sorted(lp.index for lp in cfg.loops) == [0, 1]
    assert cfg.loops[inner.index] is inner and cfg.loops[outer.index] is outer


def test_loop_of_is_the_innermost_loop():
    cfg = analyse_cfg(parse(NESTED))
    by_header = {lp.header: lp for lp in cfg.loops}
    assert cfg.loop_of["entry"] is None and cfg.loop_of["exit"] is None
    assert cfg.loop_of["outer.h"] is by_header["outer.h"]
    assert cfg.loop_of["outer.latch"] is by_header["outer.h"]
    assert cfg.loop_of["inner.h"] is by_header["inner.h"]
    assert cfg.loop_of["inner.body"] is by_header["inner.h"]


def test_sequential_loops_are_siblings():
    cfg = analyse_cfg(parse(SEQUENTIAL))
    by_header = {lp.header: lp for lp in cfg.loops}
    assert set(by_header) == {"a", "b"}
    for lp in cfg.loops:
        assert lp.parent is None and lp.children == [] and lp.latches == [lp.header]
        assert lp.blocks == {lp.header}
    assert cfg.loop_of["mid"] is None


def test_a_loop_with_two_latches_is_one_loop():
    ir = """
define void @f(i1 %c, i1 %d) {
entry:
  br label %h

h:
  br i1 %c, label %x, label %y

x:
  br i1 %d, label %h, label %exit

y:
  br i1 %d, label %h, label %exit

exit:
  ret void
}
"""
    cfg = analyse_cfg(parse(ir))
    assert len(cfg.loops) == 1
    (lp,) = cfg.loops
    assert lp.header == "h" and sorted(lp.latches) == ["x", "y"] and lp.blocks == {"h", "x", "y"}


def test_irreducible_control_flow_is_refused():
    with pytest.raises(llad.DifferentiationError, match="irreducible control flow"):
        analyse_cfg(parse(IRREDUCIBLE))


def test_irreducible_error_names_the_location():
    with pytest.raises(llad.DifferentiationError) as info:
        analyse_cfg(parse(IRREDUCIBLE), location=lambda ins: "kernel.py:7")
    assert info.value.location == "kernel.py:7"


def test_self_loop_is_reducible():
    ir = """
define void @f(i1 %c) {
entry:
  br label %h

h:
  br i1 %c, label %h, label %exit

exit:
  ret void
}
"""
    cfg = analyse_cfg(parse(ir))
    (lp,) = cfg.loops
    assert lp.header == "h" and lp.blocks == {"h"} and lp.latches == ["h"]
