"""Callees that stay calls: recursion.

A call to a Numba function that the pre-AD pipeline could not inline (a recursive function calling
itself, or a function calling a recursive one) stays a call, and gets llad's own derivative of the callee
as its rule, as Enzyme differentiates a call it does not inline:

* forward modes call the callee's forward derivative (`ForwardWithPrimal`, the call's activities) in
  place of the call;
* reverse modes call the callee's split derivative (`ReverseSplitWithPrimal`): its forward phase in the
  augmented forward sweep, with a frame (its tape) in an NRT meminfo kept on the caller's tape and shadow
  stack, and its reverse phase in the reverse sweep with the result's adjoint as the seed, which consumes
  the frame.  A frame released unconsumed (the caller raised, or dropped a split tape) runs the callee's
  release phase from its destructor.

The call goes through custom_arrays.py's routing (the same pseudo-calls, activity and written-array
analysis: the rule of a custom call is the user's, the rule of a recursive call is llad's derivative of
the callee).  When the derivative a call needs is the one being generated (self-recursion with the same
activities), the call is to the function itself, by name; otherwise llad builds the callee's derivative
(whose own recursive calls are then calls to itself) and links it.  Mutual recursion whose derivatives
would need each other while both are being built is refused.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, replace

import numba
from numba.core import types
from numba.core.registry import cpu_target

from .errors import NoRuleError
from .ir.builder import fconst
from .ir.model import Instruction, ref
from .plan import Act, Plan

_PHASE_FORWARD, _PHASE_REVERSE, _PHASE_RELEASE = 1, 2, 3
_building = threading.local()          # the stack of (dispatcher, plan, symbol) being built in this thread


@dataclass
class RecursiveRule:
    """The rule of a call that stays a call: llad's derivative of the callee."""

    dispatcher: object

    @property
    def name(self) -> str:
        return self.dispatcher.py_func.__name__

    # custom_arrays.py checks these for a user rule; llad's derivative serves every mode
    jvp = fwd = bwd = True


def _current() -> Plan:
    return stack()[-1][1]


def stack() -> list:
    if not hasattr(_building, "stack"):
        _building.stack = []
    return _building.stack


class building:
    """`with building(dispatcher, plan, symbol):` around a derivative's generation."""

    def __init__(self, dispatcher, plan: Plan, symbol: str):
        self.entry = (dispatcher, plan, symbol)

    def __enter__(self):
        stack().append(self.entry)

    def __exit__(self, *exc):
        stack().pop()


# --- routing --------------------------------------------------------------------------------------------
def find_callee(root, symbol: str):
    """(dispatcher, compile result) of the Numba function compiled as `symbol`, searched from the function
    being differentiated through the @njit functions its code names (globals and closures)."""
    seen, todo = set(), [root]
    while todo:
        d = todo.pop()
        if id(d) in seen:
            continue
        seen.add(id(d))
        for cres in list(d.overloads.values()):
            if cres.fndesc.llvm_func_name == symbol:
                return d, cres
        fn = d.py_func
        names = set(fn.__code__.co_names)
        values = [fn.__globals__.get(n) for n in names]
        values += [c.cell_contents for c in (fn.__closure__ or ()) if _has_contents(c)]
        todo += [v for v in values if isinstance(v, numba.core.registry.CPUDispatcher)]
    return None


def _has_contents(cell) -> bool:
    try:
        _ = cell.cell_contents
    except ValueError:           # an empty cell (a name assigned after the closure was made)
        return False
    return True


def route(fn, location, module_text: str, root) -> None:
    """Calls of Numba functions left after inlining go through custom_arrays' form with llad's
    derivative of the callee as their rule."""
    from . import custom_arrays
    from .ir.callees import CallKind, classify
    loads: dict[str, list[Instruction]] = {}
    for block in fn.blocks:
        for ins in block.instructions:
            if ins.opcode == "load" and ins.operands[0].is_local:
                loads.setdefault(ins.operands[0].name, []).append(ins)
    changed = _resolve_unresolved(fn)
    for block in fn.blocks:
        for ins in list(block.instructions):
            if ins.opcode != "call" or classify(ins.callee) is not CallKind.JITTED:
                continue
            found = find_callee(root, ins.callee)
            if found is None:
                continue
            dispatcher, cres = found
            changed |= custom_arrays.route(fn, ins, RecursiveRule(dispatcher), cres, loads, location, module_text)
    if changed:
        fn.reindex()


_UNRESOLVED = '@".numba.unresolved$'


def _resolve_unresolved(fn) -> bool:
    """Numba compiles a recursive call whose type it inferred from the call itself through a function
    pointer it fills in later: `%p = load ptr, ptr @".numba.unresolved$<symbol>"`, `call i32 %p(...)`.  That
    is a call of `<symbol>`: made one."""
    from .ir.callees import INDIRECT_CALLEE
    changed = False
    for block in fn.blocks:
        for ins in block.instructions:
            if ins.opcode != "call" or ins.callee != INDIRECT_CALLEE or not ins.operands[-1].is_local:
                continue
            load = fn.defs.get(ins.operands[-1].name)
            if load is None or load.opcode != "load" or not load.operands[0].text.startswith(_UNRESOLVED):
                continue
            ins.callee = load.operands[0].text[len(_UNRESOLVED):].rstrip('"')
            ins.operands = ins.operands[:-1]
            ins.flags = tuple(f for f in ins.flags if f != "indirect")
            changed = True
    return changed


