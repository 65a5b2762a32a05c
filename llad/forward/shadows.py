"""Shadow pointers: what both forward sweeps (forward mode's tangent sweep, reverse mode's augmented
sweep) do for memory, and the walk that copies the primal into the derivative.

Naming: the shadow of an active pointer `%p` is `%"s<j>.p"` (j: the shadow's lane, 0 with one shadow or
an interleaved one); the shadow array parameters of a `Duplicated` argument `x` are `%"s<j>.arg.x.<f>"`,
so the shadow of the data pointer `%arg.x.4` is found by the same rule as every other shadow.

Memory without a derivative (a Const array, an inactive allocation) that meets memory with one (a select
or phi of pointers) has the null shadow: loads through it read zero (`@llad.zero.N`), stores go to a sink
(`@llad.sink.N`), and a null meminfo reads as a stand-in whose data pointer is null (`@llad.nomi`).
"""
from __future__ import annotations

import dataclasses

from .. import guard
from ..analysis.activity import Activity
from ..errors import DifferentiationError, UnsupportedInstructionError
from ..ir.builder import Builder
from ..ir.callees import MEMINFO_DATA_OFFSET, CallKind, classify, meminfo_of_data_load
from ..ir.model import Block, Function, Instruction, Module, Operand, Param, is_float, ref, unref
from ..ir.printer import print_instruction

NULL_POINTERS = ("null", "undef", "poison")


def shadow_name(name: str, j: int = 0) -> str:
    return ref(f"s{j}.{name}")


def standin_words(width: int) -> int:
    """Stand-ins cover a `<width x double>` access of an interleaved shadow (at least 64 words)."""
    return max(64, width)


def declare_shadow_globals(module: Module, width: int = 1) -> None:
    """Stand-ins for a null shadow, named by their size (a derivative differentiated again carries the
    inner one's: the same definitions)."""
    n = standin_words(width)
    module.globals.setdefault(f"llad.zero.{n}", f"@llad.zero.{n} = internal constant [{n} x i64] zeroinitializer")
    module.globals.setdefault(f"llad.sink.{n}", f"@llad.sink.{n} = internal global [{n} x i64] zeroinitializer")
    module.globals.setdefault("llad.nomi", "@llad.nomi = internal global [8 x i64] zeroinitializer")


def shadow_of(op: Operand, act: Activity, j: int, ins: Instruction, location) -> str:
    """The shadow of a pointer operand: its shadow value, the null shadow for memory without a
    derivative that meets memory with one, or an error for a pointer of unknown origin."""
    if op.text in NULL_POINTERS:
        return op.text
    if op.is_local and op.name in act.pointers:
        return shadow_name(op.name, j)
    roots = act.roots.get(op.name, frozenset()) if op.is_local else frozenset([("global", op.text)])
    if roots and not any(kind == "other" for kind, _ in roots):
        return "null"
    raise UnsupportedInstructionError(
        f"`{print_instruction(ins)}`", location(ins),
        f"it mixes memory with a derivative and memory of unknown origin ({op.text}); annotate every array "
        "that flows here Duplicated")


def guarded(b: Builder, shadow: str, for_write: bool, width: int = 1) -> str:
    """`shadow`, or the stand-in global when it is null."""
    n = standin_words(width)
    return _unless_null(b, shadow, f"@llad.sink.{n}" if for_write else f"@llad.zero.{n}", shadow)


def bytes_unless_null(b: Builder, shadow: str, size_ty: str, n: str) -> str:
    """`n` bytes, or 0 when `shadow` is null (memory without a derivative met memory with one): a memset,
    memcpy or accumulation over a null shadow then touches nothing."""
    return b.select(b.icmp("eq", "ptr", shadow, "null"), size_ty, "0", n)


