"""What a call is: the one place that tells allocation, free, memory intrinsics, runtime bookkeeping,
math with a derivative rule and unknown calls apart (as Enzyme's LibraryFuncs.h does).

Every analysis and generator asks `classify(callee)` instead of testing name prefixes itself, and
`written_operands(call)` for the memory a call may write.  Names are the callee without `@`.
"""
from __future__ import annotations

import dataclasses
import enum
import re
from functools import lru_cache

from .model import Instruction, Operand


class CallKind(enum.Enum):
    ALLOC = "alloc"                # NRT_MemInfo_alloc*, _new_varsize*: fresh memory, size first; a meminfo
    WRAP = "wrap"                  # NRT_MemInfo_new: a meminfo around memory that already exists
    RAW_ALLOC = "raw_alloc"        # NRT_Allocate*, malloc: fresh memory without a meminfo (size first)
    REALLOC = "realloc"            # realloc(p, size): p's contents in fresh memory (a derivative's tapes)
    FREE = "free"                  # NRT_Free, free: the end of a raw allocation
    DATA_POINTER = "data_pointer"  # NRT_MemInfo_data_fast(mi): the data pointer of a meminfo
    REFCOUNT = "refcount"          # NRT_incref / NRT_decref (decref may free: no derivative, not ignorable)
    MEMSET = "memset"              # llvm.memset.*
    MEMCPY = "memcpy"              # llvm.memcpy.* / llvm.memmove.*
    MARKER = "marker"              # llvm.lifetime.*, llvm.assume, llvm.expect: no values, no memory
    INTEGER = "integer"            # integer intrinsics and runtime helpers: results carry no derivative
    MATH = "math"                  # a float function with a rule in llad.rules
    INDIRECT = "indirect"          # a call through a function pointer (ctypes, cffi)
    JITTED = "jitted"              # a Numba-compiled function that was not inlined (recursion)
    CUSTOM = "custom"              # a function with a user rule (custom.py): stays a call, its result goes
    #                                through the rule's pseudo-call, which the rules table differentiates
    CUSTOM_CALL = "custom_call"    # a custom rule's function with array arguments (custom_arrays.py): the rule
    #                                replaces the call in each sweep
    CUSTOM_RESULT = "custom_result"  # its float result's pseudo-call (custom_arrays.py)
    BLAS = "blas"                  # llad's form of Numba's BLAS/LAPACK helpers (blas.py): gemm, gesv, ...
    UNKNOWN = "unknown"            # anything else: differentiable only if no active value reaches it


INDIRECT_CALLEE = "<indirect call through a function pointer>"

_PREFIXES = (
    (("NRT_MemInfo_alloc_aligned", "NRT_MemInfo_alloc_safe_aligned", "NRT_MemInfo_alloc", "NRT_MemInfo_new_varsize"),
     CallKind.ALLOC),
    (("NRT_MemInfo_new",), CallKind.WRAP),
    (("NRT_Allocate",), CallKind.RAW_ALLOC),
    (("NRT_Free",), CallKind.FREE),
    (("NRT_MemInfo_data_fast",), CallKind.DATA_POINTER),
    (("NRT_incref", "NRT_decref"), CallKind.REFCOUNT),
    (("llvm.memset.",), CallKind.MEMSET),
    (("llvm.memcpy.", "llvm.memmove."), CallKind.MEMCPY),
    (("llvm.lifetime.", "llvm.assume", "llvm.expect"), CallKind.MARKER),
    (("llad.blas.",), CallKind.BLAS),
    (("llad.custom.call.",), CallKind.CUSTOM_CALL),
    (("llad.custom.result.",), CallKind.CUSTOM_RESULT),
    (("llvm.smax", "llvm.smin", "llvm.umax", "llvm.umin", "llvm.abs.", "llvm.sadd.with.overflow",
      "llvm.smul.with.overflow", "llvm.umul.with.overflow", "llvm.uadd.with.overflow", "llvm.ssub.with.overflow",
      "llvm.usub.with.overflow", "llvm.ctlz", "llvm.cttz", "llvm.ctpop", "numba_attempt_nocopy_reshape"),
     CallKind.INTEGER),
)
# C's allocator, by exact name: llad's own derivatives call it for their tapes
_EXACT = {"malloc": CallKind.RAW_ALLOC, "realloc": CallKind.REALLOC, "free": CallKind.FREE}

