"""Custom rules for functions with array arguments (`llad.custom_jvp` / `llad.custom_vjp`, custom.py).

A call to a decorated function that receives an array stays a call, renamed into llad's form
`@llad.custom.call.<callee>` (same operands: Numba's return slot, its exception slot, then each argument
flattened as Numba passes it — an array as meminfo, parent, nitems, itemsize, data, shape..., strides...).
Its float result, which Numba returns through the stack slot, is loaded right after the call and goes
through the pseudo-call `%v = call T @llad.custom.result.<callee>(T %raw, i32 %status)` (the identity on
`%raw`; the status names the call it belongs to), which replaces every load of the slot.

The generators hand such a call to this module when an argument carries a derivative (`call_active`):

* forward modes replace it by the jvp rule, called once per direction with the shadows of the arrays as
  tangent arrays (`jvp(*args, *tangents)`); the rule computes what f computes (its writes and its result)
  and the tangents.  With k directions the later ones run on copies of the arrays as they were before
  the call, so a rule that updates an array in place sees the same inputs in every direction.
* reverse modes replace it, in the forward sweep, by the vjp rule's `fwd`, which does what f does and
  returns `(result, residuals)`; the residuals are kept in an NRT meminfo (a *box*, whose destructor
  releases the arrays in them) on llad's tape and on the shadow stack (freed if f raises later or a split
  tape is dropped).  The reverse sweep calls `bwd(residuals, dret, *shadows)`, which accumulates into the
  shadows of the array arguments and returns the derivatives of the float arguments, then releases the box.

The rule helpers are `@njit` functions generated from the user's rules for each call's argument types and
activity (which arrays have shadows, which floats are active), compiled by Numba and linked into the
derivative; alwaysinline wrappers own their return slots.  A forward mode needs a jvp rule and a reverse
mode a vjp rule; the other combination is refused with a `NoRuleError` naming the function.
"""
from __future__ import annotations

import hashlib
import itertools
import threading
from dataclasses import dataclass, replace

import numba
from llvmlite import ir as llir
from numba.core import cgutils, types
from numba.extending import intrinsic

from . import recursion
from .errors import DifferentiationError, NoRuleError
from .ir.builder import fconst, new_function
from .ir.model import Function, Instruction, Module, Operand, ref
from .recursion import RecursiveRule

CALL_PREFIX = "llad.custom.call."
RESULT_PREFIX = "llad.custom.result."
_lock = threading.RLock()


@dataclass(frozen=True)
class Param:
    """One Python argument of the decorated function: its Numba type and where its LLVM operands are."""

    type: types.Type
    start: int            # index of its first operand in the call (after the return and exception slots)
    count: int

    @property
    def is_array(self) -> bool:
        return isinstance(self.type, types.Array)

    @property
    def is_float_array(self) -> bool:
        return self.is_array and isinstance(self.type.dtype, types.Float)

    @property
    def is_float(self) -> bool:
        return isinstance(self.type, types.Float)

    @property
    def data(self) -> int:
        return self.start + 4


@dataclass
class ArrayCall:
    """What llad knows about calls to one compiled overload of a decorated function."""

    rule: object           # custom.CustomRule
    callee: str            # Numba's mangled name
    signature: object
    params: list[Param]
    result: str | None     # the LLVM float type of the result, None when f returns None
    helpers: dict
    written: frozenset     # the arguments (indices) whose memory the function may write

    @property
    def name(self) -> str:
        return self.rule.name

    @property
    def short(self) -> str:
        """A readable name for its rule wrappers: the Python name and a digest of the overload."""
        return f"{self.name}.{hashlib.sha1(self.callee.encode()).hexdigest()[:8]}"


_calls: dict[str, ArrayCall] = {}


def spec(callee: str) -> ArrayCall:
    """The call of `@llad.custom.call.<callee>` or `@llad.custom.result.<callee>`."""
    for prefix in (CALL_PREFIX, RESULT_PREFIX):
        if callee.startswith(prefix):
            callee = callee[len(prefix):]
    return _calls[callee]


