"""Deferred accumulation: which loads' adjoints the reverse sweep collects per iteration and adds to the
shadow after the reverse loop, instead of `shadow[p] += adjoint` inside it.

A stencil `t[i] = u[i-1] - 2 u[i] + u[i+1]` has the reverse `su[i-1] += a; su[i] -= 2a; su[i+1] += a`:
each element of `su` is updated by three consecutive iterations, so the reverse loop carries a
dependence through memory and LLVM cannot vectorise it (the primal loop, a gather, vectorises).  With
deferral the reverse loop only writes each iteration's adjoints into scratch arrays (no dependence
between iterations), and loops after it add them: for loads at fixed offsets from one address (see
`gather_groups`) one gather loop `su[e] += t_-1[e] + t_0[e] + t_1[e]`, else one loop per load,
`su[i + c] += t_c[i]`; each touches every element once, and vectorises.

A load of loop L qualifies when
* another load of the same array in L reads another address (otherwise nothing is carried between
  iterations, and the direct accumulation vectorises without the scratch round trip);
* L is innermost and counted (the reverse sweep knows its trip count when it enters it), and the
  load's block runs in every iteration (it dominates L's latch), so each scratch element is written;
* its address is a chain of `getelementptr` from a pointer defined outside L, with indices built from
  L's induction variables, loop-invariant values and integer arithmetic (the loop after the reverse
  loop recomputes it for every iteration), and it depends on an induction variable; a `select` of two
  such chains on a comparison of such integers counts as one (`y[i - 1] if i > 0 else y[n - 1]`, which
  Numba's lowering and SimplifyCFG turn into one load through a select of two addresses);
* its shadow may not be null (no mixed Const/Duplicated memory), and nothing in L but loads touches
  that shadow memory: a store (whose reverse reads and zeroes the shadow), a memset/memcpy, or a call
  receiving a pointer into it would read an adjoint the deferral has not added yet.  Other loads of
  the same memory only add to it, in any order.
"""
from __future__ import annotations

from ..ir.callees import touched_operands
from ..ir.model import Function, Instruction, is_float, size_of
from .activity import Activity
from .cfg import CFG, Loop

_INTEGER_OPS = {"add", "sub", "mul", "shl", "sext", "zext", "trunc", "or", "and", "icmp"}


def deferrable_loads(fn: Function, cfg: CFG, act: Activity, ivs: dict, counted: set[int]) -> dict[str, Loop]:
    """load name -> the loop whose reverse defers its accumulation."""
    out: dict[str, Loop] = {}
    for lp in cfg.loops:
        if lp.index not in counted or lp.children or len(lp.latches) != 1:
            continue
        loop_ivs = {name for name, iv in ivs.items() if iv.loop is lp}
        if not loop_ivs:
            continue
        chosen = []
        for name in sorted(lp.blocks):
            if not cfg.dominates(name, lp.latches[0]):
                continue
            for ins in fn.block_map[name].instructions:
                if ins.opcode == "load" and ins.result in act.values and _qualifies(fn, lp, act, ins, loop_ivs):
                    chosen.append(ins)
        # only where the reverse loop would carry a dependence: two or more loads of one array at
        # different addresses (a stencil); a single access per array vectorises as it is
        groups: dict = {}
        for ins in chosen:
            groups.setdefault(act.roots[ins.operands[0].name], set()).add(ins.operands[0].name)
        chosen = [i for i in chosen if len(groups[act.roots[i.operands[0].name]]) > 1]
        if not chosen:
            continue
        roots = frozenset().union(*(act.roots[i.operands[0].name] for i in chosen))
        if not _only_loads_touch(fn, lp, act, roots):
            continue
        for ins in chosen:
            out[ins.result] = lp
    return out


def _qualifies(fn: Function, lp: Loop, act: Activity, load: Instruction, loop_ivs: set[str]) -> bool:
    ptr = load.operands[0]
    if not ptr.is_local or ptr.name not in act.pointers or ptr.name in act.maybe_null:
        return False
    return bool(_pointer_kind(fn, lp, ptr.name, loop_ivs, 0))


