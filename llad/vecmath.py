"""Vectorised transcendental functions in derivative code: llad's own (ownmath.py) or glibc's libmvec.

The loop vectoriser widens calls of LLVM's math intrinsics (`llvm.cos.f64` -> `llvm.cos.v4f64`), but
without a vector library the backend splits the vector call back into scalar libm calls: no speed-up.
llad keeps the widened calls and, after optimisation, points each at a vector function: llad's own where
it has one (float64 sin, cos, tan, log, atan, atan2, asin, acos, tanh within about an ulp, defined in the module
and inlined into the loop; float32 functions whose libmvec variant is more than 2 ulp off, through
float64), else glibc's vector variant (`_ZGVdN4v_tanh`, the x86-64 vector function ABI: ISA letter, `N` +
lanes, one `v` per vector argument), chosen from the CPU features LLVM reports (never from the CPU name:
a CPU can be reported that has the name of an AVX-512 part without the features).  Scalar calls (loops
that stay scalar, remainders) stay libm's: only the vectorised lanes change, within the error bounds
docs/vector-math-accuracy.md measures.

Before optimisation, libm calls of functions that have an LLVM intrinsic but that Numba calls by name
(`tanh`, `atan2`, `log2`, ...) are written as the intrinsic, so the vectoriser can widen them too; a scalar
intrinsic call is lowered back to the same libm call.

`llad.config.vector_math` turns this on (the default where libmvec exists); off, derivative code calls
libm exactly as Numba's primal does.
"""
from __future__ import annotations

import ctypes.util
import platform
import re
from functools import cache

import llvmlite.binding as llvm

from . import ownmath

# LLVM intrinsic name -> libmvec function (the double one; float appends "f"), and its vector arity
_FUNCTIONS = {"sin": 1, "cos": 1, "tan": 1, "exp": 1, "exp2": 1, "exp10": 1, "log": 1, "log2": 1, "log10": 1,
              "pow": 2, "asin": 1, "acos": 1, "atan": 1, "sinh": 1, "cosh": 1, "tanh": 1, "atan2": 2}

# libm functions Numba calls by name that LLVM also has as intrinsics (so the vectoriser can widen them)
_AS_INTRINSIC = ("tan", "asin", "acos", "atan", "sinh", "cosh", "tanh", "atan2", "log2")

_VECTOR_CALL = re.compile(r"@llvm\.(" + "|".join(sorted(_FUNCTIONS, key=len, reverse=True))
                          + r")\.v(\d+)f(32|64)\b")


@cache
def _isa_letters() -> dict[int, str]:
    """Vector width in bits -> the libmvec ISA letter this CPU can run; empty where libmvec is missing."""
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        return {}
    path = ctypes.util.find_library("mvec")
    if path is None:
        return {}
    try:
        llvm.load_library_permanently(path)
    except RuntimeError:
        return {}
    features = llvm.get_host_cpu_features()
    letters = {}
    if features.get("sse4.1"):             # glibc's `b` variants are built for SSE4
        letters[128] = "b"
    if features.get("avx2") and features.get("fma"):
        letters[256] = "d"
    elif features.get("avx"):
        letters[256] = "c"
    if features.get("avx512f"):
        letters[512] = "e"
    return letters


def available() -> bool:
    """Whether this process can call libmvec (glibc on x86-64, loaded)."""
    return bool(_isa_letters())


def intrinsic_for(callee: str) -> str | None:
    """The LLVM intrinsic a libm call may be written as so the vectoriser can widen it: `tanh` ->
    `llvm.tanh.f64`, `tanhf` -> `llvm.tanh.f32`; None for other callees."""
    if callee in _AS_INTRINSIC:
        return f"llvm.{callee}.f64"
    if callee.endswith("f") and callee[:-1] in _AS_INTRINSIC:
        return f"llvm.{callee[:-1]}.f32"
    return None


def replacement(callee: str) -> str | None:
    """What derivative code calls instead of `callee` with vector math on: with libmvec, the intrinsic a
    libm call can be written as (widened, then pointed at libmvec after optimisation); without it, llad's
    own branch-free `exp` (runtime.py), which the vectoriser inlines into SIMD code.  `exp` is always
    llad's own: libmvec's is 1.4x faster in a loop of exps but up to 2.4 ulp off, llad's within 1
    (docs/vector-math.md)."""
    from .ir.callees import VECTORISED
    if callee in VECTORISED:            # exp: llad's own is within 1 ulp, libmvec's exp within 2.4
        return VECTORISED[callee]
    return intrinsic_for(callee) if available() else None


