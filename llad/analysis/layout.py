"""Shadow layout for vector mode (k > 1 tangents): split or interleaved, per group of memory.

*Split*: k separate shadow buffers, each laid out like the primal; a tangent load is k scalar loads.
*Interleaved*: one buffer in which the k tangents of each primal element sit side by side, at k times
the element's byte offset; a tangent load is one `<k x T>` load, a store one vector store, and loops
over such memory stay vectorisable.  The API interleaves a `BatchDuplicated` argument when its k
shadows are small enough to transpose cheaply at the call (see `api.INTERLEAVE_MAX_BYTES`); arrays
allocated inside the function are interleaved unless they share a pointer (a phi or select) or a
memcpy with a split argument, or are returned (a returned array's k tangents are k arrays).

Memory whose pointers meet must share one layout: roots are joined in groups (union-find over the
roots of every pointer and of both ends of every memcpy).  A group holding both an interleaved and a
split argument cannot be laid out: `LayoutConflict`, and the API compiles the all-split variant.
"""
from __future__ import annotations

from ..ir.callees import SIZED_FIRST, CallKind, classify, touched_operands, written_operands
from ..ir.model import Function
from .activity import Activity


class LayoutConflict(Exception):
    """Two arguments of different layouts flow into one pointer."""


def interleaved_shadows(fn: Function, act: Activity, interleaved_params: set[str],
                        split_params: set[str]) -> frozenset:
    """The names of the active pointers and allocations (meminfo values) whose shadow is interleaved."""
    parent: dict = {}

    def find(r):
        while parent.setdefault(r, r) != r:
            parent[r] = parent[parent[r]]
            r = parent[r]
        return r

    active = {("param", p) for p in interleaved_params | split_params} | {("alloc", a) for a in act.allocations}

    def join(rs):       # roots without a shadow (Const arrays, inactive allocations) have the null shadow
        rs = [r for r in rs if r in active]
        for r in rs[1:]:
            parent[find(r)] = find(rs[0])

    for roots in act.roots.values():
        join(sorted(roots))
    sized_first_arg, returned = set(), set()
    for b in fn.blocks:
        for ins in b.instructions:
            if ins.opcode == "store":
                val, ptr = ins.operands
                if val.is_local and val.type == "ptr" and ("param", "retptr") in act.roots.get(ptr.name, ()):
                    returned |= act.roots.get(val.name, frozenset())     # a returned array: k tangent arrays
                elif val.type == "ptr" and ptr.is_local and ptr.name in act.pointers:
                    # a pointer kept in memory with a shadow (a tape): lane j's shadow pointer in lane j's
                    # shadow memory, both split
                    returned |= act.roots.get(ptr.name, frozenset())
                    if val.is_local:
                        returned |= act.roots.get(val.name, frozenset())
            if ins.opcode != "call":
                continue
            if classify(ins.callee) is CallKind.MEMCPY:
                dst, src = ins.operands[0], ins.operands[1]
                if dst.is_local and src.is_local:
                    join(sorted(act.roots.get(dst.name, frozenset()) | act.roots.get(src.name, frozenset())))
            elif classify(ins.callee) in SIZED_FIRST:
                sized_first_arg.add(ins.result)
            elif classify(ins.callee) in (CallKind.BLAS, CallKind.CUSTOM_CALL):
                # BLAS (and a custom rule) takes each shadow as an array of its own: k split shadows, k calls
                for op in touched_operands(ins):
                    if op.is_local:
                        returned |= act.roots.get(op.name, frozenset())
    # per group: the layouts its parameters ask for; an allocation whose size llad cannot scale is split
    wants: dict = {}
    for r in set(parent) | {("alloc", a) for a in act.allocations} | (returned & active):
        kind, name = r
        if kind == "param" and name in interleaved_params:
            wants.setdefault(find(r), set()).add(True)
        elif (kind == "param" and name in split_params) or (kind == "alloc" and name not in sized_first_arg):
            wants.setdefault(find(r), set()).add(False)
        if r in returned:
            wants.setdefault(find(r), set()).add(False)
    if any(len(w) > 1 for w in wants.values()):
        raise LayoutConflict("arrays of different shadow layouts meet")

    def interleaved(r) -> bool:
        if r[0] == "alloc":
            return wants.get(find(r), {True}) == {True}
        return r[0] == "param" and r[1] in interleaved_params

    out = {a for a in act.allocations if interleaved(("alloc", a))}
    for name in act.pointers:
        live = [r for r in act.roots[name] if r in active]
        if live and all(interleaved(r) for r in live):
            out.add(name)
    return frozenset(out)


def written_params(fn: Function, act: Activity) -> set[str]:
    """Pointer parameters whose memory the function may write (a store, memset, memcpy or memmove):
    an interleaved shadow of one must be copied back to the caller's k shadows."""
    out = set()
    for b in fn.blocks:
        for ins in b.instructions:
            if ins.opcode == "store":
                written = [ins.operands[1]]
            elif ins.opcode == "call" and classify(ins.callee) in (CallKind.MEMSET, CallKind.MEMCPY, CallKind.BLAS,
                                                                  CallKind.CUSTOM_CALL):
                written = written_operands(ins)
            else:
                continue
            for dst in written:
                if dst.is_local:
                    out |= {name for kind, name in act.roots.get(dst.name, ()) if kind == "param"}
    return out
