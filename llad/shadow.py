"""What both generators share: naming of tangents/shadows, shadow pointers, runtime calls.

Naming: the tangent of active value `%v` in direction j is `%"d<j>.v"` (forward mode); the shadow of an
active pointer `%p` is `%"s<j>.p"` in both modes; the shadow array parameters of a `Duplicated`
argument `x` are `%"s<j>.arg.x.<field>"`, so the shadow of the data pointer `%arg.x.4` is found by
the same rule as every other shadow.
"""
from __future__ import annotations

from .errors import UnsupportedInstructionError
from .ir.model import Instruction, Operand, ref

NULL_POINTERS = ("null", "undef", "poison")


def shadow_name(name: str, j: int = 0) -> str:
    return ref(f"s{j}.{name}")


def shadow_of(op: Operand, act, j: int, ins: Instruction, location) -> str:
    """The shadow of a pointer operand.  Memory without a derivative (a Const array, an inactive
    allocation) that meets memory with one (a select or phi of pointers) has the null shadow: loads
    through it read zero and stores go nowhere (see `guarded`).  A pointer of unknown origin is an error."""
    if op.text in NULL_POINTERS:
        return op.text
    if op.is_local and op.name in act.pointers:
        return shadow_name(op.name, j)
    roots = act.roots.get(op.name, frozenset()) if op.is_local else frozenset([("global", op.text)])
    if roots and not any(kind == "other" for kind, _ in roots):
        return "null"
    raise UnsupportedInstructionError(
        f"`{ins.text}`", location(ins),
        f"it mixes memory with a derivative and memory of unknown origin ({op.text}); annotate every array "
        "that flows here Duplicated")


def shadow_globals(width: int = 1) -> list[str]:
    """Stand-ins for a null shadow: reads come from ZERO (never written), writes go to SINK (never
    read); big enough for a `<width x double>` access of an interleaved shadow."""
    n = max(4, width)
    return [f'@llad.zero = internal constant [{n} x i64] zeroinitializer',
            f'@llad.sink = internal global [{n} x i64] zeroinitializer',
            '@llad.nomi = internal global [8 x i64] zeroinitializer']


def guarded(b, shadow: str, for_write: bool) -> str:
    """`shadow`, or the stand-in global when it is null."""
    return _unless_null(b, shadow, "@llad.sink" if for_write else "@llad.zero", shadow)


def null_preserving(b, base: str, derived: str, name: str | None = None) -> str:
    """`derived` (an offset from `base`), or null when `base` is: a null test downstream must still see it."""
    return _unless_null(b, base, "null", derived, name)


def meminfo_or_standin(b, meminfo: str) -> str:
    """A meminfo shadow that may be null, or a zeroed stand-in whose data pointer reads as null."""
    return _unless_null(b, meminfo, "@llad.nomi", meminfo)


def _unless_null(b, test: str, if_null: str, otherwise: str, name: str | None = None) -> str:
    return b.select(b.icmp("eq", "ptr", test, "null"), "ptr", if_null, otherwise, name)


def gep_text(ins: Instruction, base: str, rename=lambda op: op.text, source_type: str | None = None) -> str:
    """The text of `ins` (a getelementptr) on another base pointer, indices renamed by `rename`
    (and, for an interleaved shadow, on another element type)."""
    flags = " inbounds" if " inbounds " in ins.text else ""
    idx = ", ".join(f"{o.type} {rename(o)}" for o in ins.operands[1:])
    return f"getelementptr{flags} {source_type or ins.source_type}, ptr {base}, {idx}"


def memset_call(ptr: str, size_ty: str, size: str) -> str:
    return f"call void @llvm.memset.p0.{size_ty}(ptr {ptr}, i8 0, {size_ty} {size}, i1 false)"


RUNTIME_DECLARATIONS = {
    "llvm.memset.p0.i64": "declare void @llvm.memset.p0.i64(ptr, i8, i64, i1)",
    "llvm.memcpy.p0.p0.i64": "declare void @llvm.memcpy.p0.p0.i64(ptr, ptr, i64, i1)",
    "NRT_MemInfo_data_fast": "declare ptr @NRT_MemInfo_data_fast(ptr)",
    "NRT_decref": "declare void @NRT_decref(ptr)",
    "NRT_incref": "declare void @NRT_incref(ptr)",
    "malloc": "declare ptr @malloc(i64)",
    "realloc": "declare ptr @realloc(ptr, i64)",
    "free": "declare void @free(ptr)",
}
