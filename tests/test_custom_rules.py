"""User rules (`llad.custom_jvp`, `llad.custom_vjp`): the rule's derivative is what every mode uses
(a deliberately scaled rule shows up in the result), against the true derivative where the rule is
right; registration errors and unsupported calls are refused with the function's name."""
from __future__ import annotations

import math

import numba
import numpy as np
import pytest

import llad
from llad.testing import check_grads


@llad.custom_jvp
@numba.njit
def softplus(x):
    return math.log1p(math.exp(x))


@softplus.defjvp
@numba.njit
def softplus_jvp(x, dx):
    """The stable form: d/dx log(1 + e^x) = 1 / (1 + e^-x)."""
    return softplus(x), dx / (1.0 + math.exp(-x))


@llad.custom_vjp
@numba.njit
def cubic_root(a, tol):
    """The x with x^3 + x = a, by Newton iterations (an implicit solve: the loop is not differentiated)."""
    x = a / 2.0
    for _ in range(100):
        step = (x ** 3 + x - a) / (3.0 * x * x + 1.0)
        x -= step
        if abs(step) < tol:
            break
    return x


@numba.njit
def cubic_root_fwd(a, tol):
    x = cubic_root(a, tol)
    return x, x


@numba.njit
def cubic_root_bwd(x, dret, sa, stol):
    """Implicit function theorem: dx/da = 1 / (3 x^2 + 1); nothing for the tolerance."""
    return dret / (3.0 * x * x + 1.0), None


cubic_root.defvjp(cubic_root_fwd, cubic_root_bwd)


@numba.njit
def loss(x, c):
    s = 0.0
    for i in range(x.size):
        s += softplus(x[i] * c) * x[i] + cubic_root(x[i], 1e-14) ** 2
    return s


def true_grad(x, c):
    sig = 1.0 / (1.0 + np.exp(-x * c))
    r = np.array([np.roots([1, 0, 1, -a])[np.abs(np.roots([1, 0, 1, -a]).imag) < 1e-9].real[0] for a in x])
    return sig * c * x + np.log1p(np.exp(x * c)) + 2 * r / (3 * r * r + 1)


X = np.linspace(-1.5, 2.0, 5)


def test_every_mode_gives_the_rules_derivative():
    expected = true_grad(X, 0.7)
    g = np.zeros_like(X)
    llad.autodiff(llad.Reverse, loss, llad.Duplicated(X.copy(), g), llad.Const(0.7))
    np.testing.assert_allclose(g, expected, rtol=1e-12)
    (t,) = llad.autodiff(llad.Forward, loss, llad.Duplicated(X.copy(), np.ones(5)), llad.Const(0.7))
    assert abs(t - expected.sum()) < 1e-12 * abs(expected.sum())
    (ts,) = llad.autodiff(llad.Forward, loss, llad.BatchDuplicated(X.copy(), (np.ones(5), np.arange(5.0))),
                          llad.Const(0.7))
    np.testing.assert_allclose(ts, [expected.sum(), expected @ np.arange(5.0)], rtol=1e-12)
    g2 = np.zeros_like(X)
    fwd, rev = llad.autodiff_thunk(llad.ReverseSplitNoPrimal, loss, llad.Duplicated(X.copy(), g2), llad.Const(0.7))
    xs = X.copy()
    tape, _, _ = fwd(llad.Duplicated(xs, g2), llad.Const(0.7))
    rev(llad.Duplicated(xs, g2), llad.Const(0.7), 1.0, tape)
    np.testing.assert_allclose(g2, g, rtol=1e-14)


@numba.njit
def gradient_inside(x, g, c):
    llad.autodiff(llad.Reverse, loss, llad.Active, llad.Duplicated(x, g), llad.Const(c))


def test_rules_inside_njit():
    g = np.zeros_like(X)
    gradient_inside(X.copy(), g, 0.7)
    np.testing.assert_allclose(g, true_grad(X, 0.7), rtol=1e-12)


def test_check_grads_passes_through_the_rules():
    assert check_grads(loss, X, 0.7) >= 7


