"""The shape of generated IR (FileCheck-style assertions on llad.dump's text)."""
from __future__ import annotations

import math
import re

import numba
import numpy as np

import llad


@numba.njit
def straight(x):
    a = x[0] * x[1]
    return math.sin(a) + x[2] / a


@numba.njit
def sumsin(x):
    s = 0.0
    for i in range(x.shape[0]):
        s += math.sin(x[i])
    return s


@numba.njit
def inplace_loop(x):
    s = 0.0
    for i in range(x.shape[0]):
        x[i] = math.sin(x[i]) * x[i]
        s += x[i] * x[i]
    return s


@numba.njit
def store_twice(x, y):
    for i in range(x.shape[0]):
        y[i] = 2.0 * x[i]


def _function(text: str) -> str:
    start = text.index('define i32 @"llad.')
    return text[start:text.index("\n}\n", start)]


def test_forward_of_straight_line_code_has_no_tape():
    x = np.array([0.5, 1.5, 2.0])
    fwd = _function(llad.dump(llad.Forward, straight, llad.Duplicated(x, np.ones(3)), depth="deriv"))
    assert "tape" not in fwd and "realloc" not in fwd and "rev." not in fwd


def test_reverse_of_straight_line_code_has_no_tape():
    x = np.array([0.5, 1.5, 2.0])
    rev = _function(llad.dump(llad.Reverse, straight, llad.Duplicated(x, np.zeros(3)), depth="deriv"))
    assert "llad.tape.reserve" not in rev and "realloc" not in rev


def test_read_only_loop_recomputes_instead_of_taping():
    x = np.random.rand(8)
    rev = _function(llad.dump(llad.Reverse, sumsin, llad.Duplicated(x, np.zeros(8)), depth="deriv"))
    assert "llad.tape.reserve" not in rev       # the induction variable and x[i] are recomputed


def test_loop_that_overwrites_its_input_caches_per_iteration():
    x = np.random.rand(8)
    rev = llad.dump(llad.Reverse, inplace_loop, llad.Duplicated(x, np.zeros(8)), depth="deriv")
    body = _function(rev)
    assert re.search(r"call ptr @llad\.tape\.reserve\(ptr %\S+, i64 %\S+, i64 %\S+, i64 \d+\)", body)
    annotated = llad.dump(llad.Reverse, inplace_loop, llad.Duplicated(x, np.zeros(8)), depth="llvm",
                          annotate=True)
    assert re.search(r"= load double, ptr .*; active, tape: loop ", annotated)


def test_one_shadow_store_per_store_in_forward_mode():
    x, y = np.random.rand(4), np.zeros(4)
    fwd = _function(llad.dump(llad.Forward, store_twice, llad.Duplicated(x, np.ones(4)),
                              llad.Duplicated(y, np.zeros(4)), depth="deriv"))
    primal_stores = re.findall(r"^\s+store double %[^,]+, ptr %(?!s0\.)\S+, align", fwd, re.M)
    shadow_stores = re.findall(r"^\s+store double %\S+, ptr %\"?s0\.", fwd, re.M)
    assert len(primal_stores) == 1 and len(shadow_stores) == 1


def test_primal_llvm_has_no_vector_types():
    x = np.random.rand(64)
    for mode, shadow in ((llad.Forward, np.ones(64)), (llad.Reverse, np.zeros(64))):
        text = llad.dump(mode, sumsin, llad.Duplicated(x, shadow), depth="llvm")
        assert not re.search(r"<\d+ x (double|float|i\d+)>", text)


def test_forward_sumsin_assembly_uses_packed_vector_instructions():
    x = np.random.rand(64)
    asm = llad.dump(llad.Forward, sumsin, llad.Duplicated(x, np.ones(64)), depth="asm")
    assert re.search(r"\bv(add|mul|fmadd\d*|movup)pd\b", asm)


def test_every_depth_for_both_modes():
    x = np.random.rand(16)
    for mode, shadow in ((llad.Forward, np.ones(16)), (llad.Reverse, np.zeros(16))):
        for depth in ("python", "numba", "llvm", "deriv", "deriv-opt", "asm", "cfg"):
            text = llad.dump(mode, sumsin, llad.Duplicated(x, shadow), depth=depth)
            assert text.strip(), depth
        assert "def sumsin" in llad.dump(mode, sumsin, llad.Duplicated(x, shadow), depth="python")
        everything = llad.dump(mode, sumsin, llad.Duplicated(x, shadow), depth="all")
        assert everything.count(";; =====") == 6


def test_cfg_colours_forward_and_reverse_blocks():
    x = np.random.rand(16)
    dot = llad.dump(llad.Reverse, sumsin, llad.Duplicated(x, np.zeros(16)), depth="cfg")
    assert dot.startswith("digraph") and "#f9d7a6" in dot and "#b9d3f0" in dot
    assert re.search(r'-> "[^"]+" \[label="%\S+ (true|false)"\]', dot)


@numba.njit
def two_scratch_arrays(x):
    n = x.shape[0]
    a = np.empty(n)
    b = np.empty(n)
    s = 0.0
    for i in range(n):
        a[i] = math.sin(x[i])
        for j in range(n):
            b[j] = a[i] * x[j]
        s += b[i] * a[i]
    return s


