"""Benchmark kernels: plain loop-style ``@numba.njit`` functions returning a scalar loss.

Every kernel is registered as a :class:`Kernel` with

* ``func``: the Numba dispatcher (what llad differentiates),
* ``make_args(size)``: fresh, seeded, realistic inputs for ``size`` ``"full"`` or ``"quick"``,
* ``diff``: the indices of the differentiated (array) arguments,
* ``mutates``: the indices of arguments the kernel overwrites in place (the harness
  restores them before every call),
* ``exact_grad``: where one is short enough to write by hand, an independent NumPy
  gradient (one array per ``diff`` entry) used as a reference.

The ADBench objectives (gmm, ba, lstm) follow the loop structure of ADBench's C
versions (``src/cpp/shared/{gmm,ba,lstm}.h``) with 2-D arrays in place of flat ones.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numba
import numpy as np

SIZES = ("full", "quick")


@dataclass(frozen=True)
class Kernel:
    name: str
    func: numba.core.registry.CPUDispatcher
    make_args: Callable[[str], tuple]
    diff: tuple[int, ...]
    description: str
    mutates: tuple[int, ...] = ()
    exact_grad: Callable[[tuple], tuple] | None = None
    fd_step: float = 1e-3  # relative finite-difference step (small where the loss has kinks)

    def sizes(self, size: str) -> str:
        """Human-readable shapes of the arguments for one size."""
        parts = []
        for a in self.make_args(size):
            if isinstance(a, np.ndarray):
                parts.append("x".join(str(s) for s in a.shape) + ("f32" if a.dtype == np.float32 else ""))
            else:
                parts.append(f"{a:.6g}" if isinstance(a, float) else repr(a))
        return "(" + ", ".join(parts) + ")"

    def n_inputs(self, args: tuple) -> int:
        """Number of differentiated scalars."""
        return int(sum(args[i].size for i in self.diff))


def _rng(name: str) -> np.random.Generator:
    return np.random.default_rng(sum(name.encode()) * 7919)


def _pick(size: str, full, quick):
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, got {size!r}")
    return full if size == "full" else quick


# --------------------------------------------------------------------------- sumsin
@numba.njit
def sumsin(x):
    s = 0.0
    for i in range(x.shape[0]):
        s += math.sin(x[i])
    return s


def _sumsin_args(size):
    return (_rng("sumsin").uniform(-3.0, 3.0, _pick(size, 1_000_000, 100_000)),)


def _sumsin_grad(args):
    return (np.cos(args[0]),)


# --------------------------------------------------------------------------- sumsin32
@numba.njit
def sumsin32(x):
    s = np.float32(0.0)
    for i in range(x.shape[0]):
        s += math.sin(x[i])
    return s


def _sumsin32_args(size):
    n = _pick(size, 1_000_000, 100_000)
    return (_rng("sumsin32").uniform(-3.0, 3.0, n).astype(np.float32),)


def _sumsin32_grad(args):
    return (np.cos(args[0].astype(np.float64)).astype(np.float32),)


# --------------------------------------------------------------------------- logsumexp
@numba.njit
def logsumexp(x):
    m = x[0]
    for i in range(1, x.shape[0]):
        if x[i] > m:  # noqa: PLR1730 - a branch on purpose (loop style)
            m = x[i]
    s = 0.0
    for i in range(x.shape[0]):
        s += math.exp(x[i] - m)
    return m + math.log(s)


def _logsumexp_args(size):
    return (3.0 * _rng("logsumexp").standard_normal(_pick(size, 1_000_000, 100_000)),)


def _logsumexp_grad(args):
    x = args[0]
    e = np.exp(x - x.max())
    return (e / e.sum(),)


# --------------------------------------------------------------------------- gmm
@numba.njit
def _lse_vec(v):
    mx = v[0]
    for i in range(1, v.shape[0]):
        if v[i] > mx:  # noqa: PLR1730 - a branch on purpose (loop style)
            mx = v[i]
    s = 0.0
    for i in range(v.shape[0]):
        s += math.exp(v[i] - mx)
    return math.log(s) + mx


@numba.njit
def gmm_objective(alphas, means, icf, x, wishart_gamma, wishart_m, log_gamma_d):
    """ADBench GMM: alphas (k,), means (k,d), icf (k, d(d+1)/2) = [log diag, strict lower
    triangle column by column] of the inverse Cholesky factor, x (n,d).
    ``log_gamma_d`` is ADBench's constant ``log_gamma_distrib(0.5*(d+m+1), d)``."""
    k, d = means.shape
    n = x.shape[0]
    qdiags = np.empty((k, d))
    sum_qs = np.empty(k)
    for ik in range(k):
        sum_qs[ik] = 0.0
        for j in range(d):
            q = icf[ik, j]
            sum_qs[ik] += q
            qdiags[ik, j] = math.exp(q)
    xcentered = np.empty(d)
    qx = np.empty(d)
    main_term = np.empty(k)
    slse = 0.0
    for ix in range(n):
        for ik in range(k):
            for j in range(d):
                xcentered[j] = x[ix, j] - means[ik, j]
                qx[j] = qdiags[ik, j] * xcentered[j]
            idx = d
            for i in range(d):
                for j in range(i + 1, d):
                    qx[j] += icf[ik, idx] * xcentered[i]
                    idx += 1
            sq = 0.0
            for j in range(d):
                sq += qx[j] * qx[j]
            main_term[ik] = alphas[ik] + sum_qs[ik] - 0.5 * sq
        slse += _lse_vec(main_term)
    err = -n * d * 0.5 * math.log(2.0 * math.pi) + slse - n * _lse_vec(alphas)
    # Wishart prior
    nn = d + wishart_m + 1
    c = nn * d * (math.log(wishart_gamma) - 0.5 * math.log(2.0)) - log_gamma_d
    prior = 0.0
    for ik in range(k):
        frob = 0.0
        for j in range(d):
            frob += qdiags[ik, j] * qdiags[ik, j]
        for j in range(d, icf.shape[1]):
            frob += icf[ik, j] * icf[ik, j]
        prior += 0.5 * wishart_gamma * wishart_gamma * frob - wishart_m * sum_qs[ik]
    return err + prior - k * c


