"""`llad.autodiff_thunk` inside `@numba.njit` code: split mode (reverse/split.py) in jitted code.

    fwd, rev = llad.autodiff_thunk(llad.ReverseSplitWithPrimal, f, llad.Active, llad.Duplicated(x, dx))
    tape, primal, shadow_result = fwd(llad.Duplicated(x, dx))
    (derivs,) = rev(llad.Duplicated(x, dx), 1.0, tape)

The thunks are compile-time function values (`types.Function` of a template that knows the plan); calling
one calls the split derivative through the same linked intrinsic as `autodiff` in jitted code.  The tape
is an NRT-managed object (`TapeType`, a meminfo): its payload is a consumed flag and the derivative's
frame; Numba's reference counting frees it when the last reference goes, and its destructor first runs
the derivative's release phase if no reverse call consumed it (a tape dropped unused frees the forward
sweep's memory).  A second reverse call with the same tape raises `ValueError`.
"""
from __future__ import annotations

import dataclasses
import threading

from llvmlite import ir as llir
from numba.core import cgutils, types
from numba.core.errors import TypingError
from numba.core.typing.templates import AbstractTemplate, signature
from numba.extending import intrinsic, lower_builtin, models, register_model, type_callable

from . import api, jit, jitted, thunks
from .annotations import ReverseSplitNoPrimal, ReverseSplitWithPrimal
from .plan import Act

_FLAG_BYTES = 8            # a tape's payload: [i64 consumed][the derivative's frame]
_PHASE_FORWARD, _PHASE_REVERSE, _PHASE_RELEASE = 1, 2, 3
_lock = threading.RLock()


class TapeType(types.Type):
    """The tape of one split derivative (by its symbol)."""

    def __init__(self, symbol: str):
        self.symbol = symbol
        super().__init__(name=f"llad.Tape({symbol})")


@register_model(TapeType)
class _TapeModel(models.StructModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, [("meminfo", types.MemInfoPointer(types.voidptr))])


@dataclasses.dataclass
class _Pair:
    """What the thunks of one `autodiff_thunk` call share."""

    mode: object
    plan: object
    derivative: object
    classified: list
    params: tuple              # the annotation types the thunks were made for
    with_ret: bool


_pairs: dict = {}


def _make_pair(argtypes: tuple) -> tuple:
    """(pair, types of (fwd, rev)) for `autodiff_thunk(*argtypes)`, cached per types."""
    key = tuple(argtypes)
    with _lock:
        if key in _pairs:
            return _pairs[key]
    if len(argtypes) < 2 or not isinstance(argtypes[0], jitted.ModeType):
        raise TypingError("llad.autodiff_thunk: the first argument must be a mode")
    m, f, args = argtypes[0].mode, argtypes[1], argtypes[2:]
    if m is not ReverseSplitWithPrimal and m is not ReverseSplitNoPrimal:
        raise TypingError(f"llad.autodiff_thunk inside @njit takes ReverseSplitWithPrimal or ReverseSplitNoPrimal, "
                          f"got {m!r}; in jitted code call llad.autodiff for the other modes")
    if not isinstance(f, types.Dispatcher):
        raise TypingError(f"llad.autodiff_thunk inside @njit needs a global @numba.njit function, got {f}")
    dispatcher = f.dispatcher
    ret_cls = jitted._return_class(args[0]) if args else None
    params = args[1:] if ret_cls is not None else args
    try:
        api._check_arity(dispatcher, len(params))
    except TypeError as e:
        raise TypingError(str(e)) from None
    classified = [jitted._classify(i, t, True) for i, t in enumerate(params)]
    plan = dataclasses.replace(jitted._plan(m, dispatcher, ret_cls, classified), split=True)
    d = api._get_derivative(dispatcher, plan)
    pair = _Pair(m, plan, d, classified, tuple(params), ret_cls is not None)
    fwd, rev = _function_type(pair, "forward"), _function_type(pair, "reverse")
    with _lock:
        _pairs[key] = (pair, types.Tuple([fwd, rev]))
        return _pairs[key]


class _ForwardKey:
    """The implementation key of every forward thunk (lowering finds the pair by the tape's symbol)."""


class _ReverseKey:
    """The implementation key of every reverse thunk."""


_by_symbol: dict = {}      # a split derivative's symbol -> its pair


def _function_type(pair: _Pair, phase: str):
    _by_symbol[pair.derivative.name] = pair

    class Thunk(AbstractTemplate):
        key = _ForwardKey if phase == "forward" else _ReverseKey

        def generic(self, args, kws):
            if kws:
                raise TypingError("llad.autodiff_thunk: the thunks take positional arguments")
            return signature(_result_type(pair, phase, args), *args)

    Thunk.__name__ = f"llad_{phase}_thunk_{pair.derivative.name.replace('.', '_')}"
    return types.Function(Thunk)


@lower_builtin(_ForwardKey, types.VarArg(types.Any))
def _lower_forward(context, builder, sig, args):
    pair = _by_symbol[sig.return_type[0].symbol]
    return context.compile_internal(builder, _implementation(pair, "forward", len(sig.args)), sig, args)


