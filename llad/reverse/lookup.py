"""Primal values in the reverse sweep: recompute them, or read them from the tape (Enzyme's
`lookupM`).

A value is recomputed when that is cheap and exact: integer and address arithmetic, comparisons (of
values that are themselves free: otherwise the comparison's result is taped),
int->float casts, induction variables (from the loop's iteration index), loads from memory that
holds the same value in the reverse sweep (read-only arrays, final values), and a little float
arithmetic on values that are themselves free.  Everything else is read from the tape.  Values are
looked up once per reverse block (`avail`).
"""
from __future__ import annotations

import dataclasses

from ..analysis.recompute import readonly_load, simple_loop_entry
from ..forward.shadows import (
    guarded,
    meminfo_or_standin,
    null_preserving,
    on_base,
    shadow_name,
    shadow_of,
)
from ..ir.builder import Builder
from ..ir.callees import MEMINFO_DATA_OFFSET, CallKind, classify, meminfo_of_data_load
from ..ir.model import Block, Instruction, Operand, is_float, ref, unref
from .facts import ReverseFacts
from .tape import Tape

RECOMPUTABLE = {"add", "sub", "mul", "shl", "lshr", "ashr", "and", "or", "xor", "udiv", "sdiv", "urem", "srem",
                "icmp", "getelementptr", "zext", "sext", "trunc", "sitofp", "uitofp", "ptrtoint", "inttoptr",
                "freeze", "fcmp"}
# float arithmetic the reverse sweep recomputes rather than tapes when its operands come for free
CHEAP_FLOAT_OPS = {"fadd", "fsub", "fmul", "fneg", "fdiv", "fpext", "fptrunc"}
FREE_DEPTH = 4          # how many cheap float operations deep a recomputation may go


def recomputable(ins: Instruction) -> bool:
    return ins.opcode in RECOMPUTABLE or (ins.opcode == "select" and not is_float(ins.type))


