"""Reverse-mode corpus: in-place time stepping, pivoting, branchy minima, Newton loops,
output arrays seeded by the caller, mixed parameter kinds, strided/float32 inputs and
several levels of helpers.  Forward tests run on these too unless tagged reverse-only."""
import math

import numpy as np
from numba import njit

from .core import between, signed
from .registry import active, case, const, dup

# ------------------------------------------------------------- time stepping

def _heat_args(dtype):
    return lambda rng: [dup(rng.normal(size=12).astype(dtype), role="inout"), const(15),
                        const(0.25)]


@case(_heat_args(np.float32), returns="none", name="heat_inplace_float32")
@case(_heat_args(np.float64), returns="none")
@njit
def heat_inplace(u, steps, alpha):
    """Explicit heat equation; u (the initial state) is overwritten every step."""
    n = u.shape[0]
    tmp = np.empty_like(u)
    for _ in range(steps):
        for i in range(1, n - 1):
            tmp[i] = u[i] + alpha * (u[i - 1] - 2.0 * u[i] + u[i + 1])
        for i in range(1, n - 1):
            u[i] = tmp[i]


@case(lambda rng: [dup(rng.uniform(-1.0, 1.0, 10), role="inout"), const(12), const(0.1)])
@njit
def heat_reaction_energy(u, steps, dt):
    """Nonlinear reaction-diffusion in place, returns the final energy sum(u**2)."""
    n = u.shape[0]
    tmp = np.empty_like(u)
    for _ in range(steps):
        for i in range(1, n - 1):
            lap = u[i - 1] - 2.0 * u[i] + u[i + 1]
            tmp[i] = u[i] + dt * (lap + u[i] - u[i] ** 3)
        for i in range(1, n - 1):
            u[i] = tmp[i]
    e = 0.0
    for i in range(n):
        e += u[i] * u[i]
    return e


@case(lambda rng: [dup(rng.uniform(-1.0, 1.0, 11), role="inout"), const(4)])
@njit
def gauss_seidel_sweeps(u, sweeps):
    """In-place Gauss-Seidel smoothing: the loop reads and writes u, so its reverse reads adjoints of u
    inside the loop (no deferred accumulation may apply)."""
    n = u.shape[0]
    for _ in range(sweeps):
        for i in range(1, n - 1):
            u[i] = 0.5 * (u[i - 1] + u[i + 1]) + 0.1 * math.sin(u[i])
    s = 0.0
    for i in range(n):
        s += u[i] * u[i]
    return s


@case(lambda rng: [dup(rng.uniform(-1.0, 1.0, 13)), dup(rng.uniform(-1.0, 1.0, 13), role="out")],
      returns="none")
@njit
def stencil_with_branch(u, out):
    """A stencil whose far neighbour is read only on some iterations (a load that does not run every
    iteration), next to loads that do."""
    n = u.shape[0]
    for i in (0, 1, n - 2, n - 1):
        out[i] = u[i]
    for i in range(2, n - 2):
        v = u[i - 1] - 2.0 * u[i] * u[i + 1]
        if u[i] > 0.0:
            v += u[i + 2] * u[i - 2]
        out[i] = v


@case(lambda rng: [dup(rng.normal(size=(6, 6)), role="inout"), const(6)], returns="none")
@njit
def heat2d_inplace(U, steps):
    """2-D five-point stencil overwriting U each step (interior only)."""
    tmp = np.empty_like(U)
    for _ in range(steps):
        for i in range(1, U.shape[0] - 1):
            for j in range(1, U.shape[1] - 1):
                tmp[i, j] = U[i, j] + 0.15 * (U[i - 1, j] + U[i + 1, j] + U[i, j - 1]
                                              + U[i, j + 1] - 4.0 * U[i, j])
        for i in range(1, U.shape[0] - 1):
            for j in range(1, U.shape[1] - 1):
                U[i, j] = tmp[i, j]


@njit
def _rhs(y, rate, out):
    n = y.shape[0]
    for i in range(n):
        out[i] = -rate * y[i] + 0.5 * math.sin(y[(i + 1) % n])


@case(lambda rng: [dup(rng.normal(size=6), role="inout"), active(0.8), const(0.1), const(10)])
@njit
def rk4_inplace(y, rate, dt, nsteps):
    """Classic RK4, state updated in place, rate an Active scalar; returns sum(y**2)."""
    n = y.shape[0]
    k1 = np.empty(n)
    k2 = np.empty(n)
    k3 = np.empty(n)
    k4 = np.empty(n)
    tmp = np.empty(n)
    for _ in range(nsteps):
        _rhs(y, rate, k1)
        for i in range(n):
            tmp[i] = y[i] + 0.5 * dt * k1[i]
        _rhs(tmp, rate, k2)
        for i in range(n):
            tmp[i] = y[i] + 0.5 * dt * k2[i]
        _rhs(tmp, rate, k3)
        for i in range(n):
            tmp[i] = y[i] + dt * k3[i]
        _rhs(tmp, rate, k4)
        for i in range(n):
            y[i] += dt / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i])
    s = 0.0
    for i in range(n):
        s += y[i] * y[i]
    return s


