"""The lowering pipeline: named stages with one contract, as Numba's compiler_machinery.

    python -> numba (typed IR) -> llvm (pre-AD primal) -> deriv (AD pass) -> deriv-opt (O3) -> asm

Each stage is a function `stage(state: CompileState) -> None` that reads what earlier stages left in
`state` and adds its own results; `build_derivative` runs them in order and times each, and keeps every
depth's text so `llad.dump` shows exactly what runs.
"""
from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from numba.core import types
from numba.core.registry import cpu_target

from . import blas, custom, custom_arrays, forward, frontend, guard, jit, recursion, reverse, runtime, vecmath
from .analysis.activity import Activity, analyse_activity
from .analysis.alias import AliasScopes
from .analysis.cfg import CFG, analyse_cfg
from .analysis.deadprimal import drop_dead_primal_stores
from .analysis.layout import interleaved_shadows, written_params
from .analysis.zeroskip import mark_zero_tests
from .config import config, logger
from .errors import DifferentiationError
from .forward.shadows import declare_shadow_globals
from .ir.callees import align_allocations
from .ir.forwarding import forward_spilled_pointers
from .ir.model import Function, Instruction, Module
from .ir.names import avoid_generated_names
from .ir.parser import check_supported, parse_function
from .ir.printer import print_module
from .outputs import Outputs, array_result_in_reverse, no_need_disjointness, returns_float_array, shadow_disjointness
from .plan import Act, Plan

_UNSUPPORTED_RETURNS = (types.Generator, types.PyObject, types.Opaque)


@dataclass
class CompileState:
    """What the stages pass along: each stage fills in its fields."""

    f: object
    plan: Plan
    primal: frontend.PrimalModule | None = None      # frontend: the primal after the pre-AD pipeline
    fn: Function | None = None                       # parse: llad's model of it
    location: Callable | None = None                 # parse: instruction -> "file:line (in f)"
    outputs: Outputs | None = None                   # parse: the derivative's signature and results
    cfg: CFG | None = None                           # analyse
    act: Activity | None = None
    scopes: AliasScopes | None = None
    interleaved: frozenset = frozenset()
    fname: str = ""                                  # generate: the derivative's name
    module: Module | None = None                     # generate: the derivative, as a model
    alias_pairs: tuple = ()                          # generate: arrays that must not overlap
    annotations: dict = field(default_factory=dict)  # for `llad dump --annotate`
    text: str = ""                                   # print: the derivative module's text
    compiled: jit.Compiled | None = None             # jit
    seconds: dict = field(default_factory=dict)
    salt: str = ""                                   # makes the symbol unique across processes (diskcache.py)


@dataclass
class Derivative:
    """A compiled derivative and everything `llad.dump` shows of it."""

    plan: Plan
    primal: frontend.PrimalModule | None     # None when loaded from the disk cache (diskcache.py)
    function: Function | None
    text: str                  # the derivative module before optimisation
    entry: object              # callable(*flat) -> tuple
    library: object
    output_types: tuple        # numba types in the returned tuple
    has_primal_output: bool
    seconds: dict = field(default_factory=dict)
    annotations: dict = field(default_factory=dict)
    alias_pairs: tuple = ()    # ((arg, shadow or -1), (arg, shadow or -1)): arrays that must not overlap
    written: frozenset = frozenset()   # parameters whose shadows the derivative may write
    name: str = ""             # the derivative function's symbol
    frame_bytes: int = 0       # split mode: the size of a tape's frame
    function_name: str = ""    # the Python name of f
    loaded: bool = False       # loaded from the disk cache: no primal IR (llad.dump builds it again)


def _describe(state: CompileState) -> str:
    py = getattr(getattr(state.f, "py_func", None), "__name__", None) or getattr(state.f, "__name__", "f")
    return f"{py}{tuple(str(t) for t in state.plan.argtypes)}"


def location_of(primal: frontend.PrimalModule):
    where = f"{primal.python_file}:{primal.python_line}"
    name = primal.dispatcher.py_func.__name__

    def location(ins: Instruction | None = None) -> str:
        if ins is not None and ins.opcode == "call":
            return f"{primal.python_file}:{primal.line_of_call(ins.callee)} (in {name})"
        return f"{where} (in {name})"
    return location