# --- the callee's plan and derivative ---------------------------------------------------------------------
def _plan(call, ins: Instruction, act, reverse: bool, width: int, current: Plan) -> Plan:
    """The callee's derivative for this call: its arguments' activity as the caller's analysis found it,
    the primal result always returned (the caller uses it), split in reverse modes."""
    activities, shadowtypes = [], []
    for p in call.params:
        op = ins.operands[p.data if p.is_array else p.start]
        if p.is_float_array and op.is_local and op.name in act.pointers:
            activities.append(Act.DUP)
            shadowtypes.append((p.type,) * width)
        elif p.is_float and op.is_local and op.name in act.values:
            activities.append(Act.ACTIVE if reverse else Act.DUP)
            shadowtypes.append(() if reverse else (p.type,) * width)
        else:
            activities.append(Act.CONST)
            shadowtypes.append(())
    ret = call.signature.return_type
    if ret is types.none:
        ret_act = Act.CONST
    else:
        ret_act = Act.ACTIVE if reverse else Act.DUP
    return Plan(reverse, True, ret_act, tuple(activities), tuple(call.signature.args), tuple(shadowtypes),
                width=width, assume_noalias=False, split=reverse, vector_math=current.vector_math,
                guard_memory=current.guard_memory)


def _target(call, plan: Plan, ins: Instruction, location, module) -> tuple[str, int | str]:
    """(symbol of the callee's derivative under `plan`, its frame size or the global holding it)."""
    from . import api
    frames = stack()
    key = (call.rule.dispatcher, plan)
    if frames and frames[-1][:2] == key:
        symbol = frames[-1][2]
        return symbol, frame_global(symbol)
    if any(f[:2] == key for f in frames):
        raise NoRuleError(f"a call to `{call.name}`", location(replace(ins, callee=call.callee)),
                          "mutual recursion whose derivatives need each other is not supported; make one of "
                          "the functions call itself instead")
    d = api._get_derivative(call.rule.dispatcher, plan)
    if d.library not in module.libraries:
        module.libraries.append(d.library)
    return d.name, d.frame_bytes


def frame_global(symbol: str) -> str:
    return f"{symbol}.frame_bytes"


def _out_type(plan: Plan, call) -> str:
    """The LLVM type of the tuple the derivative writes to its return slot (outputs.py)."""
    from .outputs import output_types
    outs, _ = output_types(plan, call.signature.return_type)
    tup = types.Tuple(outs) if outs else types.Tuple([types.int8])
    return str(cpu_target.target_context.get_value_type(tup))


def _arguments(call, ins: Instruction, plan: Plan, value, shadow, tangent, lanes: int) -> list[tuple[str, str]]:
    """The derivative's arguments after its return and exception slots: primal operands, then shadows."""
    from .custom_arrays import _array_operands
    args = [(o.type, value(o)) for o in ins.operands[2:]]
    for i, p in enumerate(call.params):
        if not plan.shadowtypes[i]:
            continue
        for j in range(lanes):
            if p.is_array:
                args += _array_operands(ins, p, shadow(ins.operands[p.data], j), value)
            else:
                args.append((ins.operands[p.start].type, tangent(ins.operands[p.start], j)))
    return args


# --- forward modes -------------------------------------------------------------------------------------
def forward(sweep, ins: Instruction, call) -> None:
    b, k = sweep.b, sweep.k
    plan = _plan(call, ins, sweep.act, False, k, _current())
    symbol, _ = _target(call, plan, ins, sweep.location, b.module)
    out_ty = _out_type(plan, call)
    ret = b.alloca(out_ty)
    args = _arguments(call, ins, plan, lambda o: o.text, lambda op, j: sweep.shadow(op, j, ins),
                      lambda op, j: sweep.lanes.lane(op.type, sweep.lanes.of(op), j), k)
    b.call("i32", symbol, [("ptr", ret), ("ptr", ins.operands[1].text), *args], name=ref(ins.result))
    if call.result is None:
        return
    value = b.load(out_ty, ret)
    b.store(call.result, b.extract(out_ty, value, 0), ins.operands[0].text)
    sweep.custom_tangents[ins.result] = [b.extract(out_ty, value, 1 + j) for j in range(k)]


# --- reverse modes -------------------------------------------------------------------------------------
def frame_name(ins: Instruction) -> str:
    return f"frame.{ins.result}"