def log_gamma_distrib(a: float, p: int) -> float:
    return 0.25 * p * (p - 1) * math.log(math.pi) + sum(math.lgamma(a + 0.5 * (1 - j)) for j in range(1, p + 1))


def _gmm_args(size):
    d, k, n = 10, 25, _pick(size, 1000, 200)
    rng = _rng("gmm")
    alphas = rng.standard_normal(k)
    means = rng.uniform(size=(k, d))
    icf = 0.5 * rng.standard_normal((k, d * (d + 1) // 2))
    x = rng.uniform(size=(n, d))
    gamma, m = 1.0, 0
    return alphas, means, icf, x, gamma, m, log_gamma_distrib(0.5 * (d + m + 1), d)


# --------------------------------------------------------------------------- ba
@numba.njit
def _rodrigues_rotate(r0, r1, r2, p0, p1, p2):
    sqtheta = r0 * r0 + r1 * r1 + r2 * r2
    if sqtheta != 0.0:
        theta = math.sqrt(sqtheta)
        costheta = math.cos(theta)
        sintheta = math.sin(theta)
        inv = 1.0 / theta
        w0, w1, w2 = r0 * inv, r1 * inv, r2 * inv
        c0, c1, c2 = w1 * p2 - w2 * p1, w2 * p0 - w0 * p2, w0 * p1 - w1 * p0
        tmp = (w0 * p0 + w1 * p1 + w2 * p2) * (1.0 - costheta)
        return (p0 * costheta + c0 * sintheta + w0 * tmp,
                p1 * costheta + c1 * sintheta + w1 * tmp,
                p2 * costheta + c2 * sintheta + w2 * tmp)
    return (p0 + r1 * p2 - r2 * p1, p1 + r2 * p0 - r0 * p2, p2 + r0 * p1 - r1 * p0)


@numba.njit
def _ba_project(cams, ic, pts, ip):
    """cam = [r1 r2 r3 C1 C2 C3 f u0 v0 k1 k2]: Xcam = R (X - C), radial distortion."""
    xc0, xc1, xc2 = _rodrigues_rotate(cams[ic, 0], cams[ic, 1], cams[ic, 2],
                                      pts[ip, 0] - cams[ic, 3], pts[ip, 1] - cams[ic, 4],
                                      pts[ip, 2] - cams[ic, 5])
    px = xc0 / xc2
    py = xc1 / xc2
    rsq = px * px + py * py
    scale = 1.0 + cams[ic, 9] * rsq + cams[ic, 10] * rsq * rsq
    return px * scale * cams[ic, 6] + cams[ic, 7], py * scale * cams[ic, 6] + cams[ic, 8]


@numba.njit
def ba_objective(cams, pts, w, obs, feats):
    """Sum of squared ADBench BA residuals: weighted reprojection errors and Zach weight errors."""
    s = 0.0
    for i in range(obs.shape[0]):
        u, v = _ba_project(cams, obs[i, 0], pts, obs[i, 1])
        e0 = w[i] * (u - feats[i, 0])
        e1 = w[i] * (v - feats[i, 1])
        we = 1.0 - w[i] * w[i]
        s += e0 * e0 + e1 * e1 + we * we
    return s


@numba.njit
def _ba_project_all(cams, pts, obs):
    out = np.empty((obs.shape[0], 2))
    for i in range(obs.shape[0]):
        out[i, 0], out[i, 1] = _ba_project(cams, obs[i, 0], pts, obs[i, 1])
    return out


def _ba_args(size):
    ncam, npt, nobs = _pick(size, (50, 2000, 10_000), (10, 200, 1000))
    rng = _rng("ba")
    cams = np.empty((ncam, 11))
    cams[:, 0:3] = 0.1 * rng.standard_normal((ncam, 3))
    cams[:, 3:5] = 0.5 * rng.standard_normal((ncam, 2))
    cams[:, 5] = -8.0 + 0.5 * rng.standard_normal(ncam)
    cams[:, 6] = 400.0 + 10.0 * rng.standard_normal(ncam)
    cams[:, 7:9] = 5.0 * rng.standard_normal((ncam, 2))
    cams[:, 9] = -0.02 + 0.005 * rng.standard_normal(ncam)
    cams[:, 10] = 0.002 * rng.standard_normal(ncam)
    pts = rng.standard_normal((npt, 3))
    obs = np.empty((nobs, 2), dtype=np.int64)
    obs[:, 0] = rng.integers(0, ncam, nobs)
    obs[:, 1] = np.arange(nobs) % npt
    feats = _ba_project_all(cams, pts, obs) + 0.5 * rng.standard_normal((nobs, 2))
    # evaluate away from the optimum
    cams = cams * (1.0 + 1e-3 * rng.standard_normal(cams.shape))
    pts = pts + 1e-2 * rng.standard_normal(pts.shape)
    w = 1.0 + 0.01 * rng.standard_normal(nobs)
    return cams, pts, w, obs, feats


# --------------------------------------------------------------------------- lstm
@numba.njit
def _sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


@numba.njit
def lstm_objective(main_params, extra_params, state, sequence):
    """ADBench LSTM. main_params (l, 8, b): rows forget/ingate/outgate/change weights then
    the same biases; extra_params (3, b): in_weight, out_weight, out_bias; state (l, 2, b):
    hidden, cell (copied, not modified); sequence (c, b)."""
    nlayers = main_params.shape[0]
    c, b = sequence.shape
    st = np.empty((nlayers, 2, b))
    for lay in range(nlayers):
        for j in range(2):
            for i in range(b):
                st[lay, j, i] = state[lay, j, i]
    ypred = np.empty(b)
    total = 0.0
    count = 0
    for t in range(c - 1):
        for i in range(b):
            ypred[i] = sequence[t, i] * extra_params[0, i]
        for lay in range(nlayers):
            for i in range(b):
                inp = ypred[i] if lay == 0 else st[lay - 1, 0, i]
                hid = st[lay, 0, i]
                forget = _sigmoid(inp * main_params[lay, 0, i] + main_params[lay, 4, i])
                ingate = _sigmoid(hid * main_params[lay, 1, i] + main_params[lay, 5, i])
                outgate = _sigmoid(inp * main_params[lay, 2, i] + main_params[lay, 6, i])
                change = math.tanh(hid * main_params[lay, 3, i] + main_params[lay, 7, i])
                st[lay, 1, i] = st[lay, 1, i] * forget + ingate * change
                st[lay, 0, i] = outgate * math.tanh(st[lay, 1, i])
        sumexp = 0.0
        for i in range(b):
            ypred[i] = st[nlayers - 1, 0, i] * extra_params[1, i] + extra_params[2, i]
            sumexp += math.exp(ypred[i])
        lse = math.log(sumexp + 2.0)
        for i in range(b):
            total += sequence[t + 1, i] * (ypred[i] - lse)
        count += b
    return -total / count


def _lstm_args(size):
    nlayers, b, c = 2, 14, _pick(size, 1024, 256)
    rng = _rng("lstm")
    return (rng.uniform(-1.0, 1.0, (nlayers, 8, b)), rng.uniform(-1.0, 1.0, (3, b)),
            rng.uniform(-1.0, 1.0, (nlayers, 2, b)), rng.uniform(-1.0, 1.0, (c, b)))


# --------------------------------------------------------------------------- rk4
@numba.njit
def _chain_rhs(y, kcoef, out):
    n = y.shape[0]
    for i in range(n):
        prev = y[i - 1] if i > 0 else y[n - 1]
        out[i] = -kcoef * y[i] + math.sin(prev)


@numba.njit
def rk4(y0, kcoef, dt, nsteps):
    """RK4 on the ring of oscillators dy_i = -k y_i + sin(y_{i-1}); loss = sum(y(T)^2)."""
    n = y0.shape[0]
    y = np.empty(n)
    for i in range(n):
        y[i] = y0[i]
    k1 = np.empty(n)
    k2 = np.empty(n)
    k3 = np.empty(n)
    k4 = np.empty(n)
    tmp = np.empty(n)
    for _ in range(nsteps):
        _chain_rhs(y, kcoef, k1)
        for i in range(n):
            tmp[i] = y[i] + 0.5 * dt * k1[i]
        _chain_rhs(tmp, kcoef, k2)
        for i in range(n):
            tmp[i] = y[i] + 0.5 * dt * k2[i]
        _chain_rhs(tmp, kcoef, k3)
        for i in range(n):
            tmp[i] = y[i] + dt * k3[i]
        _chain_rhs(tmp, kcoef, k4)
        for i in range(n):
            y[i] += dt / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i])
    s = 0.0
    for i in range(n):
        s += y[i] * y[i]
    return s


