"""The lowering pipeline, one named stage at a time:

    python -> numba (typed IR) -> llvm (pre-AD primal) -> deriv (AD pass) -> deriv-opt (O3) -> asm

`build_derivative` runs every stage for one (function, mode, activities, argument types) and keeps
each stage's text, so `llad.dump` shows exactly what runs.
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field

from numba.core import types
from numba.core.registry import cpu_target

from . import frontend, jit, runtime_ir
from .analysis.activity import analyse_activity
from .analysis.alias import AliasScopes
from .analysis.cfg import analyse_cfg
from .analysis.layout import interleaved_shadows, written_params
from .errors import DifferentiationError
from .forward import forward_function_body
from .ir.forwarding import forward_spilled_pointers
from .ir.model import Function, Instruction
from .ir.parser import check_supported, parse_function
from .shadow import RUNTIME_DECLARATIONS, shadow_globals

_UNSUPPORTED_RETURNS = (types.Generator, types.PyObject, types.Opaque)

# activity tags used in a Plan
CONST, ACTIVE, DUP = "const", "active", "dup"


@dataclass(frozen=True)
class Plan:
    """Everything that decides the derivative's code: the cache key."""

    reverse: bool
    with_primal: bool
    ret_activity: str          # CONST / ACTIVE / DUP
    activities: tuple          # per parameter: CONST / ACTIVE / DUP
    argtypes: tuple            # numba types of the primal arguments
    shadowtypes: tuple         # per parameter: tuple of numba types of its shadows
    width: int = 1             # k of BatchDuplicated
    assume_noalias: bool = True   # reverse: repeat loads from unwritten arrays (checked per call)
    report_tape: bool = False     # reverse: also return the tape's used and reserved bytes
    interleave: tuple = ()        # forward, width > 1: per parameter, one interleaved shadow (analysis.layout)


@dataclass
class Derivative:
    plan: Plan
    primal: frontend.PrimalModule
    function: Function
    text: str                  # the derivative module before optimisation
    entry: object              # callable(*flat) -> tuple
    library: object
    output_types: tuple        # numba types in the returned tuple
    has_primal_output: bool
    seconds: dict = field(default_factory=dict)
    annotations: dict = field(default_factory=dict)
    alias_pairs: tuple = ()    # ((arg, shadow or -1), (arg, shadow or -1)): arrays that must not overlap
    written: frozenset = frozenset()   # parameters whose shadows the derivative may write


def location_of(primal: frontend.PrimalModule):
    where = f"{primal.python_file}:{primal.python_line}"
    name = primal.dispatcher.py_func.__name__

    def location(ins: Instruction | None = None) -> str:
        if ins is not None and ins.opcode == "call":
            return f"{primal.python_file}:{primal.line_of_call(ins.callee)} (in {name})"
        return f"{where} (in {name})"
    return location


def output_types(plan: Plan, return_type: types.Type) -> tuple[list, bool]:
    # The primal result is returned when asked for, or when it holds a reference that must be released;
    # otherwise LLVM may delete the computations only it needed (sumsin's sum in reverse mode).
    scalar = isinstance(return_type, (types.Number, types.Boolean))
    outs, has_primal = [], return_type is not types.none and (plan.with_primal or not scalar)
    if has_primal:
        outs.append(return_type)
    if plan.reverse:
        outs += [plan.argtypes[i] for i, a in enumerate(plan.activities) if a == ACTIVE]
        if plan.report_tape:
            outs += [types.int64, types.int64]
    elif plan.ret_activity == DUP:
        outs += [return_type] * plan.width
    return outs, has_primal