def has_arrays(sig) -> bool:
    return any(isinstance(t, types.Array) for t in sig.args)


# --- routing (frontend side) -----------------------------------------------------------------------------
def route(fn: Function, ins: Instruction, rule, cres, loads: dict, location, module_text: str) -> bool:
    """Rewrite one call into llad's form (module docstring); True when the function changed."""
    sig = cres.signature
    what = f"a call to `{rule.name}{tuple(str(t) for t in sig.args)} -> {sig.return_type}`"
    scalars = (types.Float, types.Integer, types.Boolean)
    if not all(isinstance(t, scalars) or (isinstance(t, types.Array) and isinstance(t.dtype, scalars))
               for t in sig.args):
        raise NoRuleError(what, location(ins), "llad's custom rules take arrays of numbers, floats and integers "
                                               "as arguments")
    if not (isinstance(sig.return_type, types.Float) or sig.return_type == types.none):
        if isinstance(rule, RecursiveRule):
            raise NoRuleError(what, location(ins), "llad differentiates a call it cannot inline (recursion) when "
                                                   "the callee returns a float or None")
        raise NoRuleError(what, location(ins), "a custom rule's function with array arguments must return a "
                                               "float or None (write array results into an argument)")
    with _lock:
        if ins.callee not in _calls:
            params, at = [], 2
            for t in sig.args:
                count = 5 + 2 * t.ndim if isinstance(t, types.Array) else 1
                params.append(Param(t, at, count))
                at += count
            if at != len(ins.operands):
                raise NoRuleError(what, location(ins), "llad does not recognise how Numba passes its arguments")
            result = None if sig.return_type == types.none else ("double" if sig.return_type.bitwidth == 64
                                                                 else "float")
            written = _written_params(module_text, ins.callee, params)
            _calls[ins.callee] = ArrayCall(rule, ins.callee, sig, params, result, {}, written)
    call = _calls[ins.callee]
    slot = ins.operands[0]
    ins.callee = CALL_PREFIX + call.callee
    if call.result is None:
        return False
    block = ins.block
    raw, value = f"{ins.result}.raw", f"{ins.result}.value"
    at = block.instructions.index(ins)
    new = [Instruction("load", raw, call.result, [Operand("ptr", slot.text)], source_type=call.result),
           Instruction("call", value, call.result, [Operand(call.result, ref(raw)), Operand("i32", ref(ins.result))],
                       callee=RESULT_PREFIX + call.callee)]
    for x in new:
        x.block = block
    block.instructions[at + 1:at + 1] = new
    replace_uses = {}
    for load in loads.get(slot.name, []):
        if not _reads_call(load, ins):
            raise NoRuleError(what, location(ins), "llad cannot tell which call's result a load of its return "
                                                   "slot reads")
        replace_uses[load.result] = Operand(call.result, ref(value))
        load.block.instructions.remove(load)
    from .ir.forwarding import _rewrite_uses
    _rewrite_uses(fn, replace_uses)
    fn.opaque_result_slots.add(slot.name)
    return True


