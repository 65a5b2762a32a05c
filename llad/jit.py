"""Optimise, JIT-compile and call a derivative module.

The derivative is added to a Numba JITCodeLibrary (the same engine, target machine and NRT as Numba;
facts file 2.4 route B), and called through an `@intrinsic` inside a generated `@njit` entry point:
about 1 µs of dispatch, the same as calling any @njit function.
"""
from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass

import llvmlite.binding as llvm
from numba import njit
from numba.core import cgutils, types
from numba.core.compiler_lock import global_compiler_lock
from numba.core.registry import cpu_target
from numba.core.runtime import nrtdynmod  # noqa: F401  (makes sure NRT is importable)
from numba.core.runtime.nrt import rtsys
from numba.extending import intrinsic

from . import nrt, vecmath

# Intel CPUs whose clock drops while 512-bit instructions run (first-generation AVX-512 server parts):
# LLVM's default 256-bit vectors stay best there
_AVX512_THROTTLES = frozenset({"skylake-avx512", "cascadelake", "cooperlake", "knl", "knm"})


def vector_width() -> int | None:
    """The widest vectors (bits) the loop vectoriser may use in llad's derivative code, or None for LLVM's
    own choice.  LLVM prefers 256-bit vectors on every AVX-512 CPU because the first ones slow their
    clock for 512-bit work; derivative loops are mostly loads, stores, adjoint updates and vectorised
    math, whose instruction count halves with 512-bit vectors, so on AVX-512 CPUs that do not throttle
    llad lets them be 512 bits wide (`python -m tools.bench.width` measures both: docs/bench/width.md).
    LLAD_VECTOR_WIDTH=256 (or 128, 512, or `auto`, the default) overrides the choice; read once, at import."""
    return _VECTOR_WIDTH


def _choose_vector_width() -> int | None:
    env = os.environ.get("LLAD_VECTOR_WIDTH", "auto").strip().lower()
    if env not in ("", "auto"):
        if env not in ("128", "256", "512"):
            raise ValueError(f"LLAD_VECTOR_WIDTH must be auto, 128, 256 or 512, got {env!r}")
        return int(env)
    codegen = cpu_target.target_context.codegen()
    features = codegen._get_host_cpu_features().split(",")
    if "+avx512f" in features and codegen._get_host_cpu_name() not in _AVX512_THROTTLES:
        return 512
    return None


_VECTOR_WIDTH = _choose_vector_width()
_DEFINE = re.compile(r"^(define [^\n]*\)(?: [a-z_]+| #\d+)*) \{$", re.M)


def _prefer_width(text: str) -> str:
    """`text` with every function llad printed asking for vectors of `vector_width()` bits."""
    width = vector_width()
    if width is None:
        return text
    return _DEFINE.sub(lambda m: f'{m.group(1)} "prefer-vector-width"="{width}" {{', text)


@dataclass
class Compiled:
    entry: object                 # the @njit entry point: entry(*flat_args) -> tuple
    library: object
    seconds: float


def compile_module(text: str, name: str, libraries=(), vector_math: bool = False):
    """Parse, verify and finalise `text` in a new JITCodeLibrary (Numba runs its O3 on it); with
    `vector_math`, widened math calls go to libmvec after the O3 (vecmath.py)."""
    nrt.ensure_runtime()
    codegen = cpu_target.target_context.codegen()
    with global_compiler_lock:
        mod = llvm.parse_assembly(_prefer_width(text))
        mod.verify()
        lib = codegen.create_library(name)
        lib.enable_object_caching()          # keep the object code: the disk cache stores it (diskcache.py)
        # the frontend reads this text when a function calling the derivative is differentiated (nesting)
        lib.__dict__["_llad_unopt_texts"] = [text]
        lib.add_llvm_module(mod)
        if vector_math and vecmath.available():
            _rewrite_after_optimising(lib)
        lib.add_linking_library(rtsys.library)
        for other in libraries:              # what the module calls without defining (custom rules' helpers)
            lib.add_linking_library(other)
        lib.finalize()
    return lib