def build_derivative(f, plan: Plan) -> Derivative:
    t0 = time.perf_counter()
    primal = frontend.build_primal(f, plan.argtypes)
    t1 = time.perf_counter()
    location = location_of(primal)
    fn = parse_function(primal.text, primal.entry_name)
    check_supported(fn, location)
    ret = primal.return_type
    if isinstance(ret, _UNSUPPORTED_RETURNS) and ret is not types.none:
        raise DifferentiationError(f"a function returning {ret}", location(),
                                   "generators and Python objects cannot be differentiated; return the "
                                   "values, or write them into an output array")
    if plan.ret_activity != CONST and not (isinstance(ret, types.Float)):
        raise TypeError(f"llad.autodiff: return activity {plan.ret_activity!r} needs a float result, but "
                        f"{primal.dispatcher.py_func.__name__} returns {ret}; use Const")
    outs, has_primal = output_types(plan, ret)
    return_nbtype = types.Tuple(outs) if outs else types.Tuple([types.int8])
    context = cpu_target.target_context
    ret_llty = str(context.get_value_type(ret)) if ret is not types.none else "ptr"
    out_llty = str(context.get_value_type(return_nbtype))
    digest = hashlib.sha1(repr((primal.entry_name, plan)).encode()).hexdigest()[:16]
    fname = f"llad.{'rev' if plan.reverse else 'fwd'}.{digest}"

    active_params = {primal.params[i].llvm_names[0] for i, a in enumerate(plan.activities) if a == ACTIVE}
    dup_ptrs = {primal.params[i].data_param for i, a in enumerate(plan.activities) if a == DUP}
    const_ptrs = {p.data_param for i, p in enumerate(primal.params) if p.is_array and plan.activities[i] == CONST}
    if plan.ret_activity != CONST:
        dup_ptrs.add("retptr")
    discarded = frozenset() if plan.ret_activity != CONST else frozenset(["retptr"])
    cfg = analyse_cfg(fn, location)
    forward_spilled_pointers(fn, cfg.dominates, cfg.idom)
    act = analyse_activity(fn, active_params, dup_ptrs, const_ptrs, location, discarded)
    interleaved = frozenset()
    if plan.width > 1 and not plan.reverse:
        wanted = {primal.params[i].data_param for i, x in enumerate(plan.interleave) if x} | {"retptr"}
        interleaved = interleaved_shadows(fn, act, wanted & dup_ptrs, dup_ptrs - wanted)

    header = _signature(fname, primal, plan, fn)
    prologue = [f"  %retptr = alloca {ret_llty}"]
    if "retptr" in interleaved:
        prologue.append(f'  %"s0.retptr" = alloca [{plan.width} x {ret_llty}]')
        prologue.append(f'  store [{plan.width} x {ret_llty}] zeroinitializer, ptr %"s0.retptr"')
    elif plan.ret_activity != CONST:
        for j in range(plan.width if not plan.reverse else 1):
            prologue.append(f'  %"s{j}.retptr" = alloca {ret_llty}')
            prologue.append(f'  store {ret_llty} zeroinitializer, ptr %"s{j}.retptr"')

    scopes = AliasScopes(fn, act, plan.assume_noalias, dup_ptrs)
    if plan.reverse:
        from .reverse import reverse_function_body
        body, decls, prologue_extra, finish, alias_pairs, tape = reverse_function_body(
            fn, act, cfg, plan, primal, location, out_llty, ret_llty, has_primal, ret, scopes)
        prologue += prologue_extra
    else:
        def on_return(b, ins):
            _store_outputs(b, out_llty, ret_llty, has_primal, plan, ret, interleaved_ret="retptr" in interleaved)
            b.emit(ins.text)
        body, decls = forward_function_body(fn, act, plan.width, location, on_return, interleaved, scopes)
        finish, alias_pairs, tape = None, (), None
    text = _module_text(primal, fn, header, prologue, body, decls, plan.width) + "\n".join(scopes.metadata()) + "\n"
    if finish is not None:
        text = finish(text)
    t2 = time.perf_counter()
    flat_types = tuple(plan.argtypes) + tuple(t for shadows in plan.shadowtypes for t in shadows)
    compiled = jit.jit_derivative(text, fname, return_nbtype, flat_types)
    t3 = time.perf_counter()
    d = Derivative(plan, primal, fn, text, compiled.entry, compiled.library, tuple(outs), has_primal)
    d.seconds = {"numba": primal.compile_seconds, "pre-ad": t1 - t0 - primal.compile_seconds,
                 "ad": t2 - t1, "jit": t3 - t2, "total": t3 - t0}
    d.annotations = {"activity": act, "cfg": cfg, "tape": tape}
    d.alias_pairs = tuple(((i, -1), (j, -1)) for i, j in alias_pairs) + shadow_disjointness(primal, plan)
    written = written_params(fn, act)
    d.written = frozenset(i for i, p in enumerate(primal.params) if p.is_array and p.data_param in written)
    return d


