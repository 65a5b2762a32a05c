"""Build IR in llad's model: a builder that appends instructions to a block and hands back values.

Values are textual references (`%t3`, `0.0`, `@g`) paired with types at each use, as in LLVM's text;
every method builds an `Instruction` from fields and returns its result's reference.
"""
from __future__ import annotations

import itertools
import math
import struct

from .model import Block, Function, Instruction, Module, Operand, Param, ref, unref, vector_of


def fconst(ty: str, value: float) -> str:
    """An exact textual constant of a float type (hex of the double bits, rounded to float first)."""
    if ty == "float":
        value = struct.unpack("f", struct.pack("f", value))[0]
    if value == 0.0 and math.copysign(1.0, value) > 0:
        return "0.0"
    return "0x" + struct.pack(">d", value).hex().upper()


def is_const_zero(v: str) -> bool:
    return v in ("0.0", "0.000000e+00", "zeroinitializer") or v == "0x0000000000000000"


class Namer:
    """Fresh local names, unique within one generated function."""

    def __init__(self, prefix: str = "t"):
        self._count = itertools.count()
        self.prefix = prefix

    def fresh(self, hint: str = "") -> str:
        return ref(f"{self.prefix}{next(self._count)}{'.' + hint if hint else ''}")


class Builder:
    """Appends instructions to the current block of a function under construction.

    `fast` holds the fast-math flags of derivative arithmetic; `module` collects the declarations of
    what the built code calls."""

    def __init__(self, namer: Namer, module: Module | None = None, function: Function | None = None):
        self.namer = namer
        self.module = module if module is not None else Module()
        self.function = function
        self.block: Block | None = None
        self.fast: tuple[str, ...] = ()

    # --- blocks -------------------------------------------------------------------------------------
    def new_block(self, name: str) -> Block:
        """Start a block (appended to the function) and build into it."""
        block = Block(name)
        if self.function is not None:
            self.function.blocks.append(block)
        self.block = block
        return block

    def append(self, ins: Instruction) -> Instruction:
        self.block.instructions.append(ins)
        return ins

    def _emit(self, opcode: str, ty: str, operands: list[Operand], name: str | None = None, **fields) -> str:
        r = name or self.namer.fresh()
        self.append(Instruction(opcode, unref(r), ty, operands, **fields))
        return r

    # --- arithmetic ---------------------------------------------------------------------------------
    def op(self, opcode: str, ty: str, a: str, b: str, flags: tuple[str, ...] = (), name: str | None = None) -> str:
        return self._emit(opcode, ty, [Operand(ty, a), Operand(ty, b)], name, flags=flags)

    def fadd(self, ty, a, b, name=None):
        if name is None and is_const_zero(a):
            return b
        if name is None and is_const_zero(b):
            return a
        return self.op("fadd", ty, a, b, self.fast, name)

    def fsub(self, ty, a, b):
        if is_const_zero(b):
            return a
        return self.op("fsub", ty, a, b, self.fast)

    def fmul(self, ty, a, b):
        return self.op("fmul", ty, a, b, self.fast)

    def fdiv(self, ty, a, b):
        return self.op("fdiv", ty, a, b, self.fast)

    def fneg(self, ty, a):
        return self._emit("fneg", ty, [Operand(ty, a)])

    def fcmp(self, pred, ty, a, b):
        return self._emit("fcmp", "i1", [Operand(ty, a), Operand(ty, b)], predicate=pred)

    def icmp(self, pred, ty, a, b):
        return self._emit("icmp", "i1", [Operand(ty, a), Operand(ty, b)], predicate=pred)

    def select(self, cond, ty, a, b, name: str | None = None):
        return self._emit("select", ty, [Operand("i1", cond), Operand(ty, a), Operand(ty, b)], name)

    def cast(self, opcode, src_ty, v, dst_ty, name: str | None = None):
        return self._emit(opcode, dst_ty, [Operand(src_ty, v)], name)

    # --- aggregates and vectors -----------------------------------------------------------------------
    def extract(self, agg_ty: str, v: str, index: int, name: str | None = None) -> str:
        return self._emit("extractvalue", "?", [Operand(agg_ty, v)], name, indices=(index,))

    def insertvalue(self, agg_ty: str, agg: str, elt_ty: str, v: str, index: int) -> str:
        return self._emit("insertvalue", agg_ty, [Operand(agg_ty, agg), Operand(elt_ty, v)], indices=(index,))

    def insertelement(self, vec_ty: str, vec: str, elt_ty: str, v: str, lane: int, name: str | None = None) -> str:
        return self._emit("insertelement", vec_ty, [Operand(vec_ty, vec), Operand(elt_ty, v),
                                                    Operand("i32", str(lane))], name)

    def extractelement(self, vec_ty: str, vec: str, lane: int) -> str:
        return self._emit("extractelement", "?", [Operand(vec_ty, vec), Operand("i32", str(lane))])

    def splat(self, ty: str, v: str, k: int) -> str:
        """<k x ty> with every lane v."""
        vt = vector_of(ty, k)
        one = self.insertelement(vt, "poison", ty, v, 0)
        return self._emit("shufflevector", vt, [Operand(vt, one), Operand(vt, "poison"),
                                                Operand(vector_of("i32", k), "zeroinitializer")])

    # --- memory -------------------------------------------------------------------------------------
    def alloca(self, ty: str, name: str | None = None) -> str:
        return self._emit("alloca", "ptr", [], name, source_type=ty)

    def load(self, ty, ptr, invariant: bool = False, metadata: tuple = (), align: int | None = None,
             ordering: str = "", name: str | None = None):
        """`invariant`: the memory does not change while this code runs (lets LLVM hoist the load);
        `metadata`: (kind, node) attachments, e.g. alias scopes."""
        md = ((("invariant.load", "!{}"),) if invariant else ()) + tuple(metadata)
        flags = ("atomic",) if ordering else ()
        return self._emit("load", ty, [Operand("ptr", ptr)], name, source_type=ty, metadata=md, align=align,
                          ordering=ordering, flags=flags)

    def store(self, ty, v, ptr, metadata: tuple = (), align: int | None = None, ordering: str = ""):
        flags = ("atomic",) if ordering else ()
        self.append(Instruction("store", None, ty, [Operand(ty, v), Operand("ptr", ptr)], metadata=tuple(metadata),
                                align=align, ordering=ordering, flags=flags))

    def gep(self, src_ty, ptr, indices: list[tuple[str, str]], inbounds: bool = False, name: str | None = None):
        ops = [Operand("ptr", ptr)] + [Operand(t, v) for t, v in indices]
        return self._emit("getelementptr", "ptr", ops, name, source_type=src_ty,
                          flags=("inbounds",) if inbounds else ())

    def accumulate(self, ty, ptr, v, metadata: tuple = ()):
        """*ptr += v."""
        old = self.load(ty, ptr, metadata=metadata)
        self.store(ty, self.fadd(ty, old, v), ptr, metadata)

    # --- calls and control flow -------------------------------------------------------------------------
    def call(self, ret_ty: str, fn: str, args: list[tuple[str, str]], name: str | None = None) -> str:
        """Call `fn` (declared in the module from the argument types unless already declared)."""
        self.module.declare(fn, ret_ty, [t for t, _ in args])
        ops = [Operand(t, v) for t, v in args]
        if ret_ty == "void":
            self.append(Instruction("call", None, "void", ops, callee=fn))
            return ""
        return self._emit("call", ret_ty, ops, name, callee=fn)

    def memset(self, ptr: str, size_ty: str, size: str) -> None:
        self.call("void", f"llvm.memset.p0.{size_ty}", [("ptr", ptr), ("i8", "0"), (size_ty, size), ("i1", "false")])

    def phi(self, ty: str, incoming: list[tuple[str, str]], name: str | None = None) -> str:
        ops = [(Operand(ty, v), bb) for v, bb in incoming]
        r = name or self.namer.fresh()
        self.append(Instruction("phi", unref(r), ty, [o for o, _ in ops], incoming=ops))
        return r

    def br(self, target: str) -> None:
        self.append(Instruction("br", None, "void", [], targets=[target]))

    def cbr(self, cond: str, if_true: str, if_false: str) -> None:
        self.append(Instruction("br", None, "void", [Operand("i1", cond)], targets=[if_true, if_false]))

    def switch(self, ty: str, value: str, default: str, cases: list[tuple[int, str]]) -> None:
        self.append(Instruction("switch", None, "void", [Operand(ty, value)],
                                targets=[default] + [t for _, t in cases], cases=[str(v) for v, _ in cases]))

    def ret(self, ty: str | None = None, v: str | None = None) -> None:
        self.append(Instruction("ret", None, "void", [Operand(ty, v)] if ty else []))


def new_function(name: str, ret: str, params: list[tuple[str, str]], module: Module, namer_prefix: str = "t",
                 attributes: str = "", linkage: str = "") -> Builder:
    """A builder positioned in the entry block of a new function added to `module`."""
    fn = Function(name, ret, [Param(n, t) for t, n in params], [], attributes=attributes, linkage=linkage)
    module.functions.append(fn)
    b = Builder(Namer(namer_prefix), module, fn)
    b.new_block("entry")
    return b
