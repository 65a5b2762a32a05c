"""DuplicatedNoNeed in forward modes: llad drops the primal results nobody reads (llad/analysis/deadprimal.py),
and never a value a tangent, a branch or the caller uses."""
from __future__ import annotations

import re

import numba
import numpy as np
import pytest

import llad
from llad.analysis.deadprimal import _Classes, _Objects, dead_primal_stores
from llad.ir.parser import parse_function


@numba.njit
def doubled_then_weighted(x, c):
    for i in range(x.shape[0]):
        x[i] = 2.0 * x[i]
    s = 0.0
    for i in range(x.shape[0]):
        s += c[i] * x[i]
    return s


@numba.njit
def squared_twice(x):
    for _ in range(2):
        for i in range(x.shape[0]):
            x[i] = x[i] * x[i]
    return x.sum()


@numba.njit
def scaled_copy(x):
    y = np.empty_like(x)
    for i in range(x.shape[0]):
        y[i] = 3.0 * x[i]
        x[i] = 0.0
    return y


@numba.njit
def branchy(x):
    for i in range(x.shape[0]):
        x[i] = x[i] - 1.0
    s = 0.0
    for i in range(x.shape[0]):
        if x[i] > 0.0:              # the primal value decides the branch: its store stays
            s += 2.0 * x[i]
        else:
            s -= x[i]
    return s


X = np.array([0.5, 1.5, 2.5, -1.0])
V = np.array([1.0, -2.0, 0.5, 3.0])


def _forward(f, cls, *const):
    x, dx = X.copy(), V.copy()
    res = llad.autodiff(llad.ForwardWithPrimal, f, cls(x, dx), *(llad.Const(c) for c in const))
    return res, dx


@pytest.mark.parametrize("f", [doubled_then_weighted, squared_twice, scaled_copy, branchy],
                         ids=lambda f: f.py_func.__name__)
def test_tangents_and_results_equal_duplicated(f):
    """The tangent, the shadow and the primal *result* (ForwardWithPrimal) are Duplicated's; only the values
    left in the NoNeed array may differ."""
    const = (X * 0.5 + 1.0,) if f is doubled_then_weighted else ()
    (t_lean, p_lean), dx_lean = _forward(f, llad.DuplicatedNoNeed, *const)
    (t_full, p_full), dx_full = _forward(f, llad.Duplicated, *const)
    np.testing.assert_allclose(t_lean, t_full, rtol=1e-14, atol=0)
    np.testing.assert_allclose(dx_lean, dx_full, rtol=1e-14, atol=0)
    np.testing.assert_array_equal(p_lean, p_full)
    np.testing.assert_array_equal(p_full, f(X.copy(), *const))


def _dropped_into(f, *args, no_need=("arg.x.4",)) -> set:
    """The objects the stores deadprimal drops would have written, in f's forward derivative (all Duplicated)."""
    text = llad.dump(llad.Forward, f, *args, depth="deriv")
    fn = parse_function(text, re.search(r'define i32 @"(llad\.fwd\.[0-9a-f]+)"', text).group(1))
    objects = _Objects(fn, _Classes())
    dead = dead_primal_stores(fn, set(no_need))
    return {o for ins in dead for o in objects.operand(ins.operands[1 if ins.opcode == "store" else 0])}


def test_what_is_dropped():
    """The comparisons above are with stores actually removed where they can be, and kept where a tangent
    or the result reads them (the analysis is flow-insensitive: a store into an array some needed load
    reads stays, before or after that load)."""
    x = (llad.Duplicated(X.copy(), V.copy()),)
    assert "param:arg.x.4" in _dropped_into(doubled_then_weighted, *x, llad.Const(X.copy()))
    assert "param:arg.x.4" not in _dropped_into(squared_twice, *x)    # x[i] * x[i] feeds the next tangent
    assert "param:arg.x.4" not in _dropped_into(scaled_copy, *x)      # x[i] = 0 after a load y needs
    assert "param:arg.x.4" not in _dropped_into(branchy, *x)          # x[i] decides a branch
    hvp = _dropped_into(_gradient, *x, llad.Duplicated(np.zeros(4), np.zeros(4)), no_need=("arg.x.4", "arg.g.4"))
    assert "param:arg.g.4" in hvp                  # the primal gradient nobody reads


def test_an_array_overlapping_the_noneed_one():
    """c is x itself: the doubled x is read through c, so the variant that keeps every store runs (the API
    checks the overlap per call); with a distinct c the stores are dropped and the answer differs, as it must."""
    x = X.copy()
    (t_same,) = llad.autodiff(llad.Forward, doubled_then_weighted, llad.DuplicatedNoNeed(x, V.copy()), llad.Const(x))
    x = X.copy()
    (t_full,) = llad.autodiff(llad.Forward, doubled_then_weighted, llad.Duplicated(x, V.copy()), llad.Const(x))
    assert t_same == t_full == pytest.approx(float(np.sum(2.0 * X * 2.0 * V)))
    (t_apart,) = llad.autodiff(llad.Forward, doubled_then_weighted, llad.DuplicatedNoNeed(X.copy(), V.copy()),
                               llad.Const(X.copy()))
    assert t_apart == pytest.approx(float(np.sum(X * 2.0 * V)))


@numba.njit
def _energy(x):
    s = 0.0
    for i in range(x.shape[0] - 1):
        d = x[i + 1] - x[i]
        s += d * d * d * d + np.sin(x[i])
    return s


