"""Numba function -> pre-AD LLVM module, and how each Python argument maps to LLVM parameters.

Numba optimises every module the moment it is added to a code library, so llad swaps the CPU
codegen's library class at import for one that records each module's text before that happens
(`RecordingCodeLibrary`).  The recorded modules of a function and of every library it links (other
@njit functions, Numba's own overloads) are linked into one module and run through a pre-AD
pipeline: inlining and scalar simplification, no vectorisation.
"""
from __future__ import annotations

import os
import threading
import types as pytypes
import warnings
from dataclasses import dataclass, field

import llvmlite.binding as llvm
import numba
from numba.core import types
from numba.core.caching import NullCache
from numba.core.codegen import JITCodeLibrary
from numba.core.registry import cpu_target

from . import custom, custom_arrays, nrt
from .errors import DifferentiationError
from .ir.builder import new_function
from .ir.callees import python_name
from .ir.model import Module
from .ir.printer import print_module


class RecordingCodeLibrary(JITCodeLibrary):
    """A JITCodeLibrary that keeps the text of every module before Numba optimises it."""

    def add_ir_module(self, ir_module):
        self.__dict__.setdefault("_llad_unopt_texts", []).append(str(ir_module))
        super().add_ir_module(ir_module)


def install_recorder() -> None:
    codegen = cpu_target.target_context.codegen()
    if codegen._library_class is not RecordingCodeLibrary:
        codegen._library_class = RecordingCodeLibrary


install_recorder()

_SKIPPED_MODULES = ('; ModuleID = "wrapper"', '; ModuleID = "cfunc_wrapper"', '; ModuleID = "nrt_module"')


@dataclass
class ParamMap:
    """How one Python parameter is laid out in the LLVM signature."""

    index: int
    name: str
    numba_type: types.Type
    llvm_names: list[str]          # the LLVM parameter names, in order
    llvm_types: list[str]

    @property
    def is_array(self) -> bool:
        return isinstance(self.numba_type, types.Array)

    @property
    def data_param(self) -> str:
        """The data pointer of an array parameter (field 4 of 5 + 2*ndim)."""
        return self.llvm_names[4]


@dataclass
class PrimalModule:
    """The primal function as the AD pass reads it."""

    dispatcher: object
    signature: tuple
    return_type: types.Type
    entry_name: str
    module: llvm.ModuleRef
    text: str                       # str(module) after the pre-AD pipeline
    params: list[ParamMap]
    fndesc: object
    compile_seconds: float = 0.0
    python_file: str = ""
    python_line: int = 0
    warnings: list[str] = field(default_factory=list)
    calls: list[tuple[str, int]] = field(default_factory=list)   # (callee description, line) from typed IR

    def line_of_call(self, callee: str) -> int:
        """Best effort: the source line of the Python call that lowered to LLVM call `callee` (for one of
        Numba's BLAS/LAPACK helpers: of the NumPy function that calls it)."""
        keys = [python_name(callee), *(f"function {name} " for name in _HELPER_CALLERS.get(callee, ()))]
        for key in keys:
            for desc, line in self.calls:
                if key and key in desc:
                    return line
        return self.python_line


# Numba's BLAS/LAPACK helpers (numba/np/linalg.py) -> the NumPy functions that call them
_HELPER_CALLERS = {
    "numba_xxdot": ("dot", "vdot", "matmul", "convolve", "correlate"),
    "numba_xxgemv": ("dot", "matmul"), "numba_xxgemm": ("dot", "matmul"),
    "numba_xxnrm2": ("norm",), "numba_xgesv": ("solve",), "numba_xxpotrf": ("cholesky",),
    "numba_xxgetrf": ("det", "slogdet", "inv", "matrix_power"), "numba_ez_xxgetri": ("inv", "matrix_power"),
    "numba_ez_xxxevd": ("eigh", "eigvalsh"), "numba_ez_rgeev": ("eig", "eigvals"), "numba_ez_cgeev": ("eig", "eigvals"),
    "numba_ez_gesdd": ("svd", "pinv", "matrix_rank", "cond", "norm"), "numba_ez_geqrf": ("qr",),
    "numba_ez_xxgqr": ("qr",), "numba_ez_gelsd": ("lstsq",),
}


def _typed_calls(cres) -> list[tuple[str, int]]:
    from numba.core import ir
    out = []
    ta = cres.type_annotation
    for block in ta.blocks.values():
        for stmt in block.body:
            if isinstance(stmt, ir.Assign) and isinstance(stmt.value, ir.Expr) and stmt.value.op == "call":
                fty = ta.typemap.get(stmt.value.func.name)
                out.append((str(fty), stmt.loc.line))
    return out