def _rewrite_after_optimising(lib) -> None:
    """Run vecmath.rewrite on the library's final module once Numba's O3 has vectorised it (before the
    machine code is made: the object code, the disk cache and `llad dump` see the libmvec calls)."""
    optimise = lib._optimize_final_module

    def optimise_then_rewrite():
        optimise()
        text = str(lib._final_module)
        if vecmath.has_vector_calls(text):
            text = vecmath.rewrite(text)
            mod = llvm.parse_assembly(text)
            mod.verify()
            if "alwaysinline" in text:       # llad's own vector functions: into the loops that call them
                pb = llvm.create_pass_builder(lib._codegen._tm, llvm.create_pipeline_tuning_options(3))
                mpm = llvm.create_new_module_pass_manager()
                mpm.add_always_inliner_pass()
                mpm.add_global_dead_code_eliminate_pass()
                mpm.run(mod, pb)
            lib._final_module = mod

    lib._optimize_final_module = optimise_then_rewrite


def make_caller(fn_name: str, library, return_type: types.Type, argtypes: tuple, link: bool):
    """An intrinsic `call(a0, ..., an)` calling `fn_name` (Numba ABI) with the exploded arguments of
    argtypes.  With `link`, the library is linked into the caller's module (so LLVM can inline the call);
    without, the symbol resolves in the JIT engine where the library already is."""
    params = ", ".join(f"a{i}" for i in range(len(argtypes)))

    def codegen(context, builder, signature, args):
        fnty = context.call_conv.get_function_type(signature.return_type, signature.args)
        fn = cgutils.get_or_insert_function(builder.module, fnty, fn_name)
        if link:
            context.add_linking_libs([library])
        status, res = context.call_conv.call_function(builder, fn, signature.return_type, signature.args, args)
        with builder.if_then(status.is_error, likely=False):
            context.call_conv.return_status_propagate(builder, status)
        return res

    def typer(typingctx, *args):
        return return_type(*argtypes), codegen

    namespace = {"intrinsic": intrinsic, "typer": typer}
    src = (f"def call(typingctx, {params}):\n    return typer(typingctx, {params})\n"
           f"call = intrinsic(call)\n")
    exec(compile(src, f"<llad call {fn_name}>", "exec"), namespace)
    return namespace["call"]


def _entry_function(fn_name: str, library, return_type: types.Type, argtypes: tuple):
    """The Python function behind the entry point.  It lives in this module (so Numba can reduce its
    compile result for the disk cache) and is named after the derivative's symbol, so its own symbols are
    unique whichever process compiled it."""
    params = ", ".join(f"a{i}" for i in range(len(argtypes)))
    qualname = "entry_" + re.sub(r"\W", "_", fn_name)
    namespace = {"__name__": __name__, "call": make_caller(fn_name, library, return_type, argtypes, link=False)}
    exec(compile(f"def {qualname}({params}):\n    return call({params})\n", f"<llad entry {fn_name}>", "exec"),
         namespace)
    return namespace[qualname]


def make_entry(fn_name: str, library, return_type: types.Type, argtypes: tuple):
    """An @njit function calling `fn_name` with the exploded arguments of argtypes: what Python calls."""
    entry = njit(_entry_function(fn_name, library, return_type, argtypes))
    entry.compile(tuple(argtypes))
    entry.disable_compile()
    return entry


def entry_from_cache(fn_name: str, library, return_type: types.Type, argtypes: tuple, compiled):
    """The entry point of `make_entry` with its compile result loaded from the disk cache (no compilation:
    `compiled` is a Numba CompileResult rebuilt from object code)."""
    entry = njit(_entry_function(fn_name, library, return_type, argtypes))
    entry.add_overload(compiled)
    entry.disable_compile()
    return entry


def jit_derivative(text: str, fn_name: str, return_type: types.Type, argtypes: tuple, libraries=(),
                   vector_math: bool = False) -> Compiled:
    t0 = time.perf_counter()
    lib = compile_module(text, fn_name, libraries, vector_math)
    entry = make_entry(fn_name, lib, return_type, argtypes)
    return Compiled(entry, lib, time.perf_counter() - t0)
