"""Bad inputs: wrong annotations and code llad cannot differentiate.

Every row of the table in docs/errors.md is one `Case` here.  For each case the test checks:

* the exception type: TypeError / ValueError for a wrong annotation, `llad.DifferentiationError` (or a
  subclass) for code llad cannot differentiate;
* the message (a regular expression); for code errors, that it names the operation and a Python
  `file:line` inside the function;
* that no array passed in (primal or shadow) was written;
* for annotation errors, that nothing was compiled (`llad.api.compile_count` unchanged); for code
  errors, that no derivative was cached either;
* that a second identical call raises the same error (nothing half-built was cached).

`python tests/test_bad_inputs.py` prints the table of docs/errors.md from the real messages.

Cases marked `bug=` are llad bugs (a crash, a wrong exception type, a silently wrong derivative); their
tests are strict xfails describing the bug.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import math
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass

import numba
import numpy as np
import pytest

import llad
from llad import (
    Active,
    BatchDuplicated,
    Const,
    DifferentiationError,
    Duplicated,
    DuplicatedNoNeed,
    Forward,
    ForwardWithPrimal,
    Reverse,
    ReverseWithPrimal,
    api,
)

HERE = os.path.abspath(__file__)
REPO = os.path.dirname(os.path.dirname(HERE))


# ------------------------------------------------------------------------------------------ kernels

@numba.njit
def sumsq(x):
    s = 0.0
    for i in range(x.shape[0]):
        s += x[i] * x[i]
    return s


@numba.njit
def mul(a, b):
    return a * b


@numba.njit
def scale_into(x, y):
    for i in range(x.shape[0]):
        y[i] = 2.0 * x[i]
    return y[0]


@numba.njit
def in_place(x):
    x[0] = x[0] * 2.0


@numba.njit
def three(x):
    return 3


@numba.njit
def pair(x):
    return x[0], x[1]


@numba.njit
def doubled(x):
    return x * 2.0


@numba.njit
def view_of_second(x, c):
    x[0] = x[1] * 2.0
    return c[1:]


@numba.njit
def uses_missing_attribute(x):
    return x.no_such_attribute + 1.0


@numba.njit
def next_after(x):
    return np.nextafter(x[0], 2.0)


@numba.njit
def ldexp(x):
    return math.ldexp(x[0], 2)


@numba.njit
def frexp(x):
    return math.frexp(x[0])[0]


_libm = ctypes.CDLL(ctypes.util.find_library("m"))
_c_cbrt = _libm.cbrt
_c_cbrt.restype = ctypes.c_double
_c_cbrt.argtypes = (ctypes.c_double,)


@numba.njit
def ctypes_cbrt(x):
    return _c_cbrt(x[0])


@numba.njit
def recursive_pair(x, n):
    if n <= 0:
        return 1.0, 0.0
    a, b = recursive_pair(x, n - 1)
    return x[0] * a, a + b


@numba.njit
def recursive_power(x, n):
    return recursive_pair(x, n)[0]


@numba.jit(forceobj=True)
def object_mode(x):
    return x[0] * 2.0


@numba.njit
def np_eigh(a):
    return np.linalg.eigh(a)[0][0]


@numba.vectorize
def ufunc_double(v):
    return v * 2.0


@numba.guvectorize(["void(float64[:], float64[:])"], "(n)->(n)")
def gufunc_double(v, out):
    for i in range(v.shape[0]):
        out[i] = v[i] * 2.0


@numba.cfunc("float64(float64)")
def cfunc_double(v):
    return v * 2.0


# ------------------------------------------------------------------------------------------- cases

def x3():
    return np.array([0.3, 0.7, 1.2])


def z3():
    return np.zeros(3)


def _readonly(a):
    a.setflags(write=False)
    return a


@dataclass
class Case:
    id: str
    what: str                                  # the bad input, for the table
    build: Callable[[], tuple]                 # -> (mode, f, args)
    exc: type
    match: str                                 # regex the message must contain
    code: object = None                        # code errors: the kernel (for file:line) ...
    op: str = ""                               # ... and the operation the message must name
    bug: str = ""                              # a known llad bug: strict xfail

    @property
    def kind(self) -> str:
        return "code" if self.code is not None else "annotation"


_ = None
CASES = [
    # --- Active ---
    Case("active-array", "`Active` on an array", lambda: (Reverse, sumsq, [Active(x3())]), TypeError,
         r"Active is for float scalars; argument 0 is float64\[3\] array \(use Duplicated"),
    Case("active-int", "`Active` on an int", lambda: (Reverse, mul, [Active(2), Active(1.0)]), TypeError,
         r"Active is for float scalars; argument 0 is int"),
    Case("active-bool", "`Active` on a bool", lambda: (Reverse, mul, [Active(True), Active(1.0)]), TypeError,
         r"argument 0 is bool"),
    Case("active-complex", "`Active` on a complex number", lambda: (Reverse, mul, [Active(1j), Active(1.0)]),
         TypeError, r"argument 0 is complex"),
    Case("active-tuple", "`Active` on a tuple", lambda: (Reverse, mul, [Active((1.0, 2.0)), Active(1.0)]),
         TypeError, r"argument 0 is tuple"),
    Case("active-forward", "`Active` argument in `Forward`", lambda: (Forward, mul, [Active(1.0), 2.0]),
         TypeError, r"argument 0 is Active, which forward modes do not take"),
    Case("active-forward-primal", "`Active` argument in `ForwardWithPrimal`",
         lambda: (ForwardWithPrimal, mul, [2.0, Active(1.0)]), TypeError,
         r"argument 1 is Active, which forward modes do not take"),
    # --- shadows ---
    Case("shadow-shape", "shadow of another shape", lambda: (Reverse, sumsq, [Duplicated(x3(), np.zeros(4))]),
         ValueError, r"shadow of argument 0 is float64\[4\] array but the array is float64\[3\] array"),
    Case("shadow-dtype", "shadow of another dtype",
         lambda: (Reverse, sumsq, [Duplicated(x3(), np.zeros(3, np.float32))]), ValueError,
         r"shadow of argument 0 is float32\[3\] array but the array is float64\[3\] array"),
    Case("shadow-ndim", "shadow of another ndim", lambda: (Reverse, sumsq, [Duplicated(x3(), np.zeros((3, 1)))]),
         ValueError, r"float64\[3, 1\] array but the array is float64\[3\] array"),
    Case("shadow-readonly", "read-only shadow",
         lambda: (Reverse, sumsq, [Duplicated(x3(), _readonly(z3()))]), ValueError,
         r"shadow of argument 0 is read-only"),
    Case("shadow-readonly-noneed", "read-only shadow (`DuplicatedNoNeed`, `Forward`)",
         lambda: (Forward, sumsq, [DuplicatedNoNeed(x3(), _readonly(z3()))]), ValueError,
         r"shadow of argument 0 is read-only"),
    Case("shadow-is-primal", "the shadow is the primal array itself",
         lambda: (lambda x: (Reverse, sumsq, [Duplicated(x, x)]))(x3()), ValueError,
         r"shadow of argument 0 shares memory with the array itself"),
    Case("shadow-view", "the shadow is a view of the primal (`x[::-1]`)",
         lambda: (lambda x: (Reverse, sumsq, [Duplicated(x, x[::-1])]))(x3()), ValueError,
         r"shares memory with the array itself"),
    Case("shadow-overlap", "the shadow overlaps the primal (`buf[:3]`, `buf[2:5]`)",
         lambda: (lambda b: (Reverse, sumsq, [Duplicated(b[:3], b[2:5])]))(np.arange(6.0)), ValueError,
         r"shares memory with the array itself"),
    Case("shadow-list", "the shadow is a list", lambda: (Reverse, sumsq, [Duplicated(x3(), [0.0, 0.0, 0.0])]),
         TypeError, r"the shadow of argument 0 must be a numpy array, got list"),
    Case("dup-scalar", "`Duplicated` on a float in a reverse mode",
         lambda: (Reverse, mul, [Duplicated(1.0, 0.0), Active(1.0)]),
         TypeError, r"argument 0 is a float scalar annotated Duplicated; reverse modes take Active\(x\)"),
    Case("dup-int-array", "`Duplicated` on an int64 array",
         lambda: (Reverse, sumsq, [Duplicated(np.arange(3), np.zeros(3, np.int64))]), TypeError,
         r"argument 0 \(Duplicated\) must have dtype float32 or float64, got int64"),
    Case("dup-float16", "`Duplicated` on a float16 array",
         lambda: (Reverse, sumsq, [Duplicated(x3().astype(np.float16), np.zeros(3, np.float16))]), TypeError,
         r"must have dtype float32 or float64, got float16"),
    Case("dup-complex", "`Duplicated` on a complex128 array",
         lambda: (Reverse, sumsq, [Duplicated(np.ones(3, complex), np.zeros(3, complex))]), TypeError,
         r"must have dtype float32 or float64, got complex128"),
    # --- BatchDuplicated ---
    Case("batch-unequal", "`BatchDuplicated` with shadows of unequal shapes",
         lambda: (Forward, sumsq, [BatchDuplicated(x3(), (z3(), np.zeros(4)))]), ValueError,
         r"shadow of argument 0 is float64\[4\] array but the array is float64\[3\] array"),
    Case("batch-empty", "`BatchDuplicated` with an empty tuple",
         lambda: (Forward, sumsq, [BatchDuplicated(x3(), ())]), TypeError,
         r"BatchDuplicated\(x, shadows\) of argument 0 needs a non-empty tuple of shadow arrays"),
    Case("batch-not-tuple", "`BatchDuplicated` with one array instead of a tuple",
         lambda: (Forward, sumsq, [BatchDuplicated(x3(), z3())]), TypeError,
         r"needs a non-empty tuple of shadow arrays"),
    Case("batch-reverse", "`BatchDuplicated` in `Reverse`",
         lambda: (Reverse, sumsq, [BatchDuplicated(x3(), (z3(), z3()))]), TypeError,
         r"BatchDuplicated is a forward-mode annotation"),
    Case("batch-widths", "two `BatchDuplicated` with different numbers of shadows",
         lambda: (Forward, scale_into, [BatchDuplicated(x3(), (z3(), z3())), BatchDuplicated(z3(), (z3(),))]),
         ValueError, r"every BatchDuplicated argument must have the same number of shadows"),
    # --- arity ---
    Case("too-few", "too few arguments", lambda: (Reverse, mul, [Active(1.0)]), TypeError,
         r"mul takes 2 arguments, 1 was annotated"),
    Case("too-many", "too many arguments", lambda: (Reverse, mul, [Active(1.0), Active(1.0), Active(2.0)]),
         TypeError, r"mul takes 2 arguments, 3 were annotated"),
    Case("no-args", "no arguments", lambda: (Reverse, sumsq, []), TypeError, r"sumsq takes 1 arguments, 0"),
    # --- argument types ---
    Case("list-arg", "a list argument", lambda: (Reverse, mul, [[1.0], Active(1.0)]), TypeError,
         r"argument 0 has unsupported type list; llad takes numpy arrays, numbers and tuples of numbers"),
    Case("dict-arg", "a dict argument", lambda: (Reverse, mul, [{1: 2.0}, Active(1.0)]), TypeError,
         r"argument 0 has unsupported type dict"),
    Case("object-arg", "an `object()` argument", lambda: (Reverse, mul, [object(), Active(1.0)]), TypeError,
         r"argument 0 has unsupported type object"),
    Case("string-arg", "a string argument", lambda: (Reverse, mul, ["ab", Active(1.0)]), TypeError,
         r"argument 0 has unsupported type str"),
    Case("none-arg", "a `None` argument", lambda: (Reverse, mul, [None, Active(1.0)]), TypeError,
         r"argument 0 has unsupported type NoneType"),
    Case("object-array", "an object-dtype array", lambda: (Reverse, mul, [np.array([None]), Active(1.0)]),
         TypeError, r"argument 0 is an object array, which llad cannot compile"),
    Case("tuple-of-arrays", "a tuple holding an array", lambda: (Reverse, mul, [(x3(), x3()), Active(1.0)]),
         TypeError, r"argument 0 has unsupported type tuple"),
    # --- modes ---
    Case("mode-string", "a mode that is not a mode (`\"reverse\"`)",
         lambda: ("reverse", sumsq, [Duplicated(x3(), z3())]), TypeError,
         r"the first argument must be a mode \(llad.Forward, llad.Reverse, ...\), got 'reverse'"),
    Case("mode-none", "`None` as the mode", lambda: (None, sumsq, [Duplicated(x3(), z3())]), TypeError,
         r"must be a mode .* got None"),
    # --- annotation classes ---
    Case("class-not-instance", "the class `Active` instead of `Active(v)`",
         lambda: (Reverse, mul, [Active(1.0), Active]), TypeError,
         r"argument 1 is the class Active itself; wrap a value, e.g. Active\(x\)"),
    Case("class-first", "the class `Duplicated` as the only argument (read as a return activity)",
         lambda: (Reverse, sumsq, [Duplicated]), TypeError, r"sumsq takes 1 arguments, 0 were annotated"),
    # --- return activities ---
    Case("ret-batch", "`BatchDuplicated` as the return activity",
         lambda: (Forward, sumsq, [BatchDuplicated, Duplicated(x3(), z3())]), TypeError,
         r"BatchDuplicated cannot be a return activity"),
    Case("ret-active-forward", "return activity `Active` in `Forward`",
         lambda: (Forward, sumsq, [Active, Duplicated(x3(), z3())]), TypeError,
         r"return activity Active is for reverse modes"),
    Case("ret-dup-reverse", "return activity `Duplicated` in `Reverse`",
         lambda: (Reverse, sumsq, [Duplicated, Duplicated(x3(), z3())]), TypeError,
         r"return activity Duplicated is for forward modes"),
    Case("ret-active-none", "return activity `Active`, f returns None",
         lambda: (Reverse, in_place, [Active, Duplicated(x3(), z3())]), TypeError,
         r"return activity 'active' needs a float result, but in_place returns none; use Const"),
    Case("ret-active-int", "return activity `Active`, f returns an int",
         lambda: (Reverse, three, [Active, Duplicated(x3(), z3())]), TypeError,
         r"needs a float result, but three returns Literal\[int\]\(3\); use Const"),
    Case("ret-dup-int", "return activity `Duplicated` (`Forward`), f returns an int",
         lambda: (Forward, three, [Duplicated, Duplicated(x3(), z3())]), TypeError,
         r"return activity 'dup' needs a float result, but three returns"),
    Case("ret-active-tuple", "return activity `Active`, f returns a tuple",
         lambda: (Reverse, pair, [Active, Duplicated(x3(), z3())]), TypeError,
         r"needs a float result, but pair returns UniTuple\(float64 x 2\)"),
    Case("ret-active-array", "return activity `Active`, f returns an array",
         lambda: (Reverse, doubled, [Active, Duplicated(x3(), z3())]), TypeError,
         r"doubled returns array\(float64, 1d, C\); reverse modes seed a float result only\. Differentiate it "
         r"with llad\.autodiff_thunk"),
    Case("ret-array-reverse", "`Reverse` (default return activity), f returns an array",
         lambda: (Reverse, doubled, [Duplicated(x3(), z3())]), TypeError,
         r"doubled returns array\(float64, 1d, C\); .*or pass llad\.Const as the return activity"),
    # --- what f is ---
    Case("f-int", "`f` is not a function (an int)", lambda: (Reverse, 3, [Active(1.0)]), TypeError,
         r"expected a numba.njit function or a Python function, got int"),
    Case("f-builtin", "`f` is a builtin (`math.sin`)", lambda: (Reverse, math.sin, [Active(1.0)]), TypeError,
         r"got builtin_function_or_method"),
    Case("f-vectorize", "`f` is a `numba.vectorize` ufunc", lambda: (Reverse, ufunc_double, [Active(1.0)]),
         TypeError, r"got DUFunc"),
    Case("f-guvectorize", "`f` is a `numba.guvectorize` gufunc",
         lambda: (Reverse, gufunc_double, [Duplicated(x3(), z3()), Duplicated(z3(), z3())]), TypeError,
         r"got GUFunc"),
    Case("f-cfunc", "`f` is a `numba.cfunc`", lambda: (Reverse, cfunc_double, [Active(1.0)]), TypeError,
         r"got CFunc"),
    Case("numba-typing", "a function Numba cannot compile (typing error)",
         lambda: (Reverse, uses_missing_attribute, [Duplicated(x3(), z3())]), TypeError,
         r"Numba cannot compile uses_missing_attribute\('array\(float64, 1d, C\)',\): "
         r"(?s:.*)no_such_attribute"),
    # --- code llad cannot differentiate ---
    Case("nextafter", "`np.nextafter` (a Numba helper without a rule)",
         lambda: (Reverse, next_after, [Duplicated(x3(), z3())]), llad.NoRuleError,
         r"call to `numba_nextafter`", code=next_after, op="numba_nextafter"),
    Case("ldexp", "`math.ldexp`", lambda: (Forward, ldexp, [Duplicated(x3(), z3())]), llad.NoRuleError,
         r"call to `numba_ldexp`", code=ldexp, op="numba_ldexp"),
    Case("frexp", "`math.frexp`", lambda: (ReverseWithPrimal, frexp, [Duplicated(x3(), z3())]),
         llad.NoRuleError, r"call to `numba_frexp`", code=frexp, op="numba_frexp"),
    Case("const-store-reverse", "an active value stored into a `Const` array (`Reverse`)",
         lambda: (Reverse, scale_into, [Duplicated(x3(), z3()), Const(z3())]), llad.ActivityError,
         r"cannot differentiate `store double .*` at .*an active value is stored into an array annotated Const",
         code=scale_into, op="store double"),
    Case("const-store-forward", "an active value stored into a bare (`Const`) array (`Forward`)",
         lambda: (Forward, scale_into, [Duplicated(x3(), z3()), z3()]), llad.ActivityError,
         r"stored into an array annotated Const", code=scale_into, op="store double"),
    Case("ret-const-view-forward", "`Forward`, f returns a view of a `Const` array (it has no tangent)",
         lambda: (Forward, view_of_second, [Duplicated(x3(), z3()), Const(x3())]), llad.ActivityError,
         r"cannot differentiate the returned array at .*it is \(or views\) an array annotated Const",
         code=view_of_second, op="the returned array"),
    Case("ctypes", "a ctypes function pointer (libm `cbrt`)",
         lambda: (Reverse, ctypes_cbrt, [Duplicated(x3(), z3())]), DifferentiationError,
         r"cannot differentiate an indirect call \(.*ctypes/cffi function pointer\) at ", code=ctypes_cbrt,
         op="indirect call"),
    Case("recursion-tuple", "a recursive `@njit` function that returns a tuple",
         lambda: (Reverse, recursive_power, [Duplicated(x3(), z3()), 3]), llad.NoRuleError,
         r"cannot differentiate a call to `recursive_pair\(.*\) -> UniTuple\(float64 x 2\)` at .*: llad "
         r"differentiates a call it cannot inline \(recursion\) when the callee returns a float or None",
         code=recursive_power, op="recursive_pair"),
    Case("object-mode", "an object-mode function (`numba.jit(forceobj=True)`)",
         lambda: (Reverse, object_mode, [Duplicated(x3(), z3())]), DifferentiationError,
         r"cannot differentiate an object-mode function \(forceobj=True\) at .*nopython code only",
         code=object_mode, op="object-mode"),
    Case("np-eigh", "`np.linalg.eigh` (a LAPACK call without a rule)",
         lambda: (Reverse, np_eigh, [Duplicated(np.eye(3) + 0.1, np.zeros((3, 3)))]), llad.NoRuleError,
         r"call to `numba_ez_xxxevd`", code=np_eigh, op="numba_ez_xxxevd"),
]
CASE_IDS = [c.id for c in CASES]


# ------------------------------------------------------------------------------------------ the test

def _arrays(args) -> list[np.ndarray]:
    out = []

    def add(v):
        if isinstance(v, np.ndarray):
            if v.dtype != object and not any(v is o for o in out):
                out.append(v)
        elif isinstance(v, (tuple, list)):
            for e in v:
                add(e)

    for a in args:
        for attr in ("val", "dval", "dvals"):
            add(getattr(a, attr, None))
        add(a)
    return out


def _source_lines(fn) -> range:
    py = getattr(fn, "py_func", fn)
    lines, start = __import__("inspect").getsourcelines(py)
    return range(start, start + len(lines))


def run_case(case: Case):
    """Call llad on the case; returns the exception (or raises AssertionError if none came)."""
    mode, f, args = case.build()
    try:
        llad.autodiff(mode, f, *args)
    except Exception as e:      # noqa: BLE001
        return e
    raise AssertionError(f"{case.id}: no exception")


def _params():
    return [pytest.param(c, id=c.id, marks=[pytest.mark.xfail(strict=True, reason=f"llad bug: {c.bug}")]
                         if c.bug else []) for c in CASES]


@pytest.mark.parametrize("case", _params())
def test_bad_input(case: Case):
    for _attempt in range(2):                                # the second call must fail the same way
        mode, f, args = case.build()
        arrays = _arrays(args)
        before = [a.copy() for a in arrays]
        compiled = api.compile_count["n"]
        cached = len(api._cache)
        with pytest.raises(Exception) as info:
            llad.autodiff(mode, f, *args)
        e = info.value
        assert isinstance(e, case.exc), f"expected {case.exc.__name__}, got {type(e).__name__}: {e}"
        msg = str(e)
        assert re.search(case.match, msg), f"message does not match {case.match!r}:\n{msg}"
        if case.kind == "annotation":
            assert isinstance(e, (TypeError, ValueError))
            assert not isinstance(e, DifferentiationError)
        else:
            assert isinstance(e, DifferentiationError)
            assert case.op in msg, f"the message does not name the operation {case.op!r}: {msg}"
            m = re.search(re.escape(HERE) + r":(\d+)", msg)
            assert m, f"the message does not name {HERE}:<line>: {msg}"
            assert int(m.group(1)) in _source_lines(case.code), f"line {m.group(1)} is outside the function"
        for a, b in zip(arrays, before):
            np.testing.assert_array_equal(a, b, err_msg=f"{case.id}: an array was written")
        assert api.compile_count["n"] == compiled, "a derivative was compiled"
        assert len(api._cache) == cached, "something was cached"


def test_table_has_at_least_30_rows():
    assert len(CASES) >= 30
    assert len(set(CASE_IDS)) == len(CASE_IDS)


def test_docs_list_every_case():
    """docs/errors.md has one row per case, with its current message (line numbers aside)."""
    path = os.path.join(REPO, "docs", "errors.md")
    text = open(path).read()
    def norm(s):            # line numbers and Numba's mangled names (their counters) vary between runs
        return re.sub(r"_ZN[\w$.]+", "_ZN…", re.sub(r"\.py:\d+", ".py:N", s))
    for case in CASES:
        assert f"`{case.id}`" in text, f"docs/errors.md has no row for {case.id}"
        if case.bug:
            continue
        e = run_case(case)
        assert norm(_doc_message(e)) in norm(text), f"docs/errors.md: the message of {case.id} is stale"


# ------------------------------------------------------------- bugs that need their own harness

_GENERATOR_SCRIPT = textwrap.dedent("""
    import numba, numpy as np, llad
    @numba.njit
    def gen(x):
        for i in range(3):
            yield x[i]
    try:
        llad.autodiff(llad.Reverse, gen, llad.Duplicated(np.ones(3), np.zeros(3)))
    except llad.DifferentiationError as e:
        print("DifferentiationError:", e)
    except TypeError as e:
        print("TypeError:", e)
