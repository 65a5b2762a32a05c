"""Deferred accumulation in the reverse sweep (which loads qualify: analysis/deferral.py).

Each deferred load of loop L keeps its adjoint, per iteration, in a scratch array (slot s of L's
scratch buffer `%dfb.L`, `capacity` elements per slot); after L's reverse loop, loops add the kept
adjoints to the shadow: a stencil group in one gather loop over the elements it reads,
`shadow[e] += t_0[e] + t_1[e] + ...`, every other deferred load in its own loop,
`shadow[address in iteration j] += t[j]`.
"""
from __future__ import annotations

from .. import runtime
from ..ir.builder import fconst, is_const_zero
from ..ir.model import Block, Instruction, Operand, ref, size_of
from .lookup import PrimalLookup


class Deferral:
    def __init__(self, lookup: PrimalLookup, tape_metadata: tuple):
        self.lookup, self.facts, self.b = lookup, lookup.facts, lookup.b
        self.metadata = tape_metadata

    def keep(self, load: Instruction, adj: str) -> None:
        """The reverse of a deferred load: its adjoint into this iteration's scratch element."""
        lp = self.facts.deferred[load.result]
        g, g0 = self.lookup.iteration(lp)
        value = fconst(load.type, 0.0) if is_const_zero(adj) else adj
        self.b.store(load.type, value, self._scratch(lp, load.result, self.b.op("sub", "i64", g, g0)), self.metadata)

    def reserve(self, lp, n: str) -> None:
        """On entering lp's reverse: room for every iteration's deferred adjoints (contents need not survive)."""
        b, i = self.b, lp.index
        b.store("i64", n, ref(f"dfn.{i}"))
        room = b.op("add", "i64", n, str(self.facts.defer_pad.get(i, 0)))
        runtime.reserve(b, ref(f"dfb.{i}"), ref(f"dfc.{i}"), room, 8 * len(self.facts.defer_slots[i]))

    def _scratch(self, lp, load: str, local: str) -> str:
        """Where iteration `local` of loop lp keeps the deferred adjoint of `load` (in a stencil group:
        at the element it reads, counted from the group's lowest offset)."""
        if self.facts.defer_shift.get(load):
            local = self.b.op("add", "i64", local, str(self.facts.defer_shift[load]))
        return self._scratch_at(lp, load, local)

    def _scratch_at(self, lp, load: str, local: str) -> str:
        """Element `local` of `load`'s scratch array (one per deferred load, `capacity` elements)."""
        b, i = self.b, lp.index
        slot = self.facts.defer_slots[i].index(load)
        cap = b.load("i64", ref(f"dfc.{i}"))
        off = b.op("add", "i64", b.op("mul", "i64", cap, str(8 * slot)),
                   b.op("mul", "i64", local, str(size_of(self.facts.fn.defs[load].type))))
        return b.gep("i8", b.load("ptr", ref(f"dfb.{i}")), [("i64", off)])

    def flush(self, lp, label: str) -> str:
        """After lp's reverse loop (on its way out, in block `label`), add the kept adjoints to the
        shadow; returns the block the flush ends in."""
        lookup, i, b = self.lookup, lp.index, self.b
        saved = lookup.block, lookup.avail
        n = b.load("i64", ref(f"dfn.{i}"))
        fn, gathers = self.facts.fn, self.facts.gathers.get(i, [])
        grouped = {name for _, members in gathers for name, _ in members}
        loops = [(f"{slot}", [name], name, 0, n) for slot, name in enumerate(self.facts.defer_slots[i])
                 if name not in grouped]
        for g, (q, members) in enumerate(gathers):
            low, high = min(d for _, d in members), max(d for _, d in members)
            for name, d in members:      # t_m holds the elements its load reads: zero the rest of the range
                size = size_of(fn.defs[name].type)
                if d - low:
                    b.memset(self._scratch_at(lp, name, "0"), "i64", str((d - low) * size))
                if high - d:
                    end = b.op("add", "i64", n, str(d - low))
                    b.memset(self._scratch_at(lp, name, end), "i64", str((high - d) * size))
            loops.append((f"g{g}", [name for name, _ in members], q, low, b.op("add", "i64", n, str(high - low))))
        for tag, names, ptr_name, low, count in loops:
            label = self._flush_loop(lp, tag, names, ptr_name, low, count, label)
        lookup.block, lookup.avail = saved
        return label

    def _flush_loop(self, lp, tag, names, ptr_name, low, count, label) -> str:
        """One loop `shadow[address of iteration j + low] += sum of t_name[j]`, for j < count."""
        lookup, b, i = self.lookup, self.b, lp.index
        load = self.facts.fn.defs[names[0]]
        lookup.enter(Block(f"{lp.header}.flush.{tag}"))
        head, done = f"dfl.{i}.{tag}", f"dfl.{i}.{tag}.done"
        jn = ref(f"dfjn.{i}.{tag}")
        b.br(head)
        b.new_block(head)
        j = b.phi("i64", [("0", label), (jn, head)], name=ref(f"dfj.{i}.{tag}"))
        at = b.op("add", "i64", j, str(low)) if low else j     # the iteration whose address is element j
        for iv_name, iv in self.facts.ivs.items():
            if iv.loop is lp:
                lookup.avail[iv_name] = lookup.iv_at(self.facts.fn.defs[iv_name], at)
        total = None
        for name in names:
            v = b.load(load.type, self._scratch_at(lp, name, j), metadata=self.metadata)
            total = v if total is None else b.fadd(load.type, total, v)
        ptr = Operand("ptr", ref(ptr_name)) if len(names) > 1 else load.operands[0]
        b.accumulate(load.type, lookup.need_shadow(ptr), total, lookup.metadata(ptr, True))
        b.op("add", "i64", j, "1", name=jn)
        b.cbr(b.icmp("ult", "i64", jn, count), head, done)
        b.new_block(done)
        return done

    def allocate(self, b) -> None:
        for i in sorted(self.facts.defer_slots):
            b.alloca("ptr", name=ref(f"dfb.{i}"))
            b.store("ptr", "null", ref(f"dfb.{i}"))
            b.alloca("i64", name=ref(f"dfc.{i}"))
            b.store("i64", "0", ref(f"dfc.{i}"))
            b.alloca("i64", name=ref(f"dfn.{i}"))

    def free_all(self, b) -> None:
        for i in sorted(self.facts.defer_slots):
            b.call("void", "free", [("ptr", b.load("ptr", ref(f"dfb.{i}")))])