def _written_params(module_text: str, callee: str, params: list[Param]) -> frozenset:
    """The float array arguments whose memory the function (as compiled, callees inlined) may write: a
    store, or a call that may write, through a pointer derived from the argument's data pointer.
    Every float array when llad cannot tell (a pointer of unknown origin written, the body unreadable)."""
    from .analysis.activity import pointer_roots
    from .ir.callees import CallKind, classify, written_operands
    from .ir.parser import parse_function
    arrays = frozenset(i for i, p in enumerate(params) if p.is_float_array)
    try:
        body = parse_function(module_text, callee)
    except Exception:           # noqa: BLE001 - any construct llad's parser does not read: assume every write
        return arrays
    names = {body.params[p.data].name: i for i, p in enumerate(params) if p.is_float_array}
    roots = pointer_roots(body)
    out = set()
    for block in body.blocks:
        for ins in block.instructions:
            if ins.opcode == "store":       # of any type: LLVM may copy floats as integers
                targets = [ins.operands[1]]
            elif ins.opcode == "call" and classify(ins.callee) is not CallKind.FREE:
                targets = written_operands(ins)
            else:
                continue
            for op in targets:
                if not op.is_local:
                    continue
                for kind, name in roots.get(op.name, ()):
                    if kind == "param" and name in names:
                        out.add(names[name])
                    elif kind == "other" and not (name in body.defs and body.defs[name].opcode == "alloca"):
                        return arrays           # a pointer of unknown origin (loaded from memory) is written
    return frozenset(out)


def _reads_call(load: Instruction, call: Instruction) -> bool:
    """The load follows the call in its block, or sits in a block whose only predecessor is the call's."""
    if load.block is call.block:
        ins = call.block.instructions
        return ins.index(load) > ins.index(call)
    return len(load.block.preds) == 1 and load.block.preds[0] == call.block.name


def define_primal(module: Module, fn: Function) -> None:
    """`@llad.custom.call.<callee>` calls the function; `@llad.custom.result.<callee>` is the identity."""
    seen = set()
    for ins in itertools.chain.from_iterable(b.instructions for b in fn.blocks):
        if ins.opcode != "call" or ins.callee in seen:
            continue
        if ins.callee.startswith(CALL_PREFIX):
            seen.add(ins.callee)
            params = [(o.type, f"a{j}") for j, o in enumerate(ins.operands)]
            b = new_function(ins.callee, "i32", params, module, attributes="alwaysinline", linkage="internal")
            b.ret("i32", b.call("i32", ins.callee[len(CALL_PREFIX):], [(t, f"%{n}") for t, n in params]))
        elif ins.callee.startswith(RESULT_PREFIX):
            seen.add(ins.callee)
            b = new_function(ins.callee, ins.type, [(o.type, f"a{j}") for j, o in enumerate(ins.operands)], module,
                             attributes="alwaysinline", linkage="internal")
            b.ret(ins.type, "%a0")


# --- activity --------------------------------------------------------------------------------------------
def call_active(ins: Instruction, act) -> bool:
    """Whether a derivative reaches the call: an active float argument, or an array argument whose memory
    has a shadow."""
    call = spec(ins.callee)
    for p in call.params:
        op = ins.operands[p.data if p.is_array else p.start]
        if op.is_local and (op.name in act.values or (p.is_float_array and op.name in act.pointers)):
            return True
    return False


def written_arrays(ins: Instruction) -> list[Operand]:
    """The data pointers of the float arrays the function may write."""
    call = spec(ins.callee)
    return [ins.operands[call.params[i].data] for i in sorted(call.written)]


def refuse_const_outputs(ins: Instruction, act, const_ptrs: set[str], location) -> None:
    """An active call that may write a float array annotated Const: its new values would carry a derivative
    with nowhere to go."""
    from .errors import ActivityError
    call = spec(ins.callee)
    for i in sorted(call.written):
        op = ins.operands[call.params[i].data]
        roots = act.roots.get(op.name, frozenset()) if op.is_local else frozenset()
        if any(kind == "param" and name in const_ptrs for kind, name in roots):
            names = list(call.rule.dispatcher.py_func.__code__.co_varnames[:len(call.params)])
            raise ActivityError(f"a call to `{call.name}`", location(replace(ins, callee=call.callee)),
                                f"it may write its argument `{names[i]}`, an array annotated Const, with values "
                                f"that carry a derivative; annotate that array Duplicated(x, dx)")


def result_of(ins: Instruction) -> Instruction | None:
    """The result pseudo-call that follows a custom call, if f returns a float."""
    for cand in ins.block.instructions:
        if cand.opcode == "call" and cand.callee.startswith(RESULT_PREFIX) and cand.operands[1].text == ref(ins.result):
            return cand
    return None