def augmented(sweep, ins: Instruction, call) -> None:
    """The callee's forward phase, its frame in a meminfo kept on the tape and on the shadow stack."""
    b = sweep.b
    plan = _plan(call, ins, sweep.act, True, 1, _current())
    symbol, frame_bytes = _target(call, plan, ins, sweep.location, b.module)
    out_ty = _out_type(plan, call)
    args = _arguments(call, ins, plan, lambda o: o.text, lambda op, j: sweep.shadow(op, j, ins), None, 1)
    seed_ty = call.result or "double"
    size = b.load("i64", f'@"{frame_bytes}"') if isinstance(frame_bytes, str) else str(frame_bytes)
    total = b.op("add", "i64", size, str(_FLAG_BYTES))
    dtor = _define_release(b.module, symbol, out_ty, [t for t, _ in args], seed_ty)
    name = frame_name(ins)
    b.call("ptr", "NRT_MemInfo_alloc_dtor", [("i64", total), ("ptr", f'@"{dtor}"')], name=ref(name))
    data = b.call("ptr", "NRT_MemInfo_data_fast", [("ptr", ref(name))])
    b.memset(data, "i64", total)                   # a frame starts zeroed, and not consumed
    ret = b.alloca(out_ty)
    b.call("i32", symbol, [("ptr", ret), ("ptr", ins.operands[1].text), *args, ("i32", str(_PHASE_FORWARD)),
                           ("i64", _frame_address(b, data)), (seed_ty, fconst(seed_ty, 0.0))], name=ref(ins.result))
    if call.result is not None:
        b.store(call.result, b.extract(out_ty, b.load(out_ty, ret), 0), ins.operands[0].text)
    if sweep.tape.is_cached(name):
        b.call("void", "llad.shadows.push", [("ptr", "%llad.shadows"), ("ptr", ref(name))])
        sweep.tape.store(b, name, ins.block.name)
    else:
        b.call("void", "NRT_decref", [("ptr", ref(name))])


_FLAG_BYTES = 8      # a frame's meminfo: [i64 consumed][the callee's frame]


def _frame_address(b, data: str) -> str:
    return b.cast("ptrtoint", "ptr", b.gep("i8", data, [("i64", str(_FLAG_BYTES))]), "i64")


def _define_release(module, symbol: str, out_ty: str, arg_types: list[str], seed_ty: str) -> str:
    """The frame meminfo's destructor: unless the reverse phase consumed the frame (the caller raised, or
    dropped a split tape), the callee's release phase frees what its forward phase allocated.  That phase
    reads only the frame: the arguments are zeros."""
    from .ir.builder import new_function
    name = f"llad.frame.release.{symbol}"
    if any(f.name == name for f in module.functions):
        return name
    b = new_function(name, "void", [("ptr", "data"), ("i64", "size"), ("ptr", "info")], module, linkage="internal")
    consumed = b.icmp("ne", "i64", b.load("i64", "%data"), "0")
    b.cbr(consumed, "done", "release")
    b.new_block("release")
    zero = {"ptr": "null", "double": "0.0", "float": "0.0"}
    args = [(t, zero.get(t, "0")) for t in arg_types]
    ret, exc = b.alloca(out_ty), b.alloca("ptr")
    b.call("i32", symbol, [("ptr", ret), ("ptr", exc), *args, ("i32", str(_PHASE_RELEASE)),
                           ("i64", _frame_address(b, "%data")), (seed_ty, fconst(seed_ty, 0.0))])
    b.br("done")
    b.new_block("done")
    b.ret()
    return name


def reverse(visitor, ins: Instruction, call) -> None:
    """The callee's reverse phase: seeded with the result's adjoint; its derivatives go to the active
    float arguments."""
    from .custom_arrays import result_of
    b, lookup, act = visitor.b, visitor.lookup, visitor.act
    plan = _plan(call, ins, act, True, 1, _current())
    symbol, _ = _target(call, plan, ins, lookup.location, b.module)
    out_ty = _out_type(plan, call)
    mi = lookup.tape.load(b, frame_name(ins), "ptr", ins.block.name, lookup.block.name)
    data = b.call("ptr", "NRT_MemInfo_data_fast", [("ptr", mi)])
    seed_ty = call.result or "double"
    seed = fconst(seed_ty, 0.0)
    result = result_of(ins)
    if result is not None and result.result in act.values:
        seed = visitor.take(result)
    ret, exc = b.alloca(out_ty), b.alloca("ptr")
    args = _arguments(call, ins, plan, lookup.need, lambda op, j: lookup.need_shadow(op), None, 1)
    b.call("i32", symbol, [("ptr", ret), ("ptr", exc), *args, ("i32", str(_PHASE_REVERSE)),
                           ("i64", _frame_address(b, data)), (seed_ty, seed)])
    b.store("i64", "1", data)                      # consumed: the destructor has nothing to release
    value = b.load(out_ty, ret)
    at = 0 if call.result is None else 1          # after the primal result
    for i, p in enumerate(call.params):
        if plan.activities[i] is Act.ACTIVE:
            visitor.add(ins.operands[p.start], b.extract(out_ty, value, at))
            at += 1
    b.call("void", "NRT_decref", [("ptr", mi)])


def has_frames(tape) -> bool:
    return any(name.startswith("frame.") for name in tape.entries)