# --- the stages ---------------------------------------------------------------------------------------
def stage_frontend(state: CompileState) -> None:
    """Numba compiles f; its unoptimised IR and every callee's, linked and run through the pre-AD pipeline."""
    state.primal = frontend.build_primal(state.f, state.plan.argtypes)
    state.seconds["numba"] = state.primal.compile_seconds


def stage_parse(state: CompileState) -> None:
    """The primal as llad's model; what cannot be differentiated at all is refused here."""
    primal, plan = state.primal, state.plan
    state.location = location_of(primal)
    state.fn = parse_function(primal.text, primal.entry_name)
    avoid_generated_names(state.fn)
    check_supported(state.fn, state.location)
    custom.route_results(state.fn, state.location, primal.text)
    recursion.route(state.fn, state.location, primal.text, primal.dispatcher)
    blas.route(state.fn, state.location)
    mark_zero_tests(state.fn, plan.reverse)
    align_allocations(state.fn)
    if plan.vector_math:
        vecmath.prepare(state.fn)
    ret = primal.return_type
    if isinstance(ret, _UNSUPPORTED_RETURNS) and ret is not types.none:
        raise DifferentiationError(f"a function returning {ret}", state.location(),
                                   "generators and Python objects cannot be differentiated; return the "
                                   "values, or write them into an output array")
    if plan.ret_activity is not Act.CONST and returns_float_array(ret):
        if plan.reverse and not plan.split:
            raise TypeError(array_result_in_reverse(primal.dispatcher.py_func.__name__, ret))
    elif plan.ret_activity is Act.DUP and plan.reverse:
        raise TypeError(f"llad.autodiff_thunk: return activity Duplicated is for a returned array, but "
                        f"{primal.dispatcher.py_func.__name__} returns {ret}; use Active or Const")
    elif plan.ret_activity is not Act.CONST and not isinstance(ret, types.Float):
        raise TypeError(f"llad.autodiff: return activity {plan.ret_activity.value!r} needs a float result, but "
                        f"{primal.dispatcher.py_func.__name__} returns {ret}; use Const")
    if plan.split and not isinstance(ret, types.Array) and \
            cpu_target.target_context.data_model_manager[ret].contains_nrt_meminfo():
        # both thunks return the primal result; only a lone array's references are counted for that
        raise DifferentiationError(f"a result of type {ret}", state.location(),
                                   "split mode returns a result holding arrays only when it is one array; "
                                   "return the array alone, or write it into an argument")
    state.outputs = Outputs(plan, primal, state.fn.params)


def stage_analyse(state: CompileState) -> None:
    """Control flow, pointer forwarding, activity, shadow layout and alias scopes."""
    plan, primal, fn = state.plan, state.primal, state.fn
    params = primal.params
    # Active scalars (reverse), and float scalars with tangents (forward: Duplicated(t, dt))
    active_params = {params[i].llvm_names[0] for i, a in enumerate(plan.activities)
                     if a is Act.ACTIVE or (a is Act.DUP and not params[i].is_array)}
    dup_ptrs = {params[i].data_param for i, a in enumerate(plan.activities) if a is Act.DUP and params[i].is_array}
    # every pointer of a Const array (its meminfo too: a returned Const array has no shadow meminfo)
    const_ptrs = {n for i, p in enumerate(params) if p.is_array and plan.activities[i] is Act.CONST
                  for n in p.llvm_names}
    if plan.ret_activity is not Act.CONST:
        dup_ptrs.add("retptr")
    discarded = frozenset() if plan.ret_activity is not Act.CONST else frozenset(["retptr"])
    state.cfg = analyse_cfg(fn, state.location, reducible=plan.reverse)
    forward_spilled_pointers(fn, state.cfg.dominates, state.cfg.idom)
    state.act = analyse_activity(fn, active_params, dup_ptrs, const_ptrs, state.location, discarded)
    if plan.width > 1 and not plan.reverse:
        wanted = {params[i].data_param for i, x in enumerate(plan.interleave) if x}
        if not isinstance(primal.return_type, types.Array):     # a returned array's k tangents are k arrays
            wanted.add("retptr")
        state.interleaved = interleaved_shadows(fn, state.act, wanted & dup_ptrs, dup_ptrs - wanted)
    state.scopes = AliasScopes(fn, state.act, plan.assume_noalias, dup_ptrs)
    state.annotations.update(activity=state.act, cfg=state.cfg)