def test_a_scaled_rule_shows_up_in_every_mode():
    """Proof that the rule is used: the body of `f` would give cos, the rule says 5 cos."""
    @llad.custom_jvp
    @numba.njit
    def sine(x):
        return math.sin(x)

    @sine.defjvp
    @numba.njit
    def sine_jvp(x, dx):
        return math.sin(x), 5.0 * math.cos(x) * dx

    @numba.njit
    def f(a, b):
        return sine(a) * b

    (d,) = llad.autodiff(llad.Reverse, f, llad.Active(0.4), llad.Active(2.0))
    assert d == pytest.approx((5 * math.cos(0.4) * 2.0, math.sin(0.4)), rel=1e-14)
    (t,) = llad.autodiff(llad.Forward, f, llad.Duplicated(0.4, 1.0), llad.Const(2.0))
    assert t == pytest.approx(10 * math.cos(0.4), rel=1e-14)
    assert llad.gradient(sine, 0.4) == pytest.approx(5 * math.cos(0.4), rel=1e-14)   # f itself decorated


def test_check_grads_catches_a_wrong_rule():
    """A vjp rule off by a factor of 2: check_grads names the mode, the argument and the element."""
    @llad.custom_vjp
    @numba.njit
    def square(x):
        return x * x

    @numba.njit
    def square_fwd(x):
        return x * x, x

    @numba.njit
    def square_bwd(x, dret, sx):
        return (4.0 * x * dret,)            # wrong: d(x^2)/dx is 2x

    square.defvjp(square_fwd, square_bwd)

    @numba.njit
    def energy(v):
        s = 0.0
        for i in range(v.size):
            s += square(v[i])
        return s

    with pytest.raises(AssertionError, match=r"llad\.Reverse with \(Duplicated\): derivative with respect to "
                                             r"argument 0, element 0: llad gives .*central differences"):
        check_grads(energy, np.array([0.5, -1.0]), modes=(llad.Reverse,))


def test_registration_errors_name_the_rule():
    @llad.custom_jvp
    @numba.njit
    def ident(x):
        return x

    with pytest.raises(TypeError, match=r"the jvp rule of ident \(bad\) takes 1 argument; it must take 2: "
                                        r"1 argument, then its tangent"):
        @ident.defjvp
        def bad(x):
            return x, x

    @llad.custom_vjp
    @numba.njit
    def two(x, y):
        return x * y

    with pytest.raises(TypeError, match=r"the bwd rule of two \(<lambda>\) takes 2 arguments; it must take 4"):
        two.defvjp(lambda x, y: (x * y, (x, y)), lambda r, d: (d, d))
    with pytest.raises(TypeError, match=r"decorate a @numba.njit function"):
        llad.custom_vjp(lambda x: x)


def test_unsupported_custom_calls_are_refused_with_their_name():
    @llad.custom_vjp
    @numba.njit
    def norm(v):
        return math.sqrt(np.sum(v * v))

    @numba.njit
    def f(v):
        return norm(v)

    with pytest.raises(llad.NoRuleError, match=r"a call to `norm` .*no rule was registered"):
        llad.autodiff(llad.Reverse, f, llad.Duplicated(np.ones(3), np.zeros(3)))

    @llad.custom_vjp
    @numba.njit
    def unit(v):
        return v / math.sqrt(np.sum(v * v))

    unit.defvjp(lambda v: (unit(v), v.copy()), lambda r, d, s: (None,))

    @numba.njit
    def g(v):
        return unit(v)[0]

    with pytest.raises(llad.NoRuleError, match=r"a call to `unit\('array\(float64, 1d, C\)',\) -> "
                                               r"array\(float64, 1d, C\)`.*must return a float or None"):
        llad.autodiff(llad.Reverse, g, llad.Active, llad.Duplicated(np.ones(3), np.zeros(3)))


@numba.njit
def outside_loop(x):
    return softplus(x[0]) * x[1]


def test_hessian_vector_product_through_a_jvp_rule():
    """Forward over reverse differentiates the rule's helper code: Hv of softplus(x0) x1 by hand."""
    x, v = np.array([0.3, 0.5]), np.array([1.0, -2.0])
    s = 1.0 / (1.0 + math.exp(-0.3))
    H = np.array([[s * (1 - s) * 0.5, s], [s, 0.0]])
    np.testing.assert_allclose(llad.hvp(outside_loop, x, v), H @ v, rtol=1e-12)


