"""Forward pointers that Numba spills to stack slots back to their uses.

Some Numba implementations (`reshape`, `max`, `cumsum`, ...) keep an array's struct in an alloca that
escapes to a helper, so the pre-AD pipeline cannot promote it, and the data pointer comes back as
`load ptr`.  Activity analysis cannot see through memory, so such a load would look like a pointer to
unknown memory.  When exactly one store writes that slot, the store dominates the load, and nothing
else can write the slot, the load returns the stored pointer: its uses are rewritten to use that
pointer directly, which gives the analyses and the generators the pointer's real origin.
"""
from __future__ import annotations

from .callees import CallKind, classify, written_operands
from .model import Function, Instruction, Operand, size_of


def reads_slots_only(call: Instruction) -> bool:
    """Helpers that receive pointers into a stack slot but never write pointers into it."""
    return classify(call.callee) in (CallKind.MARKER, CallKind.REFCOUNT) or \
        call.callee.startswith("numba_attempt_nocopy_reshape")


def _slot_address(fn: Function, name: str) -> tuple[str, int] | None:
    """(alloca, constant byte offset) of an address, or None when it is not a constant slot address."""
    offset = 0
    while True:
        ins = fn.defs.get(name)
        if ins is None:
            return None
        if ins.opcode == "alloca":
            return name, offset
        if ins.opcode != "getelementptr" or len(ins.operands) != 2 or ins.operands[1].is_local:
            return None
        size = size_of(ins.source_type)
        index = ins.operands[1].text
        if size is None or not index.lstrip("-").isdigit():     # `undef` / `poison` indices: not a constant
            return None
        offset += size * int(index)
        if not ins.operands[0].is_local:
            return None
        name = ins.operands[0].name


def base_alloca(fn: Function, name: str) -> str | None:
    """The alloca an address points into, at any offset."""
    seen = 0
    while seen < 64:
        ins = fn.defs.get(name)
        if ins is None:
            return None
        if ins.opcode == "alloca":
            return name
        if ins.opcode not in ("getelementptr", "select", "phi") or not ins.operands or not ins.operands[0].is_local:
            return None
        name = ins.operands[0].name
        seen += 1
    return None


def forward_spilled_pointers(fn: Function, dominates, idom: dict) -> int:
    """Rewrite uses of `load ptr` from single-store stack slots; returns how many loads were forwarded."""
    stores: dict[tuple, list[Instruction]] = {}
    unknown_writes: set[str] = set()          # allocas written at addresses llad cannot pin down
    cleared: dict[str, list[tuple[int, int]]] = {}     # constant memsets into slots: byte ranges
    for b in fn.blocks:
        for ins in b.instructions:
            if ins.opcode == "call" and classify(ins.callee) is CallKind.MEMSET and ins.operands[0].is_local \
                    and ins.operands[2].text.isdigit():
                addr = _slot_address(fn, ins.operands[0].name)
                if addr is not None:
                    cleared.setdefault(addr[0], []).append((addr[1], addr[1] + int(ins.operands[2].text)))
                    continue
            if ins.opcode == "store" and ins.operands[1].is_local:
                addr = _slot_address(fn, ins.operands[1].name)
                if addr is not None:
                    stores.setdefault(addr, []).append(ins)
                else:
                    base = base_alloca(fn, ins.operands[1].name)
                    if base is not None:
                        unknown_writes.add(base)
            elif ins.opcode == "call" and not reads_slots_only(ins):
                for o in ins.operands:
                    base = base_alloca(fn, o.name) if o.is_local else None
                    if base is not None:
                        unknown_writes.add(base)
    replace: dict[str, Operand] = {}
    for b in fn.blocks:
        for ins in b.instructions:
            if ins.opcode != "load" or ins.type != "ptr" or not ins.operands[0].is_local:
                continue
            addr = _slot_address(fn, ins.operands[0].name)
            if addr is None:
                continue
            value = _stored_just_before(fn, ins, addr, idom)
            if value is None and addr[0] not in unknown_writes and len(stores.get(addr, ())) == 1 and not any(
                    lo < addr[1] + 8 and addr[1] < hi for lo, hi in cleared.get(addr[0], ())):
                st = stores[addr][0]
                if st.operands[0].type == "ptr" and _before(st, ins, dominates):
                    value = st.operands[0]
            if value is not None:
                replace[ins.result] = value
    if replace:
        _rewrite_uses(fn, replace)
    return len(replace)


def _stored_just_before(fn: Function, load: Instruction, addr: tuple, idom: dict) -> Operand | None:
    """The pointer the slot holds at `load`: the last write before it, looking back through its block
    and up the dominator tree (checking that no block in between can write the slot), when that write
    is a plain store of a pointer to exactly this slot."""
    block = load.block
    earlier = block.instructions[:block.instructions.index(load)]
    for _ in range(64):
        for ins in reversed(earlier):
            verdict = _write_to_slot(fn, ins, addr)
            if verdict is not None:
                return verdict if isinstance(verdict, Operand) else None
        up = idom.get(block.name)
        if up is None or any(_writes_slot(fn, fn.block_map[b], addr) for b in _between(fn, up, block.name)):
            return None
        block = fn.block_map[up]
        earlier = block.instructions
    return None


def _write_to_slot(fn: Function, ins: Instruction, addr: tuple):
    """The stored pointer when ins stores one to exactly `addr`; True when ins may write the slot
    otherwise; None when it cannot write the slot."""
    if ins.opcode == "store" and ins.operands[1].is_local:
        at = _slot_address(fn, ins.operands[1].name)
        if at == addr:
            return ins.operands[0] if ins.operands[0].type == "ptr" else True
        size = size_of(ins.operands[0].type)
        if at is not None and at[0] == addr[0] and size is not None \
                and (at[1] + size <= addr[1] or addr[1] + 8 <= at[1]):
            return None     # another field of the same slot
        if base_alloca(fn, ins.operands[1].name) == addr[0]:
            return True
    elif ins.opcode == "call" and _may_write_slot(fn, ins, addr[0]):
        return True
    return None


def _writes_slot(fn: Function, block, addr: tuple) -> bool:
    return any(_write_to_slot(fn, ins, addr) is not None for ins in block.instructions)


def _between(fn: Function, top: str, bottom: str) -> set[str]:
    """Blocks on paths from `top` to `bottom`, both excluded (top dominates bottom)."""
    seen, work = set(), list(fn.block_map[bottom].preds)
    while work:
        b = work.pop()
        if b == top or b in seen or b == bottom:
            continue
        seen.add(b)
        work.extend(fn.block_map[b].preds)
    return seen


def _may_write_slot(fn: Function, call: Instruction, slot: str) -> bool:
    return any(o.is_local and base_alloca(fn, o.name) == slot for o in written_operands(call))


def _before(first: Instruction, second: Instruction, dominates) -> bool:
    if first.block is second.block:
        return first.block.instructions.index(first) < second.block.instructions.index(second)
    return dominates(first.block.name, second.block.name)


def _rewrite_uses(fn: Function, replace: dict[str, Operand]) -> None:
    def resolve(op: Operand) -> Operand:
        while op.is_local and op.name in replace:
            op = replace[op.name]
        return op

    for b in fn.blocks:
        for ins in b.instructions:
            if any(n in replace for n in ins.local_operands()):
                ins.operands = [resolve(o) for o in ins.operands]
                ins.incoming = [(resolve(v), bb) for v, bb in ins.incoming]