# --- the boxes residuals travel in ------------------------------------------------------------------------
_box_types: dict = {}


def _dtor(context, module, ty):
    """`void dtor(ptr data, i64 size, ptr info)`: release what the box holds."""
    fnty = llir.FunctionType(llir.VoidType(), [cgutils.voidptr_t, context.get_value_type(types.uintp),
                                                cgutils.voidptr_t])
    digest = hashlib.sha1(str(ty).encode()).hexdigest()[:16]
    fn = cgutils.get_or_insert_function(module, fnty, f"llad.custom.dtor.{digest}")
    if fn.is_declaration:
        fn.linkage = "linkonce_odr"
        builder = llir.IRBuilder(fn.append_basic_block())
        llty = context.get_value_type(ty)
        value = builder.load(builder.bitcast(fn.args[0], llty.as_pointer()))
        context.nrt.decref(builder, ty, value)
        builder.ret_void()
    return fn


@intrinsic
def _box(typingctx, value):
    """An NRT meminfo holding `value` (a new reference to it); its destructor releases it."""
    def codegen(context, builder, sig, args):
        ty = sig.args[0]
        llty = context.get_value_type(ty)
        size = context.get_constant(types.uintp, max(1, context.get_abi_sizeof(llty)))
        mi = context.nrt.meminfo_alloc_dtor(builder, size, _dtor(context, builder.module, ty))
        data = context.nrt.meminfo_data(builder, mi)
        builder.store(args[0], builder.bitcast(data, llty.as_pointer()))
        context.nrt.incref(builder, ty, args[0])
        return mi
    return types.voidptr(value), codegen


def _unboxer(ty):
    """An intrinsic `unbox(box) -> ty`: the value a box holds (a new reference)."""
    with _lock:
        if ty not in _box_types:
            @intrinsic
            def unbox(typingctx, box):
                def codegen(context, builder, sig, args):
                    llty = context.get_value_type(ty)
                    data = context.nrt.meminfo_data(builder, args[0])
                    value = builder.load(builder.bitcast(data, llty.as_pointer()))
                    context.nrt.incref(builder, ty, value)
                    return value
                return ty(types.voidptr), codegen
            _box_types[ty] = unbox
        return _box_types[ty]


# --- the rule helpers --------------------------------------------------------------------------------------
_helper_symbols: dict[str, tuple[str, str]] = {}       # a rule helper's symbol -> (its rule, the function's name)


def helper_symbols() -> frozenset:
    with _lock:
        return frozenset(_helper_symbols)


def helper_of(symbol: str) -> tuple[str, str] | None:
    """(rule, function name) when `symbol` is a rule helper (a derivative differentiated again calls it)."""
    with _lock:
        return _helper_symbols.get(symbol)


def _compile(call: ArrayCall, key, source: str, namespace: dict, argtypes: tuple, what: str):
    with _lock:
        if key in call.helpers:
            return call.helpers[key]
        source = source.replace("def helper(", "def llad_rule_helper(", 1)
        exec(compile(source, f"<llad {what} of {call.name}>", "exec"), namespace)
        helper = numba.njit(namespace["llad_rule_helper"])
        try:
            helper.compile(argtypes)
        except numba.core.errors.TypingError as e:
            where = call.rule.dispatcher.py_func.__code__
            raise DifferentiationError(f"the {what} of {call.name}", f"{where.co_filename}:{where.co_firstlineno}",
                                       f"it does not compile for arguments {tuple(str(t) for t in argtypes)} "
                                       f"(a tangent or shadow is None for an argument without a derivative): "
                                       f"{_typing_message(e)}") from None
        cres = helper.overloads[argtypes]
        call.helpers[key] = (cres.fndesc.llvm_func_name, cres.library, cres.signature)
        _helper_symbols[cres.fndesc.llvm_func_name] = (what, call.name)
        return call.helpers[key]


