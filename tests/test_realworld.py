"""Real-world kernels (tests/realworld/kernels.py) through `llad.testing.check_grads` (every mode and
activity combination against central differences and forward against reverse), and, where the
derivative is published or derived by hand, llad's `gradient` / `hvp` / forward tangents against that
oracle to rounding.  The corpus is tabulated in docs/realworld.md.

Every kernel runs through all seven modes (and `llad.hvp` where `order=2`).  Kernels with `freeze` are
checked on the partial application that binds those read-only inputs (data, step sizes, constants) as
globals of an `@njit` wrapper, so the activity combinations run over the remaining arguments: each float
argument doubles the derivative compilations, and every combination of every argument would not fit this
file's time budget (~90 s on a 2-core machine).  The oracle tests differentiate frozen arguments too
(all of Black-Scholes' Greeks, Thomas with respect to all four diagonals and the right-hand side).
"""
from __future__ import annotations

import math
import sys
import zlib
from pathlib import Path

import numba
import numpy as np
import pytest
import scipy.integrate
import scipy.optimize

import llad
from llad.testing import check_grads

if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))

from realworld import KERNELS  # noqa: E402
from realworld import kernels as K  # noqa: E402

BY_NAME = {k.name: k for k in KERNELS}


def rng_for(name: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(name.encode()))


def args_of(name: str) -> tuple:
    return BY_NAME[name].args(rng_for(name))


_WRAPPERS: dict = {}


def frozen(k, args):
    """(f, args) for check_grads: the kernel itself, or an @njit wrapper with the `freeze` positions bound
    to globals (Numba freezes global arrays as constants).  One wrapper per kernel (its arguments are the
    same every time), so that the oracle tests reuse the derivatives check_grads compiled."""
    if not k.freeze:
        return k.func, args
    if k.name in _WRAPPERS:
        return _WRAPPERS[k.name], tuple(args[i] for i in range(len(args)) if i not in k.freeze)
    free = [i for i in range(len(args)) if i not in k.freeze]
    params = ", ".join(f"a{i}" for i in free)
    call = ", ".join(f"c{i}" if i in k.freeze else f"a{i}" for i in range(len(args)))
    namespace = {"f": k.func, **{f"c{i}": args[i] for i in k.freeze}}
    exec(f"def {k.name}_wrt({params}):\n    return f({call})\n", namespace)
    _WRAPPERS[k.name] = numba.njit(namespace[f"{k.name}_wrt"])
    return _WRAPPERS[k.name], tuple(args[i] for i in free)


def free_args(name: str):
    """The kernel as check_grads differentiates it, and its free arguments."""
    return frozen(BY_NAME[name], args_of(name))


# Kernels llad gets wrong or refuses: name -> pytest marks (filled in from what the checks found).
MARKS: dict[str, list] = {}


def _param(k):
    return pytest.param(k, id=k.name, marks=MARKS.get(k.name, []))


def test_corpus_size():
    assert len(KERNELS) >= 30
    assert len({k.name for k in KERNELS}) == len(KERNELS)


@pytest.mark.parametrize("k", [_param(k) for k in KERNELS])
def test_check_grads(k):
    args = k.args(rng_for(k.name))
    before = [np.array(a, copy=True) for a in args]
    f, fargs = frozen(k, args)
    checked = check_grads(f, *fargs, order=k.order, modes=k.modes, rtol=k.rtol, atol=k.atol)
    assert checked >= (7 if k.modes is None else len(k.modes))
    for a, b in zip(args, before):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------------------------------- oracles

def close(got, expected, rtol=1e-10, atol=1e-12):
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol)


def reverse_grads(f, *annotated):
    """The Reverse-mode derivatives of f's float result: (derivs, {index: shadow})."""
    shadows, call = {}, []
    for i, a in enumerate(annotated):
        if isinstance(a, np.ndarray) and a.dtype.kind == "f":
            shadows[i] = np.zeros_like(a)
            call.append(llad.Duplicated(a.copy(), shadows[i]))
        elif isinstance(a, float):
            call.append(llad.Active(a))
        else:
            call.append(llad.Const(a))
    (derivs,) = llad.autodiff(llad.Reverse, f, llad.Active, *call)
    return derivs, shadows


@pytest.mark.parametrize("f", [K.rosen, K.rosen_numpy], ids=["rosen", "rosen_numpy"])
def test_rosen_against_scipy(f):
    """scipy.optimize.rosen_der and rosen_hess_prod are the published derivatives."""
    (x,) = args_of(f.py_func.__name__)
    v = rng_for("v").standard_normal(x.shape)
    close(f(x), scipy.optimize.rosen(x))
    close(llad.gradient(f, x), scipy.optimize.rosen_der(x))
    close(llad.hvp(f, x, v), scipy.optimize.rosen_hess_prod(x, v))
    close(llad.hessian(f, x), scipy.optimize.rosen_hess(x))