def _scopes(fn: str, pattern: str) -> set[str]:
    return {m.group(1) for m in re.finditer(pattern + r".*!alias\.scope (!\d+)", fn, re.M)}


def test_forward_tells_llvm_which_memory_is_disjoint():
    """Each allocation, each shadow and the arguments get their own alias scope: loads of one are not
    redone after stores to another (the inner loop's `a[i]` and its tangent are hoisted)."""
    x = np.linspace(0.1, 1.0, 8)
    text = llad.dump(llad.Forward, two_scratch_arrays, llad.Duplicated(x, np.ones(8)), depth="deriv")
    fn = _function(text)
    # every access of an array (not llad's own return-slot and result stores)
    loads = [ln for ln in fn.splitlines() if re.match(r'  %"?(d0)?\.\S+ = load double', ln)]
    stores = [ln for ln in fn.splitlines() if re.match(r"  store double %\S+, ptr %(s0\.)?i\d+", ln)]
    assert len(loads) >= 6 and len(stores) >= 4
    assert all("!alias.scope" in ln and "!noalias" in ln for ln in loads + stores)
    primal_scopes = _scopes(fn, r"^  %\.\S+ = load double")
    tangent_scopes = _scopes(fn, r"^  %\"?d0\.\S+ = load double")
    assert len(primal_scopes) == 3 and len(tangent_scopes) == 3 and not primal_scopes & tangent_scopes
    assert 'distinct !{!7000000, !"llad: disjoint memory of the derivative"}' in text
    # and it is exact: the derivative against a central difference
    (t,) = llad.autodiff(llad.Forward, two_scratch_arrays, llad.Duplicated(x, np.ones(8)))
    h = 1e-6
    fd = (two_scratch_arrays(x + h) - two_scratch_arrays(x - h)) / (2 * h)
    assert abs(t - fd) < 1e-7 * max(1.0, abs(fd))


def test_reverse_tells_llvm_which_memory_is_disjoint():
    """Reverse mode: the forward sweep's primal accesses, the reverse sweep's shadow accumulations and
    the loop tapes all carry alias scopes."""
    x = np.linspace(0.1, 1.0, 8)
    fn = _function(llad.dump(llad.Reverse, two_scratch_arrays, llad.Active, llad.Duplicated(x, np.zeros(8)),
                             depth="deriv"))
    rev = fn[fn.index("\nrev."):]
    accumulations = [ln for ln in rev.splitlines() if re.match(r"  store double %r\d+, ptr %r\d+", ln)]
    assert accumulations and all("!alias.scope" in ln for ln in accumulations)
    assert re.search(r"store double %\S+, ptr %a\d+, !alias\.scope", fn)      # a tape store
    dx = np.zeros(8)
    llad.autodiff(llad.Reverse, two_scratch_arrays, llad.Active, llad.Duplicated(x, dx))
    (t,) = llad.autodiff(llad.Forward, two_scratch_arrays, llad.Duplicated(x, np.ones(8)))
    assert abs(dx.sum() - t) < 1e-12 * max(1.0, abs(t))


@numba.njit
def stencil_2d(u, out, c):
    """A 5-point stencil: the reverse of each row loop updates every element of su from several
    iterations, which llad defers (scratch, then vectorisable loops after the reverse loop)."""
    n, m = u.shape
    for i in range(1, n - 1):
        for j in range(1, m - 1):
            out[i, j] = u[i, j] + c * (u[i - 1, j] + u[i + 1, j] + u[i, j - 1] + u[i, j + 1] - 4.0 * u[i, j])
    s = 0.0
    for i in range(n):
        for j in range(m):
            s += out[i, j] * out[i, j] * u[i, j]
    return s


def test_reverse_defers_stencil_accumulations():
    rng = np.random.default_rng(7)
    u, out = rng.random((9, 11)), np.zeros((9, 11))
    args = (llad.Duplicated(u, np.zeros_like(u)), llad.Duplicated(out, np.zeros_like(out)), 0.2)
    fn = _function(llad.dump(llad.Reverse, stencil_2d, llad.Active, *args, depth="deriv"))
    # loads of one row at fixed offsets share one gather loop; the rows above and below get their own
    assert re.search(r"^dfl\.\d+\.g0:", fn, re.M)
    assert 2 <= len(re.findall(r"^dfl\.\d+\.g?\d+:", fn, re.M)) < 5
    du, dout = np.zeros_like(u), np.zeros_like(out)
    llad.autodiff(llad.Reverse, stencil_2d, llad.Active, llad.Duplicated(u, du), llad.Duplicated(out.copy(), dout),
                  0.2)
    v = rng.standard_normal(u.shape)
    (t,) = llad.autodiff(llad.Forward, stencil_2d, llad.Duplicated(u, v), llad.Duplicated(out.copy(),
                                                                                       np.zeros_like(out)), 0.2)
    assert abs(np.sum(du * v) - t) < 1e-10 * max(1.0, abs(t))
    h = 1e-6
    fd = (stencil_2d(u + h * v, out.copy(), 0.2) - stencil_2d(u - h * v, out.copy(), 0.2)) / (2 * h)
    assert abs(t - fd) < 1e-6 * max(1.0, abs(fd))