def _typing_message(e: Exception) -> str:
    """The informative lines of a Numba typing error (its first line only names the pipeline stage)."""
    lines = [ln.strip() for ln in str(e).strip().splitlines() if ln.strip()]
    useful = [ln for ln in lines[1:] if not ln.startswith(("During:", "File ", "^", "Failed in"))]
    return " ".join((useful or lines)[:3])


def _tangent_type(t):
    return t.copy(readonly=False) if isinstance(t, types.Array) else t


def jvp_helper(call: ArrayCall, pattern: tuple, k: int):
    """helper(args..., tangents of lane 0, ..., of lane k-1) -> (result, tangent 0, ..., tangent k-1).
    `pattern[i]`: whether argument i has a tangent (an array with a shadow, an active float)."""
    n = len(call.params)
    args = [f"a{i}" for i in range(n)]
    arrays = [i for i, p in enumerate(call.params) if p.is_array]
    lines, tangent_params, argtypes = [], [], list(call.signature.args)
    for j in range(k):
        for i, p in enumerate(call.params):
            if pattern[i]:
                tangent_params.append(f"t{i}_{j}")
                argtypes.append(_tangent_type(p.type))
    if k > 1:
        lines += [f"    c{i} = a{i}.copy()" for i in arrays]
    results = []
    for j in range(k):
        primal = args if j == 0 else [f"c{i}.copy()" if i in arrays else f"a{i}" for i in range(n)]
        tangents = [f"t{i}_{j}" if pattern[i] else ("0.0" if p.is_float else "None")
                    for i, p in enumerate(call.params)]
        lines.append(f"    r{j} = rule({', '.join(primal + tangents)})")
        results.append(f"float(r{j}[1])" if call.result else "0.0")
    first = "float(r0[0])" if call.result else "0.0"
    lines.append(f"    return ({', '.join([first] + results)},)")
    source = f"def helper({', '.join(args + tangent_params)}):\n" + "\n".join(lines) + "\n"
    return _compile(call, ("jvp", pattern, k), source, {"rule": call.rule.jvp}, tuple(argtypes), "jvp rule")


def fwd_helper(call: ArrayCall):
    """helper(args...) -> (result, box of the residuals)."""
    args = ", ".join(f"a{i}" for i in range(len(call.params)))
    first = "float(r[0])" if call.result else "0.0"
    source = f"def helper({args}):\n    r = fwd({args})\n    return {first}, box(r[1])\n"
    return _compile(call, ("fwd",), source, {"fwd": call.rule.fwd, "box": _box}, tuple(call.signature.args),
                    "fwd rule")


def residual_type(call: ArrayCall):
    fwd = call.rule.fwd
    argtypes = tuple(call.signature.args)
    with _lock:
        if argtypes not in fwd.overloads:
            fwd.compile(argtypes)
    ret = fwd.overloads[argtypes].signature.return_type
    if not isinstance(ret, types.BaseTuple) or len(ret) != 2:
        raise DifferentiationError(f"the fwd rule of {call.name}", "<custom rule>",
                                   f"it must return (primal result, residuals), got {ret}")
    return ret[1]


def bwd_helper(call: ArrayCall, shadows: tuple, floats: tuple):
    """helper(box, dret, shadows of the arrays in `shadows`) -> (0.0, d of each float argument in `floats`)."""
    n = len(call.params)
    names = [f"s{i}" for i in shadows]
    res = residual_type(call)
    dret = "dret" if call.result else "None"
    per_arg = ", ".join(f"s{i}" if i in shadows else "None" for i in range(n))
    outs = "".join(f", float(g[{i}])" for i in floats)
    source = (f"def helper(box, dret{''.join(', ' + s for s in names)}):\n"
              f"    res = unbox(box)\n"
              f"    g = bwd(res, {dret}{', ' + per_arg if n else ''})\n"
              f"    return (0.0{outs},)\n")
    argtypes = (types.voidptr, types.float64, *(_tangent_type(call.params[i].type) for i in shadows))
    return _compile(call, ("bwd", shadows, floats), source, {"bwd": call.rule.bwd, "unbox": _unboxer(res)},
                    argtypes, "bwd rule")


