"""Core corpus: loops, while loops, branches, early returns, 1-D/2-D arrays, strided views,
float32, int/float mixing, helper calls, allocation, in-place mutation, output arrays,
Const arrays/tuples and Active scalars."""
import math

import numpy as np
from numba import njit

from .registry import active, case, const, dup


def signed(rng, shape, lo=0.2, hi=1.5):
    """Random values with |v| in [lo, hi] and a random sign (kept away from 0)."""
    return rng.choice([-1.0, 1.0], size=shape) * rng.uniform(lo, hi, size=shape)


def between(values, k):
    """A threshold halfway between cumulative sums k and k+1 of ``values``."""
    c = np.cumsum(values)
    return 0.5 * (c[k] + c[k + 1])


# ------------------------------------------------------------------------- loops

@case(lambda rng: [dup(rng.normal(size=8))])
@njit
def sum_squares(x):
    """1-D loop, x*x."""
    s = 0.0
    for i in range(x.shape[0]):
        s += x[i] * x[i]
    return s


@case(lambda rng: [dup(rng.normal(size=(5, 5))), dup(rng.normal(size=5))])
@njit
def quad_form(A, x):
    """Nested loops over a 2-D array: x^T A x."""
    s = 0.0
    for i in range(A.shape[0]):
        for j in range(A.shape[1]):
            s += x[i] * A[i, j] * x[j]
    return s


@case(lambda rng: [dup(rng.normal(size=(4, 4))), dup(rng.normal(size=(4, 4)))])
@njit
def trace_aba(A, B):
    """Triple nested loop: trace(A B A)."""
    n = A.shape[0]
    s = 0.0
    for i in range(n):
        for j in range(n):
            for k in range(n):
                s += A[i, j] * B[j, k] * A[k, i]
    return s


# ------------------------------------------------------------- while loops / branches

def _while_threshold_args(rng):
    x = rng.uniform(0.5, 1.2, size=10)
    return [dup(x), const(between(x * x, 4))]


@case(_while_threshold_args)
@njit
def while_threshold(x, thr):
    """While loop whose exit depends on the data (runs 6 iterations for these inputs)."""
    acc = 0.0
    i = 0
    while acc < thr and i < x.shape[0]:
        acc += x[i] * x[i]
        i += 1
    return acc + math.sin(x[i - 1]) * i


@case(lambda rng: [dup(np.array([rng.uniform(1.1, 1.3), rng.normal(), rng.normal()]))])
@njit
def while_halving(x):
    """Data-dependent while loop with an int counter (3 halvings for these inputs)."""
    y = x[0] * x[0] + 5.0
    n = 0
    while y > 1.0:
        y = 0.5 * y
        n += 1
    return y * x[1] + n * x[2]


@case(lambda rng: [dup(signed(rng, 9))])
@njit
def branch_sign(x):
    """Branch on the sign of each element."""
    s = 0.0
    for i in range(x.shape[0]):
        v = x[i]
        if v > 0.0:
            s += v * math.sin(v)
        else:
            s -= math.cos(v) * v * v
    return s


def _branch_elif_args(rng):
    n = 9
    y = rng.uniform(0.5, 1.0, size=n)
    cat = np.arange(n) % 3
    x = np.where(cat == 0, y + rng.uniform(0.2, 0.5, n),
                 np.where(cat == 1, -y - rng.uniform(0.2, 0.5, n), y * rng.uniform(-0.6, 0.6, n)))
    return [dup(x), dup(y)]


@case(_branch_elif_args)
@njit
def branch_elif(x, y):
    """Three-way if/elif/else on data comparing two arrays."""
    s = 0.0
    for i in range(x.shape[0]):
        if x[i] > y[i]:
            s += (x[i] - y[i]) ** 2
        elif x[i] < -y[i]:
            s += x[i] * y[i]
        else:
            s += math.exp(x[i]) * y[i]
    return s


