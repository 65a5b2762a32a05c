"""The tape: where the forward sweep keeps values the reverse sweep needs.

* A value defined outside every loop gets an alloca slot (SROA turns most into registers).
* A value defined in loop L goes into L's tape: a growable array of records, one record per
  iteration of L, indexed by L's global iteration counter (which counts every iteration of every
  execution of L).  The reverse sweep visits L's iterations in exactly reverse order, so counting the
  counter back down indexes the same records, for loops of any shape and nesting.
* Records are laid out when all fields are known (the reverse sweep is generated first), so the
  text refers to offsets and record sizes through placeholders filled in by `finish`.
"""
from __future__ import annotations

from dataclasses import dataclass

from .analysis.cfg import CFG, Loop
from .ir.model import Function, ref

RECOMPUTABLE = {"add", "sub", "mul", "shl", "lshr", "ashr", "and", "or", "xor", "udiv", "sdiv", "urem", "srem",
                "icmp", "getelementptr", "zext", "sext", "trunc", "sitofp", "uitofp", "ptrtoint", "inttoptr",
                "freeze", "fcmp"}

_SIZES = {"double": 8, "i64": 8, "ptr": 8, "float": 4, "i32": 4, "i16": 2, "i8": 1, "i1": 1}

RESERVE_IR = """
define internal { ptr, i64 } @llad.tape.grow(ptr %base, i64 %cap, i64 %n, i64 %recsize) noinline {
entry:
  %c2 = shl i64 %cap, 1
  %c3 = call i64 @llvm.umax.i64(i64 %c2, i64 %n)
  %c4 = call i64 @llvm.umax.i64(i64 %c3, i64 64)
  %bytes = mul i64 %c4, %recsize
  %new = call ptr @realloc(ptr %base, i64 %bytes)
  %r0 = insertvalue { ptr, i64 } undef, ptr %new, 0
  %r1 = insertvalue { ptr, i64 } %r0, i64 %c4, 1
  ret { ptr, i64 } %r1
}
define internal { ptr, i64 } @llad.tape.reserve(ptr %base, i64 %cap, i64 %n, i64 %recsize) alwaysinline {
entry:
  %ok = icmp ule i64 %n, %cap
  br i1 %ok, label %done, label %grow, !prof !{!"branch_weights", i32 1000, i32 1}
grow:
  %g = call { ptr, i64 } @llad.tape.grow(ptr %base, i64 %cap, i64 %n, i64 %recsize)
  ret { ptr, i64 } %g
done:
  %r0 = insertvalue { ptr, i64 } undef, ptr %base, 0
  %r1 = insertvalue { ptr, i64 } %r0, i64 %cap, 1
  ret { ptr, i64 } %r1
}
"""
# The tape's base and capacity live in allocas that never escape (the reserve call takes and returns
# values), so SROA keeps them in registers through the forward sweep's loops.


@dataclass
class Entry:
    id: int
    name: str            # the forward SSA name stored (a primal value, or `s0.<p>` for a shadow)
    type: str
    block: str           # block defining it
    loop: Loop | None
    offset: int = 0