def _rk4_args(size):
    return (_rng("rk4").uniform(-2.0, 2.0, 100), 0.5, 0.01, _pick(size, 1000, 200))


# --------------------------------------------------------------------------- heat
@numba.njit
def heat(u, r, nsteps):
    """Explicit heat stencil, fixed ends; overwrites ``u`` with the final state."""
    n = u.shape[0]
    tmp = np.empty(n)
    for _ in range(nsteps):
        tmp[0] = u[0]
        tmp[n - 1] = u[n - 1]
        for i in range(1, n - 1):
            tmp[i] = u[i] + r * (u[i - 1] - 2.0 * u[i] + u[i + 1])
        for i in range(n):
            u[i] = tmp[i]
    s = 0.0
    for i in range(n):
        s += u[i] * u[i]
    return s


def _heat_args(size):
    return (_rng("heat").uniform(0.0, 1.0, 1000), 0.4, _pick(size, 500, 100))


def _heat_grad(args):
    """Adjoint sweep of the (linear) stencil, by hand."""
    u, r, nsteps = args[0].copy(), args[1], args[2]
    heat(u, r, nsteps)
    lam = 2.0 * u
    for _ in range(nsteps):
        g = np.zeros_like(lam)
        g[1:-1] += (1.0 - 2.0 * r) * lam[1:-1]
        g[:-2] += r * lam[1:-1]
        g[2:] += r * lam[1:-1]
        g[0] += lam[0]
        g[-1] += lam[-1]
        lam = g
    return (lam,)


