"""One small kernel per math function, each summing ``(1 + i/10) * f(x[i])`` over an array
whose values lie inside f's domain and away from kinks, poles and branch cuts."""
import math

import numpy as np
from numba import njit

from .core import signed
from .registry import case, const, dup

N = 7


def uni(lo, hi):
    return lambda rng: [dup(rng.uniform(lo, hi, N))]


def away_from_int(rng):
    return [dup(rng.integers(-3, 4, N) + rng.uniform(0.15, 0.85, N))]


def signed_args(rng):
    return [dup(signed(rng, N, 0.2, 2.0))]


WIDE = uni(-2.0, 2.0)
POSITIVE = uni(0.3, 4.0)
UNIT = uni(-0.8, 0.8)


@case(WIDE)
@njit
def math_sin(x):
    s = 0.0
    for i in range(x.shape[0]):
        s += (1.0 + 0.1 * i) * math.sin(x[i])
    return s


@case(WIDE)
@njit
def math_cos(x):
    s = 0.0
    for i in range(x.shape[0]):
        s += (1.0 + 0.1 * i) * math.cos(x[i])
    return s


@case(uni(-1.2, 1.2))
@njit
def math_tan(x):
    s = 0.0
    for i in range(x.shape[0]):
        s += (1.0 + 0.1 * i) * math.tan(x[i])
    return s


@case(WIDE)
@njit
def math_exp(x):
    s = 0.0
    for i in range(x.shape[0]):
        s += (1.0 + 0.1 * i) * math.exp(x[i])
    return s


@case(WIDE)
@njit
def np_exp2(x):
    s = 0.0
    for i in range(x.shape[0]):
        s += (1.0 + 0.1 * i) * np.exp2(x[i])
    return s


@case(WIDE)
@njit
def math_expm1(x):
    s = 0.0
    for i in range(x.shape[0]):
        s += (1.0 + 0.1 * i) * math.expm1(x[i])
    return s


@case(POSITIVE)
@njit
def math_log(x):
    s = 0.0
    for i in range(x.shape[0]):
        s += (1.0 + 0.1 * i) * math.log(x[i])
    return s


@case(POSITIVE)
@njit
def math_log2(x):
    s = 0.0
    for i in range(x.shape[0]):
        s += (1.0 + 0.1 * i) * math.log2(x[i])
    return s


@case(POSITIVE)
@njit
def math_log10(x):
    s = 0.0
    for i in range(x.shape[0]):
        s += (1.0 + 0.1 * i) * math.log10(x[i])
    return s


@case(uni(-0.5, 2.0))
@njit
def math_log1p(x):
    s = 0.0
    for i in range(x.shape[0]):
        s += (1.0 + 0.1 * i) * math.log1p(x[i])
    return s


@case(POSITIVE)
@njit
def math_sqrt(x):
    s = 0.0
    for i in range(x.shape[0]):
        s += (1.0 + 0.1 * i) * math.sqrt(x[i])
    return s


@case(signed_args)
@njit
def math_fabs(x):
    s = 0.0
    for i in range(x.shape[0]):
        s += (1.0 + 0.1 * i) * math.fabs(x[i]) * x[i]
    return s


@case(signed_args)
@njit
def builtin_abs(x):
    s = 0.0
    for i in range(x.shape[0]):
        s += (1.0 + 0.1 * i) * abs(x[i]) * x[i]
    return s


@case(away_from_int)
@njit
def math_floor(x):
    """floor has derivative 0 but scales x."""
    s = 0.0
    for i in range(x.shape[0]):
        s += (1.0 + 0.1 * i) * (math.floor(x[i]) * x[i] + x[i])
    return s


@case(away_from_int)
@njit
def math_ceil(x):
    s = 0.0
    for i in range(x.shape[0]):
        s += (1.0 + 0.1 * i) * (math.ceil(x[i]) * x[i] + x[i])
    return s


@case(away_from_int)
@njit
def math_trunc(x):
    s = 0.0
    for i in range(x.shape[0]):
        s += (1.0 + 0.1 * i) * (math.trunc(x[i]) * x[i] + x[i])
    return s


@case(lambda rng: [dup(signed(rng, N)), dup(signed(rng, N))])
@njit
def math_copysign(x, y):
    s = 0.0
    for i in range(x.shape[0]):
        s += (1.0 + 0.1 * i) * math.copysign(x[i], y[i]) * y[i]
    return s


@case(WIDE)
@njit
def math_tanh(x):
    s = 0.0
    for i in range(x.shape[0]):
        s += (1.0 + 0.1 * i) * math.tanh(x[i])
    return s


@case(WIDE)
@njit
def math_sinh(x):
    s = 0.0
    for i in range(x.shape[0]):
        s += (1.0 + 0.1 * i) * math.sinh(x[i])
    return s


@case(WIDE)
@njit
def math_cosh(x):
    s = 0.0
    for i in range(x.shape[0]):
        s += (1.0 + 0.1 * i) * math.cosh(x[i])
    return s


@case(UNIT)
@njit
def math_asin(x):
    s = 0.0
    for i in range(x.shape[0]):
        s += (1.0 + 0.1 * i) * math.asin(x[i])
    return s


@case(UNIT)
@njit
def math_acos(x):
    s = 0.0
    for i in range(x.shape[0]):
        s += (1.0 + 0.1 * i) * math.acos(x[i])
    return s


