"""gmm: log-posterior of a Gaussian mixture with a Wishart prior (GradBench / ADBench gmm), and its
gradient with respect to alpha, mu, q and l by llad reverse mode.

The kernel follows the loops of GradBench's C++ reference (cpp/gradbench/evals/gmm.hpp): component
k has inverse-covariance factor Q_k = diag(exp(q_k)) plus a strictly lower triangle filled column
by column from l_k.
"""
from __future__ import annotations

import math

import numba
import numpy as np

import llad

from . import Function, floats, to_float, to_list


@numba.njit
def logsumexp(v):
    top = v[0]
    for i in range(1, v.shape[0]):
        top = max(top, v[i])
    total = 0.0
    for i in range(v.shape[0]):
        total += math.exp(v[i] - top)
    return math.log(total) + top


@numba.njit
def log_gamma_distrib(a, p):
    out = 0.25 * p * (p - 1) * math.log(math.pi)
    for j in range(1, p + 1):
        out += math.lgamma(a + 0.5 * (1 - j))
    return out


@numba.njit
def q_times(q_diag, lower_k, v, out):
    """out = Q_k v, with Q_k's strictly lower part read column by column from lower_k."""
    d = v.shape[0]
    for i in range(d):
        out[i] = q_diag[i] * v[i]
    idx = 0
    for i in range(d):
        for j in range(i + 1, d):
            out[j] += lower_k[idx] * v[i]
            idx += 1


@numba.njit
def log_wishart_prior(q_diags, sum_qs, lower, m, gamma):
    k, d = q_diags.shape
    dof = d + m + 1
    const = dof * d * (math.log(gamma) - 0.5 * math.log(2.0)) - log_gamma_distrib(0.5 * dof, d)
    out = 0.0
    for c in range(k):
        frobenius = 0.0
        for i in range(d):
            frobenius += q_diags[c, i] * q_diags[c, i]
        for i in range(lower.shape[1]):
            frobenius += lower[c, i] * lower[c, i]
        out += 0.5 * gamma * gamma * frobenius - m * sum_qs[c]
    return -out + k * const


@numba.njit
def objective(alpha, mu, q, lower, x, m, gamma):
    """lower[c]: the strictly lower triangle of Q_c, column by column (GradBench's l)."""
    n, d = x.shape
    k = alpha.shape[0]
    q_diags = np.empty((k, d))
    sum_qs = np.zeros(k)
    for c in range(k):
        for i in range(d):
            q_diags[c, i] = math.exp(q[c, i])
            sum_qs[c] += q[c, i]
    centred = np.empty(d)
    q_centred = np.empty(d)
    main_term = np.empty(k)
    slse = 0.0
    for ix in range(n):
        for c in range(k):
            for i in range(d):
                centred[i] = x[ix, i] - mu[c, i]
            q_times(q_diags[c], lower[c], centred, q_centred)
            sqnorm = 0.0
            for i in range(d):
                sqnorm += q_centred[i] * q_centred[i]
            main_term[c] = alpha[c] + sum_qs[c] - 0.5 * sqnorm
        slse += logsumexp(main_term)
    constant = -n * d * 0.5 * math.log(2.0 * math.pi)
    return constant + slse - n * logsumexp(alpha) + log_wishart_prior(q_diags, sum_qs, lower, m, gamma)


def primal(args: tuple) -> float:
    return objective(*args)


def gradient(args: tuple) -> tuple:
    params, constants = args[:4], args[4:]            # (alpha, mu, q, lower), (x, m, gamma)
    shadows = tuple(np.zeros_like(a) for a in params)
    llad.autodiff(llad.Reverse, objective, *(llad.Duplicated(a, da) for a, da in zip(params, shadows)), *constants)
    return shadows


def gradient_json(shadows: tuple) -> dict:
    return dict(zip(("alpha", "mu", "q", "l"), map(to_list, shadows)))


def prepare(raw: dict) -> tuple:
    d, k = int(raw["d"]), int(raw["k"])
    lower = floats(raw["l"]).reshape(k, d * (d - 1) // 2)     # [k][0] arrives as a (k, 0) list when d = 1
    return (floats(raw["alpha"]), floats(raw["mu"]).reshape(k, d), floats(raw["q"]).reshape(k, d), lower,
            floats(raw["x"]).reshape(-1, d), int(raw["m"]), float(raw["gamma"]))


def warm_up() -> None:
    rng = np.random.default_rng(0)
    args = (rng.normal(size=2), rng.normal(size=(2, 3)), rng.normal(size=(2, 3)), rng.normal(size=(2, 3)),
            rng.normal(size=(4, 3)), 0, 1.0)
    primal(args)
    gradient(args)


FUNCTIONS = {
    "objective": Function(prepare, primal, to_float),
    "jacobian": Function(prepare, gradient, gradient_json),
}