@case(lambda rng: [dup(rng.normal(size=8), role="inout")], returns="none")
@njit
def cumprod_inplace(x):
    """x[i] *= x[i-1] in place."""
    for i in range(1, x.shape[0]):
        x[i] *= x[i - 1]


@case(lambda rng: [dup(rng.normal(size=10))])
@njit
def recurrence_tape(x):
    """A scalar overwritten every iteration; reverse needs all its old values."""
    s = 0.3
    for t in range(x.shape[0]):
        s = math.sin(s + x[t]) * (1.0 + 0.5 * x[t])
    return s


@case(lambda rng: [dup(rng.uniform(-1.0, 1.0, 9)), const(5)])
@njit
def pingpong_buffers(u, steps):
    """Two local buffers swapped by name every step (a, b = b, a)."""
    n = u.shape[0]
    a = u.copy()
    b = np.empty_like(u)
    for _ in range(steps):
        b[0] = a[0]
        b[n - 1] = a[n - 1]
        for i in range(1, n - 1):
            b[i] = 0.5 * a[i] + 0.25 * (a[i - 1] + a[i + 1]) + 0.1 * math.sin(a[i])
        a, b = b, a
    s = 0.0
    for i in range(n):
        s += a[i] * a[i] * (i + 1)
    return s


# ----------------------------------------------------------- linear algebra

def _lu_args(rng):
    B = 0.3 * rng.normal(size=(4, 4)) + 3.0 * np.eye(4)
    return [dup(B[[2, 0, 3, 1]])]       # rows permuted, so pivoting must swap


@case(_lu_args)
@njit
def lu_det(A):
    """Determinant by LU with partial pivoting on a copy allocated inside."""
    n = A.shape[0]
    M = np.empty((n, n))
    for i in range(n):
        for j in range(n):
            M[i, j] = A[i, j]
    det = 1.0
    for k in range(n):
        p = k
        best = abs(M[k, k])
        for i in range(k + 1, n):
            if abs(M[i, k]) > best:
                best = abs(M[i, k])
                p = i
        if p != k:
            for j in range(n):
                t = M[k, j]
                M[k, j] = M[p, j]
                M[p, j] = t
            det = -det
        det *= M[k, k]
        for i in range(k + 1, n):
            f = M[i, k] / M[k, k]
            for j in range(k + 1, n):
                M[i, j] -= f * M[k, j]
    return det


def _lower_args(rng):
    L = np.tril(0.4 * rng.normal(size=(5, 5)), -1) + np.diag(rng.uniform(1.5, 2.5, 5))
    return [dup(L), dup(rng.normal(size=5), role="inout")]


@case(_lower_args, returns="none")
@njit
def forward_subst_inplace(L, b):
    """Solve L y = b by forward substitution, y overwriting b."""
    for i in range(b.shape[0]):
        acc = b[i]
        for j in range(i):
            acc -= L[i, j] * b[j]
        b[i] = acc / L[i, i]


# ------------------------------------------------------------ branchy minima

def _kmeans_args(rng):
    C = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 3.0]]) + 0.1 * rng.normal(size=(3, 2))
    X = C[np.arange(8) % 3] + 0.3 * rng.normal(size=(8, 2))
    return [dup(X), dup(C)]


@case(_kmeans_args)
@njit
def kmeans_cost(X, C):
    """Sum over points of the squared distance to the nearest center (branchy min)."""
    cost = 0.0
    for p in range(X.shape[0]):
        best = 1e300
        for c in range(C.shape[0]):
            d = 0.0
            for k in range(X.shape[1]):
                d += (X[p, k] - C[c, k]) ** 2
            if d < best:  # noqa: PLR1730 (keep the branch)
                best = d
        cost += best
    return cost


def _pool_args(rng):
    x = rng.permutation(12) * 0.3 + 0.05 * rng.normal(size=12) - 1.5
    return [dup(x), dup(rng.normal(size=4), role="out"), const(3)]


@case(_pool_args, returns="none")
@njit
def max_pool_out(x, out, width):
    """Windowed max by comparison (argmax branch), squared into out."""
    for k in range(out.shape[0]):
        best = x[k * width]
        for j in range(1, width):
            if x[k * width + j] > best:  # noqa: PLR1730 (keep the branch)
                best = x[k * width + j]
        out[k] = best * best


@case(lambda rng: [dup(rng.normal(size=7)), dup(rng.normal(size=7), role="out")],
      returns="none")
@njit
def softmax_out(x, out):
    """Softmax with max subtraction written into out (caller seeds out's shadow)."""
    m = x[0]
    for i in range(1, x.shape[0]):
        if x[i] > m:  # noqa: PLR1730 (keep the branch)
            m = x[i]
    z = 0.0
    for i in range(x.shape[0]):
        out[i] = math.exp(x[i] - m)
        z += out[i]
    for i in range(x.shape[0]):
        out[i] /= z


@case(lambda rng: [dup(rng.normal(size=(4, 5))), dup(rng.normal(size=4), role="out")],
      returns="none")