def _store_outputs(b, out_llty, ret_llty, has_primal, plan, ret, extra=(), interleaved_ret=False) -> None:
    """Copy the primal result, the return tangents and `extra` (type, value) pairs into the result tuple."""
    slot = 0
    values = []
    if has_primal:
        values.append((ret_llty, b.load(ret_llty, "%retptr")))
    if not plan.reverse and plan.ret_activity == DUP:
        for j in range(plan.width):
            lane = b.gep(ret_llty, '%"s0.retptr"', [("i64", str(j))]) if interleaved_ret else f'%"s{j}.retptr"'
            values.append((ret_llty, b.load(ret_llty, lane)))
    values += list(extra)
    for ty, v in values:
        p = b.gep(out_llty, "%llad.ret", [("i32", "0"), ("i32", str(slot))])
        b.store(ty, v, p)
        slot += 1


def shadow_disjointness(primal, plan: Plan) -> tuple:
    """The pairs of arrays that must not overlap for the shadows' `noalias` to hold: each shadow
    against every other array argument and every other shadow (checked per call by the API)."""
    if not plan.assume_noalias:
        return ()
    arrays = [(i, -1) for i, p in enumerate(primal.params) if p.is_array]
    shadows = [(i, k) for i, s in enumerate(plan.shadowtypes) for k in range(len(s))]
    pairs = []
    for n, (i, k) in enumerate(shadows):
        pairs += [((i, k), a) for a in arrays if a[0] != i]
        pairs += [((i, k), other) for other in shadows[n + 1:]]
    return tuple(pairs)


def _signature(fname: str, primal, plan: Plan, fn: Function) -> str:
    params = ["ptr noalias %llad.ret", "ptr noalias %excinfo"]
    params += [f"{p.type} %{_q(p.name)}" for p in fn.params[2:]]
    for i, pm in enumerate(primal.params):
        for j in range(len(plan.shadowtypes[i])):
            for position, (n, ty) in enumerate(zip(pm.llvm_names, pm.llvm_types)):
                # shadow data overlaps nothing else the derivative touches (the API checks it per call)
                attr = " noalias" if position == 4 and plan.assume_noalias else ""
                params.append(f"{ty}{attr} %{_q(f's{j}.{n}')}")
    return f'define i32 @"{fname}"({", ".join(params)})'


def _q(name: str) -> str:
    from .ir.model import ref
    return ref(name)[1:]


def _module_text(primal, fn: Function, header: str, prologue: list[str], body: list[str], decls: dict,
                 width: int = 1) -> str:
    lines = [ln for ln in primal.text.splitlines() if ln.startswith(("target datalayout", "target triple"))]
    lines += fn.globals_text + shadow_globals(width)
    declared = dict(fn.declarations)
    definitions, needed = runtime_ir.definitions_used(body)
    for name, d in {**RUNTIME_DECLARATIONS, **decls, **needed}.items():
        if name not in declared and d:
            declared[name] = d
    for name in list(declared):
        if name in runtime_ir.DEFINITIONS or name in fn.defined:
            declared.pop(name)
    lines += list(declared.values())
    lines += definitions
    lines += list(fn.defined.values())
    entry = fn.entry.name
    lines.append(header + " {")
    lines.append("llad.entry:")
    lines += prologue
    lines.append(f"  br label %{_q(entry)}")
    lines += body
    lines.append("}")
    return "\n".join(lines) + "\n"
