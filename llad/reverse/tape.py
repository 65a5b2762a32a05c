"""The tape: where the forward sweep keeps values the reverse sweep needs (Enzyme's CacheUtility).

* A value defined outside every loop gets an alloca slot (SROA turns most into registers).
* A value defined in loop L goes into L's tape: a growable array of records, one record per iteration
  of L, indexed by L's global iteration counter (which counts every iteration of every execution of
  L).  The reverse sweep visits L's iterations in exactly reverse order, so counting the counter back
  down indexes the same records, for loops of any shape and nesting.
* L's record is a named struct type `%"llad.tape.L"`, one field per value in the order the reverse
  sweep asked for them; an address is `getelementptr %"llad.tape.L", ptr base, i64 iteration, i32
  field`, so nothing needs to know the record's layout before the type is printed at the end.

* A value defined in loop L and read by the reverse of a block outside L (a running sum read by the `log`
  after the loop) is kept at the level of the innermost loop containing both, once per iteration of that
  loop, not once per iteration of L: every iteration of L overwrites the same record (or slot), so the last
  one wins — the value the block saw — and LLVM keeps the running value in a register (a reduction loop
  stays vectorisable).  Reads from inside L keep their per-iteration entry; a value read at both levels
  has both.

The reverse sweep is generated first: by the time the forward sweep stores values, every field is known.
"""
from __future__ import annotations

from dataclasses import dataclass

from .. import runtime
from ..analysis.cfg import CFG, Loop
from ..errors import UnsupportedInstructionError
from ..ir.builder import Builder
from ..ir.model import Module, ref, size_of


@dataclass
class Entry:
    id: int
    name: str            # the forward SSA name stored (a primal value, or `s0.<p>` for a shadow)
    type: str
    block: str           # block defining it
    loop: Loop | None
    field: int = 0       # index in its loop's record


def record_type(loop: Loop) -> str:
    return ref(f"llad.tape.{loop.index}")