_compile_lock = threading.RLock()


def as_dispatcher(f):
    if isinstance(f, numba.core.registry.CPUDispatcher):
        if f.targetoptions.get("forceobj"):
            raise DifferentiationError("an object-mode function (forceobj=True)", _py_location(f.py_func),
                                       "llad differentiates nopython code only; compile it with numba.njit")
        if not custom.has_rule(f) and _reaches_parallel(f, set()):
            # llad differentiates the serial copy: `prange` is `range` there (docs/parallel.md)
            return _uncached_copy(f, {}, serial=True)
        return custom.entry_for(f)
    if isinstance(f, numba.core.dispatcher.Dispatcher):
        raise DifferentiationError(
            f"dispatcher of type {type(f).__name__}", _py_location(getattr(f, "py_func", None)),
            "only numba.njit (CPU) functions can be differentiated")
    if callable(f) and hasattr(f, "__code__"):
        return numba.njit(f)
    raise TypeError(f"llad.autodiff: expected a numba.njit function or a Python function, got {type(f).__name__}")


def _py_location(fn) -> str:
    code = getattr(fn, "__code__", None)
    if code is None:
        return "<unknown>"
    return f"{code.co_filename}:{_def_line(fn)}"


def _def_line(fn) -> int:
    """The line of the `def` itself (co_firstlineno is the first decorator's)."""
    import inspect
    code = fn.__code__
    try:
        lines, start = inspect.getsourcelines(fn)
    except (OSError, TypeError):
        return code.co_firstlineno
    for offset, text in enumerate(lines):
        if text.lstrip().startswith(("def ", "async def ")) or "lambda" in text:
            return start + offset
    return code.co_firstlineno


def compile_primal(dispatcher, argtypes: tuple):
    """Compile (or find) the Numba overload for argtypes; returns the CompileResult."""
    with _compile_lock:
        try:
            cres = dispatcher.overloads.get(argtypes)
            if cres is None:
                dispatcher.compile(argtypes)
                cres = dispatcher.overloads[argtypes]
        except numba.core.errors.TypingError as exc:
            msg = str(exc).strip().splitlines()
            head = next((ln for ln in msg if ln.strip()), "typing failed")
            raise TypeError(
                f"llad.autodiff: Numba cannot compile {dispatcher.py_func.__name__}"
                f"{tuple(str(t) for t in argtypes)}: {head}\n{exc}") from None
    if cres.objectmode:
        raise DifferentiationError(
            "an object-mode function", _py_location(dispatcher.py_func),
            "llad differentiates nopython code only; make the function compile with numba.njit")
    return cres


def _collect_texts(library, seen: dict, missing: list) -> None:
    if id(library) in seen:
        return
    texts = library.__dict__.get("_llad_unopt_texts")
    if texts is None:
        missing.append(library)
    seen[id(library)] = (library, texts)
    for lib in library._linking_libraries:
        _collect_texts(lib, seen, missing)


def _unoptimised_modules(cres) -> tuple[list[str], list[str]]:
    seen: dict = {}
    missing: list = []
    _collect_texts(cres.library, seen, missing)
    out, notes = [], []
    for lib, texts in seen.values():
        if texts is None:
            if lib.name == "nrt":
                continue
            # compiled before llad was imported: only its optimised module exists
            notes.append(f"library {lib.name!r} was compiled before llad was imported; using its optimised IR")
            out.append(str(lib._get_module_for_linking()))
            continue
        for t in texts:
            if any(t.startswith(s) or s in t[:200] for s in _SKIPPED_MODULES):
                continue
            out.append(t)
    return out, notes


def _mergeable(into: llvm.ModuleRef, other: llvm.ModuleRef) -> llvm.ModuleRef:
    """`other`, its functions that `into` defines too made linkonce_odr in both, so that linking keeps one.
    Numba gives a helper the same name wherever its body is the same (`__excinfo_unwrap_args<hash>` of an
    exception raised with run-time arguments, emitted by both np.linalg.solve and a slice assignment)."""
    defined = {f.name for f in into.functions if not f.is_declaration}
    for fn in other.functions:
        if not fn.is_declaration and fn.name in defined:
            fn.linkage = llvm.Linkage.linkonce_odr
            into.get_function(fn.name).linkage = llvm.Linkage.linkonce_odr
    return other