class Tape:
    def __init__(self, fn: Function, cfg: CFG):
        self.fn, self.cfg = fn, cfg
        self.entries: dict[str, Entry] = {}
        self.pred_id_blocks: set[str] = set()
        self._index_memo: dict = {}
        self.has_shadow_allocations = False
        self.presized: set[int] = set()       # loops whose tape is reserved before they start
        self.meta = ""                         # alias metadata of loop tapes (llad's own mallocs)

    # --- registration -------------------------------------------------------------------------------
    def is_cached(self, name: str) -> bool:
        return name in self.entries

    def needs_pred_id(self, block: str) -> None:
        self.pred_id_blocks.add(block)

    def _entry(self, name: str, ty: str, block: str) -> Entry:
        e = self.entries.get(name)
        if e is None:
            if ty not in _SIZES:
                from .errors import UnsupportedInstructionError
                raise UnsupportedInstructionError(f"a value of type {ty} ({name})", "<reverse sweep>",
                                                  "llad cannot keep values of this type for the reverse sweep")
            e = Entry(len(self.entries), name, ty, block, self.cfg.loop_of.get(block))
            self.entries[name] = e
        return e

    # --- access ---------------------------------------------------------------------------------------
    def current_index(self, b, loop: Loop, at_block: str, side: str = "rev") -> str:
        """The global index of loop's current iteration (its counter minus one), once per block."""
        key = ("idx", side, at_block, loop.index)
        if key not in self._index_memo:
            c = b.load("i64", ref(f"ctr.{loop.index}"))
            self._index_memo[key] = b.op("add", "i64", c, "-1")
        return self._index_memo[key]

    def _address(self, b, e: Entry, side: str, at_block: str) -> str:
        if e.loop is None:
            return ref(f"slot.{e.id}")
        key = (side, at_block, e.loop.index)
        memo = self._index_memo.get(key)
        if memo is None:
            idx = self.current_index(b, e.loop, at_block, side)
            # the reverse sweep reads a copy of the base that never escapes, so SROA makes it a register
            base = b.load("ptr", ref(f"{'tape' if side == 'fwd' else 'rtape'}.{e.loop.index}"))
            rec = b.op("mul", "i64", idx, f"@@REC.{e.loop.index}@@")
            memo = self._index_memo[key] = (base, rec)
        base, rec = memo
        off = b.op("add", "i64", rec, f"@@OFF.{e.id}@@")
        return b.gep("i8", base, [("i64", off)])

    def load(self, b, name: str, ty: str, def_block: str, at_block: str) -> str:
        e = self._entry(name, ty, def_block)
        # nothing writes the tape during the reverse sweep
        return b.load(ty, self._address(b, e, "rev", at_block), invariant=e.loop is not None,
                      meta=self.meta if e.loop is not None else "")

    def store(self, b, name: str, at_block: str) -> None:
        e = self.entries[name]
        b.store(e.type, ref(name), self._address(b, e, "fwd", at_block), self.meta if e.loop is not None else "")

    def begin_forward_iteration(self, b, loop: Loop) -> None:
        c = b.load("i64", ref(f"ctr.{loop.index}"))
        c1 = b.op("add", "i64", c, "1")
        b.store("i64", c1, ref(f"ctr.{loop.index}"))
        if loop.index not in self.presized:
            b.lines.append(f"@@RESERVE.{loop.index}.{c1}@@")

    def end_reverse_iteration(self, b, loop: Loop) -> None:
        c = b.load("i64", ref(f"ctr.{loop.index}"))
        b.store("i64", b.op("add", "i64", c, "-1"), ref(f"ctr.{loop.index}"))

    def report(self, b) -> list[tuple[str, str]]:
        """(used, reserved) bytes of all tapes: records written x record size, capacity x record size."""
        used, reserved = "0", "0"
        for lp in self.cfg.loops:
            n = b.load("i64", ref(f"ctr.{lp.index}"))     # back to 0 after the reverse sweep: use the peak
            peak = b.load("i64", ref(f"peak.{lp.index}"))
            cap = b.load("i64", ref(f"cap.{lp.index}"))
            del n
            used = b.op("add", "i64", used, b.op("mul", "i64", peak, f"@@REC.{lp.index}@@"))
            reserved = b.op("add", "i64", reserved, b.op("mul", "i64", cap, f"@@REC.{lp.index}@@"))
        slots = sum(_SIZES[e.type] for e in self.entries.values() if e.loop is None)
        return [("i64", b.op("add", "i64", used, str(slots))), ("i64", b.op("add", "i64", reserved, str(slots)))]

    def begin_reverse(self, b) -> None:
        """The forward sweep is over: the tapes stop moving (their counters are the peaks, which the
        next call reserves up front instead of growing the tape again)."""
        for lp in self.cfg.loops:
            b.lines.append(f"@@BEGINREV.{lp.index}@@")
            peak = b.load("i64", ref(f"ctr.{lp.index}"))
            b.store("i64", peak, ref(f"peak.{lp.index}"))
            b.emit(f"store atomic i64 {peak}, ptr @\"llad.hint.{lp.index}\" monotonic, align 8")

    def free_all(self, b, failed: bool = False) -> None:
        for lp in self.cfg.loops:
            b.lines.append(f"@@FREE.{lp.index}@@")
        b.lines.append("@@SHADOWS.RELEASE@@" if failed else "@@SHADOWS.FREE@@")

    # --- layout --------------------------------------------------------------------------------------
    def prologue(self) -> list[str]:
        out = ["@@SHADOWS.STATE@@"]
        for e in self.entries.values():
            if e.loop is None:
                out.append(f"  {ref(f'slot.{e.id}')} = alloca {e.type}")
        for lp in self.cfg.loops:
            out += [f"  {ref(f'ctr.{lp.index}')} = alloca i64", f"  store i64 0, ptr {ref(f'ctr.{lp.index}')}",
                    f"  {ref(f'tape.{lp.index}')} = alloca ptr", f"  store ptr null, ptr {ref(f'tape.{lp.index}')}",
                    f"  {ref(f'rtape.{lp.index}')} = alloca ptr", f"  {ref(f'peak.{lp.index}')} = alloca i64",
                    f"  {ref(f'cap.{lp.index}')} = alloca i64", f"  store i64 0, ptr {ref(f'cap.{lp.index}')}"]
        out += [f"@@PRERESERVE.{lp.index}@@" for lp in self.cfg.loops]
        return out

    def record_sizes(self) -> dict[int, int]:
        sizes: dict[int, int] = {}
        for lp in self.cfg.loops:
            fields = sorted((e for e in self.entries.values() if e.loop is lp), key=lambda e: -_SIZES[e.type])
            off = 0
            for e in fields:
                e.offset = off
                off += _SIZES[e.type]
            # fields are sorted by size, so a record that is a multiple of the largest keeps all aligned
            # (a loop that keeps only a predecessor id needs one byte per iteration, not eight)
            align = _SIZES[fields[0].type] if fields else 1
            sizes[lp.index] = (off + align - 1) // align * align
        return sizes

    def finish(self, text: str) -> str:
        """Fill in the placeholders once every field is known."""
        import re
        sizes = self.record_sizes()
        for e in self.entries.values():
            text = text.replace(f"@@OFF.{e.id}@@", str(e.offset))
        for i, size in sizes.items():
            text = text.replace(f"@@REC.{i}@@", str(size))
            free = (f"  %llad.free.{{n}} = load ptr, ptr {ref(f'tape.{i}')}\n"
                    f"  call void @free(ptr %llad.free.{{n}})") if size else ""
            text = _replace_numbered(text, f"@@FREE.{i}@@", free)
            begin = (f"  %llad.rtape.{{n}} = load ptr, ptr {ref(f'tape.{i}')}\n"
                     f"  store ptr %llad.rtape.{{n}}, ptr {ref(f'rtape.{i}')}") if size else ""
            text = _replace_numbered(text, f"@@BEGINREV.{i}@@", begin)
        text = re.sub(r"@@RESERVE\.(\d+)\.(%\S+)@@", lambda m: _reserve(m, sizes), text)
        for i, size in sizes.items():
            hint = ref(f"hint.{i}")
            pre = (f"  {hint} = load atomic i64, ptr @\"llad.hint.{i}\" monotonic, align 8\n"
                   + _reserve_text(i, hint, size)) if size else ""
            text = text.replace(f"@@PRERESERVE.{i}@@", pre)
        on = self.has_shadow_allocations
        text = text.replace("@@SHADOWS.RELEASE@@", "  call void @llad.shadows.release(ptr %llad.shadows)" if on else "")
        text = _replace_numbered(text, "@@SHADOWS.FREE@@", "  %llad.sfree.{n} = getelementptr i8, ptr %llad.shadows, "
                                 "i64 16\n  %llad.sbase.{n} = load ptr, ptr %llad.sfree.{n}\n  call void @free(ptr "
                                 "%llad.sbase.{n})" if on else "")
        text = text.replace("@@SHADOWS.STATE@@", "  %llad.shadows = alloca [3 x i64]\n  store [3 x i64] "
                            "zeroinitializer, ptr %llad.shadows" if on else "")
        return text

    def declarations(self) -> dict[str, str]:
        out = {"llvm.umax.i64": "declare i64 @llvm.umax.i64(i64, i64)"}
        for lp in self.cfg.loops:       # each tape's peak length on the last call: a size hint
            out[f"llad.hint.{lp.index}"] = f'@"llad.hint.{lp.index}" = internal global i64 0'
        return out