class PrimalLookup:
    def __init__(self, facts: ReverseFacts, tape: Tape, b: Builder, location, scopes=None):
        self.facts, self.fn, self.act, self.tape, self.b = facts, facts.fn, facts.act, tape, b
        self.location, self.scopes = location, scopes
        self.reloaded: set[str] = set()      # array parameters whose loads the reverse sweep repeats
        self.avail: dict[str, str] = {}      # primal / shadow values available in the current block
        self.block: Block | None = None
        self._free_memo: dict = {}

    def enter(self, block: Block) -> None:
        """Start looking up values for the reverse of `block` (or a block of llad's own)."""
        self.block, self.avail = block, {}

    def metadata(self, ptr: Operand, shadow: bool) -> tuple:
        return () if self.scopes is None else self.scopes.metadata(ptr, shadow)

    # --- primal values ------------------------------------------------------------------------------
    def need(self, op: Operand) -> str:
        return self.need_name(op.name) if op.is_local else op.text

    def need_name(self, name: str) -> str:
        if name in self.avail:
            return self.avail[name]
        ins = self.fn.defs.get(name)
        if ins is None:                                     # a parameter
            return ref(name)
        if ins.opcode == "fcmp" and not self._free_operands(ins, FREE_DEPTH):
            # a comparison of values that would come from the tape (a running maximum against the next
            # element): keep its 1-byte result instead of its 8-byte operand, as Enzyme does
            v = self.tape.load(self.b, name, ins.type, ins.block.name, self.block.name)
        elif recomputable(ins) or (ins.opcode in CHEAP_FLOAT_OPS and self.free(name, FREE_DEPTH)):
            v = self.recompute(ins)
        elif ins.result in self.facts.ivs:
            v = self.induction_variable(ins)
        elif ins.opcode == "load" and self.reloadable(ins):
            self.reloaded |= {r[1] for r in self.act.roots[ins.operands[0].name]}
            # `!invariant.load` only for memory nothing writes: a final value was written earlier in this
            # very function (the forward sweep), and an invariant load of it may be merged with a load from
            # before that write
            v = self.b.load(ins.type, self.need(ins.operands[0]), invariant=self._never_written(ins),
                            metadata=self.metadata(ins.operands[0], False))
        else:
            v = self.tape.load(self.b, name, ins.type, ins.block.name, self.block.name)
        self.avail[name] = v
        return v

    def recompute(self, ins: Instruction) -> str:
        r = self.b.namer.fresh()
        ops = [Operand(o.type, self.need(o), o.attrs) for o in ins.operands]
        self.b.append(dataclasses.replace(ins, result=unref(r), operands=ops, metadata=(), block=None))
        return r

    def _never_written(self, load: Instruction) -> bool:
        f = self.facts
        return readonly_load(load, self.act.roots, f.written, f.data_params)

    def reloadable(self, load: Instruction) -> bool:
        """The reverse sweep may repeat this load: its memory holds the same value then."""
        f = self.facts
        return load.result in f.final_loads or readonly_load(load, self.act.roots, f.written, f.data_params)

    def free(self, name: str, depth: int) -> bool:
        """Whether `name` can be recomputed in the reverse sweep without reading the tape (cheap
        arithmetic on parameters, induction variables and loads from unwritten arrays)."""
        key = (name, depth)
        if key not in self._free_memo:
            ins = self.fn.defs.get(name)
            if ins is None or ins.result in self.facts.ivs:
                ok = True
            elif ins.opcode == "load":
                ok = self.reloadable(ins) and self._free_operands(ins, depth)
            elif recomputable(ins) or ins.opcode in CHEAP_FLOAT_OPS:
                ok = depth > 0 and self._free_operands(ins, depth - (ins.opcode in CHEAP_FLOAT_OPS))
            else:
                ok = False
            self._free_memo[key] = ok
        return self._free_memo[key]

    def _free_operands(self, ins: Instruction, depth: int) -> bool:
        return all(self.free(o.name, depth) for o in ins.operands if o.is_local)

    # --- loops ----------------------------------------------------------------------------------------
    def induction_variable(self, ins: Instruction) -> str:
        g, g0 = self.iteration(self.facts.ivs[ins.result].loop)
        return self.iv_at(ins, self.b.op("sub", "i64", g, g0))

    def iv_at(self, ins: Instruction, local: str) -> str:
        """The value of induction variable `ins` in iteration `local` (from 0) of its loop's execution."""
        iv = self.facts.ivs[ins.result]
        if ins.type != "i64":
            local = self.b.cast("trunc", "i64", local, ins.type)
        delta = self.b.op("mul", ins.type, local, self.need(iv.step))
        return self.b.op("sub" if iv.negate else "add", ins.type, self.need(iv.start), delta)

    def iteration(self, loop) -> tuple[str, str]:
        """(global index of the current iteration of loop, global index of this execution's first)."""
        g = self.tape.current_index(self.b, loop, self.block.name)
        if loop.index in self.facts.trip_counts:
            g0 = self.b.load("i64", ref(f"g0r.{loop.index}"))
        else:
            pre = simple_loop_entry(self.fn, loop)
            g0 = self.tape.load(self.b, f"g0.{loop.index}", "i64", pre, self.block.name)
        return g, g0

    # --- shadows --------------------------------------------------------------------------------------
    def memory_shadow(self, op: Operand, for_write: bool) -> str:
        """The shadow to read or write: a stand-in when it may be null (mixed memory)."""
        s = self.need_shadow(op)
        return guarded(self.b, s, for_write) if op.is_local and op.name in self.act.maybe_null else s

    def need_shadow(self, op: Operand) -> str:
        if not (op.is_local and op.name in self.act.pointers):
            return shadow_of(op, self.act, 0, self.fn.defs.get(op.name), self.location)
        key = "s0." + op.name
        if key not in self.avail:
            self.avail[key] = self._shadow_value(op)
        return self.avail[key]

    def _walk_start(self, phi: Instruction) -> Operand | None:
        """For a pointer phi whose incoming values are one pointer from outside and address arithmetic on the
        phi itself (`p = phi [start], [p + step]`), with a shadow that is never null: start."""
        if phi.opcode != "phi" or phi.result in self.act.maybe_null:
            return None
        outside = set()
        for v, _ in phi.incoming:
            base = v
            while base.is_local and base.name != phi.result and self.fn.defs.get(base.name) is not None \
                    and self.fn.defs[base.name].opcode == "getelementptr":
                base = self.fn.defs[base.name].operands[0]
            if not (base.is_local and base.name == phi.result):
                outside.add(v.text)
                start = v
        if len(outside) != 1 or not start.is_local or start.name not in self.act.pointers \
                or start.name in self.act.maybe_null:
            return None
        return start

    def _shadow_value(self, op: Operand) -> str:
        ins, b = self.fn.defs.get(op.name), self.b
        if ins is None:
            return shadow_name(op.name)
        may_be_null = bool(ins.operands) and ins.operands[0].is_local and ins.operands[0].name in self.act.maybe_null
        if ins.opcode == "getelementptr":
            base = self.need_shadow(ins.operands[0])
            r = b.namer.fresh()
            b.append(on_base(ins, base, self.need, result=unref(r)))
            return null_preserving(b, base, r) if may_be_null else r
        if ins.opcode == "select":
            return b.select(self.need(ins.operands[0]), "ptr", self.need_shadow(ins.operands[1]),
                            self.need_shadow(ins.operands[2]))
        meminfo = ins.operands[0] if ins.opcode == "call" and classify(ins.callee) is CallKind.DATA_POINTER \
            else meminfo_of_data_load(self.fn, ins)
        if meminfo is not None:
            # the data pointer of a meminfo is fixed once allocated
            mi = self.need_shadow(meminfo)
            if meminfo.is_local and meminfo.name in self.act.maybe_null:
                mi = meminfo_or_standin(b, mi)
            return b.load("ptr", b.gep("i8", mi, [("i64", str(MEMINFO_DATA_OFFSET))]), invariant=True)
        start = self._walk_start(ins)
        if start is not None:
            # a pointer walking an array from `start` (np.sum's loop): its shadow is start's shadow at the same
            # byte offset.  Not taped: a shadow pointer read back from the tape is one a derivative
            # differentiated again (forward over reverse) could not trace to an array.
            offset = b.op("sub", "i64", b.cast("ptrtoint", "ptr", self.need(op), "i64"),
                          b.cast("ptrtoint", "ptr", self.need(start), "i64"))
            return b.gep("i8", self.need_shadow(start), [("i64", offset)])
        # other pointer phis, allocations: taped
        return self.tape.load(b, "s0." + op.name, "ptr", ins.block.name, self.block.name)