def _powi_module(text: str) -> str:
    """Numba lowers `x ** n` (float x, integer n) to a square-and-multiply loop in a module of its own;
    llad replaces that module by one giving the function the meaning of llvm.powi (same result), which
    instcombine folds for small constant n and which has a rule, instead of differentiating through a
    loop.  Any other module comes back as it is."""
    module = llvm.parse_assembly(text)
    defined = [f for f in module.functions if not f.is_declaration]
    if len(defined) != 1 or "int_power" not in defined[0].name:
        return text
    fn = defined[0]
    types_ = [str(a.type) for a in fn.arguments]
    if types_[:2] != ["ptr", "ptr"] or len(types_) != 4 or types_[2] not in ("double", "float") or types_[3] != "i64":
        return text
    ty, suffix = types_[2], "f64" if types_[2] == "double" else "f32"
    out = Module(header=[ln for ln in text.splitlines() if ln.startswith(("target datalayout", "target triple"))])
    b = new_function(fn.name, "i32", [("ptr", "retptr"), ("ptr", "excinfo"), (ty, "a"), ("i64", "b")], out)
    small = b.icmp("ult", "i64", b.op("add", "i64", "%b", "65536"), "131073")     # |b| fits an i32
    b.cbr(small, "powi", "pow")
    b.new_block("powi")
    b.store(ty, b.call(ty, f"llvm.powi.{suffix}.i32", [(ty, "%a"), ("i32", b.cast("trunc", "i64", "%b", "i32"))]),
            "%retptr")
    b.ret("i32", "0")
    b.new_block("pow")
    b.store(ty, b.call(ty, f"llvm.pow.{suffix}", [(ty, "%a"), (ty, b.cast("sitofp", "i64", "%b", ty))]), "%retptr")
    b.ret("i32", "0")
    out.functions[0].attributes = ""
    return print_module(out)


def _target_machine():
    return cpu_target.target_context.codegen()._tm


# O1, not O2: O2's extra passes (GVN load PRE, jump threading, ...) reshape loops so that the O3 run on
# the derivative makes slower code (GMM: the primal part alone ran 1.17x Numba's own; at O1 0.94x).
# LLAD_PRE_AD_LEVEL=2 restores O2, for comparisons.
PRE_AD_SPEED_LEVEL = int(os.environ.get("LLAD_PRE_AD_LEVEL", "1"))


def _has_attribute(fn: llvm.ValueRef, name: str) -> bool:
    """Whether `fn` carries attribute `name` (the binding lists an attribute group as one string)."""
    return any(name in (a.decode() if isinstance(a, bytes) else str(a)).split() for a in fn.attributes)


def pre_ad_pipeline(module: llvm.ModuleRef, entry: str, kept: frozenset = frozenset()) -> None:
    """Inline every callee and simplify, without vectorising or unrolling.  A function Numba marks
    `noinline` (the `__excinfo_unwrap_args` helper of an exception with run-time arguments) stays a call:
    `alwaysinline` beside `noinline` is invalid IR; so do the functions in `kept` (custom rules, and the
    helpers that call array rules in a derivative differentiated again, which activity analysis refuses)."""
    for fn in module.functions:
        if not fn.is_declaration and fn.name != entry:
            if fn.name in kept:
                fn.add_function_attribute("noinline")
            elif not _has_attribute(fn, "noinline"):
                fn.add_function_attribute("alwaysinline")
            fn.linkage = llvm.Linkage.linkonce_odr
    tm = _target_machine()
    pto = llvm.create_pipeline_tuning_options(speed_level=PRE_AD_SPEED_LEVEL)
    pto.loop_vectorization = False
    pto.slp_vectorization = False
    pto.loop_unrolling = False
    pto.loop_interleaving = False
    pb = llvm.create_pass_builder(tm, pto)
    pb.getModulePassManager().run(module, pb)
    pb0 = llvm.create_pass_builder(tm, llvm.create_pipeline_tuning_options(speed_level=0))
    mpm = llvm.create_new_module_pass_manager()
    mpm.add_refprune_pass()
    mpm.add_simplify_cfg_pass()
    mpm.add_global_dead_code_eliminate_pass()
    mpm.add_loop_simplify_pass()
    mpm.add_instruction_namer_pass()
    mpm.run(module, pb0)
    module.verify()


def _param_maps(cres, fn_ref) -> list[ParamMap]:
    context = cres.target_context
    pyfunc_args = cres.fndesc.args
    llvm_args = list(fn_ref.arguments)
    names = [a.name for a in llvm_args][2:]       # skip retptr, excinfo
    tys = [str(a.type) for a in llvm_args][2:]
    maps, pos = [], 0
    for i, (argname, nbty) in enumerate(zip(pyfunc_args, cres.signature.args)):
        width = len(context.get_arg_packer([nbty]).argument_types)
        maps.append(ParamMap(i, argname, nbty, names[pos:pos + width], tys[pos:pos + width]))
        pos += width
    return maps


