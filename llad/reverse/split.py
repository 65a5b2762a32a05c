"""Split mode: the augmented forward sweep and the reverse sweep as two calls of one function.

A split derivative takes three more parameters: `i32 %llad.phase`, `i64 %llad.frame` (the address of a
buffer the caller owns, the tape object) and the return seed.  Everything the reverse sweep reads from
the forward sweep lives in the entry block's allocas (tape slots, loop tape states and counters,
adjoint slots, the shadow stack, the return slots; values are never carried in registers from one
sweep to the other), so suspending is copying those allocas into the frame, and resuming is copying
them back:

    phase 1  forward sweep; at a return: save the frame (and which return), write the primal, return
    phase 2  restore the frame, seed the return's shadow, jump to the reverse of that return
    phase 3  restore the frame and free what the forward sweep allocated (a tape dropped unused)
"""
from __future__ import annotations

from ..ir.builder import Builder
from ..ir.model import Block, Instruction, ref, size_of

PHASE, FRAME, SEED = "%llad.phase", "%llad.frame", "%llad.seed"
FRAME_PTR = "%llad.framep"


def _type_size(ty: str) -> int:
    """Bytes for a slot of type `ty` (a struct: an upper bound, every field on 8 bytes)."""
    ty = ty.strip()
    if ty.startswith("["):
        n, elt = ty[1:-1].split(" x ", 1)
        return int(n) * _type_size(elt.strip())
    if ty.startswith("{"):
        return sum((_type_size(t) + 7) // 8 * 8 for t in _fields(ty[1:-1]))
    size = 8 if ty.endswith("*") else size_of(ty)
    if size is None:
        raise ValueError(f"split mode cannot keep a slot of type {ty}")
    return size


def _fields(body: str) -> list[str]:
    """The field types of a struct body, split at its top-level commas."""
    out, depth, start = [], 0, 0
    for i, c in enumerate(body):
        depth += c in "{[<"
        depth -= c in "}]>"
        if c == "," and depth == 0:
            out.append(body[start:i])
            start = i + 1
    return out + [body[start:]]


class Frame:
    """The entry block's allocas at 8-byte-aligned offsets, then one byte: which return suspended."""

    def __init__(self, entry: Block):
        self.slots = [(ins.result, ins.source_type) for ins in entry.instructions if ins.opcode == "alloca"]
        self.offsets, off = [], 0
        for _, ty in self.slots:
            self.offsets.append(off)
            off += (_type_size(ty) + 7) // 8 * 8
        self.return_id_offset = off
        self.bytes = off + 8

    def save(self, b: Builder) -> None:
        for (name, ty), off in zip(self.slots, self.offsets):
            b.store(ty, b.load(ty, ref(name)), self._at(b, off))

    def restore(self, b: Builder) -> None:
        for (name, ty), off in zip(self.slots, self.offsets):
            b.store(ty, b.load(ty, self._at(b, off)), ref(name))

    def save_return_id(self, b: Builder, rid: int) -> None:
        b.store("i8", str(rid), self._at(b, self.return_id_offset))

    def return_id(self, b: Builder) -> str:
        return b.load("i8", self._at(b, self.return_id_offset))

    def _at(self, b: Builder, off: int) -> str:
        return b.gep("i8", FRAME_PTR, [("i64", str(off))]) if off else FRAME_PTR


def return_blocks(fn) -> list[str]:
    return [b.name for b in fn.blocks if b.terminator.opcode == "ret"]


def dispatch(b: Builder, primal_entry: str) -> None:
    """End the entry block: phase 1 into the forward sweep, 2 to resume, 3 to release."""
    b.switch("i32", PHASE, primal_entry, [(2, "llad.resume"), (3, "llad.release")])


def suspend(b: Builder, frame: Frame, ret: Instruction, rid: int, outputs) -> None:
    """Phase 1's end at a return: keep the frame and which return this was, write the primal result.

    A returned array goes to the caller, and the frame keeps a second reference to it: phase 2 writes
    the result again (one result type for every phase), phase 3 drops it.  The shadow of a returned
    array is the caller's to seed: it gets its own reference (the reverse sweep releases the shadow
    allocation's)."""
    frame.save(b)
    frame.save_return_id(b, rid)
    if outputs.returns_array:
        b.call("void", "NRT_incref", [("ptr", outputs.result_meminfo(b))])
        if outputs.shadow_output:
            b.call("void", "NRT_incref", [("ptr", outputs.result_meminfo(b, shadow=True))])
    outputs.store(b)
    b.ret("i32", "0")


def resume(b: Builder, frame: Frame, returns: list[str], seed_type: str | None, outputs) -> None:
    """Phase 2: the frame back, the seed into the return's shadow, then the reverse of that return
    (whose outputs take the frame's reference to a returned array, and a new one to its shadow)."""
    b.new_block("llad.resume")
    frame.restore(b)
    if outputs.shadow_output:
        b.call("void", "NRT_incref", [("ptr", outputs.result_meminfo(b, shadow=True))])
    if seed_type is not None:
        b.store(seed_type, SEED, '%"s0.retptr"')
    rid = frame.return_id(b)
    b.switch("i8", rid, f"rev.{returns[0]}", [(i, f"rev.{r}") for i, r in enumerate(returns) if i])


def release(b: Builder, frame: Frame, free_all, outputs) -> None:
    """Phase 3: the frame back, then free what the forward sweep allocated (and the frame's reference
    to a returned array)."""
    b.new_block("llad.release")
    frame.restore(b)
    if outputs.returns_array:
        b.call("void", "NRT_decref", [("ptr", outputs.result_meminfo(b))])
    free_all(b)
    b.ret("i32", "0")