def _reserve(m, sizes) -> str:
    i, n = int(m.group(1)), m.group(2)
    return _reserve_text(i, n, sizes[i]) if sizes[i] else ""


def _reserve_text(i: int, n: str, size: int) -> str:
    sizes = {i: size}
    tag = f"{i}.{n.lstrip('%')}"
    base, cap, st = ref(f"rb.{tag}"), ref(f"rc.{tag}"), ref(f"rs.{tag}")
    return (f"  {base} = load ptr, ptr {ref(f'tape.{i}')}\n  {cap} = load i64, ptr {ref(f'cap.{i}')}\n"
            f"  {st} = call {{ ptr, i64 }} @llad.tape.reserve(ptr {base}, i64 {cap}, i64 {n}, i64 {sizes[i]})\n"
            f"  {ref(f'rb2.{tag}')} = extractvalue {{ ptr, i64 }} {st}, 0\n"
            f"  store ptr {ref(f'rb2.{tag}')}, ptr {ref(f'tape.{i}')}\n"
            f"  {ref(f'rc2.{tag}')} = extractvalue {{ ptr, i64 }} {st}, 1\n"
            f"  store i64 {ref(f'rc2.{tag}')}, ptr {ref(f'cap.{i}')}")


def _replace_numbered(text: str, token: str, template: str) -> str:
    parts = text.split(token)
    out = [parts[0]]
    for n, part in enumerate(parts[1:]):
        out.append(template.format(n=f"{token.strip('@').replace('.', '_')}_{n}"))
        out.append(part)
    return "".join(out)
