"""Vectorised math (llad/vecmath.py, llad/ownmath.py): every function sampled against a wide reference and
libm (10^5 points each, a fixed seed), special values of the same class as libm's, llad's own functions
where their reduction cancels and where a lane leaves their fast path, derivatives through the vectorised
calls right, and the switch: off, derivative code computes what Numba's primal does."""
from __future__ import annotations

import math
import re

import mpmath
import numba
import numpy as np
import pytest

import llad
from llad import ownmath, vecmath
from tools import vecmath_accuracy as acc

needs_libmvec = pytest.mark.skipif(not vecmath.available(), reason="libmvec (glibc, x86-64) not available")

# the largest error docs/vector-math-accuracy.md measured over 10^7 points, rounded up: a sample of 10^5
# must stay within it
BOUND = {"float64": {"exp": 1.0, "exp2": 2.0, "log": 1.0, "log2": 1.5, "log10": 1.5, "sin": 1.0, "cos": 1.0,
                     "tan": 1.0, "tanh": 1.5, "sinh": 2.0, "cosh": 2.0, "asin": 1.0, "acos": 1.0, "atan": 1.0,
                     "pow": 1.5, "atan2": 1.5},
         "float32": {"exp": 1.0, "exp2": 1.0, "log": 1.0, "log2": 2.0, "log10": 2.0, "sin": 2.0, "cos": 2.0,
                     "tan": 1.0, "tanh": 1.5, "sinh": 2.0, "cosh": 1.0, "asin": 1.0, "acos": 1.0, "atan": 1.0,
                     "pow": 1.0, "atan2": 1.0}}


@pytest.fixture(scope="module")
def mp():
    mpmath.mp.prec = 200
    return mpmath.mp


@needs_libmvec
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("case", acc.CASES, ids=lambda c: c.name)
def test_function_within_its_bound_and_special_values_like_libm(case, dtype, mp):
    row = acc.measure(case, dtype, 100_000, 7, mp)
    bound = BOUND[row["dtype"]][case.name]
    assert row["llad_max"] <= bound, (row["llad_max"], row["llad_at"])
    assert row["libm_max"] <= max(bound, 2.5)           # the reference itself is sound: libm is close
    assert row["special_mismatches"] == [], row["special_mismatches"]


@needs_libmvec
def test_the_measurement_can_fail():
    """The ulp measure sees an error of one ulp where there is one."""
    x = np.linspace(0.1, 3.0, 1001)
    ref = np.sin(x.astype(np.longdouble))
    assert acc.ulp_error(np.sin(x), ref).max() <= 0.51
    assert acc.ulp_error(np.nextafter(np.sin(x), np.inf), ref).max() >= 0.99


@numba.njit
def sumsin(x):
    s = 0.0
    for i in range(x.size):
        s += math.sin(x[i])
    return s


@numba.njit
def mixed(x, w):
    s = 0.0
    for i in range(x.size):
        s += math.tanh(w[i] * x[i]) + math.log(1.0 + x[i] * x[i]) * math.cos(x[i]) + x[i] ** 1.5
    return s


def _opt(mode, f, *args):
    return llad.dump(mode, f, *args, depth="deriv-opt")


@needs_libmvec
def test_reverse_of_a_sum_of_sines_inlines_llads_own_cos():
    x = np.linspace(-3.0, 3.0, 1000)
    text = _opt(llad.Reverse, sumsin, llad.Active, llad.Duplicated(x, np.zeros_like(x)))
    assert not re.search(r"@_ZGV\w*_cos\(", text)         # not libmvec's: 3.5 ulp
    assert "@llvm.cos.v" not in text                     # no widened intrinsic left for the backend to split
    assert re.search(r"fptosi <\d+ x double> [^\n]* to <\d+ x i64>", text)   # the quadrant, inlined
    assert re.search(r"call double @llvm\.cos\.f64\(", text)                    # libm for rare lanes
    g = np.zeros_like(x)
    llad.autodiff(llad.Reverse, sumsin, llad.Active, llad.Duplicated(x, g))
    assert acc.ulp_error(g, np.cos(x.astype(np.longdouble))).max() <= 1.0


