"""In-place updates whose reverse can leave the shadow as it is.

`x = load p; y = x + e; store y, p` (or `x - e`, `e + x`) has the reverse `dy = shadow[p]; shadow[p] = 0;
de += ±dy; shadow[p] += dy` — it zeroes an adjoint only to add it back.  When nothing between the load
and the store in the primal writes memory, everything the reverse does between those two steps only adds
to shadows (the reverses of loads), which commutes with them: the reverse may read `dy` and leave
`shadow[p]` alone.  That saves a store and a load-add-store per update, and an update `a[i, j] -= f * b[j]`
in a loop no longer writes back an element of the shadow it just read, which LLVM could not prove
unaliased from the other shadow accesses of the iteration.

An update qualifies when the store's value `y` is an `fadd` of the loaded `x` (either operand) or an
`fsub` with `x` first, `x` is used only by `y` and `y` only by the store (so each one's adjoint is exactly
the other's), `x`, `y` and the store are in one block, the load reads the store's pointer (the same SSA
value), and no store or call other than a math function lies between the load and the store.
"""
from __future__ import annotations

from ..ir.callees import CallKind, classify
from ..ir.model import Function, Instruction, is_float
from .activity import Activity

_HARMLESS_CALLS = (CallKind.MATH, CallKind.MARKER, CallKind.INTEGER)


def in_place_updates(fn: Function, act: Activity, users: dict) -> dict[int, str]:
    """id(store) -> the name of the load it updates, for every qualifying update."""
    out: dict[int, str] = {}
    for block in fn.blocks:
        position = {id(ins): i for i, ins in enumerate(block.instructions)}
        for pos, store in enumerate(block.instructions):
            if store.opcode != "store":
                continue
            load = _updated_load(fn, act, users, store)
            if load is None or id(load) not in position:
                continue
            between = block.instructions[position[id(load)] + 1:pos]
            if all(not _may_write(ins) for ins in between):
                out[id(store)] = load.result
    return out


def _updated_load(fn: Function, act: Activity, users: dict, store: Instruction) -> Instruction | None:
    val, ptr = store.operands
    if not (val.is_local and ptr.is_local and is_float(val.type) and ptr.name in act.pointers):
        return None
    y = fn.defs.get(val.name)
    if y is None or y.block is not store.block or y.opcode not in ("fadd", "fsub") or y.result not in act.values \
            or [id(u) for u in users.get(y.result, [])] != [id(store)]:
        return None
    candidates = y.operands if y.opcode == "fadd" else y.operands[:1]
    for op in candidates:
        x = fn.defs.get(op.name) if op.is_local else None
        if x is not None and x.opcode == "load" and x.block is store.block and x.operands[0].is_local \
                and x.operands[0].name == ptr.name and x.type == val.type and x.result in act.values \
                and [id(u) for u in users.get(x.result, [])] == [id(y)] \
                and not (y.operands[0].text == y.operands[1].text):
            return x
    return None


def _may_write(ins: Instruction) -> bool:
    if ins.opcode == "store":
        return True
    return ins.opcode == "call" and classify(ins.callee) not in _HARMLESS_CALLS