@njit
def logsumexp_rows_out(A, out):
    """Row-wise log-sum-exp of a 2-D array into an output vector."""
    for i in range(A.shape[0]):
        m = A[i, 0]
        for j in range(1, A.shape[1]):
            m = max(m, A[i, j])
        z = 0.0
        for j in range(A.shape[1]):
            z += math.exp(A[i, j] - m)
        out[i] = m + math.log(z)


@case(lambda rng: [const(np.array([0, 2, 2, 1, 0, 3, 2])), dup(rng.normal(size=7)),
                   dup(rng.normal(size=4), role="inout")], returns="none")
@njit
def scatter_add(idx, x, out):
    """out[idx[i]] += x[i]**2 with repeated indices (out keeps its old values)."""
    for i in range(idx.shape[0]):
        out[idx[i]] += x[i] * x[i]


# -------------------------------------------------------------- iterations

@case(lambda rng: [dup(rng.uniform(0.5, 8.0, 6))])
@njit
def newton_cuberoot(a):
    """Newton's method for a**(1/3) in a while loop with a tolerance exit."""
    s = 0.0
    for i in range(a.shape[0]):
        y = a[i]
        it = 0
        while abs(y * y * y - a[i]) > 1e-13 * a[i] and it < 100:
            y = y - (y * y * y - a[i]) / (3.0 * y * y)
            it += 1
        s += y * (i + 1)
    return s


@case(lambda rng: [dup(np.array([-2.0, 0.5, 1.0, 1.0]) + 0.05 * rng.normal(size=4))])
@njit
def newton_poly_root(c):
    """Root of c0 + c1 x + c2 x^2 + c3 x^3 by Newton from x=1 (implicit derivative)."""
    x = 1.0
    for _ in range(60):
        f = ((c[3] * x + c[2]) * x + c[1]) * x + c[0]
        df = (3.0 * c[3] * x + 2.0 * c[2]) * x + c[1]
        step = f / df
        x -= step
        if abs(step) < 1e-15:
            break
    return x


def _product_args(rng):
    x = signed(rng, 8, 0.5, 0.9)
    return [dup(x), const(math.exp(between(np.log(np.abs(x)), 3)))]


@case(_product_args)
@njit
def early_exit_product(x, thr):
    """Return from inside a loop when a running product becomes small."""
    p = 1.0
    for i in range(x.shape[0]):
        p *= x[i]
        if abs(p) < thr:
            return 10.0 * p
    return p


# ------------------------------------------------------- mixed parameters

@case(lambda rng: [active(0.6), dup(rng.normal(size=9)), const(6),
                   const(rng.uniform(0.5, 1.5, 9))])
@njit
def mixed_params(a, x, n, w):
    """Active scalar, Duplicated array, Const int (partial range) and Const array."""
    s = 0.0
    for i in range(n):
        s += w[i] * math.exp(a * x[i])
    return s + a * a * x[n - 1]


@case(lambda rng: [active(1.3), active(-0.4), const(rng.normal(size=6))],
      tags=("reverse-only",))
@njit
def active_scalars_only(a, b, data):
    """Only Active scalars are differentiable (a least-squares loss)."""
    s = 0.0
    for i in range(data.shape[0]):
        r = a * data[i] - b - math.sin(data[i])
        s += r * r
    return s


@case(lambda rng: [dup(rng.normal(size=(10, 4)), view=lambda b: b[::2, 1:].T, shadow="C")])
@njit
def strided2d_logsum(A):
    """2-D strided input (b[::2, 1:].T) with a C-contiguous shadow."""
    s = 0.0
    for i in range(A.shape[0]):
        r = 0.0
        for j in range(A.shape[1]):
            r += A[i, j] * A[i, j]
        s += math.log(1.0 + r) * (i + 1)
    return s


@case(lambda rng: [dup(rng.normal(size=8).astype(np.float32))])
@njit
def float32_logsumexp(x):
    """float32 log-sum-exp with a running max."""
    m = x[0]
    for i in range(1, x.shape[0]):
        if x[i] > m:  # noqa: PLR1730 (keep the branch)
            m = x[i]
    z = np.float32(0.0)
    for i in range(x.shape[0]):
        z += math.exp(x[i] - m)
    return m + math.log(z)


# ------------------------------------------------------------------ helpers

@njit
def _sq(v):
    return v * v


@njit
def _pair(a, b):
    return _sq(a - b) + math.sin(a) * b


@njit
def _row(x, y, i, buf):
    acc = 0.0
    for j in range(y.shape[0]):
        acc += _pair(x[i], y[j])
    buf[i] = acc
    return acc


@case(lambda rng: [dup(rng.normal(size=5)), dup(rng.normal(size=4))])
@njit
def deep_helpers(x, y):
    """Four levels of helpers; one writes into a buffer allocated by the caller."""
    buf = np.empty(x.shape[0])
    s = 0.0
    for i in range(x.shape[0]):
        s += _row(x, y, i, buf)
    t = 0.0
    for i in range(x.shape[0]):
        t += buf[i] * buf[i]
    return s + 0.1 * t