def test_rosenbrock_2d_and_himmelblau_by_hand():
    x, y = args_of("rosenbrock_2d")
    (dx, dy), _ = reverse_grads(K.rosenbrock_2d, x, y)
    close([dx, dy], [-400.0 * x * (y - x * x) - 2.0 * (1.0 - x), 200.0 * (y - x * x)])
    x, y = args_of("himmelblau")
    (dx, dy), _ = reverse_grads(K.himmelblau, x, y)
    close([dx, dy], [4.0 * x * (x * x + y - 11.0) + 2.0 * (x + y * y - 7.0),
                     2.0 * (x * x + y - 11.0) + 4.0 * y * (x + y * y - 7.0)])


def test_test_functions_by_hand():
    (x,) = args_of("rastrigin")
    close(llad.gradient(K.rastrigin, x), 2.0 * x + 20.0 * math.pi * np.sin(2.0 * math.pi * x))
    (x,) = args_of("styblinski_tang")
    close(llad.gradient(K.styblinski_tang, x), 0.5 * (4.0 * x ** 3 - 32.0 * x + 5.0))
    (x,) = args_of("griewank")
    s = np.sqrt(np.arange(1.0, x.size + 1))
    c = np.cos(x / s)
    close(llad.gradient(K.griewank, x), x / 2000.0 + np.prod(c) / c * np.sin(x / s) / s)
    (x,) = args_of("ackley")
    d = x.size
    r = np.sqrt(np.sum(x * x) / d)
    close(llad.gradient(K.ackley, x), 4.0 * np.exp(-0.2 * r) * x / (d * r)
          + np.exp(np.mean(np.cos(2.0 * math.pi * x))) * 2.0 * math.pi * np.sin(2.0 * math.pi * x) / d)


def test_nbody_gradient_is_minus_the_force():
    pos, m, eps = args_of("nbody_potential")
    diff = pos[:, None, :] - pos[None, :, :]
    inv3 = (np.sum(diff * diff, axis=2) + eps * eps) ** -1.5
    np.fill_diagonal(inv3, 0.0)
    expected = K.G_NEWTON * np.sum((m[:, None] * m[None, :] * inv3)[:, :, None] * diff, axis=1)
    f, (p,) = free_args("nbody_potential")                      # m, eps frozen
    close(llad.gradient(f, p), expected)


def test_kepler_against_the_implicit_function_theorem():
    M, e = args_of("kepler_E")
    E = K.kepler_E(M, e)
    close(E - e * math.sin(E), M)
    (dM, de), _ = reverse_grads(K.kepler_E, M, e)
    close([dM, de], [1.0 / (1.0 - e * math.cos(E)), math.sin(E) / (1.0 - e * math.cos(E))])


def test_welford_variance():
    (x,) = args_of("welford_var")
    close(K.welford_var(x), np.var(x, ddof=1))
    close(llad.gradient(K.welford_var, x), 2.0 * (x - x.mean()) / (x.size - 1))


def test_cholesky_logdet_gradient_is_the_inverse():
    """log det of the symmetric matrix built from A's lower triangle: d/dA_ij = 2 inv(A)_ij below the
    diagonal, inv(A)_ii on it, 0 above (the upper triangle is never read)."""
    (A,) = args_of("cholesky_logdet")
    inv = np.linalg.inv(A)
    close(K.cholesky_logdet(A), np.linalg.slogdet(A)[1])
    close(llad.gradient(K.cholesky_logdet, A), np.tril(2.0 * inv, -1) + np.diag(np.diag(inv)))


def test_thomas_against_a_dense_solve():
    a, b, c, d = args_of("thomas")
    T = np.diag(b) + np.diag(a[1:], -1) + np.diag(c[:-1], 1)
    x = K.thomas(a, b, c, d)
    close(x, np.linalg.solve(T, d))
    rng = rng_for("thomas-directions")
    va, vb, vc, vd = (rng.standard_normal(d.size) for _ in range(4))
    va[0] = vc[-1] = 0.0
    dT = np.diag(vb) + np.diag(va[1:], -1) + np.diag(vc[:-1], 1)
    (tangent,) = llad.autodiff(llad.Forward, K.thomas, llad.Duplicated(a, va), llad.Duplicated(b, vb),
                               llad.Duplicated(c, vc), llad.Duplicated(d, vd))
    close(tangent, np.linalg.solve(T, vd - dT @ x))          # d(T^-1 d) = T^-1 (dd - dT x)