def copy_from_maybe_null(b: Builder, dst: str, src: str, size_ty: str, n: str) -> tuple[str, str]:
    """Before copying n bytes from a shadow that may be null into `dst`: zero `dst` where `src` is null (a
    source without a derivative copies zeros), and return the (source, bytes) to copy there: `dst` itself
    and 0 where `src` is null, `src` and n elsewhere."""
    none = b.icmp("eq", "ptr", src, "null")
    b.memset(dst, size_ty, b.select(none, size_ty, n, "0"))
    return b.select(none, "ptr", dst, src), b.select(none, size_ty, "0", n)


def null_preserving(b: Builder, base: str, derived: str, name: str | None = None) -> str:
    """`derived` (an offset from `base`), or null when `base` is: a null test downstream must still see it."""
    return _unless_null(b, base, "null", derived, name)


def meminfo_or_standin(b: Builder, meminfo: str) -> str:
    """A meminfo shadow that may be null, or a zeroed stand-in whose data pointer reads as null."""
    return _unless_null(b, meminfo, "@llad.nomi", meminfo)


def _unless_null(b: Builder, test: str, if_null: str, otherwise: str, name: str | None = None) -> str:
    return b.select(b.icmp("eq", "ptr", test, "null"), "ptr", if_null, otherwise, name)


def on_base(ins: Instruction, base: str, need=None, source_type: str | None = None,
            result: str | None = None) -> Instruction:
    """A copy of getelementptr `ins` on another base pointer (indices mapped through `need`, for the
    reverse sweep; another element type, for an interleaved shadow)."""
    indices = [Operand(o.type, need(o)) if need else o for o in ins.operands[1:]]
    return dataclasses.replace(ins, result=result, operands=[Operand("ptr", base)] + indices,
                               source_type=source_type or ins.source_type, metadata=(), block=None)