def _pointer_kind(fn: Function, lp: Loop, name: str, loop_ivs: set[str], depth: int) -> bool | None:
    """None: not an address the flush loop can recompute; else whether it depends on an IV."""
    ins = fn.defs.get(name)
    if ins is None or ins.block.name not in lp.blocks:
        return False                                # a pointer defined outside the loop: the base
    if depth > 8:
        return None
    if ins.opcode == "getelementptr":
        parts = [_index_kind(fn, lp, idx, loop_ivs, 0) for idx in ins.operands[1:]]
        bases = [ins.operands[0]]
    elif ins.opcode == "select":
        parts = [_index_kind(fn, lp, ins.operands[0], loop_ivs, 0)]
        bases = ins.operands[1:]
    else:
        return None
    for base in bases:
        parts.append(_pointer_kind(fn, lp, base.name, loop_ivs, depth + 1) if base.is_local else None)
    return None if any(k is None for k in parts) else any(parts)


def _index_kind(fn: Function, lp: Loop, op, loop_ivs: set[str], depth: int) -> bool | None:
    """None: not recomputable from induction variables and invariants; else whether it uses an IV."""
    if not op.is_local:
        return False
    if op.name in loop_ivs:
        return True
    ins = fn.defs.get(op.name)
    if ins is None or ins.block.name not in lp.blocks:
        return False                                # loop-invariant
    if ins.opcode not in _INTEGER_OPS or depth > 8:
        return None
    kinds = [_index_kind(fn, lp, o, loop_ivs, depth + 1) for o in ins.operands]
    if any(k is None for k in kinds):
        return None
    return any(kinds)


def _only_loads_touch(fn: Function, lp: Loop, act: Activity, roots: frozenset) -> bool:
    for name in lp.blocks:
        for ins in fn.block_map[name].instructions:
            if ins.opcode == "store":
                ptrs = [ins.operands[1]]
            elif ins.opcode == "call":
                ptrs = touched_operands(ins)
            else:
                continue
            for p in ptrs:
                if not p.is_local or act.roots.get(p.name, frozenset([("other", p.name)])) & roots \
                        or any(kind == "other" for kind, _ in act.roots.get(p.name, ())):
                    return False
    return True


def gather_groups(fn: Function, lp: Loop, loads: list[str], ivs: dict) -> list[tuple[str, list[tuple[str, int]]]]:
    """Deferred loads of lp that read one array at fixed element offsets from one unit-stride address
    `Q = getelementptr T, B, iv` (the load's pointer is Q or Q plus a constant): a stencil.  Their
    flush can be one gather loop, `shadow[e] += t_0[e] + t_1[e] + ...`, with each t_m written at the
    element the load reads (its iteration plus its offset) rather than at its iteration.
    Returns [(Q, [(load, element offset), ...]), ...] for groups of two or more loads."""
    groups: dict[str, list[tuple[str, int]]] = {}
    for name in loads:
        load = fn.defs[name]
        size = _float_size(load.type)
        ptr, off = load.operands[0].name, 0
        ins = fn.defs.get(ptr)
        if ins is not None and ins.opcode == "getelementptr" and ins.source_type == "i8" \
                and len(ins.operands) == 2 and not ins.operands[1].is_local and ins.operands[0].is_local:
            ptr, off = ins.operands[0].name, int(ins.operands[1].text)
        q = fn.defs.get(ptr)
        if size is None or off % size or q is None or q.opcode != "getelementptr" or len(q.operands) != 2 \
                or _float_size(q.source_type) != size or q.block.name not in lp.blocks:
            continue
        base, idx = q.operands
        iv = ivs.get(idx.name) if idx.is_local else None
        if iv is None or iv.loop is not lp or iv.negate or iv.step.text != "1" or not base.is_local \
                or (fn.defs.get(base.name) is not None and fn.defs[base.name].block.name in lp.blocks):
            continue
        groups.setdefault(ptr, []).append((name, off // size))
    return [(q, members) for q, members in groups.items() if len(members) > 1]


def _float_size(ty: str) -> int | None:
    return size_of(ty) if is_float(ty) else None
