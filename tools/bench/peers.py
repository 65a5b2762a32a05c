"""The benchmark objectives written the way JAX and PyTorch like them (vectorised).

Each peer function takes the same arguments as the Numba kernel of the same name in
:mod:`tools.bench.kernels` (arrays converted to the framework's arrays; Python ints stay
static) and returns the scalar loss. Both frameworks are optional: :func:`available_peers`
lists the ones that import. Both are pinned to one thread, like Numba.

Differences from the loop kernels, all value-preserving for the benchmark inputs:
``ba`` drops the zero-angle branch of the Rodrigues rotation (no camera has a zero
rotation), and ``ludet`` uses the framework's ``slogdet``.
"""
from __future__ import annotations

import math
import os

import numpy as np

# One thread for XLA's CPU backend (Eigen), set before jax is imported.
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

IMPORT_ERRORS: dict[str, str] = {}

try:
    import jax
    import jax.numpy as jnp
    from jax import lax
    from jax.scipy.special import logsumexp as jlse

    jax.config.update("jax_enable_x64", True)
except Exception as exc:  # noqa: BLE001 - any import failure makes the peer unavailable
    jax = None
    IMPORT_ERRORS["jax"] = f"{type(exc).__name__}: {exc}"

try:
    import torch

    torch.set_num_threads(1)
except Exception as exc:  # noqa: BLE001
    torch = None
    IMPORT_ERRORS["torch"] = f"{type(exc).__name__}: {exc}"


def _tril_index(d: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of the strict lower triangle in ADBench's icf order (column by column)."""
    rows, cols = [], []
    for i in range(d):
        for j in range(i + 1, d):
            rows.append(j)
            cols.append(i)
    return np.array(rows), np.array(cols)


def _wishart_c(d, m, gamma_log, log_gamma_d):
    nn = d + m + 1
    return nn * d * (gamma_log - 0.5 * math.log(2.0)) - log_gamma_d


# =========================================================================== JAX
def _jax_gmm(alphas, means, icf, x, gamma, m, log_gamma_d):
    k, d = means.shape
    n = x.shape[0]
    rows, cols = _tril_index(d)
    logdiag = icf[:, :d]
    qdiag = jnp.exp(logdiag)
    sum_qs = jnp.sum(logdiag, axis=1)
    q = jnp.zeros((k, d, d), icf.dtype).at[:, rows, cols].set(icf[:, d:]) + qdiag[:, :, None] * jnp.eye(d)
    xc = x[:, None, :] - means[None, :, :]
    qx = jnp.einsum("kij,nkj->nki", q, xc)
    main = alphas[None, :] + sum_qs[None, :] - 0.5 * jnp.sum(qx * qx, axis=-1)
    err = -n * d * 0.5 * math.log(2.0 * math.pi) + jnp.sum(jlse(main, axis=1)) - n * jlse(alphas)
    frob = jnp.sum(qdiag * qdiag, axis=1) + jnp.sum(icf[:, d:] ** 2, axis=1)
    prior = jnp.sum(0.5 * gamma * gamma * frob - m * sum_qs)
    return err + prior - k * _wishart_c(d, m, jnp.log(gamma), log_gamma_d)


def _jax_ba(cams, pts, w, obs, feats):
    c = cams[obs[:, 0]]
    xo = pts[obs[:, 1]] - c[:, 3:6]
    rot = c[:, 0:3]
    theta = jnp.sqrt(jnp.sum(rot * rot, axis=1))
    axis = rot / theta[:, None]
    cos, sin = jnp.cos(theta)[:, None], jnp.sin(theta)[:, None]
    tmp = jnp.sum(axis * xo, axis=1, keepdims=True) * (1.0 - cos)
    xcam = xo * cos + jnp.cross(axis, xo) * sin + axis * tmp
    p = xcam[:, :2] / xcam[:, 2:3]
    rsq = jnp.sum(p * p, axis=1, keepdims=True)
    scale = 1.0 + c[:, 9:10] * rsq + c[:, 10:11] * rsq * rsq
    proj = p * scale * c[:, 6:7] + c[:, 7:9]
    e = w[:, None] * (proj - feats)
    return jnp.sum(e * e) + jnp.sum((1.0 - w * w) ** 2)


def _jax_lstm(main_params, extra_params, state, sequence):
    nlayers = main_params.shape[0]
    c, b = sequence.shape

    def step(st, xy):
        x, ygold = xy
        inp = x * extra_params[0]
        new = []
        for lay in range(nlayers):
            wgt = main_params[lay]
            hid, cell = st[lay, 0], st[lay, 1]
            forget = jax.nn.sigmoid(inp * wgt[0] + wgt[4])
            ingate = jax.nn.sigmoid(hid * wgt[1] + wgt[5])
            outgate = jax.nn.sigmoid(inp * wgt[2] + wgt[6])
            change = jnp.tanh(hid * wgt[3] + wgt[7])
            cell = cell * forget + ingate * change
            hid = outgate * jnp.tanh(cell)
            new.append(jnp.stack([hid, cell]))
            inp = hid
        ypred = inp * extra_params[1] + extra_params[2]
        lse = jnp.log(jnp.sum(jnp.exp(ypred)) + 2.0)
        return jnp.stack(new), jnp.sum(ygold * (ypred - lse))

    _, totals = lax.scan(step, state, (sequence[:-1], sequence[1:]))
    return -jnp.sum(totals) / ((c - 1) * b)


def _jax_rk4(y0, kcoef, dt, nsteps):
    def rhs(y):
        return -kcoef * y + jnp.sin(jnp.roll(y, 1))

    def step(y, _):
        k1 = rhs(y)
        k2 = rhs(y + 0.5 * dt * k1)
        k3 = rhs(y + 0.5 * dt * k2)
        k4 = rhs(y + dt * k3)
        return y + dt / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4), None

    y, _ = lax.scan(step, y0, None, length=nsteps)
    return jnp.sum(y * y)