def _norm_cdf(t):
    return 0.5 * (1.0 + math.erf(t / math.sqrt(2.0)))


def test_black_scholes_greeks():
    """Delta, dC/dK, theta (dC/dT), rho and vega in closed form (Hull, Options, Futures and Other
    Derivatives, ch. 19), each element by itself; the kernel's normal CDF is Abramowitz & Stegun's
    26.2.17 (error below 7.5e-8), hence the tolerance."""
    S, Kx, T, r, sigma = args_of("black_scholes")
    for i in range(S.size):
        s, k, t = S[i:i + 1].copy(), Kx[i:i + 1].copy(), T[i:i + 1].copy()
        d1 = (math.log(s[0] / k[0]) + (r + 0.5 * sigma ** 2) * t[0]) / (sigma * math.sqrt(t[0]))
        d2 = d1 - sigma * math.sqrt(t[0])
        pdf = math.exp(-0.5 * d1 * d1) / math.sqrt(2.0 * math.pi)
        disc = math.exp(-r * t[0])
        fwd, rev = llad.autodiff_thunk(llad.ReverseSplitNoPrimal, K.black_scholes, llad.Duplicated,
                                       llad.Duplicated(s, np.zeros(1)), llad.Duplicated(k, np.zeros(1)),
                                       llad.Duplicated(t, np.zeros(1)), llad.Active(r), llad.Active(sigma))
        ds, dk, dt = np.zeros(1), np.zeros(1), np.zeros(1)
        annotated = (llad.Duplicated(s, ds), llad.Duplicated(k, dk), llad.Duplicated(t, dt),
                     llad.Active(r), llad.Active(sigma))
        tape, _, shadow = fwd(*annotated)
        shadow[0] = 1.0
        (derivs,) = rev(*annotated, None, tape)
        expected = [_norm_cdf(d1), -disc * _norm_cdf(d2),
                    s[0] * pdf * sigma / (2.0 * math.sqrt(t[0])) + r * k[0] * disc * _norm_cdf(d2),
                    k[0] * t[0] * disc * _norm_cdf(d2), s[0] * pdf * math.sqrt(t[0])]
        close([ds[0], dk[0], dt[0], derivs[3], derivs[4]], expected, rtol=1e-5, atol=1e-5)


def test_horner_against_numpy_polynomials():
    c, x = args_of("horner")
    close(K.horner(c, x), np.polyval(c, x))
    close(llad.jacobian(K.horner, c, x), np.vander(x, c.size))                   # d p(x_i) / d c_k
    (tangent,) = llad.autodiff(llad.Forward, K.horner, llad.Const(c), llad.Duplicated(x, np.ones_like(x)))
    close(tangent, np.polyval(np.polyder(c), x))


def test_cumtrapz_against_scipy():
    y, x = args_of("cumtrapz")
    close(K.cumtrapz(y, x), scipy.integrate.cumulative_trapezoid(y, x))
    columns = [scipy.integrate.cumulative_trapezoid(e, x) for e in np.eye(y.size)]     # linear in y
    close(llad.jacobian(K.cumtrapz, y, x), np.array(columns).T)


def test_gp_against_rasmussen_williams_5_9():
    """d nll / d theta_j = -1/2 tr((alpha alpha^T - K^-1) dK/dtheta_j) (R&W eq. 5.9, negated)."""
    theta, X, y = args_of("gp_neg_loglik")
    ell, sf2, sn2 = math.exp(theta[0]), math.exp(2 * theta[1]), math.exp(2 * theta[2])
    r2 = np.sum((X[:, None, :] - X[None, :, :]) ** 2, axis=2) / ell ** 2
    Kse = sf2 * np.exp(-0.5 * r2)
    Kxx = Kse + sn2 * np.eye(y.size)
    Kinv = np.linalg.inv(Kxx)
    alpha = Kinv @ y
    close(K.gp_neg_loglik(theta, X, y),
          0.5 * y @ alpha + 0.5 * np.linalg.slogdet(Kxx)[1] + 0.5 * y.size * math.log(2 * math.pi))
    inner = np.outer(alpha, alpha) - Kinv
    dK = [Kse * r2, 2.0 * Kse, 2.0 * sn2 * np.eye(y.size)]
    f, (th,) = free_args("gp_neg_loglik")                       # X, y frozen
    close(llad.gradient(f, th), [-0.5 * np.sum(inner * d) for d in dK])