@lower_builtin(_ReverseKey, types.VarArg(types.Any))
def _lower_reverse(context, builder, sig, args):
    pair = _by_symbol[sig.args[-1].symbol]
    return context.compile_internal(builder, _implementation(pair, "reverse", len(sig.args)), sig, args)


def _check_params(pair: _Pair, params: tuple) -> None:
    classified = [jitted._classify(i, t, True) for i, t in enumerate(params)]
    if [(a, t, s) for a, t, s, _ in classified] != [(a, t, s) for a, t, s, _ in pair.classified]:
        raise TypingError("llad.autodiff_thunk: the thunk's arguments differ in type or annotation from the ones "
                          "autodiff_thunk was given")


def _result_type(pair: _Pair, phase: str, args: tuple):
    d, plan = pair.derivative, pair.plan
    outs = list(d.output_types)
    if phase == "forward":
        _check_params(pair, args)
        primal = outs[0] if d.has_primal_output and pair.mode.with_primal else types.none
        shadow = outs[1 if d.has_primal_output else 0] if plan.ret_activity is Act.DUP else types.none
        return types.Tuple([TapeType(d.name), primal, shadow])
    if len(args) != len(pair.params) + 2:
        raise TypingError(f"llad.autodiff_thunk: the reverse thunk takes the {len(pair.params)} arguments, the seed "
                          f"and the tape, got {len(args)} values")
    *params, seed, tape = args
    _check_params(pair, tuple(params))
    if not isinstance(tape, TapeType) or tape.symbol != d.name:
        raise TypingError("llad.autodiff_thunk: the last argument must be a tape from this thunk pair's forward "
                          "thunk")
    if plan.ret_activity is Act.ACTIVE and not isinstance(seed, (types.Float, types.Integer)):
        raise TypingError(f"llad.autodiff_thunk: the seed of an Active return is a float, got {seed}")
    if plan.ret_activity is not Act.ACTIVE and seed is not types.none:
        raise TypingError("llad.autodiff_thunk: the seed is None when the return is not Active")
    return types.Tuple([types.Tuple([types.none if k is None else outs[k] for k in _derivative_positions(d)])])


def _derivative_positions(d) -> list:
    """Per parameter: where the derivative's result holds its derivative (an Active one), else None."""
    pos = (1 if d.has_primal_output else 0) + (1 if d.plan.ret_activity is Act.DUP else 0)
    out = []
    for a in d.plan.activities:
        out.append(pos if a is Act.ACTIVE else None)
        pos += a is Act.ACTIVE
    return out


_impls: dict = {}


def _implementation(pair: _Pair, phase: str, n: int):
    key = (id(pair), phase, n)
    if key in _impls:
        return _impls[key]
    d, plan = pair.derivative, pair.plan
    nparams = len(pair.params)
    names = [f"a{i}" for i in range(n)]
    lines = [f"def impl({', '.join(names)}):"]
    values, shadows = [], []
    for i, (_, _, _, (val, dvals)) in enumerate(pair.classified):
        a = names[i]
        v = f"{a}.{val}" if val else a
        values.append(v)
        for j, dv in enumerate(dvals):
            s = f"s{i}_{j}"
            lines.append(f"    {s} = {a}.{dv}")
            lines += [f"    if {s}.shape != {v}.shape or {s}.strides != {v}.strides:",
                      f"        raise ValueError('llad.autodiff_thunk: the shadow of argument {i} must have the "
                      "shape and strides of its array')"]
            shadows.append(s)
    flat = ", ".join(values + shadows)
    (cres,) = d.entry.overloads.values()
    argtypes = tuple(cres.signature.args)
    namespace = {"call": jit.make_caller(d.name, d.library, cres.signature.return_type, argtypes, link=True),
                 "new_tape": _tape_maker(d, argtypes, cres.signature.return_type), "frame": _tape_frame,
                 "consumed": _tape_consumed, "consume": _tape_consume}
    if phase == "forward":
        lines += ["    tape = new_tape()",
                  f"    r = call({flat}, {_PHASE_FORWARD}, frame(tape), 0.0)"]
        primal = "r[0]" if d.has_primal_output and pair.mode.with_primal else "None"
        shadow = f"r[{1 if d.has_primal_output else 0}]" if plan.ret_activity is Act.DUP else "None"
        lines.append(f"    return tape, {primal}, {shadow}")
    else:
        seed, tape = names[nparams], names[nparams + 1]
        seed_value = f"float({seed})" if plan.ret_activity is Act.ACTIVE else "0.0"
        lines += [f"    if consumed({tape}):",
                  "        raise ValueError('llad.autodiff_thunk: this tape was already used by a reverse call; "
                  "run the forward thunk again')",
                  f"    consume({tape})",
                  f"    r = call({flat}, {_PHASE_REVERSE}, frame({tape}), {seed_value})"]
        derivs = ["None" if k is None else f"r[{k}]" for k in _derivative_positions(d)]
        lines.append(f"    return (({', '.join(derivs)},),)" if derivs else "    return ((),)")
    exec(compile("\n".join(lines), f"<llad {phase} thunk of {d.function_name}>", "exec"), namespace)
    _impls[key] = namespace["impl"]
    return _impls[key]