def _first_args(sign):
    def make(rng):
        x = rng.normal(size=6)
        x[0] = sign * rng.uniform(0.4, 1.0)
        return [dup(x)]
    return make


@case(_first_args(-1.0), name="early_return_not_taken")
@case(_first_args(1.0), name="early_return_taken")
@njit
def early_return_first(x):
    """Early return before a loop (taken or not depending on x[0])."""
    if x[0] > 0.0:
        return math.exp(x[0]) * x[1]
    s = 0.0
    for i in range(1, x.shape[0]):
        s += x[i] * x[i - 1]
    return s


def _in_loop_args(k):
    def make(rng):
        x = signed(rng, 8, 0.5, 1.2)
        thr = between(x * x, k) if k >= 0 else 1e9
        return [dup(x), const(thr)]
    return make


@case(_in_loop_args(-1), name="early_return_in_loop_never")
@case(_in_loop_args(3), name="early_return_in_loop")
@njit
def early_return_in_loop(x, thr):
    """Return from inside a loop once a running sum passes a threshold."""
    s = 0.0
    for i in range(x.shape[0]):
        s += x[i] * x[i]
        if s > thr:
            return s * x[i]
    return -s


def _break_continue_args(rng):
    x = signed(rng, 10, 0.2, 1.5)
    x[6] = 2.5
    return [dup(x)]


@case(_break_continue_args)
@njit
def loop_break_continue(x):
    """continue on negative entries, break on a large one."""
    s = 0.0
    for i in range(x.shape[0]):
        if x[i] < 0.0:
            continue
        if x[i] > 2.0:
            break
        s += math.sqrt(x[i]) * x[i]
    return s


# ---------------------------------------------------------------- output arrays

@case(lambda rng: [dup(rng.normal(size=(4, 6))), dup(rng.normal(size=6)),
                   dup(rng.normal(size=4), role="out")], returns="none")
@njit
def matvec_out(A, x, y):
    """Returns None, writes y = A x."""
    for i in range(A.shape[0]):
        acc = 0.0
        for j in range(A.shape[1]):
            acc += A[i, j] * x[j]
        y[i] = acc


@case(lambda rng: [dup(rng.normal(size=(3, 4))), dup(rng.normal(size=(4, 5))),
                   dup(rng.normal(size=(3, 5)), role="out")], returns="none")
@njit
def matmul_out(A, B, C):
    """Returns None, writes the 2-D product C = A B."""
    for i in range(A.shape[0]):
        for j in range(B.shape[1]):
            acc = 0.0
            for k in range(A.shape[1]):
                acc += A[i, k] * B[k, j]
            C[i, j] = acc


@case(lambda rng: [dup(rng.normal(size=7)), dup(rng.normal(size=7), role="inout"),
                   dup(rng.normal(size=7), role="out")], returns="none")
@njit
def inout_and_out(x, y, out):
    """Returns None; y is updated in place and out is written from the new y."""
    for i in range(x.shape[0]):
        y[i] += x[i] * x[i]
        out[i] = y[i] * x[i]


@case(lambda rng: [dup(rng.normal(size=8), role="inout")], returns="none")
@njit
def inplace_recurrence(x):
    """In-place mutation: each element is rewritten from its already-updated neighbour."""
    x[0] = math.sin(x[0])
    for i in range(1, x.shape[0]):
        x[i] = 0.5 * x[i] + math.sin(x[i - 1])


@case(lambda rng: [dup(rng.normal(size=6), role="inout"), dup(rng.uniform(0.5, 1.5, 6))])
@njit
def inplace_and_return(x, y):
    """Mutates x in place and returns a float computed from the new values."""
    s = 0.0
    for i in range(x.shape[0]):
        x[i] = x[i] * y[i] + math.exp(-y[i])
        s += x[i] * x[i]
    return s


# --------------------------------------------------------------- strided views