# --------------------------------------------------------------------------- ludet
@numba.njit
def ludet(a):
    """log|det(a)| by LU with partial pivoting on an internal copy."""
    n = a.shape[0]
    lu = np.empty((n, n))
    for i in range(n):
        for j in range(n):
            lu[i, j] = a[i, j]
    logdet = 0.0
    for k in range(n):
        p = k
        amax = abs(lu[k, k])
        for i in range(k + 1, n):
            v = abs(lu[i, k])
            if v > amax:
                amax = v
                p = i
        if p != k:
            for j in range(n):
                t = lu[k, j]
                lu[k, j] = lu[p, j]
                lu[p, j] = t
        piv = lu[k, k]
        logdet += math.log(abs(piv))
        for i in range(k + 1, n):
            f = lu[i, k] / piv
            lu[i, k] = f
            for j in range(k + 1, n):
                lu[i, j] -= f * lu[k, j]
    return logdet


def _ludet_args(size):
    n = _pick(size, 64, 32)
    return (_rng("ludet").standard_normal((n, n)),)


def _ludet_grad(args):
    return (np.linalg.inv(args[0]).T,)


# --------------------------------------------------------------------------- kmeans
@numba.njit
def kmeans(points, centers):
    """Sum over points of the squared distance to the nearest center."""
    n, d = points.shape
    total = 0.0
    for i in range(n):
        best = np.inf
        for j in range(centers.shape[0]):
            dist = 0.0
            for m in range(d):
                diff = points[i, m] - centers[j, m]
                dist += diff * diff
            if dist < best:  # noqa: PLR1730 - a branch on purpose (loop style)
                best = dist
        total += best
    return total