def _jax_heat(u, r, nsteps):
    def step(v, _):
        return v.at[1:-1].add(r * (v[:-2] - 2.0 * v[1:-1] + v[2:])), None

    u, _ = lax.scan(step, u, None, length=nsteps)
    return jnp.sum(u * u)


def _jax_alloc(x, w):
    c = x - jnp.mean(x)
    y = jnp.tanh(c * w / jnp.sqrt(jnp.mean(c * c) + 1e-5))
    return jnp.sum(y * y)


JAX_FNS = {
    "sumsin": lambda x: jnp.sum(jnp.sin(x)),
    "sumsin32": lambda x: jnp.sum(jnp.sin(x)),
    "logsumexp": lambda x: jlse(x),
    "gmm": _jax_gmm,
    "ba": _jax_ba,
    "lstm": _jax_lstm,
    "rk4": _jax_rk4,
    "heat": _jax_heat,
    "ludet": lambda a: jnp.linalg.slogdet(a)[1],
    "kmeans": lambda p, c: jnp.sum(jnp.min(jnp.sum((p[:, None, :] - c[None, :, :]) ** 2, axis=-1), axis=1)),
    "matmul": lambda a, b: jnp.sum((a @ b) ** 2),
    "alloc": _jax_alloc,
}


# =========================================================================== PyTorch
def _torch_gmm(alphas, means, icf, x, gamma, m, log_gamma_d):
    k, d = means.shape
    n = x.shape[0]
    rows, cols = (torch.from_numpy(t) for t in _tril_index(d))
    logdiag = icf[:, :d]
    qdiag = torch.exp(logdiag)
    sum_qs = logdiag.sum(1)
    q = torch.zeros((k, d, d), dtype=icf.dtype)
    q[:, rows, cols] = icf[:, d:]
    q = q + torch.diag_embed(qdiag)
    xc = x[:, None, :] - means[None, :, :]
    qx = torch.einsum("kij,nkj->nki", q, xc)
    main = alphas[None, :] + sum_qs[None, :] - 0.5 * (qx * qx).sum(-1)
    err = -n * d * 0.5 * math.log(2.0 * math.pi) + torch.logsumexp(main, 1).sum() - n * torch.logsumexp(alphas, 0)
    frob = (qdiag * qdiag).sum(1) + (icf[:, d:] ** 2).sum(1)
    prior = (0.5 * gamma * gamma * frob - m * sum_qs).sum()
    return err + prior - k * _wishart_c(d, m, math.log(gamma), log_gamma_d)