def _view_2d(view, shadow, order="C", dtype=np.float64, shape=(5, 3)):
    def make(rng):
        base = rng.normal(size=shape).astype(dtype)
        if order == "F":
            base = np.asfortranarray(base)
        return [dup(base, view=view, shadow=shadow)]
    return make


@case(_view_2d(None, "like", dtype=np.float32, order="F"), name="view2d_F_float32")
@case(_view_2d(lambda b: b[1:6, ::2], "C", shape=(7, 5)), name="view2d_block_step")
@case(_view_2d(None, "C", order="F"), name="view2d_F_shadowC")
@case(_view_2d(None, "like", order="F"), name="view2d_F")
@case(_view_2d(lambda b: b.T, "like"), name="view2d_T_shadow_like")
@case(_view_2d(lambda b: b.T, "C"), name="view2d_T")
@njit
def weighted_2d(A):
    """2-D array weighted by its indices (run on C, F, transposed and sliced arrays)."""
    s = 0.0
    for i in range(A.shape[0]):
        for j in range(A.shape[1]):
            s += (i + 1.0) * A[i, j] * math.sin(A[i, j] + j)
    return s


def _view_1d(view, shadow, n):
    return lambda rng: [dup(rng.normal(size=n), view=view, shadow=shadow)]


@case(_view_1d(lambda b: b[1::3], "C", 16), name="view1d_offset_step3")
@case(_view_1d(lambda b: b[::-1], "C", 7), name="view1d_reversed")
@case(_view_1d(lambda b: b[::2], "like", 14), name="view1d_step2")
@njit
def weighted_1d(x):
    """1-D strided views: x[::2], x[::-1], x[1::3]."""
    s = 0.0
    for i in range(x.shape[0]):
        s += (i + 1) * x[i] * math.cos(x[i])
    return s


# ---------------------------------------------------------------------- float32

@case(lambda rng: [dup(rng.normal(size=9).astype(np.float32)),
                   dup(rng.normal(size=9).astype(np.float32))])
@njit
def float32_dot(x, y):
    """float32 arrays and a float32 accumulator."""
    s = np.float32(0.0)
    for i in range(x.shape[0]):
        s += x[i] * y[i] + x[i] * x[i] * np.float32(0.5)
    return s


@case(lambda rng: [dup(rng.normal(size=8).astype(np.float32)),
                   dup(rng.normal(size=8).astype(np.float32), role="out")], returns="none")
@njit
def float32_out(x, out):
    """float32 output array written by a None-returning kernel."""
    out[0] = math.tanh(x[0])
    for i in range(1, x.shape[0]):
        out[i] = math.tanh(x[i]) * x[i - 1]


# ------------------------------------------------------------- int/float mixing

@case(lambda rng: [dup(rng.normal(size=9)), const(9)])
@njit
def int_float_mix(x, n):
    """Int loop counters, int division, true division and float(int) mixed with floats."""
    k = n // 2
    s = 0.0
    for i in range(n):
        s += x[i] * i / n + x[i] / (i + 1)
    s += x[k] * k
    s += float(n) * x[0] ** 2
    return s


# --------------------------------------------------------------- helper calls

@njit
def _lvl3(a, b):
    return a * math.exp(-b * b)


@njit
def _lvl2(a, b):
    return _lvl3(a, b) + 0.5 * _lvl3(b, a)


@njit
def _lvl1(x, i):
    return _lvl2(x[i], x[i + 1]) - x[i] ** 2


@case(lambda rng: [dup(rng.normal(size=7))])
@njit
def helpers_deep(x):
    """Three levels of @njit helpers taking scalars and arrays."""
    s = 0.0
    for i in range(x.shape[0] - 1):
        s += _lvl1(x, i)
    return s


@njit
def _axpy_into(out, a, x):
    for i in range(x.shape[0]):
        out[i] = a * x[i] + out[i]


@njit
def _normsq(v):
    s = 0.0
    for i in range(v.shape[0]):
        s += v[i] * v[i]
    return s


