"""`llad.autodiff` inside `@numba.njit` code.

Modes are compile-time constants (`ModeType`); annotations built in jitted code (`llad.Duplicated(x,
dx)`, `llad.Active(v)`, ...) are small structs (`AnnotationType`); a return activity passed as the class
itself (`llad.Active`) is typed as that class.  The overload of `autodiff` builds the plan from these
types at compile time, compiles the derivative through the same pipeline as a call from Python, and
calls it through an intrinsic that links the derivative's library into the caller's module, so LLVM
can inline and optimise across the boundary.

Differences from a call from Python: shadows must have the primal's shape and strides (checked at run
time, `ValueError` before anything is written); the overlap check that picks the variant assuming
disjoint arrays runs in jitted code (byte ranges); BatchDuplicated shadows stay split (no interleaving
copy).
"""
from __future__ import annotations

import dataclasses
import inspect

import numba
from numba.core import cgutils, types
from numba.core.errors import TypingError
from numba.core.imputils import lower_constant
from numba.extending import (
    lower_builtin,
    make_attribute_wrapper,
    models,
    register_model,
    type_callable,
    typeof_impl,
)

from . import api, jit
from .annotations import (
    RETURN_ACTIVITIES,
    Active,
    BatchDuplicated,
    Const,
    Duplicated,
    DuplicatedNoNeed,
    Mode,
)
from .config import config
from .plan import Act, Plan


# --- modes: compile-time constants ------------------------------------------------------------------
class ModeType(types.Dummy):
    def __init__(self, mode: Mode):
        self.mode = mode
        super().__init__(name=f"llad.{mode.name}")


@typeof_impl.register(Mode)
def _typeof_mode(val, c):
    return ModeType(val)


register_model(ModeType)(models.OpaqueModel)


@lower_constant(ModeType)
def _lower_mode(context, builder, ty, pyval):
    return context.get_dummy_value()


def _positional(names) -> inspect.Signature:
    return inspect.Signature([inspect.Parameter(n, inspect.Parameter.POSITIONAL_ONLY) for n in names])


# --- annotations: structs of their values ------------------------------------------------------------
class AnnotationType(types.Type):
    """An annotation built in jitted code: its class, and the types of its fields."""

    def __init__(self, cls, fields: tuple):
        self.cls, self.fields = cls, fields
        super().__init__(name=f"llad.{cls.__name__}({', '.join(f'{n}: {t}' for n, t in fields)})")

    def field(self, name: str):
        return dict(self.fields)[name]


class _AnnotationModel(models.StructModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, list(fe_type.fields))


register_model(AnnotationType)(_AnnotationModel)
for _name in ("val", "dval", "dvals"):
    make_attribute_wrapper(AnnotationType, _name, _name)

_FIELDS = {Const: ("val",), Active: ("val",), Duplicated: ("val", "dval"), DuplicatedNoNeed: ("val", "dval"),
           BatchDuplicated: ("val", "dvals")}


def _register_annotation(cls) -> None:
    names = _FIELDS[cls]

    @type_callable(cls)
    def _type(context):
        def typer(*args):
            if len(args) == len(names):
                return AnnotationType(cls, tuple(zip(names, args)))
        typer.pysig = _positional(names)       # lowering folds arguments by it: no `*args`
        return typer

    @lower_builtin(cls, *([types.Any] * len(names)))
    def _lower(context, builder, sig, args):
        st = cgutils.create_struct_proxy(sig.return_type)(context, builder)
        for name, ty, value in zip(names, sig.args, args):
            context.nrt.incref(builder, ty, value)        # the struct keeps a reference
            setattr(st, name, value)
        return st._getvalue()


for _cls in _FIELDS:
    _register_annotation(_cls)


# --- the overload of autodiff ---------------------------------------------------------------------
def _return_class(ty):
    """The annotation class a type stands for when a class itself is passed (`llad.Active`)."""
    key = getattr(ty, "typing_key", None)
    if isinstance(ty, (types.Function, types.NumberClass)) or key is not None:
        return key if key in RETURN_ACTIVITIES else None
    return None