# --- the tape -------------------------------------------------------------------------------------------
_makers: dict = {}


def _tape_maker(d, argtypes: tuple, return_type):
    """An intrinsic `new_tape()`: a zeroed payload of flag + frame in a meminfo whose destructor runs the
    derivative's release phase unless the frame was consumed."""
    with _lock:
        if d.name in _makers:
            return _makers[d.name]
        size = _FLAG_BYTES + max(d.frame_bytes, 8)
        tape_type = TapeType(d.name)

        def codegen(context, builder, sig, args):
            context.add_linking_libs([d.library])
            dtor = _release_function(context, builder.module, d, argtypes, return_type)
            mi = context.nrt.meminfo_alloc_dtor(builder, context.get_constant(types.uintp, size), dtor)
            data = context.nrt.meminfo_data(builder, mi)
            cgutils.memset(builder, data, context.get_constant(types.uintp, size), 0)
            tape = cgutils.create_struct_proxy(tape_type)(context, builder)
            tape.meminfo = mi
            return tape._getvalue()

        @intrinsic
        def new_tape(typingctx):
            return tape_type(), codegen

        _makers[d.name] = new_tape
        return new_tape


def _release_function(context, module, d, argtypes: tuple, return_type):
    """`void dtor(ptr data, i64 size, ptr info)`: the release phase (it reads only the frame: the other
    arguments are zeros) unless the flag says a reverse call consumed the frame."""
    fnty = llir.FunctionType(llir.VoidType(), [cgutils.voidptr_t, context.get_value_type(types.uintp),
                                                cgutils.voidptr_t])
    fn = cgutils.get_or_insert_function(module, fnty, f"llad.tape.release.{d.name}")
    if not fn.is_declaration:
        return fn
    fn.linkage = "linkonce_odr"
    builder = llir.IRBuilder(fn.append_basic_block())
    data = fn.args[0]
    flag = builder.load(builder.bitcast(data, llir.IntType(64).as_pointer()))
    with builder.if_then(builder.icmp_unsigned("==", flag, llir.Constant(llir.IntType(64), 0))):
        callee_ty = context.call_conv.get_function_type(return_type, argtypes)
        callee = cgutils.get_or_insert_function(module, callee_ty, d.name)
        frame = builder.ptrtoint(builder.gep(data, [llir.Constant(llir.IntType(64), _FLAG_BYTES)]),
                                 llir.IntType(64))
        args = [context.get_constant_null(t) for t in argtypes[:-3]]
        args += [context.get_constant(types.int32, _PHASE_RELEASE), frame, context.get_constant_null(argtypes[-1])]
        context.call_conv.call_function(builder, callee, return_type, argtypes, args)
    builder.ret_void()
    return fn


def _payload(context, builder, tape_type, tape):
    st = cgutils.create_struct_proxy(tape_type)(context, builder, value=tape)
    return context.nrt.meminfo_data(builder, st.meminfo)


@intrinsic
def _tape_frame(typingctx, tape):
    def codegen(context, builder, sig, args):
        data = _payload(context, builder, sig.args[0], args[0])
        return builder.ptrtoint(builder.gep(data, [llir.Constant(llir.IntType(64), _FLAG_BYTES)]),
                                llir.IntType(64))
    return types.int64(tape), codegen


@intrinsic
def _tape_consumed(typingctx, tape):
    def codegen(context, builder, sig, args):
        data = _payload(context, builder, sig.args[0], args[0])
        flag = builder.load(builder.bitcast(data, llir.IntType(64).as_pointer()))
        return builder.icmp_unsigned("!=", flag, llir.Constant(llir.IntType(64), 0))
    return types.boolean(tape), codegen


@intrinsic
def _tape_consume(typingctx, tape):
    def codegen(context, builder, sig, args):
        data = _payload(context, builder, sig.args[0], args[0])
        builder.store(llir.Constant(llir.IntType(64), 1), builder.bitcast(data, llir.IntType(64).as_pointer()))
        return context.get_dummy_value()
    return types.none(tape), codegen


# --- autodiff_thunk itself --------------------------------------------------------------------------------
@type_callable(thunks.autodiff_thunk)
def _type_autodiff_thunk(context):
    def typer(*argtypes):
        typer.pysig = jitted._positional([f"a{i}" for i in range(len(argtypes))])
        return _make_pair(argtypes)[1]
    return typer


@lower_builtin(thunks.autodiff_thunk, types.VarArg(types.Any))
def _lower_autodiff_thunk(context, builder, sig, args):
    _make_pair(sig.args)
    values = [context.get_dummy_value() for _ in sig.return_type]
    return context.make_tuple(builder, sig.return_type, values)