_fresh_copies: dict = {}       # dispatcher -> its uncached copy (compiled once per process)


def _uncached_copy(dispatcher, memo: dict, serial: bool = False):
    """A fresh dispatcher of the same Python function without Numba's disk cache, whose global @njit
    callees with a disk cache are such copies too: its compilation records every module's IR.  With
    `serial`, without `parallel=True` too (prange runs as range), and so is every global @njit callee that
    is or calls a parallel function."""
    if id(dispatcher) in memo:
        return memo[id(dispatcher)]
    copies = _serial_copies if serial else _fresh_copies
    if dispatcher in copies:
        return copies[dispatcher]
    py = dispatcher.py_func
    namespace = dict(py.__globals__)
    copy = pytypes.FunctionType(py.__code__, namespace, py.__name__, py.__defaults__, py.__closure__)
    copy.__kwdefaults__, copy.__qualname__, copy.__module__ = py.__kwdefaults__, py.__qualname__, py.__module__
    dropped = ("nopython", "cache", "parallel") if serial else ("nopython", "cache")
    options = {k: v for k, v in dispatcher.targetoptions.items() if k not in dropped}
    fresh = memo[id(dispatcher)] = copies[dispatcher] = numba.njit(**options)(copy)
    for name in py.__code__.co_names:
        value = namespace.get(name)
        if not isinstance(value, numba.core.registry.CPUDispatcher):
            continue
        if serial and not custom.has_rule(value) and _reaches_parallel(value, set()):
            namespace[name] = _uncached_copy(value, memo, serial=True)
        elif not isinstance(value._cache, NullCache):
            namespace[name] = _uncached_copy(value, memo)
    return fresh


_serial_copies: dict = {}      # dispatcher -> its copy without parallel=True


def _reaches_parallel(dispatcher, seen: set) -> bool:
    """Whether a dispatcher is `parallel=True` or calls (through global @njit functions) one that is."""
    if dispatcher.targetoptions.get("parallel"):
        return True
    if id(dispatcher) in seen:
        return False
    seen.add(id(dispatcher))
    py = dispatcher.py_func
    return any(isinstance(v, numba.core.registry.CPUDispatcher) and _reaches_parallel(v, seen)
               for v in (py.__globals__.get(name) for name in py.__code__.co_names))


def _defines(texts: list[str], entry: str) -> bool:
    return any(f"@{entry}(" in t and "define " in t for t in texts)


def build_primal(f, argtypes: tuple, fresh_copy: bool = False) -> PrimalModule:
    import time

    dispatcher = as_dispatcher(f)
    t0 = time.perf_counter()
    cres = compile_primal(dispatcher, argtypes)
    t1 = time.perf_counter()
    entry = cres.fndesc.llvm_func_name
    texts, notes = _unoptimised_modules(cres)
    if not fresh_copy and (notes or not _defines(texts, entry)):
        # Compiled before llad was imported, or loaded from Numba's disk cache (`cache=True`: object
        # code only, for it and its cached callees): compile a fresh copy to record the IR.
        return build_primal(_uncached_copy(dispatcher, {}), argtypes, fresh_copy=True)
    with _compile_lock:
        nrt.ensure_runtime()
        if nrt.powi_available:
            texts = [_powi_module(t) if "int_power" in t else t for t in texts]
        module = llvm.parse_assembly(texts[0])
        for t in texts[1:]:
            module.link_in(_mergeable(module, llvm.parse_assembly(t)))
        pre_ad_pipeline(module, entry, frozenset(custom.callees()) | custom_arrays.helper_symbols())
    fn_ref = module.get_function(entry)
    code = dispatcher.py_func.__code__
    def_line = _def_line(dispatcher.py_func)
    for w in notes:
        warnings.warn(w, stacklevel=3)
    return PrimalModule(
        dispatcher=dispatcher,
        signature=argtypes,
        return_type=cres.signature.return_type,
        entry_name=entry,
        module=module,
        text=str(module),
        params=_param_maps(cres, fn_ref),
        fndesc=cres.fndesc,
        compile_seconds=time.perf_counter() - t1 + (t1 - t0),
        python_file=code.co_filename,
        python_line=def_line,
        warnings=notes,
        calls=_typed_calls(cres),
    )