def _classify(i: int, ty, reverse: bool):
    """-> (Act, primal type, shadow types, how to reach the primal and the shadows in jitted code)."""
    if isinstance(ty, AnnotationType):
        cls = ty.cls
        if cls in (Duplicated, DuplicatedNoNeed) and isinstance(ty.field("val"), types.Float):
            if reverse:
                raise TypingError(f"llad.autodiff: argument {i} is a float scalar annotated Duplicated; reverse modes "
                                  "take Active(x) for a float scalar")
            if ty.field("dval") != ty.field("val"):
                raise TypingError(f"llad.autodiff: the tangent of the float argument {i} must be a "
                                  f"{ty.field('val')}, got {ty.field('dval')}")
            return Act.DUP, ty.field("val"), (ty.field("dval"),), ("val", ["dval"])
        if cls in (Duplicated, DuplicatedNoNeed):
            _check_array(i, ty.field("val"), ty.field("dval"))
            return Act.DUP, ty.field("val"), (ty.field("dval"),), ("val", ["dval"])
        if cls is BatchDuplicated:
            dvals = ty.field("dvals")
            if reverse or not isinstance(dvals, (types.UniTuple, types.Tuple)) or not len(dvals):
                raise TypingError(f"llad.autodiff: BatchDuplicated(x, shadows) of argument {i} needs a forward mode "
                                  "and a non-empty tuple of shadow arrays")
            for d in dvals:
                _check_array(i, ty.field("val"), d)
            return Act.DUP, ty.field("val"), tuple(dvals), ("val", [f"dvals[{j}]" for j in range(len(dvals))])
        if cls is Active:
            if not reverse:
                raise TypingError(f"llad.autodiff: argument {i} is Active, which forward modes do not take")
            if not isinstance(ty.field("val"), types.Float):
                raise TypingError(f"llad.autodiff: Active is for float scalars; argument {i} is {ty.field('val')}")
            return Act.ACTIVE, ty.field("val"), (), ("val", [])
        return Act.CONST, ty.field("val"), (), ("val", [])
    if isinstance(ty, (types.Array, types.Number, types.Boolean, types.BaseTuple)):
        return Act.CONST, ty, (), (None, [])
    raise TypingError(f"llad.autodiff: argument {i} has type {ty}, which llad cannot differentiate through")


def _check_array(i: int, val, dval) -> None:
    if not isinstance(val, types.Array) or not isinstance(val.dtype, types.Float):
        raise TypingError(f"llad.autodiff: Duplicated argument {i} must be a float array, got {val}")
    if not isinstance(dval, types.Array) or dval.dtype != val.dtype or dval.ndim != val.ndim:
        raise TypingError(f"llad.autodiff: the shadow of argument {i} is {dval} but the array is {val}; they must "
                          "have the same dtype and number of dimensions")


def _plan(mode: Mode, dispatcher, ret_cls, classified) -> Plan:
    argtypes = tuple(t for _, t, _, _ in classified)
    if ret_cls is None:
        try:
            ret_tag = api._default_return(dispatcher, argtypes, mode)
        except TypeError as e:
            raise TypingError(str(e)) from None
    else:
        ret_tag = RETURN_ACTIVITIES[ret_cls]
        if ret_tag is Act.ACTIVE and not mode.reverse:
            raise TypingError("llad.autodiff: return activity Active is for reverse modes")
        if ret_tag is Act.DUP and mode.reverse:
            raise TypingError("llad.autodiff: return activity Duplicated is for forward modes")
    widths = {len(s) for a, _, s, _ in classified if a is Act.DUP}
    if len(widths) > 1:
        raise TypingError("llad.autodiff: every BatchDuplicated argument must have the same number of shadows")
    return Plan(mode.reverse, mode.with_primal, ret_tag, tuple(a for a, _, _, _ in classified), argtypes,
                tuple(s for _, _, s, _ in classified), widths.pop() if widths else 1, assume_noalias=False,
                vector_math=config.vector_math, skip_zero_adjoints=mode.reverse)