def prepare(fn) -> None:
    """Before differentiation, with vector math on: the primal's calls go to what `replacement` says, and
    its floating-point additions may be reassociated (`reassoc`, as `fastmath` allows), so that a loop
    summing a vectorised function can vectorise too; the sums' last bits may then differ from f's."""
    for block in fn.blocks:
        for ins in block.instructions:
            if ins.opcode == "call":
                new = replacement(ins.callee)
                if new is not None:
                    ins.callee = new
            elif ins.opcode in ("fadd", "fsub") and "reassoc" not in ins.flags and "fast" not in ins.flags:
                ins.flags = (*ins.flags, "reassoc")


def _target(fn: str, lanes: int, bits: int) -> str | None:
    """The function a widened call of `fn` goes to: llad's own (ownmath.py: float64 sin, cos, tan, log, atan,
    atan2, asin, acos, tanh, and the float32 functions whose libmvec variant is more than 2 ulp off, computed in
    float64), else libmvec's variant; None: leave it to the backend."""
    if ownmath.available() and (fn in ownmath.OWN if bits == 64 else fn in ownmath.F32_THROUGH_F64):
        return ownmath.name(fn, lanes, bits)
    letter = _isa_letters().get(lanes * bits)
    if letter is None:                  # a width this CPU has no variant for
        return None
    name = fn if bits == 64 else fn + "f"
    return f"_ZGV{letter}N{lanes}{'v' * _FUNCTIONS[fn]}_{name}"


_DECLARE = re.compile(r"^declare [^@\n]*(@[\w.$\"]+)\(.*$", re.MULTILINE)
_DEFINE = re.compile(r"^define [^@\n]*@([\w.$]+)\(", re.MULTILINE)


def rewrite(text: str) -> str:
    """`text` (optimised IR) with every widened math intrinsic call pointed at llad's own vector function
    (defined at the end of the text, with what it calls) or at libmvec's variant.  The declarations are
    renamed with the calls (same signature; the intrinsics' attributes, no memory access and no side
    effect, hold for both, which never set errno); a declaration of what the module defines or declares
    already (a linked derivative was rewritten before) goes."""
    defined = set(_DEFINE.findall(text))
    wanted: dict[str, tuple[str, int, int]] = {}

    def symbol(m: re.Match) -> str:
        fn, lanes, bits = m.group(1), int(m.group(2)), int(m.group(3))
        target = _target(fn, lanes, bits)
        if target is None:
            return m.group(0)
        if target.startswith("llad."):
            wanted.setdefault(target, (fn, lanes, bits))
        return "@" + target

    text = _VECTOR_CALL.sub(symbol, text)
    chunk = max([bits // 64 for bits in _isa_letters()] + [2])   # float64 lanes libmvec has a variant for
    extra: set[str] = set()
    done: set[str] = set()
    while set(wanted) - done - defined:
        for target in sorted(set(wanted) - done - defined):
            fn, lanes, bits = wanted[target]
            body, decls = ownmath.definition(fn, lanes, bits, _FUNCTIONS[fn], chunk)
            text += "\n" + _VECTOR_CALL.sub(symbol, body) + "\n"
            extra |= {_VECTOR_CALL.sub(symbol, d) for d in decls}
            done.add(target)
    text += "".join(d + "\n" for d in sorted(extra))
    defined = set(_DEFINE.findall(text))
    seen: set[str] = set()

    def declaration(m: re.Match) -> str:
        name = m.group(1).strip('@"')
        if name in defined or name in seen:
            return ""
        seen.add(name)
        return m.group(0)

    return _DECLARE.sub(declaration, text)


def has_vector_calls(text: str) -> bool:
    return _VECTOR_CALL.search(text) is not None


def describe() -> str:
    """Which libmvec variants this process uses, for reports."""
    letters = _isa_letters()
    if not letters:
        return "libmvec not available (llad's own exp only)"
    isa = {"b": "SSE4", "c": "AVX", "d": "AVX2", "e": "AVX-512"}
    text = "libmvec " + ", ".join(f"{bits}-bit {isa[l]}" for bits, l in sorted(letters.items()))
    if ownmath.available():
        text += ("; llad's own " + "/".join(ownmath.OWN) + " (float64), float32 " + "/".join(ownmath.F32_THROUGH_F64)
                 + " through float64")
    return text
