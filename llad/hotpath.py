"""The compiled call path: what `autodiff` runs for a call signature it has seen often.

The first calls of a signature go through the Python path in api.py, which checks each argument
(shapes, strides, overlaps) in Python and costs a few µs. After `TIER_UP_CALLS` of them, the signature
gets a small `@njit` wrapper that does the same checks in native code and shapes the result there, so
that a call from Python costs little more than Numba's own dispatch:

    autodiff(mode, f, *args)
      -> _hot[(mode, f, type(a0), ...)]        one dict lookup keyed on the annotations' classes
      -> hot(args)                              unpack .val/.dval, check scalars' exact Python types
      -> wrapper(values..., shadows...)         Numba's dispatcher checks each array's dtype/ndim/layout;
                                                the wrapper checks shadow shapes, strides and overlaps

Anything the compiled path does not cover raises `Miss` before the derivative runs (or Numba's
dispatcher raises TypeError for an array of another type), and `autodiff` takes the Python path,
which handles it (a copy, another variant, or the user's error).
"""
from __future__ import annotations

import re

import numba
from numba.core import types

from . import jit
from .annotations import Active, Const, Duplicated, DuplicatedNoNeed

# a signature gets its compiled path after this many calls through the Python path: compiling the
# wrapper costs tens of ms, which a signature called a handful of times would never earn back
TIER_UP_CALLS = 16


class Miss(Exception):
    """The compiled path does not cover this call (raised before the derivative runs)."""


def eligible(prepared) -> bool:
    """Whether a prepared signature can have a compiled path: one shadow per argument, not interleaved,
    guarded memory off."""
    plan = prepared.plan
    return (not prepared.batch and prepared.after is None and not plan.guard_memory and not plan.split
            and plan.width == 1
            and all(k in (None, Const, Active, Duplicated, DuplicatedNoNeed) for k in prepared.kinds))


class Signature:
    """One call signature with a compiled path: what the chain tests, and the wrapper it calls."""

    def __init__(self, prepared, ret, params: tuple):
        from .jitted import _result, overlaps  # jitted imports api, which imports this module
        plan, d = prepared.plan, prepared.derivative
        self.mode, self.ret, self.n = prepared.mode, ret, len(params) + (ret is not None)
        offset = 0 if ret is None else 1
        # what Python tests: each argument's exact class, and the exact type of each scalar inside an
        # annotation (Numba's dispatcher would convert an int to a float)
        self.classes = [(i + offset, type(a)) for i, a in enumerate(params)]
        self.scalars = []
        values, shadows, checks, arrays = [], [], [], {}
        for i, (kind, a) in enumerate(zip(prepared.kinds, params)):
            j = i + offset
            is_array = isinstance(plan.argtypes[i], types.Array)
            values.append(f"a{j}.val" if kind is not None else f"a{j}")
            if kind is not None and not is_array:
                self.scalars.append((f"a{j}.val", type(a.val)))
            arrays[(i, -1)] = f"v{i}"
            if kind in (Duplicated, DuplicatedNoNeed):
                shadows.append(f"a{j}.dval")
                if is_array:
                    arrays[(i, 0)] = f"s{i}"
                    checks += [f"s{i}.shape != v{i}.shape", f"s{i}.strides != v{i}.strides",
                               f"overlaps(s{i}, v{i})"]
                else:
                    self.scalars.append((f"a{j}.dval", type(a.dval)))
        checks += [f"overlaps({arrays[x]}, {arrays[y]})" for x, y in prepared.alias_pairs]
        self.call = ", ".join(values + shadows)
        names = [f"v{i}" for i in range(len(values))] + \
            [f"s{i}" for i, k in enumerate(prepared.kinds) if k in (Duplicated, DuplicatedNoNeed)]
        self.wrapper = _wrapper(plan, d, prepared.mode, names, checks, overlaps, _result)


def chain(signatures: list):
    """The compiled path of one function: a test per signature, in the order they tiered up; a call
    that matches none raises Miss (Numba's TypeError for arrays of other types goes on to the next)."""
    lines, namespace = ["def hot(mode, p):", "    n = len(p)"], {"Miss": Miss, "no_match": no_matching_definition}
    for k, sig in enumerate(signatures):
        namespace.update({f"M{k}": sig.mode, f"R{k}": sig.ret, f"W{k}": sig.wrapper})
        lines += [f"    if mode is M{k} and n == {sig.n}:",
                  f"        {', '.join(f'a{j}' for j in range(sig.n))}{',' if sig.n == 1 else ''} = p"]
        tests = [] if sig.ret is None else [f"a0 is R{k}"]
        for j, cls in sig.classes:
            namespace[f"C{k}_{j}"] = cls
            tests.append(f"type(a{j}) is C{k}_{j}")
        for m, (expr, t) in enumerate(sig.scalars):
            namespace[f"T{k}_{m}"] = t
            tests.append(f"type({expr}) is T{k}_{m}")
        lines += [f"        if {' and '.join(tests) or 'True'}:", "            try:",
                  f"                return W{k}({sig.call})",
                  "            except TypeError as e:    # an array of another type: the next signature",
                  "                if not no_match(e):",
                  "                    raise"]
    lines.append("    raise Miss")
    exec(compile("\n".join(lines), "<llad hot path>", "exec"), namespace)
    return namespace["hot"]


def _wrapper(plan, d, mode, names: list, checks: list, overlaps, result):
    """The @njit half: check what Numba's dispatcher does not, call the derivative, shape its result."""
    flat = ", ".join(names)
    lines = [f"def {_name(d.name)}({flat}):"]
    if checks:
        lines += [f"    if {' or '.join(checks)}:", "        raise Miss"]
    lines += [f"    r = call({flat})", f"    return {result(mode, plan, d, False)}"]
    ret = types.Tuple(d.output_types) if d.output_types else types.Tuple([types.int8])
    flat_types = tuple(plan.argtypes) + tuple(t for s in plan.shadowtypes for t in s)
    # the symbol resolves in the JIT engine that holds the derivative: nothing is linked or compiled again
    namespace = {"__name__": __name__, "Miss": Miss, "overlaps": overlaps,
                 "call": jit.make_caller(d.name, d.library, ret, flat_types, link=False)}
    exec(compile("\n".join(lines), f"<llad hot wrapper {d.name}>", "exec"), namespace)
    wrapper = numba.njit(namespace[_name(d.name)])
    wrapper.compile(flat_types)
    wrapper.disable_compile()
    return wrapper


def _name(symbol: str) -> str:
    return "hot_" + re.sub(r"\W", "_", symbol)


def no_matching_definition(e: TypeError) -> bool:
    """Whether a TypeError is Numba's dispatcher refusing the argument types (nothing ran)."""
    return str(e).startswith("No matching definition")