def test_switch_off_is_libm_exactly():
    x = np.linspace(-3.0, 3.0, 1000)
    old = llad.config.vector_math
    llad.config.vector_math = False
    try:
        text = _opt(llad.ReverseWithPrimal, sumsin, llad.Active, llad.Duplicated(x, np.zeros_like(x)))
        g = np.zeros_like(x)
        (_, primal) = llad.autodiff(llad.ReverseWithPrimal, sumsin, llad.Active, llad.Duplicated(x, g))
    finally:
        llad.config.vector_math = old
    assert "@_ZGV" not in text
    assert primal == sumsin(x)                           # the same sum, in the same order, of libm's sines
    np.testing.assert_array_equal(g, np.array([math.cos(v) for v in x]))


def test_on_the_primal_may_differ_in_the_last_bits_only():
    x = np.random.default_rng(3).uniform(-3.0, 3.0, 100_003)
    old = llad.config.vector_math
    llad.config.vector_math = True
    try:
        g = np.zeros_like(x)
        (_, primal) = llad.autodiff(llad.ReverseWithPrimal, sumsin, llad.Active, llad.Duplicated(x, g))
    finally:
        llad.config.vector_math = old
    exact = math.fsum(math.sin(v) for v in x)
    # reassociated sum of sines, each within an ulp: the error of a sum of 1e5 terms, not more
    assert abs(primal - exact) <= 1e-10 * np.abs(np.sin(x)).sum()
    assert acc.ulp_error(g, np.cos(x.astype(np.longdouble))).max() <= 1.0