class ShadowSweep:
    """Copies the primal into the derivative block by block; subclasses add code per instruction
    (`visit_<opcode>`, and `call_<kind>` for calls, see ir/callees.py).  This class knows the pointer
    shadows both forward sweeps build: phis, selects and GEPs of pointers, data pointers of meminfos,
    and shadow allocations."""

    def __init__(self, fn: Function, act: Activity, k: int, location, b: Builder, scopes=None,
                 interleaved: frozenset = frozenset()):
        self.fn, self.act, self.k, self.location, self.b = fn, act, k, location, b
        self.scopes = scopes               # analysis.alias.AliasScopes, or None: no alias metadata
        self.interleaved = interleaved     # pointers/allocations with one interleaved shadow (analysis.layout)
        self.guard = False                 # llad.config.guard_memory: canaries after allocated shadows

    # --- the walk -------------------------------------------------------------------------------------
    def generate(self) -> None:
        for block in self.fn.blocks:
            self.b.new_block(block.name)
            self.visit_block(block)

    def visit_block(self, block: Block) -> None:
        raise NotImplementedError

    def copy(self, ins: Instruction) -> None:
        """Re-emit a primal instruction (with its alias scopes)."""
        md = self.alias_metadata(ins, shadow=False)
        self.b.append(dataclasses.replace(ins, metadata=md, block=None) if md else ins)

    def dispatch(self, ins: Instruction) -> None:
        name = "visit_" + ("gep" if ins.opcode == "getelementptr" else ins.opcode)
        getattr(self, name, self.visit_other)(ins)

    def visit_call(self, ins: Instruction) -> None:
        getattr(self, "call_" + classify(ins.callee).value)(ins)

    def visit_other(self, ins: Instruction) -> None:
        raise UnsupportedInstructionError(f"instruction `{print_instruction(ins)}`", self.location(ins),
                                          "llad has no derivative for this instruction")

    def call_marker(self, ins: Instruction) -> None:
        pass

    call_integer = call_custom = call_marker     # a custom rule's call: its result's pseudo-call is the rule
    call_custom_call = call_custom_result = call_marker   # the sweeps replace these (custom_arrays.py)

    def is_active(self, ins: Instruction) -> bool:
        return ins.result is not None and (ins.result in self.act.values or ins.result in self.act.pointers)

    # --- shadows ----------------------------------------------------------------------------------------
    def lanes_of(self, name: str | None) -> range:
        """The shadows a pointer (or allocation) has: one when interleaved, else k."""
        return range(1) if name in self.interleaved else range(self.k)

    def shadow(self, op: Operand, j: int, ins: Instruction) -> str:
        return shadow_of(op, self.act, j, ins, self.location)

    def memory_shadow(self, op: Operand, j: int, ins: Instruction, for_write: bool) -> str:
        """The shadow to load from / store to: a stand-in when it may be null (mixed memory)."""
        s = self.shadow(op, j, ins)
        return guarded(self.b, s, for_write, self.k) if op.is_local and op.name in self.act.maybe_null else s

    def alias_metadata(self, ins: Instruction, shadow: bool) -> tuple:
        """Scoped-noalias metadata for a load or store (of the primal, or of its shadow)."""
        if self.scopes is None or ins.opcode not in ("load", "store"):
            return ()
        return self.scopes.metadata(ins.operands[0 if ins.opcode == "load" else 1], shadow)

    def pointer_phi(self, ins: Instruction) -> None:
        for j in self.lanes_of(ins.result):
            self.b.phi("ptr", [(self.shadow(v, j, ins), bb) for v, bb in ins.incoming],
                       name=shadow_name(ins.result, j))

    def pointer_select(self, ins: Instruction) -> None:
        cond, a, c = ins.operands
        for j in self.lanes_of(ins.result):
            self.b.select(cond.text, "ptr", self.shadow(a, j, ins), self.shadow(c, j, ins),
                          name=shadow_name(ins.result, j))

    def visit_gep(self, ins: Instruction) -> None:
        base_op = ins.operands[0]
        for j in self.lanes_of(ins.result):
            base = self.shadow(base_op, j, ins)
            may_be_null = base_op.is_local and base_op.name in self.act.maybe_null
            name = self.b.namer.fresh() if may_be_null else shadow_name(ins.result, j)
            if ins.result in self.interleaved:
                self.interleaved_gep(ins, base, name)
            else:
                self.b.append(on_base(ins, base, result=unref(name)))
            if may_be_null:
                null_preserving(self.b, base, name, shadow_name(ins.result, j))

    def interleaved_gep(self, ins: Instruction, base: str, name: str) -> None:
        """`ins` on an interleaved shadow: every byte offset scaled by k."""
        b = self.b
        if len(ins.operands) == 2:         # one index: k elements of the source type per step
            b.append(on_base(ins, base, source_type=f"[{self.k} x {ins.source_type}]", result=unref(name)))
            return
        off = b.cast("ptrtoint", "ptr", b.gep(ins.source_type, "null", [(o.type, o.text) for o in ins.operands[1:]]),
                     "i64")
        b.gep("i8", base, [("i64", b.op("mul", "i64", off, str(self.k)))], name=name)

    def pointer_load(self, ins: Instruction) -> None:
        """`load ptr (getelementptr i8, mi, 24)`: a meminfo's data pointer read directly (reverse
        derivatives do, and a function calling one may be differentiated again); its shadow is the shadow
        meminfo's."""
        mi = meminfo_of_data_load(self.fn, ins)
        if mi is None:
            # a pointer the function stored into its own memory (analysis.activity.pointer_roots): its
            # shadow was stored at the same place in that memory's shadow
            addr = ins.operands[0]
            if not (addr.is_local and addr.name in self.act.pointers):
                raise UnsupportedInstructionError(f"`{print_instruction(ins)}`", self.location(ins),
                                                  "llad cannot follow a pointer loaded from memory here")
            for j in self.lanes_of(ins.result):
                self.b.load("ptr", self.memory_shadow(addr, j, ins, False), name=shadow_name(ins.result, j))
            return
        for j in self.lanes_of(ins.result):
            base = self.shadow(mi, j, ins)
            if mi.is_local and mi.name in self.act.maybe_null:
                base = meminfo_or_standin(self.b, base)
            self.b.load("ptr", self.b.gep("i8", base, [("i64", str(MEMINFO_DATA_OFFSET))]), invariant=True,
                        name=shadow_name(ins.result, j))

    def call_data_pointer(self, ins: Instruction) -> None:
        if ins.result not in self.act.pointers:
            return
        for j in self.lanes_of(ins.result):
            mi = self.shadow(ins.operands[0], j, ins)
            if ins.operands[0].is_local and ins.operands[0].name in self.act.maybe_null:
                mi = meminfo_or_standin(self.b, mi)
            self.b.call("ptr", "NRT_MemInfo_data_fast", [("ptr", mi)], name=shadow_name(ins.result, j))

    def call_alloc(self, ins: Instruction) -> None:
        """A zeroed shadow for an active allocation (interleaved: k times the bytes): a meminfo for a
        meminfo, raw memory for raw memory."""
        if ins.result not in self.act.pointers:
            return
        size, rest = ins.operands[0], ins.operands[1:]
        n = self.scaled_size(size) if ins.result in self.interleaved else size.text
        meminfo = classify(ins.callee) is CallKind.ALLOC
        extra = [(o.type, o.text) for o in rest]      # the alignment, a cache line (ir.callees.align_allocations)
        for j in self.lanes_of(ins.result):
            padded = guard.padded_size(self.b, size.type, n) if self.guard and meminfo else n
            shadow = self.b.call("ptr", ins.callee, [(size.type, padded)] + extra, name=shadow_name(ins.result, j))
            if meminfo:
                shadow = self.b.call("ptr", "NRT_MemInfo_data_fast", [("ptr", shadow)])
                if self.guard:
                    guard.fill_canary(self.b, shadow, size.type, n)
            self.b.memset(shadow, size.type, n)

    call_raw_alloc = call_alloc

    def call_realloc(self, ins: Instruction) -> None:
        """realloc(p, size): the shadow of p, reallocated alike (realloc copies what the shadow holds)."""
        if ins.result not in self.act.pointers:
            return
        old, size = ins.operands[:2]
        for j in self.lanes_of(ins.result):
            self.b.call("ptr", ins.callee, [("ptr", self.shadow(old, j, ins)), (size.type, size.text)],
                        name=shadow_name(ins.result, j))

    def call_wrap(self, ins: Instruction) -> None:
        if ins.result in self.act.pointers:
            raise DifferentiationError(
                f"`{print_instruction(ins)}`", self.location(ins),
                "llad cannot give a shadow to memory Numba wraps from elsewhere (NRT_MemInfo_new); copy the "
                "array first")

    def is_returned_field(self, ins: Instruction) -> bool:
        """A store of a non-float into the return slot when it has a shadow: a field of a returned array
        (activity analysis gives the slot a shadow only when the result's is asked for)."""
        val, ptr = ins.operands
        return (ptr.is_local and ptr.name in self.act.pointers and not is_float(val.type)
                and ("param", "retptr") in self.act.roots[ptr.name])

    def returned_array_field(self, ins: Instruction) -> None:
        """A field of a returned array's struct, stored into its shadow's: the shadow array (forward mode's
        tangent, split mode's array to seed) has the shadow meminfo and data pointer, the same shape and
        strides."""
        val, ptr = ins.operands
        if val.type != "ptr" and not val.type.startswith("i"):
            raise UnsupportedInstructionError(f"`{print_instruction(ins)}`", self.location(ins),
                                              "llad cannot give a tangent to a returned value of this type")
        for j in range(self.k):
            v = self.shadow(val, j, ins) if val.type == "ptr" else val.text
            self.b.store(val.type, v, self.memory_shadow(ptr, j, ins, True), self.alias_metadata(ins, shadow=True))

    def scaled_size(self, size: Operand) -> str:
        return self.b.op("mul", size.type, size.text, str(self.k))


def derivative_function(name: str, params: list[Param]) -> Function:
    return Function(name, "i32", params, [])