def _caller(d, plan: Plan):
    """An intrinsic calling derivative `d` with the flat (primal, shadow) arguments, its library linked
    into the caller."""
    ret = types.Tuple(d.output_types) if d.output_types else types.Tuple([types.int8])
    flat = tuple(plan.argtypes) + tuple(t for s in plan.shadowtypes for t in s)
    return jit.make_caller(d.name, d.library, ret, flat, link=True)


def _prepare(argtypes: tuple):
    """Plan, derivative and argument layout for `autodiff(*argtypes)` in jitted code (cached per types)."""
    key = tuple(argtypes)
    hit = _prepared.get(key)
    if hit is not None:
        return hit
    if len(argtypes) < 2 or not isinstance(argtypes[0], ModeType):
        raise TypingError("llad.autodiff: the first argument must be a mode (llad.Forward, llad.Reverse, ...), "
                          f"got {argtypes[0] if argtypes else 'nothing'}")
    mode, f, args = argtypes[0], argtypes[1], argtypes[2:]
    if not isinstance(f, types.Dispatcher):
        raise TypingError(f"llad.autodiff inside @njit needs a global @numba.njit function to differentiate, got {f}")
    m, dispatcher = mode.mode, f.dispatcher
    if m.split:
        raise TypingError(f"llad.autodiff: {m!r} is a split mode; split-mode thunks (llad.autodiff_thunk) are "
                          "called from Python only")
    ret_cls = _return_class(args[0]) if args else None
    params = args[1:] if ret_cls is not None else args
    try:
        api._check_arity(dispatcher, len(params))
    except TypeError as e:
        raise TypingError(str(e)) from None
    classified = [_classify(i, t, m.reverse) for i, t in enumerate(params)]
    plan = _plan(m, dispatcher, ret_cls, classified)
    no_need = tuple(not m.reverse and isinstance(t, AnnotationType) and t.cls is DuplicatedNoNeed
                    and isinstance(t.field("val"), types.Array) for t in params)
    if any(no_need):
        plan = dataclasses.replace(plan, no_need=no_need)
    d = api._get_derivative(dispatcher, plan)
    fast = None
    if sum(len(s) for _, _, s, _ in classified) <= api.MAX_NOALIAS_SHADOWS:
        # the variant that assumes disjoint arrays, taken when a check at run time finds them disjoint
        fast = api._get_derivative(dispatcher, dataclasses.replace(plan, assume_noalias=True))
    impl = _implementation(m, plan, d, fast, classified, len(argtypes), offset=3 if ret_cls is not None else 2)
    hit = _prepared[key] = (impl, _result_type(m, plan, d, classified))
    return hit


_prepared: dict = {}


@type_callable(api.autodiff)
def _type_autodiff(context):
    def typer(*argtypes):
        # Numba folds the call's arguments by the typer's Python signature: give it this call's arity,
        # all positional (a `*args` signature would make lowering expect one tuple)
        typer.pysig = _positional([f"a{i}" for i in range(len(argtypes))])
        return _prepare(argtypes)[1]
    return typer


@lower_builtin(api.autodiff, types.VarArg(types.Any))
def _lower_autodiff(context, builder, sig, args):
    impl, _ = _prepare(sig.args)
    return context.compile_internal(builder, impl, sig, args)


def _result_type(mode: Mode, plan: Plan, d, classified):
    """The numba type of autodiff's result (what `_result` builds)."""
    outs = list(d.output_types)
    pos = 1 if d.has_primal_output else 0
    primal = outs[0] if d.has_primal_output else types.none
    if mode.reverse:
        derivs, k = [], pos
        for a in plan.activities:
            if a is Act.ACTIVE:
                derivs.append(outs[k])
                k += 1
            else:
                derivs.append(types.none)
        inner = types.Tuple(derivs)
        return types.Tuple([inner, primal]) if mode.with_primal else types.Tuple([inner])
    if plan.ret_activity is Act.DUP:
        lanes = outs[pos:pos + plan.width]
        tangent = types.Tuple(lanes) if _is_batch(classified) else lanes[0]
    else:
        tangent = types.none
    return types.Tuple([tangent, primal]) if mode.with_primal else types.Tuple([tangent])