@case(lambda rng: [dup(rng.normal(size=6)), dup(rng.normal(size=6))])
@njit
def helpers_array(x, y):
    """Helpers that write into a locally allocated array (np.zeros_like)."""
    tmp = np.zeros_like(x)
    _axpy_into(tmp, 2.0, x)
    _axpy_into(tmp, -1.5, y)
    return _normsq(tmp) + math.sqrt(_normsq(x))


# ------------------------------------------------------------------ allocation

@case(lambda rng: [dup(rng.normal(size=8))])
@njit
def alloc_empty(x):
    """np.empty inside the kernel holding prefix-sum intermediates."""
    tmp = np.empty(x.shape[0])
    acc = 0.0
    for i in range(x.shape[0]):
        acc += x[i]
        tmp[i] = acc * acc
    s = 0.0
    for i in range(x.shape[0]):
        s += tmp[i] * x[i]
    return s


@case(lambda rng: [dup(rng.normal(size=5))])
@njit
def alloc_zeros_2d(x):
    """np.zeros((n, n)) inside the kernel, filled and read back transposed."""
    n = x.shape[0]
    M = np.zeros((n, n))
    for i in range(n):
        for j in range(i, n):
            M[i, j] = math.sin(x[i]) * x[j]
    s = 0.0
    for i in range(n):
        for j in range(n):
            s += M[i, j] * (M[j, i] + 1.0)
    return s


# ------------------------------------------------------- Const and Active args

@case(lambda rng: [const(rng.normal(size=7)), dup(rng.normal(size=7))])
@njit
def const_array_weights(w, x):
    """A Const float array argument."""
    s = 0.0
    for i in range(x.shape[0]):
        s += w[i] * x[i] ** 2 + math.sin(w[i] * x[i])
    return s


@case(lambda rng: [const(np.array([3, 0, 4, 4, 1, 3, 2])), dup(rng.normal(size=5))])
@njit
def const_int_gather(idx, x):
    """A Const int array used for indirect indexing (with repeats)."""
    s = 0.0
    for i in range(idx.shape[0] - 1):
        s += x[idx[i]] * x[idx[i + 1]]
    return s


@case(lambda rng: [dup(rng.normal(size=6)), const((0.5, -1.0, 0.25, 2.0))])
@njit
def const_tuple_poly(x, coeffs):
    """A homogeneous tuple of floats (Const), iterated over: Horner's rule."""
    s = 0.0
    for i in range(x.shape[0]):
        p = 0.0
        for c in coeffs:
            p = p * x[i] + c
        s += p
    return s


@case(lambda rng: [dup(signed(rng, 6, 0.4, 1.3)), const((2.5, 3)), const(True)])
@njit
def const_mixed_tuple(x, params, flag):
    """A (float, int) tuple and a bool flag as Const arguments."""
    a = params[0]
    m = params[1]
    s = 0.0
    for i in range(x.shape[0]):
        s += a * x[i] ** m
    if flag:
        s = 2.0 * s
    return s


@case(lambda rng: [active(0.7), dup(rng.normal(size=6))])
@njit
def active_scale(a, x):
    """An Active scalar multiplying the array inside sin."""
    s = 0.0
    for i in range(x.shape[0]):
        s += math.sin(a * x[i]) * a
    return s


@case(lambda rng: [active(0.8), dup(rng.normal(size=5)), active(-0.3)])
@njit
def two_actives(a, x, b):
    """Two Active scalars around one array."""
    s = 0.0
    for i in range(x.shape[0]):
        s += (a * x[i] + b) ** 2
    return s / (1.0 + b * b)


@case(lambda rng: [dup(rng.normal(size=5)), dup(rng.normal(size=7))])
@njit
def two_arrays_pairwise(x, y):
    """Two arrays of different length, all pairs."""
    s = 0.0
    for i in range(x.shape[0]):
        for j in range(y.shape[0]):
            d = x[i] - y[j]
            s += x[i] * y[j] / (1.0 + d * d)
    return s