@numba.njit
def _gradient(x, g):
    llad.autodiff(llad.Reverse, _energy, llad.Active, llad.Duplicated(x, g))


@numba.njit
def _hvp_inside(x, v, lean):
    hv = np.zeros_like(x)
    if lean:
        llad.autodiff(llad.Forward, _gradient, llad.DuplicatedNoNeed(x.copy(), v.copy()),
                      llad.DuplicatedNoNeed(np.zeros_like(x), hv))
    else:
        llad.autodiff(llad.Forward, _gradient, llad.Duplicated(x.copy(), v.copy()),
                      llad.Duplicated(np.zeros_like(x), hv))
    return hv


def test_hessian_vector_products_from_python_and_inside_njit():
    """Forward over reverse with the point and the gradient DuplicatedNoNeed (what llad.hvp does): the
    product of Duplicated's, from Python and from jitted code, and llad.hvp agrees with both."""
    x = np.linspace(-1.0, 2.0, 7)
    v = np.cos(np.arange(7.0))
    full = _hvp_inside(x, v, False)
    np.testing.assert_allclose(_hvp_inside(x, v, True), full, rtol=1e-13, atol=1e-13)
    hv = np.zeros_like(x)
    llad.autodiff(llad.Forward, _gradient, llad.DuplicatedNoNeed(x.copy(), v.copy()),
                  llad.DuplicatedNoNeed(np.zeros_like(x), hv))
    np.testing.assert_allclose(hv, full, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(llad.hvp(_energy, x, v), full, rtol=1e-13, atol=1e-13)


def test_reverse_modes_keep_every_store():
    """DuplicatedNoNeed in reverse mode is Duplicated (the forward sweep's values feed the reverse)."""
    x, g = X.copy(), np.zeros(4)
    llad.autodiff(llad.Reverse, squared_twice, llad.Active, llad.DuplicatedNoNeed(x, g))
    np.testing.assert_allclose(g, 4.0 * X ** 3)


# --- the analysis on IR written by hand ------------------------------------------------------------------
_IR = """
define void @f(ptr %p, ptr %q, ptr %r) {
entry:
  store double 1.0, ptr %p
  %a = load ptr, ptr %r
  %v = load double, ptr {SOURCE}
  store double %v, ptr %q
  ret void
}
"""


def _dead(source: str, no_need=("p",)):
    fn = parse_function(_IR.replace("{SOURCE}", source), "f")
    return [(i.opcode, i.operands[1].text) for i in dead_primal_stores(fn, set(no_need))]


def test_a_store_into_noneed_memory_nobody_loads_is_dead():
    assert _dead("%q") == [("store", "%p")]
    assert _dead("%q", no_need=()) == []           # p is the caller's: kept


def test_a_load_through_an_unknown_pointer_keeps_everything():
    """%a is a pointer loaded from memory: it may point into p, so no store is dropped."""
    assert _dead("%a") == []
    assert _dead("%p") == []                       # the store into p is read by a needed load


@numba.njit
def through_a_temporary(x):
    if x[0] < np.cumsum(x)[2]:      # a shadow llad allocates, whose tangents nothing reads
        x[0] = 2.0 * x[1]
    return x[0] * x[1]


def test_guarded_memory_canaries_stay():
    """The canary written after a shadow llad allocates is read by the check call through the shadow's
    meminfo, not its data pointer: the meminfo escaping must keep the data's stores, also when no tangent
    reads the shadow (a fuzzed kernel comparing with np.cumsum found the canary dropped)."""
    llad.config.guard_memory = True
    try:
        (t_lean,), dx_lean = _forward_plain(through_a_temporary, llad.DuplicatedNoNeed)
        (t_full,), dx_full = _forward_plain(through_a_temporary, llad.Duplicated)
    finally:
        llad.config.guard_memory = False
    assert t_lean == t_full
    np.testing.assert_array_equal(dx_lean, dx_full)


def _forward_plain(f, cls):
    x, dx = X.copy(), V.copy()
    return llad.autodiff(llad.Forward, f, cls(x, dx)), dx


def test_a_noneed_arrays_meminfo_reaching_an_unknown_call_keeps_its_data():
    fn = parse_function("define void @g(ptr %mi, ptr %p) {\nentry:\n  store double 1.0, ptr %p\n"
                        "  call void @opaque(ptr %mi)\n  ret void\n}\n", "g")
    assert dead_primal_stores(fn, {"p": ("mi", "p")}) == []
    assert [i.opcode for i in dead_primal_stores(fn, {"p": ()})] == ["store"]


_TAPE_IR = """
define void @h() {
entry:
  %m = call ptr @NRT_MemInfo_alloc_aligned(i64 64, i32 32)
  %dp = getelementptr i8, ptr %m, i64 24
  %d = load ptr, ptr %dp
  store double 1.0, ptr %d
  %t = call ptr @malloc(i64 8)
  store ptr %m, ptr %t
  %m2 = load ptr, ptr %t
  call void @{CALLEE}(ptr %m2)
  ret void
}
"""


@pytest.mark.parametrize("callee, dropped", [("NRT_decref", ["store double"]), ("opaque", [])])
def test_a_meminfo_kept_on_a_tape(callee, dropped):
    """A meminfo stored on the function's own tape and loaded back: released, its data stays unread (the
    store into it is dead); handed to an unknown call, the call may read the data (the store stays)."""
    fn = parse_function(_TAPE_IR.replace("{CALLEE}", callee), "h")
    assert [f"{i.opcode} {i.operands[0].type}" for i in dead_primal_stores(fn, set())] == dropped
