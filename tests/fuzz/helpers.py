"""Array helpers that generated kernels call (shared, so that Numba compiles them once per session)."""
import numba


@numba.njit
def hr(v, k):
    """Reads two elements of v."""
    return v[k] * v[(k + 1) % v.shape[0]] + 0.5 * v[k]


@numba.njit
def hw(v, k, val):
    """Writes v[k] in place from its old value."""
    v[k] = 0.5 * v[k] + val * val


# Scalar functions with user derivative rules (llad.custom_jvp / custom_vjp): kernels drawn with
# `custom=True` call them, so every mode is checked through llad's use of a rule (the rules are right:
# a wrong gradient is llad's)
import math  # noqa: E402

import llad  # noqa: E402


@llad.custom_jvp
@numba.njit
def cj0(p, q):
    return math.sin(p) * q + 0.5 * p * p


@cj0.defjvp
@numba.njit
def _cj0_jvp(p, q, dp, dq):
    return cj0(p, q), (math.cos(p) * q + p) * dp + math.sin(p) * dq


@llad.custom_vjp
@numba.njit
def cv0(p, q):
    return math.sqrt(p * p + q * q + 1.0)


@numba.njit
def _cv0_fwd(p, q):
    r = cv0(p, q)
    return r, (p, q, r)


@numba.njit
def _cv0_bwd(res, dret, sp, sq):
    p, q, r = res
    return dret * p / r, dret * q / r


cv0.defvjp(_cv0_fwd, _cv0_bwd)


@llad.custom_vjp
@numba.njit
def cv1(p, q):
    return p * math.exp(-q * q)


@numba.njit
def _cv1_fwd(p, q):
    e = math.exp(-q * q)
    return p * e, (p, q, e)


@numba.njit
def _cv1_bwd(res, dret, sp, sq):
    p, q, e = res
    return dret * e, -2.0 * dret * p * q * e


cv1.defvjp(_cv1_fwd, _cv1_bwd)

CUSTOM = ("cj0", "cv0", "cv1")