# calls whose pointer arguments are only read (or whose writes are integers into operand 5 alone)
_WRITES_NOTHING = {CallKind.DATA_POINTER, CallKind.REFCOUNT, CallKind.MARKER, CallKind.MATH, CallKind.RAW_ALLOC,
                   CallKind.CUSTOM_RESULT}
FRESH_MEMORY = (CallKind.ALLOC, CallKind.RAW_ALLOC, CallKind.REALLOC)   # memory nothing else points to
SIZED_FIRST = (CallKind.ALLOC, CallKind.RAW_ALLOC)      # fresh memory whose size is the first operand
# numba_attempt_nocopy_reshape(nd, dims, strides, newnd, newdims, newstrides, itemsize, is_f_order)
_RESHAPE_WRITES = 5

_LIBM_FLOAT32_SUFFIX = "f"


@lru_cache(maxsize=4096)
def classify(callee: str) -> CallKind:
    if callee in _EXACT:
        return _EXACT[callee]
    for prefixes, kind in _PREFIXES:
        if callee.startswith(prefixes):
            return kind
    if callee == INDIRECT_CALLEE:
        return CallKind.INDIRECT
    if rule_name(callee) is not None:
        return CallKind.MATH
    if callee.startswith("_ZN"):
        from ..custom import is_custom_callee
        return CallKind.CUSTOM if is_custom_callee(callee) else CallKind.JITTED
    return CallKind.UNKNOWN


# libm functions llad has its own vectorisable version of (runtime.py), and the rule each follows
VECTORISED = {"llvm.exp.f64": "llad.exp.f64", "llvm.exp.f32": "llad.exp.f32"}
_VECTORISED_RULES = {"llad.exp.f64": "exp", "llad.exp.f32": "exp"}


def rule_name(callee: str) -> str | None:
    """The rule of a math call: `llvm.sin.f64` -> `sin`, `tanhf` -> `tanh`, `numba_gammaf` -> `numba_gamma`,
    `llad.exp.f64` -> `exp`; None when llad.rules has none."""
    from ..rules import RULES
    if callee in _VECTORISED_RULES:
        return _VECTORISED_RULES[callee]
    if callee.startswith("llvm."):
        name = callee.split(".")[1]
        return name if name in RULES else None
    if callee in RULES:
        return callee
    if callee.endswith(_LIBM_FLOAT32_SUFFIX) and callee[:-1] in RULES and callee[:-1] in _FLOAT32_LIBM:
        return callee[:-1]
    return None


_FLOAT32_LIBM = set(
    "sin cos tan exp exp2 expm1 log log2 log10 log1p sqrt cbrt pow fabs floor ceil trunc round rint nearbyint "
    "copysign tanh sinh cosh asin acos atan asinh acosh atanh erf erfc lgamma tgamma atan2 hypot fma fmin fmax "
    "numba_gamma".split())


def written_operands(call: Instruction) -> list[Operand]:
    """The pointer operands whose memory a call may write (every pointer argument of an unknown call)."""
    kind = classify(call.callee)
    if kind in _WRITES_NOTHING:
        return []
    if kind in (CallKind.MEMSET, CallKind.MEMCPY):
        return call.operands[:1]
    if kind is CallKind.BLAS:
        from ..blas import blas_rule
        return [call.operands[i] for i in blas_rule(call.callee).written]
    if kind is CallKind.CUSTOM_CALL:        # its return and exception slots, and its float arrays
        from ..custom_arrays import written_arrays
        return [*call.operands[:2], *written_arrays(call)]
    if call.callee.startswith("numba_attempt_nocopy_reshape"):
        return call.operands[_RESHAPE_WRITES:_RESHAPE_WRITES + 1]
    return [o for o in call.operands if o.type == "ptr"]


