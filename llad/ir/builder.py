"""Emit LLVM IR text: a tiny builder that appends instructions to a list and hands back value refs."""
from __future__ import annotations

import itertools
import math
import struct

from .model import ref


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
    """Appends instructions to `lines`; each method returns the result's reference."""

    def __init__(self, namer: Namer, lines: list[str] | None = None):
        self.namer = namer
        self.lines = lines if lines is not None else []
        self.fast = ""            # fast-math flags for derivative arithmetic, e.g. "contract "

    def emit(self, text: str) -> None:
        self.lines.append("  " + text)

    def op(self, opcode: str, ty: str, *args: str, hint: str = "") -> str:
        r = self.namer.fresh(hint)
        self.emit(f"{r} = {opcode} {ty} {', '.join(args)}")
        return r

    def fadd(self, ty, a, b):
        if is_const_zero(a):
            return b
        if is_const_zero(b):
            return a
        return self.op(f"fadd {self.fast}".rstrip(), ty, a, b)

    def fsub(self, ty, a, b):
        if is_const_zero(b):
            return a
        return self.op(f"fsub {self.fast}".rstrip(), ty, a, b)

    def fmul(self, ty, a, b):
        return self.op(f"fmul {self.fast}".rstrip(), ty, a, b)

    def fdiv(self, ty, a, b):
        return self.op(f"fdiv {self.fast}".rstrip(), ty, a, b)

    def fneg(self, ty, a):
        r = self.namer.fresh()
        self.emit(f"{r} = fneg {ty} {a}")
        return r

    def fcmp(self, pred, ty, a, b):
        r = self.namer.fresh()
        self.emit(f"{r} = fcmp {pred} {ty} {a}, {b}")
        return r

    def icmp(self, pred, ty, a, b):
        r = self.namer.fresh()
        self.emit(f"{r} = icmp {pred} {ty} {a}, {b}")
        return r

    def select(self, cond, ty, a, b, name: str | None = None):
        r = name or self.namer.fresh()
        self.emit(f"{r} = select i1 {cond}, {ty} {a}, {ty} {b}")
        return r

    def cast(self, opcode, src_ty, v, dst_ty):
        r = self.namer.fresh()
        self.emit(f"{r} = {opcode} {src_ty} {v} to {dst_ty}")
        return r

    def extract(self, agg_ty: str, v: str, index: int) -> str:
        r = self.namer.fresh()
        self.emit(f"{r} = extractvalue {agg_ty} {v}, {index}")
        return r

    def call(self, ret_ty: str, fn: str, args: list[tuple[str, str]]) -> str:
        argtext = ", ".join(f"{t} {v}" for t, v in args)
        if ret_ty == "void":
            self.emit(f"call void @{fn}({argtext})")
            return ""
        r = self.namer.fresh()
        self.emit(f"{r} = call {ret_ty} @\"{fn}\"({argtext})")
        return r

    def load(self, ty, ptr, invariant: bool = False, meta: str = ""):
        """`invariant`: the memory does not change while this code runs (lets LLVM hoist the load);
        `meta`: metadata attachments (`, !alias.scope !N, ...`)."""
        r = self.namer.fresh()
        self.emit(f"{r} = load {ty}, ptr {ptr}{', !invariant.load !{}' if invariant else ''}{meta}")
        return r

    def store(self, ty, v, ptr, meta: str = ""):
        self.emit(f"store {ty} {v}, ptr {ptr}{meta}")

    def gep(self, src_ty, ptr, indices: list[tuple[str, str]], inbounds: bool = False):
        r = self.namer.fresh()
        idx = ", ".join(f"{t} {v}" for t, v in indices)
        self.emit(f"{r} = getelementptr {'inbounds ' if inbounds else ''}{src_ty}, ptr {ptr}, {idx}")
        return r

    def accumulate(self, ty, ptr, v, meta: str = ""):
        """*ptr += v."""
        old = self.load(ty, ptr, meta=meta)
        self.store(ty, self.fadd(ty, old, v), ptr, meta)