def _torch_ba(cams, pts, w, obs, feats):
    c = cams[obs[:, 0]]
    xo = pts[obs[:, 1]] - c[:, 3:6]
    rot = c[:, 0:3]
    theta = torch.sqrt((rot * rot).sum(1))
    axis = rot / theta[:, None]
    cos, sin = torch.cos(theta)[:, None], torch.sin(theta)[:, None]
    tmp = (axis * xo).sum(1, keepdim=True) * (1.0 - cos)
    xcam = xo * cos + torch.linalg.cross(axis, xo) * sin + axis * tmp
    p = xcam[:, :2] / xcam[:, 2:3]
    rsq = (p * p).sum(1, keepdim=True)
    scale = 1.0 + c[:, 9:10] * rsq + c[:, 10:11] * rsq * rsq
    proj = p * scale * c[:, 6:7] + c[:, 7:9]
    e = w[:, None] * (proj - feats)
    return (e * e).sum() + ((1.0 - w * w) ** 2).sum()


def _torch_lstm(main_params, extra_params, state, sequence):
    nlayers = main_params.shape[0]
    c, b = sequence.shape
    hid = [state[lay, 0] for lay in range(nlayers)]
    cell = [state[lay, 1] for lay in range(nlayers)]
    total = 0.0
    for t in range(c - 1):
        inp = sequence[t] * extra_params[0]
        for lay in range(nlayers):
            wgt = main_params[lay]
            forget = torch.sigmoid(inp * wgt[0] + wgt[4])
            ingate = torch.sigmoid(hid[lay] * wgt[1] + wgt[5])
            outgate = torch.sigmoid(inp * wgt[2] + wgt[6])
            change = torch.tanh(hid[lay] * wgt[3] + wgt[7])
            cell[lay] = cell[lay] * forget + ingate * change
            hid[lay] = outgate * torch.tanh(cell[lay])
            inp = hid[lay]
        ypred = inp * extra_params[1] + extra_params[2]
        lse = torch.log(torch.exp(ypred).sum() + 2.0)
        total = total + (sequence[t + 1] * (ypred - lse)).sum()
    return -total / ((c - 1) * b)


def _torch_rk4(y0, kcoef, dt, nsteps):
    def rhs(y):
        return -kcoef * y + torch.sin(torch.roll(y, 1))

    y = y0
    for _ in range(nsteps):
        k1 = rhs(y)
        k2 = rhs(y + 0.5 * dt * k1)
        k3 = rhs(y + 0.5 * dt * k2)
        k4 = rhs(y + dt * k3)
        y = y + dt / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
    return (y * y).sum()


def _torch_heat(u, r, nsteps):
    for _ in range(nsteps):
        u = torch.cat([u[:1], u[1:-1] + r * (u[:-2] - 2.0 * u[1:-1] + u[2:]), u[-1:]])
    return (u * u).sum()


def _torch_alloc(x, w):
    c = x - x.mean()
    y = torch.tanh(c * w / torch.sqrt((c * c).mean() + 1e-5))
    return (y * y).sum()