def touched_operands(call: Instruction) -> list[Operand]:
    """The pointer operands whose memory a call may read or write (a memcpy's source too)."""
    kind = classify(call.callee)
    if kind in _WRITES_NOTHING:
        return []
    if kind is CallKind.MEMCPY:
        return call.operands[:2]
    if kind is CallKind.BLAS:
        from ..blas import blas_rule
        return [call.operands[i] for i in blas_rule(call.callee).pointers]
    return written_operands(call)


MEMINFO_DATA_OFFSET = 24      # NRT_MemInfo_data_fast(mi) is the pointer at byte 24 of the MemInfo


def meminfo_of_data_load(fn, ins: Instruction) -> Operand | None:
    """The meminfo `mi` when `ins` is `load ptr (getelementptr i8, mi, 24)`: NRT_MemInfo_data_fast(mi)
    written out, as reverse derivatives do (a derivative differentiated again contains it)."""
    if ins.opcode != "load" or ins.type != "ptr" or not ins.operands[0].is_local:
        return None
    addr = fn.defs.get(ins.operands[0].name)
    if addr is None or addr.opcode != "getelementptr" or addr.source_type != "i8" or len(addr.operands) != 2 \
            or addr.operands[1].text != str(MEMINFO_DATA_OFFSET) or not _may_be_meminfo(fn, addr.operands[0]):
        return None
    return addr.operands[0]


def _may_be_meminfo(fn, op, seen: set | None = None) -> bool:
    """Whether `op` can be a meminfo: a parameter, a pointer loaded from memory, an NRT allocation, or a
    phi/select of those.  A field address (a getelementptr into a tape record, whose pointer at byte 24
    is a stored shadow data pointer, not a meminfo's data), an alloca or a raw allocation is not."""
    if not op.is_local:
        return True                      # null, or llad's stand-in meminfo global
    ins = fn.defs.get(op.name)
    if ins is None:
        return True                      # a parameter
    if ins.opcode == "load":
        return True
    if ins.opcode == "call":
        return classify(ins.callee) in (CallKind.ALLOC, CallKind.WRAP)
    if ins.opcode in ("phi", "select"):
        seen = set() if seen is None else seen
        if op.name in seen:
            return True
        seen.add(op.name)
        ops = [v for v, _ in ins.incoming] if ins.opcode == "phi" else ins.operands[1:]
        return all(_may_be_meminfo(fn, v, seen) for v in ops)
    return False


def python_name(callee: str) -> str:
    """The name a user would recognise: `llvm.sin.f64` -> `sin`, `tanhf` -> `tanh`, a mangled
    `_ZN8__main__6helperB2v3...` -> `helper`."""
    if callee.startswith("llvm."):
        return callee.split(".")[1]
    if callee == INDIRECT_CALLEE:
        return "ExternalFunctionPointer"
    if callee.startswith("_ZN"):
        names, rest = [], callee[3:]
        while rest and rest[0].isdigit():
            digits = re.match(r"\d+", rest).group(0)
            n = int(digits)
            names.append(rest[len(digits):len(digits) + n])
            rest = rest[len(digits) + n:]
        return names[-1] if names else ""
    return callee[:-1] if callee.endswith("f") and len(callee) > 3 else callee


# NRT allocations taking an alignment (their second operand), and the one llad gives arrays it allocates
ALIGNED_ALLOCS = ("NRT_MemInfo_alloc_aligned", "NRT_MemInfo_alloc_safe_aligned")
CACHE_LINE = 64


def align_allocations(fn) -> None:
    """Arrays f allocates start on a cache line (Numba asks for 32 bytes), and so do their shadows, which
    copy the call: a 512-bit access, or the k tangents of an interleaved element, is then one cache line
    rather than two.  Only the allocator's alignment changes, not what any value means."""
    for block in fn.blocks:
        for ins in block.instructions:
            if ins.opcode == "call" and ins.callee.startswith(ALIGNED_ALLOCS) and len(ins.operands) > 1:
                align = ins.operands[1]
                if not align.is_local and align.text.isdigit() and int(align.text) < CACHE_LINE:
                    ins.operands[1] = dataclasses.replace(align, text=str(CACHE_LINE))