@case(WIDE)
@njit
def math_atan(x):
    s = 0.0
    for i in range(x.shape[0]):
        s += (1.0 + 0.1 * i) * math.atan(x[i])
    return s


@case(lambda rng: [dup(signed(rng, N)), dup(signed(rng, N))])
@njit
def math_atan2(y, x):
    """atan2 away from its branch cut (|y| >= 0.2)."""
    s = 0.0
    for i in range(x.shape[0]):
        s += (1.0 + 0.1 * i) * math.atan2(y[i], x[i])
    return s


@case(WIDE)
@njit
def math_asinh(x):
    s = 0.0
    for i in range(x.shape[0]):
        s += (1.0 + 0.1 * i) * math.asinh(x[i])
    return s


@case(uni(1.2, 3.0))
@njit
def math_acosh(x):
    s = 0.0
    for i in range(x.shape[0]):
        s += (1.0 + 0.1 * i) * math.acosh(x[i])
    return s


@case(UNIT)
@njit
def math_atanh(x):
    s = 0.0
    for i in range(x.shape[0]):
        s += (1.0 + 0.1 * i) * math.atanh(x[i])
    return s


@case(WIDE)
@njit
def math_erf(x):
    s = 0.0
    for i in range(x.shape[0]):
        s += (1.0 + 0.1 * i) * math.erf(x[i])
    return s


@case(WIDE)
@njit
def math_erfc(x):
    s = 0.0
    for i in range(x.shape[0]):
        s += (1.0 + 0.1 * i) * math.erfc(x[i])
    return s


@case(POSITIVE)
@njit
def math_lgamma(x):
    s = 0.0
    for i in range(x.shape[0]):
        s += (1.0 + 0.1 * i) * math.lgamma(x[i])
    return s


@case(lambda rng: [dup(signed(rng, N)), dup(signed(rng, N))])
@njit
def math_hypot(x, y):
    s = 0.0
    for i in range(x.shape[0]):
        s += (1.0 + 0.1 * i) * math.hypot(x[i], y[i])
    return s


def _apart(rng):
    x = rng.normal(size=N)
    return [dup(x), dup(x + signed(rng, N, 0.2, 1.0))]


@case(_apart)
@njit
def builtin_min_max(x, y):
    """Builtin min/max of two floats, never tied."""
    s = 0.0
    for i in range(x.shape[0]):
        s += (1.0 + 0.1 * i) * (max(x[i], y[i]) * 2.0 - min(x[i], y[i]) ** 2)
    return s


@case(lambda rng: [dup(rng.uniform(0.5, 2.0, N)), dup(rng.uniform(-2.0, 2.0, N))])
@njit
def pow_float(x, y):
    """x ** y with both operands differentiable arrays."""
    s = 0.0
    for i in range(x.shape[0]):
        s += (1.0 + 0.1 * i) * x[i] ** y[i]
    return s


@case(lambda rng: [dup(rng.uniform(0.5, 2.0, N)), dup(rng.uniform(-2.0, 2.0, N))])
@njit
def math_pow(x, y):
    s = 0.0
    for i in range(x.shape[0]):
        s += (1.0 + 0.1 * i) * math.pow(x[i], y[i])
    return s


@case(WIDE)
@njit
def pow_2(x):
    s = 0.0
    for i in range(x.shape[0]):
        s += (1.0 + 0.1 * i) * x[i] ** 2
    return s


@case(WIDE)
@njit
def pow_3(x):
    s = 0.0
    for i in range(x.shape[0]):
        s += (1.0 + 0.1 * i) * x[i] ** 3
    return s


@case(lambda rng: [dup(signed(rng, N, 0.3, 1.5)), const(5)], name="pow_int_n5")
@case(lambda rng: [dup(signed(rng, N, 0.3, 1.5)), const(-2)], name="pow_int_neg2")
@njit
def pow_int_n(x, n):
    """x ** n for a Const int n."""
    s = 0.0
    for i in range(x.shape[0]):
        s += (1.0 + 0.1 * i) * x[i] ** n
    return s


@case(POSITIVE)
@njit
def pow_half(x):
    s = 0.0
    for i in range(x.shape[0]):
        s += (1.0 + 0.1 * i) * x[i] ** 0.5
    return s


@case(WIDE)
@njit
def np_square(x):
    s = 0.0
    for i in range(x.shape[0]):
        s += (1.0 + 0.1 * i) * np.square(x[i])
    return s


@case(POSITIVE)
@njit
def np_scalar_ufuncs(x):
    """NumPy ufuncs on scalars: np.sin, np.exp, np.log, np.sqrt, np.tanh."""
    s = 0.0
    for i in range(x.shape[0]):
        v = x[i]
        s += np.sin(v) + np.exp(-v) * np.log(v) + np.sqrt(v) * np.tanh(v)
    return s


@case(uni(0.2, 1.5))
@njit
def math_chain(x):
    """Composition of many functions in one expression."""
    s = 0.0
    for i in range(x.shape[0]):
        v = x[i]
        s += math.log1p(math.exp(math.sin(v))) * math.sqrt(math.cosh(v)) \
            + math.atan(math.tanh(v) / math.hypot(v, 1.0))
    return s