@pytest.mark.parametrize("on", [True, False], ids=["on", "off"])
def test_gradients_through_vectorised_functions(on):
    rng = np.random.default_rng(4)
    x, w = rng.uniform(0.1, 2.0, 1003), rng.uniform(-1.0, 1.0, 1003)
    old = llad.config.vector_math
    llad.config.vector_math = on
    try:
        gx, gw = np.zeros_like(x), np.zeros_like(w)
        llad.autodiff(llad.Reverse, mixed, llad.Active, llad.Duplicated(x, gx), llad.Duplicated(w, gw))
        v = rng.standard_normal(x.size)
        (t,) = llad.autodiff(llad.Forward, mixed, llad.Duplicated(x, v), llad.Const(w))
    finally:
        llad.config.vector_math = old
    t_ = 1.0 - np.tanh(w * x) ** 2
    ex = t_ * w + 2 * x / (1 + x * x) * np.cos(x) - np.log(1 + x * x) * np.sin(x) + 1.5 * np.sqrt(x)
    np.testing.assert_allclose(gx, ex, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(gw, t_ * x, rtol=1e-13, atol=1e-14)
    assert t == pytest.approx(float(ex @ v), rel=1e-12)   # forward and reverse agree


@needs_libmvec
def test_float32_sum_of_sines_vectorises_in_float32():
    x = np.linspace(-3.0, 3.0, 1000, dtype=np.float32)
    text = _opt(llad.Reverse, sumsin, llad.Active, llad.Duplicated(x, np.zeros_like(x)))
    assert re.search(r"<\d+ x float> @_ZGV[bcde]N\d+v_cosf\(", text)


@needs_libmvec
def test_rewrite_keeps_one_declaration_when_a_linked_module_declared_the_variant():
    import llvmlite.binding as llvm
    letter = vecmath._isa_letters()[256]
    text = f"""declare <4 x double> @llvm.sinh.v4f64(<4 x double>)
declare <4 x double> @_ZGV{letter}N4v_sinh(<4 x double>)
define <4 x double> @f(<4 x double> %x) {{
  %a = call <4 x double> @llvm.sinh.v4f64(<4 x double> %x)
  %b = call <4 x double> @_ZGV{letter}N4v_sinh(<4 x double> %a)
  ret <4 x double> %b
}}
"""
    out = vecmath.rewrite(text)
    assert out.count(f"declare <4 x double> @_ZGV{letter}N4v_sinh(") == 1 and "llvm.sinh" not in out
    llvm.parse_assembly(out).verify()
    single = vecmath.rewrite(text.replace(f"declare <4 x double> @_ZGV{letter}N4v_sinh(<4 x double>)\n", "")
                             .replace(f"@_ZGV{letter}N4v_sinh(<4 x double> %a)", "@llvm.sinh.v4f64(<4 x double> %a)"))
    assert single.count(f"declare <4 x double> @_ZGV{letter}N4v_sinh(") == 1
    llvm.parse_assembly(single).verify()


@pytest.mark.skipif(not ownmath.available(), reason="llad's own vector functions need FMA")
def test_rewrite_defines_llads_own_functions_once():
    import llvmlite.binding as llvm
    text = """declare <4 x double> @llvm.log.v4f64(<4 x double>)
declare <8 x float> @llvm.tan.v8f32(<8 x float>)
define <4 x double> @f(<4 x double> %x, <8 x float> %y) {
  %a = call <4 x double> @llvm.log.v4f64(<4 x double> %x)
  %b = call <4 x double> @llvm.log.v4f64(<4 x double> %a)
  %c = call <8 x float> @llvm.tan.v8f32(<8 x float> %y)
  ret <4 x double> %b
}
"""
    out = vecmath.rewrite(text)
    llvm.parse_assembly(out).verify()
    assert out.count("define internal <4 x double> @llad.log.v4f64(") == 1 and "@llvm.log.v4f64" not in out
    # float32 tan: through llad's float64 tan, 8 lanes: defined once each, what they call declared
    assert out.count("define internal <8 x float> @llad.tan.v8f32(") == 1
    assert out.count("define internal <8 x double> @llad.tan.v8f64(") == 1
    assert "declare double @llvm.log.f64(double)" in out and "declare double @llvm.tan.f64(double)" in out
    # a linked module's text that defines the function already: not a second definition
    again = vecmath.rewrite(out.replace(
        "ret <4 x double> %b", "%d = call <4 x double> @llvm.log.v4f64(<4 x double> %b)\n  ret <4 x double> %d"))
    llvm.parse_assembly(again).verify()
    assert again.count("define internal <4 x double> @llad.log.v4f64(") == 1


def _near_multiples_of_half_pi():
    """The doubles nearest k pi/2 (and their neighbours) for k up to 2^20: where the reduction cancels."""
    k = np.arange(1, 2**20, dtype=np.longdouble)
    near = (k * np.longdouble(np.pi) / 2).astype(np.float64)   # within an ulp of the nearest double
    xs = np.concatenate([near, np.nextafter(near, np.inf), -np.nextafter(near, -np.inf)])
    return xs[np.abs(xs) <= 1.6e6]


@needs_libmvec
@pytest.mark.parametrize("name", ["sin", "cos", "tan"])
def test_own_trig_within_an_ulp_where_the_reduction_cancels(name, mp):
    case = next(c for c in acc.CASES if c.name == name)
    xs = _near_multiples_of_half_pi()
    y, how = acc.evaluate(acc._kernel(case), (xs,), True)
    assert how == "inline"
    err = acc.ulp_error(y, acc.reference(case, (xs,)))
    worst = np.argsort(err)[-8:]
    assert max(acc.mp_ulps(case, (xs,), y, worst, mp)) <= 1.0


@needs_libmvec
@pytest.mark.parametrize("name", ["sin", "cos", "tan", "log"])
def test_a_vector_with_one_argument_outside_the_fast_path_is_libm_exactly(name):
    """A lane the fast path does not cover (a huge angle, a negative or subnormal logarithm, inf, NaN)
    sends its vector to libm: the values are libm's bit for bit."""
    case = next(c for c in acc.CASES if c.name == name)
    odd = [-1.0, 5e-324, -0.0, np.inf, np.nan] if name == "log" else [1e22, -3e6, np.inf, np.nan]
    x = np.full(64, 0.7)
    x[::2] = np.resize(odd, 32)                          # an unusual lane in every pair: in every vector
    y, _ = acc.evaluate(acc._kernel(case), (x,), True)
    fn = getattr(math, name)
    libm = np.array([_libm(fn, v) for v in x])
    np.testing.assert_array_equal(y, libm)


def _libm(fn, v):
    try:
        return fn(v)
    except ValueError:                                   # Python refuses log(-1), sin(inf): libm gives NaN/-inf
        return -np.inf if fn is math.log and v == 0 else np.nan
