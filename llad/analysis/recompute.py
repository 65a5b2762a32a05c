"""What the reverse sweep can recompute exactly instead of keeping on the tape.

* Induction variables: a loop-header phi `iv = phi [start, preheader], [iv + step, latch]` with start
  and step invariant in the loop is `start + step * (iteration index within this execution)`.
* Loads from arrays the function never writes: the memory still holds the same values when the
  reverse sweep runs (provided no written array aliases them: the API checks that per call).
* Loads of final values: from an array nothing writes after the load (on any path to the return).
  The reverse sweep never writes primal memory, so it finds the value the load read.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..ir.callees import written_operands
from ..ir.model import Function, Instruction, Operand
from .cfg import CFG, Loop


@dataclass
class InductionVariable:
    loop: Loop
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
                out[phi.result] = InductionVariable(loop, start, step, step_ins.opcode == "sub")
    return out


def ref_of(ins: Instruction) -> str:
    from ..ir.model import ref
    return ref(ins.result)


def _written_by(ins: Instruction, roots: dict[str, frozenset]) -> frozenset:
    """Roots of the memory one instruction may write (a store, a memset/memcpy destination, a call
    that receives pointers)."""
    if ins.opcode == "store":
        ptrs = [ins.operands[1]]
    elif ins.opcode == "call":
        ptrs = written_operands(ins)
    else:
        return frozenset()
    out = frozenset()
    for p in ptrs:
        if p.is_local:
            out |= roots.get(p.name, frozenset([("other", p.name)]))
    return out


def written_roots(fn: Function, roots: dict[str, frozenset]) -> set:
    """Roots of all memory the function may write."""
    out: set = set()
    for b in fn.blocks:
        for ins in b.instructions:
            out |= _written_by(ins, roots)
    return out


def final_value_loads(fn: Function, roots: dict[str, frozenset], data_params: set[str]) -> set[str]:
    """Loads from array parameters that no write reachable after the load touches (the API checks per
    call that no other written array aliases them, as for read-only arrays)."""
    block_writes = {b.name: frozenset().union(*(_written_by(i, roots) for i in b.instructions)) for b in fn.blocks}
    reach_memo: dict[str, frozenset] = {}

    def written_after_block(name: str) -> frozenset:
        """Roots written in any block reachable from name's successors."""
        if name not in reach_memo:
            seen, work = set(), list(fn.block_map[name].succs)
            while work:
                b = work.pop()
                if b not in seen:
                    seen.add(b)
                    work.extend(fn.block_map[b].succs)
            reach_memo[name] = frozenset().union(*(block_writes[b] for b in seen))
        return reach_memo[name]

    out = set()
    for b in fn.blocks:
        for pos, ins in enumerate(b.instructions):
            if ins.opcode != "load" or not ins.operands[0].is_local:
                continue
            rs = roots.get(ins.operands[0].name)
            if not rs or not all(kind == "param" and name in data_params for kind, name in rs):
                continue
            later = frozenset().union(*(_written_by(i, roots) for i in b.instructions[pos + 1:]))
            if not (rs & later) and not (rs & written_after_block(b.name)):
                out.add(ins.result)
    return out


def readonly_load(ins: Instruction, roots: dict[str, frozenset], written: set, data_params: set[str]) -> bool:
    """A load from array parameters the function never writes."""
    return readonly_pointer(ins.operands[0], roots, written, data_params)


def readonly_pointer(p: Operand, roots: dict[str, frozenset], written: set, data_params: set[str]) -> bool:
    """A pointer into array parameters the function never writes."""
    if not p.is_local:
        return False
    rs = roots.get(p.name)
    if not rs:
        return False
    return all(kind == "param" and name in data_params for kind, name in rs) and not (rs & written)


@dataclass
class TripCount:
    """Iterations of one execution of a counted loop: max(sign * (bound - start) + extra, 1), where
    start is the value the exit test sees in the first iteration."""

    bound: Operand
    start: Operand
    sign: int            # +1: counts up to bound, -1: counts down to it
    extra: int
    start_offset: int    # the test sees the incremented value: start + step


# predicate of the "stay in the loop" test -> (step it needs, sign, extra); v_t = a + step*(t-1), the loop
# leaves at the first t where the test fails
_CONTINUE = {("ne", 1): (1, 1), ("ne", -1): (-1, 1),
             ("slt", 1): (1, 1), ("ult", 1): (1, 1), ("sle", 1): (1, 2), ("ule", 1): (1, 2),
             ("sgt", -1): (-1, 1), ("ugt", -1): (-1, 1), ("sge", -1): (-1, 2), ("uge", -1): (-1, 2)}
_SWAP = {"slt": "sgt", "sgt": "slt", "sle": "sge", "sge": "sle", "ult": "ugt", "ugt": "ult", "ule": "uge",
         "uge": "ule", "eq": "eq", "ne": "ne"}
_NOT = {"eq": "ne", "ne": "eq", "slt": "sge", "sge": "slt", "sgt": "sle", "sle": "sgt", "ult": "uge",
        "uge": "ult", "ugt": "ule", "ule": "ugt"}


def trip_count(fn: Function, cfg: CFG, ivs: dict[str, InductionVariable], loop: Loop) -> TripCount | None:
    """The trip count of a counted loop (`for i in range(a, b)`, also Numba's count-down form): one
    exit, at the latch, testing a unit-step induction variable against a loop-invariant bound."""
    exiting = [b for b in loop.blocks if any(s not in loop.blocks for s in fn.block_map[b].succs)]
    if len(exiting) != 1 or exiting[0] != loop.latches[0]:
        return None
    term = fn.block_map[exiting[0]].terminator
    if term.opcode != "br" or len(term.targets) != 2 or not term.operands[0].is_local:
        return None
    cond = fn.defs.get(term.operands[0].name)
    if cond is None or cond.opcode != "icmp" or cond.predicate not in _NOT:
        return None
    stay = cond.predicate if term.targets[0] == loop.header else _NOT[cond.predicate]
    for iv_name, iv in ivs.items():
        if iv.loop is not loop or iv.step.text not in ("1", "-1"):
            continue
        step = int(iv.step.text) * (-1 if iv.negate else 1)
        phi = next(i for i in fn.block_map[loop.header].phis if i.result == iv_name)
        nxt = next((v for v, bb in phi.incoming if bb == loop.latches[0]), None)
        for (a, b), pred in ((cond.operands, stay), (cond.operands[::-1], _SWAP[stay])):
            if not a.is_local or not _invariant(fn, cfg, b, loop):
                continue
            offset = 0 if a.name == iv_name else step if nxt is not None and a.name == nxt.name else None
            rule = _CONTINUE.get((pred, step))
            if offset is not None and rule is not None:
                return TripCount(b, iv.start, rule[0], rule[1], offset)
    return None