class Tape:
    def __init__(self, cfg: CFG, module: Module):
        self.cfg, self.module = cfg, module
        self.entries: dict[str, Entry] = {}          # by key: the name, or `name@level` (a loop's index or top)
        self.levels: dict[str, list[Entry]] = {}     # by name: its entries at every level it is read
        self.fields: dict[int, list[Entry]] = {lp.index: [] for lp in cfg.loops}
        self.pred_id_blocks: set[str] = set()
        self.metadata: tuple = ()            # alias scope of loop tapes (llad's own mallocs)
        self.guard = False                   # llad.config.guard_memory: check each record address (guard.py)
        self.keep = False                    # Plan.keep_tapes: buffers kept between calls (runtime.py)
        self._address_memo: dict = {}

    # --- registration -----------------------------------------------------------------------------------
    def is_cached(self, name: str) -> bool:
        return name in self.levels

    def needs_pred_id(self, block: str) -> None:
        self.pred_id_blocks.add(block)

    def _level(self, def_block: str, at_block: str) -> Loop | None:
        """The loop whose iterations each get one copy of a value defined in def_block and read by the
        reverse of at_block: the innermost loop around def_block that also contains at_block (def_block's
        own loop when at_block is not a primal block)."""
        loop = self.cfg.loop_of.get(def_block)
        if at_block not in self.cfg.loop_of:
            return loop
        while loop is not None and at_block not in loop.blocks:
            loop = loop.parent
        return loop

    def _entry(self, name: str, ty: str, block: str, at_block: str | None = None) -> Entry:
        loop = self.cfg.loop_of.get(block) if at_block is None else self._level(block, at_block)
        key = name if loop is self.cfg.loop_of.get(block) else f"{name}@{loop.index if loop else 'top'}"
        e = self.entries.get(key)
        if e is None:
            if size_of(ty) is None:
                raise UnsupportedInstructionError(f"a value of type {ty} ({name})", "<reverse sweep>",
                                                  "llad cannot keep values of this type for the reverse sweep")
            e = Entry(len(self.entries), name, ty, block, loop)
            if loop is not None:
                e.field = len(self.fields[loop.index])
                self.fields[loop.index].append(e)
            self.entries[key] = e
            self.levels.setdefault(name, []).append(e)
        return e

    def entry(self, name: str) -> Entry:
        """The entry of `name` at its own loop's level (the first registered when it has only others)."""
        return self.entries.get(name) or self.levels[name][0]

    def has_records(self, loop: Loop) -> bool:
        return bool(self.fields[loop.index])

    def record_size(self, loop: Loop) -> int:
        """Bytes of one record: fields at their natural alignment, the whole padded to the largest."""
        off, align = 0, 1
        for e in self.fields[loop.index]:
            size = size_of(e.type)
            off = (off + size - 1) // size * size + size
            align = max(align, size)
        return (off + align - 1) // align * align

    def declare_types(self) -> None:
        for lp in self.cfg.loops:
            if self.has_records(lp):
                self.module.types[f"llad.tape.{lp.index}"] = [e.type for e in self.fields[lp.index]]

    # --- access -------------------------------------------------------------------------------------------
    def current_index(self, b: Builder, loop: Loop, at_block: str, side: str = "rev") -> str:
        """The global index of loop's current iteration (its counter minus one), once per block."""
        key = ("idx", side, at_block, loop.index)
        if key not in self._address_memo:
            c = b.load("i64", ref(f"ctr.{loop.index}"))
            self._address_memo[key] = b.op("add", "i64", c, "-1")
        return self._address_memo[key]

    def _address(self, b: Builder, e: Entry, side: str, at_block: str) -> str:
        if e.loop is None:
            return ref(f"slot.{e.id}")
        key = (side, at_block, e.loop.index)
        base = self._address_memo.get(key)
        if base is None:
            # the reverse sweep reads a copy of the base that never escapes, so SROA makes it a register
            base = b.load("ptr", ref(f"{'tape' if side == 'fwd' else 'rtape'}.{e.loop.index}"))
            self._address_memo[key] = base
        idx = self.current_index(b, e.loop, at_block, side)
        address = b.gep(record_type(e.loop), base, [("i64", idx), ("i32", str(e.field))])
        if self.guard:
            from .. import guard
            address = guard.tape_address(b, address, idx, b.load("i64", ref(f"cap.{e.loop.index}")))
        return address

    def load(self, b: Builder, name: str, ty: str, def_block: str, at_block: str) -> str:
        e = self._entry(name, ty, def_block, at_block)
        # Not `!invariant.load`: the forward sweep of this very function wrote the record, and an invariant
        # load claims the same value wherever the memory is dereferenceable, from its (uninitialised)
        # allocation on: LLVM may then fold the load to undef (a kernel whose loop it unrolled became
        # `unreachable`).  The tape's own alias scope says what the reverse sweep's stores do not touch.
        in_loop = e.loop is not None
        return b.load(ty, self._address(b, e, "rev", at_block), metadata=self.metadata if in_loop else ())

    def store(self, b: Builder, name: str, at_block: str) -> None:
        for e in self.levels[name]:
            b.store(e.type, ref(name), self._address(b, e, "fwd", at_block), self.metadata if e.loop is not None else ())

    # --- the loops' counters and growth -------------------------------------------------------------------
    def begin_forward_iteration(self, b: Builder, loop: Loop, presized: bool) -> None:
        c1 = b.op("add", "i64", b.load("i64", ref(f"ctr.{loop.index}")), "1")
        b.store("i64", c1, ref(f"ctr.{loop.index}"))
        if not presized:
            self.reserve(b, loop, c1)

    def end_reverse_iteration(self, b: Builder, loop: Loop) -> None:
        c = b.load("i64", ref(f"ctr.{loop.index}"))
        b.store("i64", b.op("add", "i64", c, "-1"), ref(f"ctr.{loop.index}"))

    def reserve(self, b: Builder, loop: Loop, n: str) -> None:
        """Room for n records in loop's tape (a no-op for a loop that keeps nothing)."""
        if not self.has_records(loop):
            return
        runtime.reserve(b, ref(f"tape.{loop.index}"), ref(f"cap.{loop.index}"), n, self.record_size(loop))

    def begin_reverse(self, b: Builder) -> None:
        """The forward sweep is over: the tapes stop moving (their counters are the peaks, which the
        next call reserves up front instead of growing the tape again)."""
        for lp in self.cfg.loops:
            if self.has_records(lp):
                b.store("ptr", b.load("ptr", ref(f"tape.{lp.index}")), ref(f"rtape.{lp.index}"))
            peak = b.load("i64", ref(f"ctr.{lp.index}"))
            b.store("i64", peak, ref(f"peak.{lp.index}"))
            b.store("i64", peak, f'@"llad.hint.{lp.index}"', ordering="monotonic", align=8)

    def free_all(self, b: Builder) -> None:
        for lp in self.cfg.loops:
            if not self.has_records(lp):
                continue
            buf = b.load("ptr", ref(f"tape.{lp.index}"))
            if self.keep:
                cap = b.load("i64", ref(f"cap.{lp.index}"))
                runtime.call(b, "void", "llad.tape.give", [
                    ("ptr", f'@"llad.keep.{lp.index}"'), ("ptr", buf),
                    ("i64", b.op("mul", "i64", cap, str(self.record_size(lp)))), ("i64", cap)])
            else:
                b.call("void", "free", [("ptr", buf)])

    def report(self, b: Builder) -> list[tuple[str, str]]:
        """(used, reserved) bytes of all tapes: records written x record size, capacity x record size."""
        used, reserved = "0", "0"
        for lp in self.cfg.loops:
            size = str(self.record_size(lp))
            peak = b.load("i64", ref(f"peak.{lp.index}"))     # the counter is back to 0: use the peak
            cap = b.load("i64", ref(f"cap.{lp.index}"))
            used = b.op("add", "i64", used, b.op("mul", "i64", peak, size))
            reserved = b.op("add", "i64", reserved, b.op("mul", "i64", cap, size))
        slots = sum(size_of(e.type) for e in self.entries.values() if e.loop is None)
        return [("i64", b.op("add", "i64", used, str(slots))), ("i64", b.op("add", "i64", reserved, str(slots)))]

    # --- the prologue -------------------------------------------------------------------------------------
    def allocate(self, b: Builder, presize: bool = True) -> None:
        """Slots, counters and tape states, in the entry block; with `presize`, each tape reserved for the
        peak length it reached on the last call (not in split mode, whose entry block also runs when the
        reverse call restores the tapes)."""
        for e in self.entries.values():
            if e.loop is None:
                b.alloca(e.type, name=ref(f"slot.{e.id}"))
        for lp in self.cfg.loops:
            i = lp.index
            for what, ty, init in (("ctr", "i64", "0"), ("tape", "ptr", "null"), ("rtape", "ptr", None),
                                   ("peak", "i64", None), ("cap", "i64", "0")):
                b.alloca(ty, name=ref(f"{what}.{i}"))
                if init is not None:
                    b.store(ty, init, ref(f"{what}.{i}"))
            self.module.globals[f"llad.hint.{i}"] = f'@"llad.hint.{i}" = internal global i64 0'
            if self.keep and self.has_records(lp):
                self.module.globals[f"llad.keep.{i}"] = \
                    f'@"llad.keep.{i}" = internal global {runtime.KEEP_TYPE} zeroinitializer, align 8'
                b.store("ptr", runtime.call(b, "ptr", "llad.tape.take", [("ptr", f'@"llad.keep.{i}"'),
                                                                          ("ptr", ref(f"cap.{i}"))]),
                        ref(f"tape.{i}"))
        for lp in self.cfg.loops:
            if presize and self.has_records(lp):
                hint = b.load("i64", f'@"llad.hint.{lp.index}"', ordering="monotonic", align=8)
                self.reserve(b, lp, hint)
