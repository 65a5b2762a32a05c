"""User-defined derivative rules: `llad.custom_jvp` and `llad.custom_vjp` (JAX's names).

A decorated `@njit` function stays a call in the primal llad differentiates (the pre-AD pipeline marks
it `noinline`).  Its float result, which Numba's calling convention returns through a stack slot, is
routed through a pseudo-call `@llad.custom.value.<callee>(value, args...)`: the identity on `value`,
whose entry in the rules table (`llad.rules.RULES`) gives the partial derivative with respect to each
argument.  Forward and reverse mode (and vector mode, split mode, derivatives inside `@njit`) read that
table as they read `exp`'s, so nothing in the generators knows about custom rules.

A partial is one call of an `@njit` helper llad generates from the user's rule:

    jvp rule:     d_i(a...) = jvp(a..., t...)[1]  with t_i = 1, the other float tangents 0, None for ints
    vjp rule:     d_i(a...) = bwd(fwd(a...)[1], 1.0, None...)[i]

compiled for the call's argument types, linked into the derivative, and called through a small
`alwaysinline` wrapper that owns the helper's return slot.  A jvp rule is linear in its tangents (the
API's contract), so these partials are exact, and one rule serves every mode.

This file handles float and integer arguments and a float result.  A function with array arguments goes
to custom_arrays.py, where the rule replaces the call in each sweep (partials of arrays would not do);
anything else is refused with a `NoRuleError` naming it.  Known limit: an exception raised inside a
scalar rule's helper is not propagated (the partial is then 0).  See docs/custom-rules.md.
"""
from __future__ import annotations

import inspect
import itertools
import threading

import numba
import numpy as np
from numba.core import types

from . import custom_arrays
from .errors import DifferentiationError, NoRuleError
from .ir.builder import Builder, new_function
from .ir.model import Function, Instruction, Module, Operand, ref
from .rules import RULES, Rule

VALUE_PREFIX = "llad.custom.value."
_CONVERTERS = {types.float64: numba.njit(lambda v: np.float64(v)), types.float32: numba.njit(lambda v: np.float32(v))}
PARTIAL_PREFIX = "llad.custom.d"

_rules: dict = {}              # dispatcher -> CustomRule
_lock = threading.RLock()


class CustomRule:
    """The rules registered for one `@njit` function."""

    def __init__(self, dispatcher, kind: str):
        self.dispatcher, self.kind = dispatcher, kind
        self.jvp = self.fwd = self.bwd = None
        self._helpers: dict = {}          # (argtypes, i) -> (mangled name, library)
        self._arity = len(inspect.signature(dispatcher.py_func).parameters)

    @property
    def name(self) -> str:
        return self.dispatcher.py_func.__name__

    @property
    def defined(self) -> bool:
        return self.jvp is not None if self.kind == "jvp" else self.bwd is not None

    def defjvp(self, jvp):
        _check_arity(jvp, 2 * self._arity, f"the jvp rule of {self.name}",
                     f"{_count(self._arity)}, then {'its tangent' if self._arity == 1 else 'their tangents'}")
        self.jvp = _as_njit(jvp, "defjvp")
        return jvp

    def defvjp(self, fwd, bwd):
        _check_arity(fwd, self._arity, f"the fwd rule of {self.name}", f"the {self._arity} arguments of {self.name}")
        _check_arity(bwd, self._arity + 2, f"the bwd rule of {self.name}",
                     f"the residuals, the result's cotangent, then {self._arity} shadows")
        self.fwd, self.bwd = _as_njit(fwd, "defvjp"), _as_njit(bwd, "defvjp")
        return fwd

    def partial_helper(self, argtypes: tuple, i: int, result_type):
        """(mangled name, library) of the @njit function computing d f / d argument i."""
        key = (argtypes, i, result_type)
        with _lock:
            if key not in self._helpers:
                self._helpers[key] = self._compile_partial(argtypes, i, result_type)
        return self._helpers[key]

    def _compile_partial(self, argtypes: tuple, i: int, result_type):
        """The partial as the call's result type (the derivative code multiplies it by tangents and
        adjoints of that type; a rule for float32 arguments may compute it in float64, or the reverse)."""
        args = [f"a{j}" for j in range(len(argtypes))]
        if self.kind == "jvp":
            tangents = ["1.0" if j == i else "0.0" if isinstance(t, types.Float) else "None"
                        for j, t in enumerate(argtypes)]
            body = f"    return as_result(rule({', '.join(args + tangents)})[1])\n"
            namespace = {"rule": self.jvp}
        else:
            body = (f"    residuals = fwd({', '.join(args)})[1]\n"
                    f"    return as_result(bwd(residuals, 1.0{', None' * len(args)})[{i}])\n")
            namespace = {"fwd": self.fwd, "bwd": self.bwd}
        namespace["as_result"] = _CONVERTERS[result_type]
        src = f"def partial({', '.join(args)}):\n{body}"
        exec(compile(src, f"<llad partial {i} of {self.name}>", "exec"), namespace)
        helper = numba.njit(namespace["partial"])
        try:
            helper.compile(argtypes)
        except numba.core.errors.TypingError as e:
            raise DifferentiationError(f"the {self.kind} rule of {self.name}", _where(self.dispatcher),
                                       f"it does not compile for arguments {argtypes}: "
                                       f"{str(e).strip().splitlines()[0]}") from None
        cres = helper.overloads[argtypes]
        return cres.fndesc.llvm_func_name, cres.library