def _link(module: Module, helper) -> str:
    name, library, _ = helper
    if library not in module.libraries:
        module.libraries.append(library)
    return name


def _aggregate(types_: list[str]) -> str:
    return "{" + ", ".join(types_) + "}"


# --- forward modes -------------------------------------------------------------------------------------
def _array_operands(ins: Instruction, p: Param, data: str, value) -> list[tuple[str, str]]:
    """An array argument's operands with `data` as its data pointer and no meminfo (a shadow as a
    NumPy array the rule can write): `value(op)` gives each primal operand as the sweep sees it."""
    ops = ins.operands[p.start:p.start + p.count]
    out = [("ptr", "null"), ("ptr", "null")]
    out += [(o.type, value(o)) for o in ops[2:4]]
    out.append(("ptr", data))
    out += [(o.type, value(o)) for o in ops[5:]]
    return out


def _refuse(ins: Instruction, call: ArrayCall, location, mode: str, rule: str) -> None:
    raise NoRuleError(f"a call to `{call.name}` with array arguments", location(replace(ins, callee=call.callee)),
                      f"{mode} modes use its {rule} rule, and it has none (a rule for array arguments "
                      f"serves the modes of its kind only; see docs/custom-rules.md)")


def forward(sweep, ins: Instruction) -> None:
    """Forward modes: the jvp rule in place of the call (module docstring)."""
    call, act, b, k = spec(ins.callee), sweep.act, sweep.b, sweep.k
    if isinstance(call.rule, RecursiveRule):
        recursion.forward(sweep, ins, call)
        return
    if call.rule.jvp is None:
        _refuse(ins, call, sweep.location, "forward", "jvp")
    pattern = []
    for p in call.params:
        op = ins.operands[p.data if p.is_array else p.start]
        if p.is_float_array and op.is_local and op.name in act.maybe_null:
            raise NoRuleError(f"a call to `{call.name}`", sweep.location(replace(ins, callee=call.callee)),
                              "an array argument carries a derivative on some paths and not on others")
        pattern.append(op.is_local and (op.name in act.pointers if p.is_float_array else
                                        p.is_float and op.name in act.values))
    pattern = tuple(pattern)
    helper = jvp_helper(call, pattern, k)
    wrapper = f"llad.custom.jvp.{call.short}.k{k}.t{'_'.join(str(i) for i, x in enumerate(pattern) if x)}"
    primal = [(o.type, o.text) for o in ins.operands[2:]]
    tangents = []
    for j in range(k):
        for i, p in enumerate(call.params):
            if not pattern[i]:
                continue
            if p.is_array:
                data = sweep.shadow(ins.operands[p.data], j, ins)
                tangents += _array_operands(ins, p, data, lambda o: o.text)
            else:
                op = ins.operands[p.start]
                tangents.append((op.type, sweep.lanes.lane(op.type, sweep.lanes.of(op), j)))
    if not any(f.name == wrapper for f in b.module.functions):
        _define_wrapper(b.module, wrapper, _link(b.module, helper), call, [t for t, _ in primal + tangents],
                        _aggregate(["double"] * (k + 1)))
    wty = _aggregate(["i32", *["double"] * k])
    w = b.call(wty, wrapper, [("ptr", ins.operands[0].text), ("ptr", ins.operands[1].text), *primal, *tangents])
    b.op("add", "i32", b.extract(wty, w, 0), "0", name=ref(ins.result))
    ty = call.result or "double"
    lanes = [_narrow(b, b.extract(wty, w, 1 + j), ty) for j in range(k)]
    sweep.custom_tangents[ins.result] = lanes