def _kmeans_args(size):
    n, k, d = _pick(size, 10_000, 2000), 20, 8
    rng = _rng("kmeans")
    return rng.standard_normal((n, d)), rng.standard_normal((k, d))


def _kmeans_grad(args):
    points, centers = args
    dist = ((points[:, None, :] - centers[None, :, :]) ** 2).sum(-1)
    nearest = dist.argmin(1)
    g = np.zeros_like(centers)
    np.add.at(g, nearest, 2.0 * (centers[nearest] - points))
    return (g,)


# --------------------------------------------------------------------------- matmul
@numba.njit
def matmul(a, b):
    """C = A @ B by three loops into a temporary; loss = sum(C^2)."""
    n, m = a.shape
    p = b.shape[1]
    c = np.zeros((n, p))
    for i in range(n):
        for k in range(m):
            aik = a[i, k]
            for j in range(p):
                c[i, j] += aik * b[k, j]
    s = 0.0
    for i in range(n):
        for j in range(p):
            s += c[i, j] * c[i, j]
    return s


def _matmul_args(size):
    n = _pick(size, 128, 64)
    rng = _rng("matmul")
    return rng.standard_normal((n, n)), rng.standard_normal((n, n))


def _matmul_grad(args):
    a, b = args
    c = a @ b
    return 2.0 * c @ b.T, 2.0 * a.T @ c


