"""Forward pointers that Numba spills to stack slots back to their uses.

Some Numba implementations (`reshape`, `max`, `cumsum`, ...) keep an array's struct in an alloca that
escapes to a helper, so the pre-AD pipeline cannot promote it, and the data pointer comes back as
`load ptr`.  Activity analysis cannot see through memory, so such a load would look like a pointer to
unknown memory.  When exactly one store writes that slot, the store dominates the load, and nothing
else can write the slot, the load returns the stored pointer: its uses are rewritten to use that
pointer directly, which gives the analyses and the generators the pointer's real origin.
"""
from __future__ import annotations

from .model import LOCAL_REF, Function, Instruction, Operand

# helpers that receive pointers into a slot but never write pointers into it
_SLOT_READERS = ("numba_attempt_nocopy_reshape", "llvm.lifetime.", "NRT_incref", "NRT_decref")
_SIZES = {"i8": 1, "i16": 2, "i32": 4, "i64": 8, "ptr": 8, "double": 8, "float": 4}


def _slot_address(fn: Function, name: str) -> tuple[str, int] | None:
    """(alloca, constant byte offset) of an address, or None when it is not a constant slot address."""
    offset = 0
    while True:
        ins = fn.defs.get(name)
        if ins is None:
            return None
        if ins.opcode == "alloca" or ins.text.split("=", 1)[-1].strip().startswith("alloca"):
            return name, offset
        if ins.opcode != "getelementptr" or len(ins.operands) != 2 or ins.operands[1].is_local:
            return None
        size = _SIZES.get(ins.source_type)
        if size is None:
            return None
        offset += size * int(ins.operands[1].text)
        if not ins.operands[0].is_local:
            return None
        name = ins.operands[0].name


def _base_alloca(fn: Function, name: str) -> str | None:
    """The alloca an address points into, at any offset."""
    seen = 0
    while seen < 64:
        ins = fn.defs.get(name)
        if ins is None:
            return None
        if ins.text.split("=", 1)[-1].strip().startswith("alloca"):
            return name
        if ins.opcode not in ("getelementptr", "select", "phi") or not ins.operands or not ins.operands[0].is_local:
            return None
        name = ins.operands[0].name
        seen += 1
    return None


def forward_spilled_pointers(fn: Function, dominates) -> int:
    """Rewrite uses of `load ptr` from single-store stack slots; returns how many loads were forwarded."""
    stores: dict[tuple, list[Instruction]] = {}
    unknown_writes: set[str] = set()          # allocas written at addresses llad cannot pin down
    cleared: dict[str, list[tuple[int, int]]] = {}     # constant memsets into slots: byte ranges
    for b in fn.blocks:
        for ins in b.instructions:
            if ins.opcode == "call" and ins.callee.startswith("llvm.memset.") and ins.operands[0].is_local \
                    and not ins.operands[2].is_local:
                addr = _slot_address(fn, ins.operands[0].name)
                if addr is not None:
                    cleared.setdefault(addr[0], []).append((addr[1], addr[1] + int(ins.operands[2].text)))
                    continue
            if ins.opcode == "store" and ins.operands[1].is_local:
                addr = _slot_address(fn, ins.operands[1].name)
                if addr is not None:
                    stores.setdefault(addr, []).append(ins)
                else:
                    base = _base_alloca(fn, ins.operands[1].name)
                    if base is not None:
                        unknown_writes.add(base)
            elif ins.opcode == "call" and not ins.callee.startswith(_SLOT_READERS):
                for o in ins.operands:
                    base = _base_alloca(fn, o.name) if o.is_local else None
                    if base is not None:
                        unknown_writes.add(base)
    replace: dict[str, Operand] = {}
    for b in fn.blocks:
        for ins in b.instructions:
            if ins.opcode != "load" or ins.type != "ptr" or not ins.operands[0].is_local:
                continue
            addr = _slot_address(fn, ins.operands[0].name)
            if addr is None or addr[0] in unknown_writes or len(stores.get(addr, ())) != 1:
                continue
            if any(lo < addr[1] + 8 and addr[1] < hi for lo, hi in cleared.get(addr[0], ())):
                continue
            st = stores[addr][0]
            if st.operands[0].type != "ptr" or not _before(st, ins, dominates):
                continue
            replace[ins.result] = st.operands[0]
    if replace:
        _rewrite_uses(fn, replace)
    return len(replace)


def _before(first: Instruction, second: Instruction, dominates) -> bool:
    if first.block is second.block:
        return first.block.instructions.index(first) < second.block.instructions.index(second)
    return dominates(first.block.name, second.block.name)


def _rewrite_uses(fn: Function, replace: dict[str, Operand]) -> None:
    def resolve(name: str) -> Operand:
        op = replace[name]
        while op.is_local and op.name in replace:
            op = replace[op.name]
        return op

    def sub(m):
        name = m.group(1)[1:-1] if m.group(1).startswith('"') else m.group(1)
        return resolve(name).text if name in replace else m.group(0)

    for b in fn.blocks:
        for ins in b.instructions:
            if not any(n in replace for n in ins.local_operands()):
                continue
            head, eq, body = ins.text.partition("=") if ins.result is not None else ("", "", ins.text)
            ins.text = (head + eq + LOCAL_REF.sub(sub, body)) if eq else LOCAL_REF.sub(sub, body)
            ins.operands = [resolve(o.name) if o.is_local and o.name in replace else o for o in ins.operands]
            ins.incoming = [(resolve(v.name) if v.is_local and v.name in replace else v, bb)
                            for v, bb in ins.incoming]