def _narrow(b, v: str, ty: str) -> str:
    return v if ty == "double" else b.cast("fptrunc", "double", v, ty)


def _define_wrapper(module: Module, name: str, helper: str, call: ArrayCall, arg_types: list[str],
                    ret_ty: str) -> None:
    """`{i32, double...} @name(ptr retslot, ptr excinfo, args...)`: the helper's status and the floats after its
    first, which (the primal result) goes into f's return slot."""
    n = ret_ty.count("double")
    params = [("ptr", "slot"), ("ptr", "exc"), *[(t, f"a{j}") for j, t in enumerate(arg_types)]]
    out = _aggregate(["i32", *["double"] * (n - 1)])
    b = new_function(name, out, params, module, attributes="alwaysinline", linkage="internal")
    ret = b.alloca(ret_ty)
    b.store(ret_ty, "zeroinitializer", ret)
    status = b.call("i32", helper, [("ptr", ret), ("ptr", "%exc"), *[(t, f"%a{j}") for j, t in enumerate(arg_types)]])
    values = [b.load("double", b.gep(ret_ty, ret, [("i32", "0"), ("i32", str(j))])) for j in range(n)]
    if call.result is not None:
        b.store(call.result, _narrow(b, values[0], call.result), "%slot")
    agg = b.insertvalue(out, "undef", "i32", status, 0)
    for j, v in enumerate(values[1:]):
        agg = b.insertvalue(out, agg, "double", v, 1 + j)
    b.ret(out, agg)


def forward_result(sweep, ins: Instruction) -> None:
    """The tangent of the result pseudo-call: what the jvp rule returned."""
    lanes = sweep.custom_tangents.get(ins.operands[1].name)
    if lanes is None:
        return
    if not sweep.lanes.vector:
        sweep.b.op("fadd", ins.type, lanes[0], fconst(ins.type, -0.0), name=sweep.lanes.name(ins.result))
    else:
        sweep.lanes.combine(ins.type, lanes, sweep.lanes.name(ins.result))


# --- reverse modes -------------------------------------------------------------------------------------
def box_name(ins: Instruction) -> str:
    return f"custom.{ins.result}"


def has_boxes(tape) -> bool:
    return any(name.startswith("custom.") for name in tape.entries)


def augmented(sweep, ins: Instruction) -> None:
    """The forward sweep of reverse mode: the vjp rule's fwd in place of the call; its box on the tape."""
    call, b = spec(ins.callee), sweep.b
    if isinstance(call.rule, RecursiveRule):
        recursion.augmented(sweep, ins, call)
        return
    if call.rule.fwd is None:
        _refuse(ins, call, sweep.location, "reverse", "vjp")
    helper = fwd_helper(call)
    wrapper = f"llad.custom.fwd.{call.short}"
    primal = [(o.type, o.text) for o in ins.operands[2:]]
    if not any(f.name == wrapper for f in b.module.functions):
        _define_fwd_wrapper(b.module, wrapper, _link(b.module, helper), call, [t for t, _ in primal])
    wty = "{i32, ptr}"
    w = b.call(wty, wrapper, [("ptr", ins.operands[0].text), ("ptr", ins.operands[1].text), *primal])
    b.op("add", "i32", b.extract(wty, w, 0), "0", name=ref(ins.result))
    name = box_name(ins)
    b.extract(wty, w, 1, name=ref(name))
    if sweep.tape.is_cached(name):
        b.call("void", "llad.shadows.push", [("ptr", "%llad.shadows"), ("ptr", ref(name))])
        sweep.tape.store(b, name, ins.block.name)
    else:
        b.call("void", "NRT_decref", [("ptr", ref(name))])