def stage_generate(state: CompileState) -> None:
    """The AD pass proper: forward or reverse mode builds the derivative function in llad's model."""
    primal, plan = state.primal, state.plan
    digest = hashlib.sha1((repr((primal.entry_name, plan)) + state.salt).encode()).hexdigest()[:16]
    state.fname = f"llad.{plan.mode_tag}.{digest}"
    module = state.module = Module()
    module.header = [ln for ln in primal.text.splitlines() if ln.startswith(("target datalayout", "target triple"))]
    module.globals.update((global_name(g), g) for g in state.fn.globals_text)
    module.declarations.update(state.fn.declarations)
    module.carried.update(state.fn.defined)
    declare_shadow_globals(module, plan.width)
    with recursion.building(state.f, plan, state.fname):
        (reverse if plan.reverse else forward).generate(state)
    if plan.split:              # a recursive call of this very derivative allocates its frames with this size
        name = recursion.frame_global(state.fname)
        module.globals[name] = f'@"{name}" = internal constant i64 {state.annotations.get("frame_bytes", 0)}'

    if plan.no_need and plan.assume_noalias and not plan.reverse:
        no_need = {primal.params[i].data_param: tuple(primal.params[i].llvm_names)
                   for i, x in enumerate(plan.no_need) if x}
        fn = next(g for g in module.functions if g.name == state.fname)
        state.annotations["dead_primal_stores"] = drop_dead_primal_stores(fn, no_need)
    custom.define_values(module, state.fn)
    custom_arrays.define_primal(module, state.fn)
    runtime.define_called(module, state.fn)
    blas.define_called(module, state.fn)
    if plan.guard_memory:
        guard.declare(module, state.fname)
    module.metadata = state.scopes.nodes()


def global_name(line: str) -> str:
    """The name a global's definition line defines (quoted names may hold spaces: Numba's error strings)."""
    m = re.match(r'[@%](?:"([^"]*)"|([-a-zA-Z$._0-9]+))', line)
    return m.group(1) if m.group(1) is not None else m.group(2)


def stage_print(state: CompileState) -> None:
    state.text = print_module(state.module)


def stage_jit(state: CompileState) -> None:
    """LLVM's O3 and native code, through Numba's JIT; an @njit entry point calls it."""
    state.compiled = jit.jit_derivative(state.text, state.fname, state.outputs.numba_type,
                                        state.outputs.numba_argtypes(), state.module.libraries,
                                        state.plan.vector_math)


STAGES: tuple[tuple[str, Callable[[CompileState], None]], ...] = (
    ("frontend", stage_frontend), ("parse", stage_parse), ("analyse", stage_analyse),
    ("generate", stage_generate), ("print", stage_print), ("jit", stage_jit))


def build_derivative(f, plan: Plan, salt: str = "") -> Derivative:
    """Run every stage; `salt` goes into the derivative's symbol (the disk cache's key and a per-process
    nonce), so a derivative loaded from disk never shares a symbol with one compiled here."""
    state = CompileState(f, plan, salt=salt)
    t_start = time.perf_counter()
    verbose = config.verbose
    for name, stage in STAGES:
        t0 = time.perf_counter()
        stage(state)
        state.seconds[name] = time.perf_counter() - t0
        if verbose:
            logger.info("%s %s: %s %.1f ms", _describe(state), plan.mode_tag, name, 1e3 * state.seconds[name])
    state.seconds["total"] = time.perf_counter() - t_start
    if verbose:
        logger.info("%s %s: compiled in %.1f ms (%s)", _describe(state), plan.mode_tag,
                    1e3 * state.seconds["total"], state.fname)
    state.seconds["pre-ad"] = state.seconds["frontend"] - state.seconds["numba"]
    state.seconds["ad"] = state.seconds["parse"] + state.seconds["analyse"] + state.seconds["generate"] + \
        state.seconds["print"]
    d = Derivative(plan, state.primal, state.fn, state.text, state.compiled.entry, state.compiled.library,
                   tuple(state.outputs.types), state.outputs.has_primal, state.seconds, state.annotations)
    d.name = state.fname
    d.frame_bytes = state.annotations.get("frame_bytes", 0)
    d.function_name = state.primal.dispatcher.py_func.__name__
    d.alias_pairs = tuple(((i, -1), (j, -1)) for i, j in state.alias_pairs) + \
        shadow_disjointness(state.primal, plan) + no_need_disjointness(state.primal, plan)
    written = written_params(state.fn, state.act)
    d.written = frozenset(i for i, p in enumerate(state.primal.params) if p.is_array and p.data_param in written)
    return d