def _where(dispatcher) -> str:
    code = dispatcher.py_func.__code__
    return f"{code.co_filename}:{code.co_firstlineno}"


def _check_arity(fn, n: int, what: str, expected: str) -> None:
    py = getattr(fn, "py_func", fn)
    if not callable(py):
        raise TypeError(f"llad: {what} must be a function, got {fn!r}")
    params = list(inspect.signature(py).parameters.values())
    if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params):
        return
    if len(params) != n:
        raise TypeError(f"llad: {what} ({getattr(py, '__name__', py)}) takes {_count(len(params))}; it must take "
                        f"{n}: {expected}")


def _count(n: int) -> str:
    return f"{n} argument" + ("" if n == 1 else "s")


def _as_njit(fn, what: str):
    if isinstance(fn, numba.core.registry.CPUDispatcher):
        return fn
    if callable(fn) and hasattr(fn, "__code__"):
        return numba.njit(fn)
    raise TypeError(f"llad: {what} takes @numba.njit functions, got {fn!r}")


def _decorate(f, kind: str):
    from .frontend import as_dispatcher
    if not isinstance(f, numba.core.registry.CPUDispatcher):
        raise TypeError(f"llad.custom_{kind}: decorate a @numba.njit function (put @llad.custom_{kind} above "
                        f"@numba.njit), got {type(f).__name__}")
    dispatcher = as_dispatcher(f)
    rule = CustomRule(dispatcher, kind)
    with _lock:
        _rules[dispatcher] = rule
    if kind == "jvp":
        dispatcher.defjvp = rule.defjvp
    else:
        dispatcher.defvjp = rule.defvjp
    return dispatcher


def custom_jvp(f):
    """Mark an @njit function as having a user jvp rule (`f.defjvp(jvp)`); calls to it stay calls."""
    return _decorate(f, "jvp")


def custom_vjp(f):
    """Mark an @njit function as having a user vjp rule (`f.defvjp(fwd, bwd)`); calls to it stay calls."""
    return _decorate(f, "vjp")


# --- the frontend's side: which calls stay calls, and routing their results ------------------------------

def callees() -> dict:
    """mangled name -> (CustomRule, compile result), for every compiled overload of a decorated function."""
    out = {}
    with _lock:
        for dispatcher, rule in _rules.items():
            for cres in dispatcher.overloads.values():
                out[cres.fndesc.llvm_func_name] = (rule, cres)
    return out


_entries: dict = {}             # decorated dispatcher -> an @njit function that calls it


def has_rule(dispatcher) -> bool:
    with _lock:
        return dispatcher in _rules


def entry_for(dispatcher):
    """What llad differentiates when f itself is decorated: a function that calls f (so the call, and
    with it the rule, is what gets differentiated); f itself otherwise."""
    with _lock:
        if dispatcher not in _rules:
            return dispatcher
        if dispatcher not in _entries:
            rule = _rules[dispatcher]
            args = ", ".join(f"a{j}" for j in range(rule._arity))
            namespace = {"f": dispatcher}
            exec(compile(f"def entry({args}):\n    return f({args})\n", f"<llad entry of {rule.name}>", "exec"),
                 namespace)
            _entries[dispatcher] = numba.njit(namespace["entry"])
        return _entries[dispatcher]


def is_custom_callee(name: str) -> bool:
    with _lock:
        return bool(_rules) and name in callees()