def test_losses_by_hand():
    w, X, y, lam = args_of("logreg_nll")
    z = X @ w
    f, free = free_args("logreg_nll")                           # the kernels with their data frozen
    close(llad.gradient(f, *free), X.T @ (1.0 / (1.0 + np.exp(-z)) - y) + lam * w)
    W, X, labels = args_of("softmax_xent")
    Z = X @ W
    P = np.exp(Z - Z.max(axis=1, keepdims=True))
    P /= P.sum(axis=1, keepdims=True)
    onehot = np.eye(W.shape[1])[labels]
    f, free = free_args("softmax_xent")
    close(llad.gradient(f, *free), X.T @ (P - onehot) / X.shape[0])
    theta, x, y = args_of("huber_regression")
    r = y - theta[0] - theta[1] * x
    psi = np.clip(r, -K.HUBER_K, K.HUBER_K)
    f, (th,) = free_args("huber_regression")
    close(llad.gradient(f, th), [-np.sum(psi), -np.sum(psi * x)])
    X, C = args_of("kmeans_energy")
    assign = np.argmin(np.sum((X[:, None, :] - C[None, :, :]) ** 2, axis=2), axis=1)
    expected = np.array([2.0 * np.sum(C[k] - X[assign == k], axis=0) for k in range(C.shape[0])])
    f, (c,) = free_args("kmeans_energy")
    close(llad.gradient(f, c), expected)


# ------------------------------------------------------------------------------- docs/realworld.md

ORACLES = {
    "rosen": "scipy.optimize.rosen_der, rosen_hess_prod, rosen_hess",
    "rosen_numpy": "scipy.optimize.rosen_der (hvp refused, see above)",
    "rosenbrock_2d": "gradient by hand", "himmelblau": "gradient by hand", "rastrigin": "gradient by hand",
    "styblinski_tang": "gradient by hand", "griewank": "gradient by hand", "ackley": "gradient by hand",
    "nbody_potential": "minus the force", "kepler_E": "implicit function theorem",
    "welford_var": "np.var, 2 (x - mean) / (n - 1)", "cholesky_logdet": "inverse of A (lower triangle)",
    "thomas": "dense solve, its tangent in all four inputs", "black_scholes": "the five Greeks in closed form",
    "horner": "np.polyval, np.vander, np.polyder", "cumtrapz": "scipy.integrate.cumulative_trapezoid",
    "gp_neg_loglik": "Rasmussen & Williams eq. 5.9", "logreg_nll": "X^T (sigma(Xw) - y) + lam w",
    "softmax_xent": "X^T (softmax - onehot) / n", "huber_regression": "the clipped residual psi",
    "kmeans_energy": "2 sum (c_k - x_i) per cluster", "lv_fit_loss": "(hvp refused, see above)",
}

MODE_NAMES = ("Forward", "ForwardWithPrimal", "batch", "Reverse", "ReverseWithPrimal", "ReverseSplitWithPrimal",
              "ReverseSplitNoPrimal")


def _table() -> str:
    """The corpus table, with the (mode, activity) pairs check_grads checks per mode, measured by running it
    once per mode (the derivatives are cached, so this costs about one run of the test)."""
    import inspect

    from llad.testing import BATCH, FORWARD_MODES, REVERSE_MODES
    modes = (*FORWARD_MODES, BATCH, *REVERSE_MODES)
    rows = ["| kernel | source | exercises | differentiated | pairs checked per mode (F / FwP / batch / R / "
            "RwP / RS / RSnP) | oracle |", "|---|---|---|---|---|---|---|"]
    for k in KERNELS:
        args = k.args(rng_for(k.name))
        f, fargs = frozen(k, args)
        names = list(inspect.signature(k.func.py_func).parameters)
        free = [n for i, n in enumerate(names) if i not in k.freeze and isinstance(args[i], (float, np.ndarray))
                and np.asarray(args[i]).dtype.kind == "f"]
        counts = []
        for m in modes:
            if k.modes is not None and m not in k.modes:
                counts.append("-")
                continue
            counts.append(str(check_grads(f, *fargs, modes=(m,), rtol=k.rtol, atol=k.atol)))
        hvp = " + hvp" if k.order == 2 else ""
        rows.append(f"| `{k.name}` | {k.source} | {k.exercises} | {', '.join(f'`{n}`' for n in free)} | "
                    f"{' / '.join(counts)}{hvp} | {ORACLES.get(k.name, '')} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__" and "--write-docs" in sys.argv:
    doc = Path(__file__).parent.parent / "docs" / "realworld.md"
    text = doc.read_text()
    begin, end = "<!-- table realworld: written by `python tests/test_realworld.py --write-docs` -->\n", "<!-- end -->"
    head, rest = text.split(begin)
    doc.write_text(head + begin + _table() + end + rest.split(end, 1)[1])