def _define_fwd_wrapper(module: Module, name: str, helper: str, call: ArrayCall, arg_types: list[str]) -> None:
    """`{i32, ptr} @name(ptr retslot, ptr excinfo, args...)`: status and box (null if fwd raised)."""
    params = [("ptr", "slot"), ("ptr", "exc"), *[(t, f"a{j}") for j, t in enumerate(arg_types)]]
    b = new_function(name, "{i32, ptr}", params, module, attributes="alwaysinline", linkage="internal")
    ret = b.alloca("{double, ptr}")
    b.store("{double, ptr}", "zeroinitializer", ret)
    status = b.call("i32", helper, [("ptr", ret), ("ptr", "%exc"), *[(t, f"%a{j}") for j, t in enumerate(arg_types)]])
    if call.result is not None:
        b.store(call.result, _narrow(b, b.load("double", ret), call.result), "%slot")
    box = b.load("ptr", b.gep("{double, ptr}", ret, [("i32", "0"), ("i32", "1")]))
    agg = b.insertvalue("{i32, ptr}", "undef", "i32", status, 0)
    b.ret("{i32, ptr}", b.insertvalue("{i32, ptr}", agg, "ptr", box, 1))


def reverse(visitor, ins: Instruction) -> None:
    """The reverse sweep: bwd(residuals, dret, *shadows); its float results are the float arguments'
    adjoints."""
    call, act, b, lookup = spec(ins.callee), visitor.act, visitor.b, visitor.lookup
    if not call_active(ins, act):
        return
    if isinstance(call.rule, RecursiveRule):
        recursion.reverse(visitor, ins, call)
        return
    if call.rule.bwd is None:
        _refuse(ins, call, lookup.location, "reverse", "vjp")
    shadows = tuple(i for i, p in enumerate(call.params)
                    if p.is_float_array and ins.operands[p.data].is_local and ins.operands[p.data].name in act.pointers)
    floats = tuple(i for i, p in enumerate(call.params)
                   if p.is_float and ins.operands[p.start].is_local and ins.operands[p.start].name in act.values)
    helper = bwd_helper(call, shadows, floats)
    box = lookup.tape.load(b, box_name(ins), "ptr", ins.block.name, lookup.block.name)
    result = result_of(ins)
    dret = "0.0"
    if result is not None and result.result in act.values:
        dret = visitor.take(result)
        if call.result == "float":
            dret = b.cast("fpext", "float", dret, "double")
    args = [("ptr", box), ("double", dret)]
    for i in shadows:
        p = call.params[i]
        args += _array_operands(ins, p, lookup.need_shadow(ins.operands[p.data]), lookup.need)
    wrapper = f"llad.custom.bwd.{call.short}.s{'_'.join(map(str, shadows))}.f{'_'.join(map(str, floats))}"
    ret_ty = _aggregate(["double"] * (1 + len(floats)))
    if not any(f.name == wrapper for f in b.module.functions):
        _define_bwd_wrapper(b.module, wrapper, _link(b.module, helper), [t for t, _ in args], ret_ty)
    w = b.call(ret_ty, wrapper, args)
    for j, i in enumerate(floats):
        op = ins.operands[call.params[i].start]
        visitor.add(op, _narrow(b, b.extract(ret_ty, w, 1 + j), op.type))
    b.call("void", "NRT_decref", [("ptr", box)])


def _define_bwd_wrapper(module: Module, name: str, helper: str, arg_types: list[str], ret_ty: str) -> None:
    params = [(t, f"a{j}") for j, t in enumerate(arg_types)]
    b = new_function(name, ret_ty, params, module, attributes="alwaysinline", linkage="internal")
    ret, exc = b.alloca(ret_ty), b.alloca("ptr")
    b.store(ret_ty, "zeroinitializer", ret)
    b.call("i32", helper, [("ptr", ret), ("ptr", exc), *[(t, f"%a{j}") for j, t in enumerate(arg_types)]])
    b.ret(ret_ty, b.load(ret_ty, ret))
