"""Loops whose reverse does nothing when the adjoints leaving them are zero (the reverse sweep skips them).

The reverse of a loop L reads adjoints from two places: the adjoints of L's values that are used after L
(its live-out values), and shadow memory that L's stores wrote (a store's reverse takes the shadow's value
and zeroes it).  When L stores nothing and calls nothing but math functions, its reverse only turns the
live-out adjoints into contributions, linearly: with all of them zero, every contribution is zero and the
reverse of L can be skipped whole (k-means: of a point's k distance loops, only the nearest one's gets a
nonzero adjoint).  The skip also has to know where the reverse of L would have left L's tape counter:
L must be counted (its trip count known when the reverse enters it) and innermost (no inner counters),
and have no deferred loads (their scratch array is flushed when L's reverse ends).

The only difference a skip makes is that no `adjoint += 0 * x` happens: with x infinite or NaN the
unskipped reverse would have written NaN where the skipped one leaves the adjoint as it was.

Differentiated again (a derivative that calls a reverse derivative), the test is no longer enough: where
an adjoint is zero its tangent need not be, and an outer reverse sweep would need the skipped region's
reverse.  The reverse sweep therefore writes each adjoint it tests through `llvm.arithmetic.fence`, which
costs no code and survives LLVM's optimisation as a call; `mark_zero_tests` (before differentiating a
function) finds the comparisons of fenced values with zero, removes the fences and records the tests: a
forward derivative then also asks the tangents to be zero (tangent.py), a reverse one never skips.
"""
from __future__ import annotations

from ..ir.builder import is_const_zero
from ..ir.callees import CallKind, classify
from ..ir.model import Function
from .activity import Activity
from .cfg import CFG

_SCALAR_FLOATS = ("double", "float")
_HARMLESS_CALLS = (CallKind.MATH, CallKind.MARKER, CallKind.INTEGER)


def skippable_loops(fn: Function, cfg: CFG, act: Activity, counted: set[int], deferred: set[int],
                    users: dict) -> dict[int, list[str]]:
    """Loop index -> its live-out active values (sorted), for every loop whose reverse may be skipped when
    their adjoints are all zero."""
    out: dict[int, list[str]] = {}
    for lp in cfg.loops:
        if lp.index not in counted or lp.children or lp.index in deferred:
            continue
        live_out, ok = set(), True
        for name in lp.blocks:
            for ins in fn.block_map[name].instructions:
                if ins.opcode == "store" or (ins.opcode == "call" and classify(ins.callee) not in _HARMLESS_CALLS) \
                        or ins.opcode in ("atomicrmw", "cmpxchg", "fence"):
                    ok = False
                    break
                if ins.result in act.values and any(u.block.name not in lp.blocks for u in users.get(ins.result, [])):
                    if ins.type not in _SCALAR_FLOATS:
                        ok = False
                        break
                    live_out.add(ins.result)
            if not ok:
                break
        if ok:
            out[lp.index] = sorted(live_out)
    return out


def mark_zero_tests(fn: Function, reverse: bool) -> None:
    """Record in `fn.zero_tests` the comparisons `fcmp oeq|une (llvm.arithmetic.fence(a)), 0.0` of a
    derivative llad made (name -> predicate), drop the fences (their uses read `a`); in a function about to
    get a reverse derivative, make those tests say "nonzero" always (the skip never happens)."""
    fences = {ins.result: ins.operands[0] for b in fn.blocks for ins in b.instructions
              if ins.opcode == "call" and ins.callee.startswith("llvm.arithmetic.fence.")}
    if not fences:
        return
    for b in fn.blocks:
        for ins in b.instructions:
            fenced = [i for i, o in enumerate(ins.operands) if o.is_local and o.name in fences]
            for i in fenced:
                ins.operands[i] = fences[ins.operands[i].name]
            if ins.opcode == "phi":
                ins.incoming = [(fences.get(v.name, v) if v.is_local else v, bb) for v, bb in ins.incoming]
            if fenced and ins.opcode == "fcmp" and ins.predicate in ("oeq", "une") \
                    and any(is_const_zero(o.text) for o in ins.operands):
                fn.zero_tests[ins.result] = ins.predicate
                if reverse:
                    ins.predicate = "false" if ins.predicate == "oeq" else "true"
        b.instructions = [ins for ins in b.instructions if ins.result not in fences]
    fn.reindex()