def test_hessian_vector_product_through_rules_in_a_loop():
    """The custom calls inside loss's loop give that loop a second exit (their exception checks): forward
    over reverse still differentiates it; against differences of the gradient."""
    v = np.linspace(1.0, -1.0, 5)

    def grad(x):
        g = np.zeros(5)
        llad.autodiff(llad.Reverse, loss, llad.Duplicated(x.copy(), g), llad.Const(0.7))
        return g
    fd = (grad(X + 1e-6 * v) - grad(X - 1e-6 * v)) / 2e-6
    np.testing.assert_allclose(llad.hvp(loss, X, v, 0.7), fd, rtol=1e-6, atol=1e-8)


def test_a_foreign_function_differentiates_through_a_rule_on_its_wrapper():
    """A ctypes function is refused on its own (an indirect call); wrapped in an @njit function with a
    jvp rule, the rule is its derivative in every mode."""
    import ctypes
    import ctypes.util
    libm = ctypes.CDLL(ctypes.util.find_library("m"))
    cbrt = libm.cbrt
    cbrt.restype, cbrt.argtypes = ctypes.c_double, (ctypes.c_double,)

    @llad.custom_jvp
    @numba.njit
    def ccbrt(x):
        return cbrt(x)

    @ccbrt.defjvp
    @numba.njit
    def ccbrt_jvp(x, dx):
        r = cbrt(x)
        return r, dx / (3.0 * r * r)

    @numba.njit
    def f(v):
        s = 0.0
        for i in range(v.size):
            s += ccbrt(v[i]) * v[i]
        return s

    v = np.array([1.0, 8.0, 27.0])
    dv = np.zeros(3)
    llad.autodiff(llad.Reverse, f, llad.Active, llad.Duplicated(v, dv))
    np.testing.assert_allclose(dv, 4.0 / 3.0 * np.cbrt(v), rtol=1e-14)
    assert check_grads(f, v) > 0


@llad.custom_vjp
@numba.njit
def _hyp(p, q):
    return math.sqrt(p * p + q * q + 1.0)          # float32 arguments give a float64 result


@numba.njit
def _hyp_fwd(p, q):
    r = _hyp(p, q)
    return r, (p, q, r)


@numba.njit
def _hyp_bwd(res, dret, sp, sq):
    p, q, r = res
    return dret * p / r, dret * q / r


_hyp.defvjp(_hyp_fwd, _hyp_bwd)


@llad.custom_jvp
@numba.njit
def _hyp_j(p, q):
    return math.sqrt(p * p + q * q + 1.0)


@_hyp_j.defjvp
@numba.njit
def _hyp_j_jvp(p, q, dp, dq):
    r = _hyp_j(p, q)
    return r, (p * dp + q * dq) / r


@numba.njit
def _sum_hyp(x):
    s = 0.0
    for i in range(x.size):
        s += _hyp(x[i], np.float32(0.5) * x[i])
    return s


@numba.njit
def _sum_hyp_j(x):
    s = 0.0
    for i in range(x.size):
        s += _hyp_j(x[i], np.float32(0.5) * x[i])
    return s


@pytest.mark.parametrize("f", [_sum_hyp, _sum_hyp_j], ids=["vjp", "jvp"])
def test_rule_whose_float32_arguments_give_a_float64_result(f):
    """Found by the fuzz grammar's custom-rule calls: the partials are float64, the arguments' tangents and
    adjoints float32 (the derivative code converts between them; it used to emit invalid IR)."""
    x = np.linspace(0.1, 1.0, 7).astype(np.float32)
    x64 = x.astype(np.float64)
    expected = (x64 + 0.25 * x64) / np.sqrt(1.25 * x64 * x64 + 1.0)     # d/dx sqrt(x^2 + x^2/4 + 1)
    g = np.zeros(7, np.float32)
    llad.autodiff(llad.Reverse, f, llad.Active, llad.Duplicated(x, g))
    np.testing.assert_allclose(g, expected, rtol=2e-6)
    v = np.linspace(1.0, -1.0, 7).astype(np.float32)
    (t,) = llad.autodiff(llad.Forward, f, llad.Duplicated(x, v))
    assert t == pytest.approx(float(expected @ v.astype(np.float64)), rel=2e-6)
    (ts,) = llad.autodiff(llad.Forward, f, llad.BatchDuplicated(x, (v, np.ones(7, np.float32))))
    assert ts[0] == pytest.approx(t, rel=1e-6) and ts[1] == pytest.approx(float(expected.sum()), rel=2e-6)