def _is_batch(classified) -> bool:
    return any(dvals and dvals[0].startswith("dvals") for _, _, _, (_, dvals) in classified)


def _implementation(mode: Mode, plan: Plan, d, fast, classified, n: int, offset: int):
    """The jitted body: check shadows, call the derivative (`fast`, when given and the arrays it needs
    disjoint are), shape its result as `autodiff` does."""
    lines = [f"def impl({', '.join(f'a{i}' for i in range(n))}):"]
    values, shadows = [], []
    for i, (_, _, _, (val, dvals)) in enumerate(classified):
        a = f"a{i + offset}"
        v = f"{a}.{val}" if val else a
        values.append(v)
        for j, dv in enumerate(dvals):
            s = f"s{i}_{j}"
            lines.append(f"    {s} = {a}.{dv}")
            if isinstance(plan.argtypes[i], types.Array):
                lines += [f"    if {s}.shape != {v}.shape or {s}.strides != {v}.strides:",
                          f"        raise ValueError('llad.autodiff: the shadow of argument {i} must have the "
                          "shape and strides of its array')"]
            shadows.append(s)
    flat = ", ".join(values + shadows)
    namespace = {"call": _caller(d, plan), "overlaps": overlaps}
    if fast is not None:
        arrays = {}
        for i, (_, _, _, (_, dvals)) in enumerate(classified):
            arrays[(i, -1)] = values[i]
            arrays.update(((i, j), f"s{i}_{j}") for j in range(len(dvals)))
        tests = " or ".join(f"overlaps({arrays[p]}, {arrays[q]})" for p, q in fast.alias_pairs) or "False"
        namespace["call_fast"] = _caller(fast, dataclasses.replace(plan, assume_noalias=True))
        lines += [f"    if {tests}:", f"        r = call({flat})", "    else:", f"        r = call_fast({flat})"]
    else:
        lines.append(f"    r = call({flat})")
    lines.append(f"    return {_result(mode, plan, d, _is_batch(classified))}")
    exec(compile("\n".join(lines), "<llad autodiff in njit>", "exec"), namespace)
    return namespace["impl"]


@numba.njit(cache=False)
def _extent(a):
    """The byte range [lo, hi) an array's elements occupy."""
    lo = hi = a.ctypes.data
    if a.size == 0:
        return lo, lo
    for k in range(a.ndim):
        span = a.strides[k] * (a.shape[k] - 1)
        if span < 0:
            lo += span
        else:
            hi += span
    return lo, hi + a.itemsize


@numba.njit(cache=False)
def overlaps(a, b) -> bool:
    """Whether two arrays' byte ranges overlap (what the Python path's `np.may_share_memory` tests)."""
    alo, ahi = _extent(a)
    blo, bhi = _extent(b)
    return alo < bhi and blo < ahi


def _result(mode: Mode, plan: Plan, d, batch: bool) -> str:
    """The expression shaping the derivative's tuple `r` into autodiff's result."""
    pos = 1 if d.has_primal_output else 0
    primal = "r[0]" if d.has_primal_output else "None"
    if mode.reverse:
        derivs, k = [], pos
        for a in plan.activities:
            if a is Act.ACTIVE:
                derivs.append(f"r[{k}]")
                k += 1
            else:
                derivs.append("None")
        inner = f"({', '.join(derivs)},)" if derivs else "()"
        return f"({inner}, {primal})" if mode.with_primal else f"({inner},)"
    if plan.ret_activity is Act.DUP:
        lanes = [f"r[{pos + j}]" for j in range(plan.width)]
        tangent = f"({', '.join(lanes)},)" if batch else lanes[0]
    else:
        tangent = "None"
    return f"({tangent}, {primal})" if mode.with_primal else f"({tangent},)"