# --------------------------------------------------------------------------- alloc
@numba.njit
def alloc(x, w):
    """Layer norm + tanh through temporaries made with np.empty / np.zeros."""
    n = x.shape[0]
    mean = 0.0
    for i in range(n):
        mean += x[i]
    mean /= n
    c = np.empty(n)
    for i in range(n):
        c[i] = x[i] - mean
    var = 0.0
    for i in range(n):
        var += c[i] * c[i]
    var /= n
    inv = 1.0 / math.sqrt(var + 1e-5)
    y = np.zeros(n)
    for i in range(n):
        y[i] = math.tanh(c[i] * inv * w[i])
    s = 0.0
    for i in range(n):
        s += y[i] * y[i]
    return s


def _alloc_args(size):
    n = _pick(size, 1_000_000, 100_000)
    rng = _rng("alloc")
    return 1.0 + 2.0 * rng.standard_normal(n), rng.uniform(0.5, 1.5, n)


def _alloc_grad(args):
    x, w = args
    n = x.size
    c = x - x.mean()
    inv = 1.0 / np.sqrt((c * c).mean() + 1e-5)
    y = np.tanh(c * inv * w)
    gz = 2.0 * y * (1.0 - y * y)
    gw = gz * c * inv
    gc = gz * w * inv
    ginv = np.sum(gz * w * c)
    gvar = ginv * -0.5 * inv ** 3
    gc = gc + gvar * 2.0 * c / n
    return gc - gc.mean(), gw


# --------------------------------------------------------------------------- registry
KERNELS: dict[str, Kernel] = {k.name: k for k in [
    Kernel("sumsin", sumsin, _sumsin_args, (0,), "s += sin(x[i])", exact_grad=_sumsin_grad),
    Kernel("logsumexp", logsumexp, _logsumexp_args, (0,), "max-shifted log-sum-exp",
           exact_grad=_logsumexp_grad),
    Kernel("gmm", gmm_objective, _gmm_args, (0, 1, 2), "ADBench GMM d=10 k=25 (w.r.t. alphas, means, icf)"),
    Kernel("ba", ba_objective, _ba_args, (0, 1, 2), "ADBench BA sum of squared residuals (w.r.t. cams, X, w)"),
    Kernel("lstm", lstm_objective, _lstm_args, (0, 1), "ADBench LSTM l=2 b=14 (w.r.t. main, extra params)"),
    Kernel("rk4", rk4, _rk4_args, (0,), "RK4 oscillator ring, 100 states (w.r.t. y0)"),
    Kernel("heat", heat, _heat_args, (0,), "in-place heat stencil n=1000 (w.r.t. u0)", mutates=(0,),
           exact_grad=_heat_grad),
    Kernel("ludet", ludet, _ludet_args, (0,), "log|det| by pivoted LU on a copy", exact_grad=_ludet_grad),
    Kernel("kmeans", kmeans, _kmeans_args, (1,), "k-means objective n=10000 k=20 d=8 (w.r.t. centers)",
           exact_grad=_kmeans_grad, fd_step=1e-5),
    Kernel("matmul", matmul, _matmul_args, (0, 1), "triple-loop C=A@B, sum(C^2) (w.r.t. A, B)",
           exact_grad=_matmul_grad),
    Kernel("alloc", alloc, _alloc_args, (0, 1), "layer norm + tanh via np.empty/np.zeros temporaries",
           exact_grad=_alloc_grad),
    Kernel("sumsin32", sumsin32, _sumsin32_args, (0,), "float32 s += sin(x[i])", exact_grad=_sumsin32_grad),
]}


def call(kernel: Kernel, args: tuple) -> float:
    """Evaluate a kernel on copies of the arguments it would overwrite."""
    args = tuple(a.copy() if i in kernel.mutates else a for i, a in enumerate(args))
    return kernel.func(*args)