""")


def test_generator_function_is_rejected():
    """(Until 90695bf the derivative of a generator was built and called: a segmentation fault.  Run in a
    subprocess so that a regression cannot take the test session down.)"""
    r = subprocess.run([sys.executable, "-c", _GENERATOR_SCRIPT], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"the interpreter died (return code {r.returncode}): {r.stderr[-2000:]}"
    assert "DifferentiationError: cannot differentiate" in r.stdout and "generator" in r.stdout


@numba.njit
def with_defaults(x, c=2.0):
    return x[0] * c


def test_omitted_default_arguments():
    """Parameters with defaults must be annotated too (llad's own TypeError), or be filled in.  (Until
    90695bf Numba's 'Signature mismatch' came out instead.)"""
    dx = z3()
    try:
        llad.autodiff(Reverse, with_defaults, Duplicated(x3(), dx))
    except TypeError as e:
        assert str(e).startswith("llad.autodiff:"), str(e)
    else:
        np.testing.assert_array_equal(dx, [2.0, 0.0, 0.0])


@numba.njit
def weighted(x, c):
    s = 0.0
    for i in range(x.shape[0]):
        s += x[i] * c
    return s


@numba.njit
def weighted_arr(x, c):
    s = 0.0
    for i in range(x.shape[0]):
        s += x[i] * c[i]
    return s


@pytest.mark.parametrize("first, second", [("Const", "bare"), ("bare", "Const")])
@pytest.mark.parametrize("kernel", ["scalar", "array"])
def test_const_and_bare_values_mix(kernel, first, second):
    """`Const(v)` and a bare `v` mean the same thing; alternating them between calls must work.  (Until
    90695bf they shared a hot-path key: AttributeError, or the Const object passed to the compiled code.)"""
    base = weighted if kernel == "scalar" else weighted_arr
    f = numba.njit(base.py_func)                              # a fresh dispatcher: an empty hot-path cache
    c = 2.0 if kernel == "scalar" else np.full(3, 2.0)
    for style in (first, second):
        dx = z3()
        llad.autodiff(Reverse, f, Duplicated(x3(), dx), Const(c) if style == "Const" else c)
        np.testing.assert_array_equal(dx, [2.0, 2.0, 2.0])


# --------------------------------------------------------- wrong derivatives instead of an error

@numba.njit
def cumsum_last(x):
    return np.cumsum(x)[-1]


@numba.njit
def median(x):
    return np.median(x)


@numba.njit
def np_max(x):
    return np.max(x)


@numba.njit
def np_min(x):
    return np.min(x)


@numba.njit
def via_object_mode(x):
    with numba.objmode(y="float64"):
        y = float(x[0]) * 2.0
    return y


@pytest.mark.parametrize("f, x, grad", [
    # a pointer with a shadow spilled to a stack slot and reloaded (np.cumsum, np.median, and np.max /
    # np.min reading their first element through a 0-d reshape view) gave zero gradients until llad
    # learnt to see through such spills
    pytest.param(cumsum_last, [0.3, 0.7, 1.2], [1.0, 1.0, 1.0], id="cumsum"),
    pytest.param(median, [0.3, 0.7, 1.2], [0.0, 1.0, 0.0], id="median"),
    pytest.param(np_max, [2.0, 1.0, 0.0], [1.0, 0.0, 0.0], id="max-first"),
    pytest.param(np_min, [0.0, 1.0, 2.0], [1.0, 0.0, 0.0], id="min-first"),
    pytest.param(np_max, [0.0, 2.0, 1.0], [0.0, 1.0, 0.0], id="max-middle"),
    # a `with numba.objmode()` block boxes x and calls Python: no derivative flows through it (silently
    # zero until 90695bf; now a DifferentiationError)
    pytest.param(via_object_mode, [0.3, 0.7, 1.2], [2.0, 0.0, 0.0], id="objmode-block"),
])
@pytest.mark.parametrize("mode", [Reverse, Forward], ids=["Reverse", "Forward"])
def test_no_silently_wrong_derivative(f, x, grad, mode):
    """Either a DifferentiationError, or the right derivative: never a wrong number."""
    x = np.array(x)
    try:
        if mode.reverse:
            dx = np.zeros(3)
            llad.autodiff(mode, f, Duplicated(x, dx))
            got = dx
        else:
            got = np.array([llad.autodiff(mode, f, Duplicated(x.copy(), np.eye(3)[i].copy()))[0]
                            for i in range(3)])
    except DifferentiationError:
        return
    np.testing.assert_allclose(got, grad, rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------- supported, for contrast

@numba.njit
def complex_intermediate(x):
    s = 0.0
    for i in range(x.shape[0]):
        z = complex(x[i], 1.0)
        s += (z * z).real
    return s


@numba.njit
def complex_const_array(z, x):
    s = 0.0
    for i in range(x.shape[0]):
        s += (z[i] * x[i]).real
    return s


@numba.njit
def sort_weighted(x):
    y = np.sort(x)
    return y[0] + 2.0 * y[2]


@numba.njit
def returns_list_writes(x):
    x[1] = x[0] * 3.0
    return [x[0] * 2.0]


def test_np_sort_is_differentiated():
    """np.sort (whose list of partitions has a destructor function llad must carry into the derivative
    module): the derivative follows the permutation."""
    x = np.array([0.7, 0.3, 1.2])
    dx = z3()
    llad.autodiff(Reverse, sort_weighted, Duplicated(x, dx))
    np.testing.assert_array_equal(dx, [0.0, 1.0, 2.0])
    ts = [llad.autodiff(Forward, sort_weighted, Duplicated(x.copy(), np.eye(3)[i].copy()))[0] for i in range(3)]
    assert ts == [0.0, 1.0, 2.0]


@numba.njit
def interp(xp, fp):
    return np.interp(0.5, xp, fp)


def test_np_interp_is_differentiated():
    """np.interp picks its interval by data (a select between pointers into different arrays; until
    7cb9461 an UnsupportedInstructionError): derivatives for both the abscissae and the values."""
    xp, fp = np.array([0.1, 0.4, 0.9]), np.array([1.0, 2.0, 4.0])
    dxp, dfp = z3(), z3()
    llad.autodiff(Reverse, interp, Duplicated(xp, dxp), Duplicated(fp, dfp))
    # on [0.4, 0.9]: f = fp1 + (0.5 - xp1) / (xp2 - xp1) * (fp2 - fp1)
    np.testing.assert_allclose(dxp, [0.0, -3.2, -0.8], rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(dfp, [0.0, 0.8, 0.2], rtol=1e-13, atol=1e-15)
    ts = [llad.autodiff(Forward, interp, Duplicated(xp, np.eye(3)[i].copy()), Duplicated(fp, z3()))[0]
          for i in range(3)]
    np.testing.assert_allclose(ts, [0.0, -3.2, -0.8], rtol=1e-13, atol=1e-15)


def test_list_return_is_const():
    """A function returning a (reflected) list: the result is Const, written arrays are differentiated."""
    x, dx = np.array([0.7, 0.3, 1.2]), np.array([0.0, 1.0, 0.0])   # cotangent of the final x[1]
    derivs, primal = llad.autodiff(ReverseWithPrimal, returns_list_writes, Duplicated(x, dx))
    assert derivs == (None,) and primal == [1.4]
    np.testing.assert_array_equal(dx, [3.0, 0.0, 0.0])
    v = np.array([1.0, 0.0, 0.0])
    t, primal = llad.autodiff(ForwardWithPrimal, returns_list_writes, Duplicated(x.copy(), v))
    assert t is None and primal == [1.4]
    np.testing.assert_array_equal(v, [1.0, 3.0, 0.0])


def test_complex_intermediates_are_differentiated():
    x = x3()
    dx = z3()
    llad.autodiff(Reverse, complex_intermediate, Duplicated(x, dx))
    np.testing.assert_allclose(dx, 2 * x, rtol=1e-14)        # d/dx Re((x+i)^2) = 2x
    (t,) = llad.autodiff(Forward, complex_intermediate, Duplicated(x, np.ones(3)))
    np.testing.assert_allclose(t, np.sum(2 * x), rtol=1e-14)


def test_complex_const_array_is_allowed():
    z = np.array([1 + 2j, 3 - 1j, 0.5j])
    dx = z3()
    llad.autodiff(Reverse, complex_const_array, Const(z), Duplicated(x3(), dx))
    np.testing.assert_allclose(dx, z.real, rtol=1e-14)


@numba.njit
def product_into_last(x):
    x[2] = x[0] * x[1]
    return x[0], 1.0


def test_const_return_activity_on_a_float_function():
    """`Const` as the return activity of a float function: no derivative of the result, no error."""
    dx = z3()
    assert llad.autodiff(Reverse, sumsq, Const, Duplicated(x3(), dx)) == ((None,),)
    assert not dx.any()
    assert llad.autodiff(Forward, sumsq, Const, Duplicated(x3(), np.ones(3))) == (None,)
    t, p = llad.autodiff(ForwardWithPrimal, sumsq, Const, Duplicated(x3(), np.ones(3)))
    assert t is None and p == pytest.approx(np.sum(x3() ** 2), rel=1e-15)


def test_tuple_return_is_const():
    """A function returning a tuple: the result is Const (it has no derivative), the arrays it writes
    still do."""
    x, dx = x3(), np.array([0.0, 0.0, 1.0])         # cotangent of the final x[2]
    derivs, primal = llad.autodiff(ReverseWithPrimal, product_into_last, Duplicated(x, dx))
    assert derivs == (None,) and primal == (0.3, 1.0)
    np.testing.assert_allclose(dx, [0.7, 0.3, 0.0], rtol=1e-15)
    x, v = x3(), np.array([1.0, 0.0, 0.0])
    t, primal = llad.autodiff(ForwardWithPrimal, product_into_last, Duplicated(x, v))
    assert t is None and primal == (0.3, 1.0)
    np.testing.assert_allclose(v, [1.0, 0.0, 0.7], rtol=1e-15)


# ------------------------------------------------------------------------ docs/errors.md helper

def _doc_message(e: BaseException) -> str:
    """The message as docs/errors.md shows it: the repository path made relative, Numba's multi-line
    report cut after its first line, `|` escaped for Markdown."""
    msg = str(e).replace(REPO + os.sep, "")
    lines = msg.splitlines()
    if len(lines) > 1:
        msg = lines[0] + " …"
    return msg.replace("|", "\\|")


def markdown_table() -> str:
    rows = ["| # | id | bad input | exception | message |", "|---|---|---|---|---|"]
    for i, case in enumerate(CASES, 1):
        try:
            e = run_case(case)
            exc, msg = type(e).__name__, _doc_message(e)
        except AssertionError:
            exc, msg = "(none)", "no exception"
        if case.bug:
            msg = f"**llad bug** (expected `{case.exc.__name__}`): {msg}"
        rows.append(f"| {i} | `{case.id}` | {case.what} | `{exc}` | {msg} |")
    return "\n".join(rows)


def write_docs_table(name: str, table: str) -> None:
    """Replace the table between `<!-- table NAME ... -->` and `<!-- end NAME -->` in docs/errors.md."""
    import os
    import re
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "errors.md")
    with open(path) as fh:
        text = fh.read()
    pattern = re.compile(rf"(<!-- table {name}:[^\n]*-->\n).*?(<!-- end {name} -->)", re.S)
    assert pattern.search(text), f"no table {name} in {path}"
    text = pattern.sub(lambda m: m.group(1) + table + "\n" + m.group(2), text)
    with open(path, "w") as fh:
        fh.write(text)


if __name__ == "__main__":
    # run the cases from the module `test_bad_inputs` (as pytest does), not from `__main__`
    sys.path.insert(0, os.path.dirname(HERE))
    import test_bad_inputs as _m
    if "--write-docs" in sys.argv:
        _m.write_docs_table("bad-inputs", _m.markdown_table())
    else:
        print(_m.markdown_table())