def route_results(fn: Function, location, module_text: str = "") -> None:
    """For each call of a decorated function: its result's loads go through `@llad.custom.value.<callee>`,
    whose rule (defined here) gives the partials."""
    known = callees()
    if not known:
        return
    loads: dict[str, list[Instruction]] = {}
    for block in fn.blocks:
        for ins in block.instructions:
            if ins.opcode == "load" and ins.operands[0].is_local:
                loads.setdefault(ins.operands[0].name, []).append(ins)
    changed = False
    for block in fn.blocks:
        for ins in list(block.instructions):
            if ins.opcode != "call" or ins.callee not in known:
                continue
            rule, cres = known[ins.callee]
            where = location(ins)
            if not rule.defined:
                raise NoRuleError(f"a call to `{rule.name}`", where,
                                  f"it is decorated with llad.custom_{rule.kind} but no rule was registered "
                                  f"(use {rule.name}.def{rule.kind}(...))")
            sig = cres.signature
            if custom_arrays.has_arrays(sig):
                changed |= custom_arrays.route(fn, ins, rule, cres, loads, location, module_text)
                continue
            if not isinstance(sig.return_type, types.Float) or not all(
                    isinstance(t, (types.Float, types.Integer, types.Boolean)) for t in sig.args):
                raise NoRuleError(f"a call to `{rule.name}{tuple(str(t) for t in sig.args)} -> {sig.return_type}`",
                                  where, "llad's custom rules take float, integer and array arguments and a "
                                  "float result (or None, with array arguments)")
            slot = ins.operands[0]
            _define_rule(ins.callee, rule, sig, [o.type for o in ins.operands[2:]])
            fn.opaque_result_slots.add(slot.name)
            for load in loads.get(slot.name, []):
                _route(load, ins)
                changed = True
    if changed:
        fn.reindex()


def _route(load: Instruction, call: Instruction) -> None:
    """`%v = load T, ptr %slot` -> `%v.raw = load ...; %v = call T @llad.custom.value.<callee>(%v.raw, args)`."""
    raw = f"{load.result}.raw"
    value = Instruction(opcode="call", result=load.result, type=load.type,
                        operands=[Operand(load.type, ref(raw))] + list(call.operands[2:]),
                        callee=VALUE_PREFIX + call.callee)
    load.result = raw
    target = load.block
    target.instructions.insert(target.instructions.index(load) + 1, value)


def _define_rule(callee: str, rule: CustomRule, sig, llvm_types: list[str]) -> None:
    name = VALUE_PREFIX + callee
    if name in RULES:
        return
    argtypes = tuple(sig.args)
    partials = [None]                      # operand 0: the value the call wrote (no derivative of its own)
    for i, t in enumerate(argtypes):
        partials.append(_partial(callee, rule, argtypes, llvm_types, i, sig.return_type)
                        if isinstance(t, types.Float) else None)
    RULES[name] = Rule(tuple(partials))


def _partial(callee: str, rule: CustomRule, argtypes: tuple, llvm_types: list[str], i: int, result_type):
    def emit(b: Builder, ty: str, primal) -> str:
        helper, library = rule.partial_helper(argtypes, i, result_type)
        wrapper = f"{PARTIAL_PREFIX}{i}.{callee}"
        if wrapper not in b.module.carried and not any(f.name == wrapper for f in b.module.functions):
            _define_wrapper(b.module, wrapper, helper, ty, llvm_types)
            b.module.libraries.append(library)
        args = [(t, primal.arg(j + 1)) for j, t in enumerate(llvm_types)]
        return b.call(ty, wrapper, args)
    return emit


def _define_wrapper(module: Module, name: str, helper: str, ty: str, llvm_types: list[str]) -> None:
    """`ty @name(args)`: the helper's result, through its Numba-ABI return slot."""
    b = new_function(name, ty, [(t, f"a{j}") for j, t in enumerate(llvm_types)], module,
                     attributes="alwaysinline", linkage="internal")
    slot = b.alloca(ty)
    excinfo = b.alloca("ptr")
    b.store(ty, "0.0" if ty in ("double", "float") else "0", slot)
    b.call("i32", helper, [("ptr", slot), ("ptr", excinfo)] + [(t, f"%a{j}") for j, t in enumerate(llvm_types)])
    b.ret(ty, b.load(ty, slot))


def define_values(module: Module, fn: Function) -> None:
    """The pseudo-calls' definitions: the identity on their first operand (inlined away by LLVM)."""
    seen = set()
    for ins in itertools.chain.from_iterable(b.instructions for b in fn.blocks):
        if ins.opcode == "call" and ins.callee.startswith(VALUE_PREFIX) and ins.callee not in seen:
            seen.add(ins.callee)
            b = new_function(ins.callee, ins.type, [(o.type, f"a{j}") for j, o in enumerate(ins.operands)], module,
                             attributes="alwaysinline", linkage="internal")
            b.ret(ins.type, "%a0")