TORCH_FNS = {
    "sumsin": lambda x: torch.sin(x).sum(),
    "sumsin32": lambda x: torch.sin(x).sum(),
    "logsumexp": lambda x: torch.logsumexp(x, 0),
    "gmm": _torch_gmm,
    "ba": _torch_ba,
    "lstm": _torch_lstm,
    "rk4": _torch_rk4,
    "heat": _torch_heat,
    "ludet": lambda a: torch.linalg.slogdet(a)[1],
    "kmeans": lambda p, c: ((p[:, None, :] - c[None, :, :]) ** 2).sum(-1).min(1).values.sum(),
    "matmul": lambda a, b: ((a @ b) ** 2).sum(),
    "alloc": _torch_alloc,
}


# =========================================================================== runners
def replaced(values, positions, new) -> list:
    """`values` with the entries at `positions` replaced by `new`."""
    out = list(values)
    for p, v in zip(positions, new, strict=True):
        out[p] = v
    return out


class JaxPeer:
    """``jax.jit(jax.grad(f))`` and ``jax.jit(jax.jvp)`` over the differentiated arguments."""

    tool = "jax"
    has_jvp = True

    def __init__(self, kernel, args):
        fn = JAX_FNS[kernel.name]
        static = {i for i, a in enumerate(args) if isinstance(a, (int, np.integer))}
        dyn_idx = [i for i in range(len(args)) if i not in static]
        diff_pos = tuple(dyn_idx.index(i) for i in kernel.diff)

        def f_dyn(*dyn):
            full = list(args)
            for i, v in zip(dyn_idx, dyn, strict=True):
                full[i] = v
            return fn(*full)

        def jvp_dyn(dyn, tangents):
            return jax.jvp(lambda *d: f_dyn(*replaced(dyn, diff_pos, d)), tuple(dyn[p] for p in diff_pos),
                           tangents)[1]

        self.f_dyn, self.diff_pos = f_dyn, diff_pos     # tools/bench/hvp.py builds jvp(grad) on them
        self.dyn = tuple(jnp.asarray(args[i]) for i in dyn_idx)
        self._value = jax.jit(f_dyn)
        self._grad = jax.jit(jax.grad(f_dyn, argnums=diff_pos))
        self._jvp = jax.jit(jvp_dyn)
        self._tangents = None

    def value(self) -> float:
        return float(self._value(*self.dyn))

    def run_grad(self):
        return jax.block_until_ready(self._grad(*self.dyn))

    def grad(self) -> tuple:
        return tuple(np.asarray(g) for g in self.run_grad())

    def set_tangents(self, tangents: tuple) -> None:
        self._tangents = tuple(jnp.asarray(t) for t in tangents)

    def run_jvp(self):
        return jax.block_until_ready(self._jvp(self.dyn, self._tangents))

    def jvp(self, tangents: tuple) -> float:
        self.set_tangents(tangents)
        return float(self.run_jvp())


class TorchPeer:
    """PyTorch eager autograd: forward, ``loss.backward()``, read ``.grad``."""

    tool = "torch"
    has_jvp = False

    def __init__(self, kernel, args):
        self.fn = TORCH_FNS[kernel.name]
        self.diff = kernel.diff
        self.targs = []
        for i, a in enumerate(args):
            if isinstance(a, np.ndarray):
                t = torch.from_numpy(a.copy())
                if i in kernel.diff:
                    t.requires_grad_(True)
                a = t
            self.targs.append(a)

    def value(self) -> float:
        with torch.no_grad():
            return float(self.fn(*self.targs))

    def run_grad(self):
        for i in self.diff:
            self.targs[i].grad = None
        self.fn(*self.targs).backward()
        return tuple(self.targs[i].grad for i in self.diff)

    def grad(self) -> tuple:
        return tuple(g.numpy().copy() for g in self.run_grad())


def available_peers() -> list[type]:
    return [cls for cls, mod in ((JaxPeer, jax), (TorchPeer, torch)) if mod is not None]


def versions() -> dict[str, str]:
    out = {}
    for name, mod in (("jax", jax), ("torch", torch)):
        out[name] = mod.__version__ if mod is not None else f"unavailable ({IMPORT_ERRORS.get(name, '')})"
    if jax is not None:
        import jaxlib

        out["jaxlib"] = jaxlib.__version__
    return out
