"""What the reverse sweep can recompute exactly instead of keeping on the tape.

* Induction variables: a loop-header phi `iv = phi [start, preheader], [iv + step, latch]` with start
  and step invariant in the loop is `start + step * (iteration index within this execution)`.
* Loads from arrays the function never writes: the memory still holds the same values when the
  reverse sweep runs (provided no written array aliases them: the API checks that per call).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..ir.model import Function, Instruction, Operand
from .cfg import CFG, Loop

WRITES = ("store",)


@dataclass
class InductionVariable:
    loop: Loop
    preheader: str
    start: Operand
    step: Operand
    negate: bool         # iv - step rather than iv + step


def simple_loop_entry(fn: Function, loop: Loop) -> str | None:
    """The single predecessor of loop's header outside the loop, when there is exactly one latch."""
    outside = [p for p in fn.block_map[loop.header].preds if p not in loop.blocks]
    if len(outside) == 1 and len(loop.latches) == 1:
        return outside[0]
    return None


def _invariant(fn: Function, cfg: CFG, op: Operand, loop: Loop) -> bool:
    if not op.is_local:
        return True
    ins = fn.defs.get(op.name)
    return ins is None or ins.block.name not in loop.blocks


def induction_variables(fn: Function, cfg: CFG) -> dict[str, InductionVariable]:
    out = {}
    for loop in cfg.loops:
        pre = simple_loop_entry(fn, loop)
        if pre is None:
            continue
        for phi in fn.block_map[loop.header].phis:
            if not phi.type.startswith("i") or phi.type == "i1":
                continue
            incoming = dict((bb, v) for v, bb in phi.incoming)
            start, nxt = incoming.get(pre), incoming.get(loop.latches[0])
            if start is None or nxt is None or not nxt.is_local:
                continue
            step_ins = fn.defs.get(nxt.name)
            if step_ins is None or step_ins.opcode not in ("add", "sub") or step_ins.operands[0].text != ref_of(phi):
                continue
            step = step_ins.operands[1]
            if _invariant(fn, cfg, start, loop) and _invariant(fn, cfg, step, loop):
                out[phi.result] = InductionVariable(loop, pre, start, step, step_ins.opcode == "sub")
    return out


def ref_of(ins: Instruction) -> str:
    from ..ir.model import ref
    return ref(ins.result)


def written_roots(fn: Function, roots: dict[str, frozenset]) -> set:
    """Roots of all memory the function may write (stores, memset/memcpy destinations, calls
    that receive pointers)."""
    out: set = set()
    for b in fn.blocks:
        for ins in b.instructions:
            if ins.opcode == "store":
                ptrs = [ins.operands[1]]
            elif ins.opcode == "call" and not ins.callee.startswith(("llvm.lifetime", "NRT_incref", "NRT_decref",
                                                                     "NRT_MemInfo_data_fast")):
                ptrs = [o for o in ins.operands if o.type == "ptr"]
                if ins.callee.startswith(("llvm.memcpy", "llvm.memmove")):
                    ptrs = ptrs[:1]
            else:
                continue
            for p in ptrs:
                if p.is_local:
                    out |= roots.get(p.name, frozenset([("other", p.name)]))
    return out


def readonly_load(ins: Instruction, roots: dict[str, frozenset], written: set, data_params: set[str]) -> bool:
    """A load from array parameters the function never writes."""
    p = ins.operands[0]
    if not p.is_local:
        return False
    rs = roots.get(p.name)
    if not rs:
        return False
    return all(kind == "param" and name in data_params for kind, name in rs) and not (rs & written)
