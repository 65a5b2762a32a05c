"""A custom vjp rule with array arguments: the steady state of a 1-D heat equation with unknown
conductivities k, fitted to measured temperatures.  The state solves A(k) u = q; the loss compares u with
the measurements.  `solve` has a `llad.custom_vjp` rule that solves the adjoint system Aᵀ g = ū (one more
solve, the implicit function theorem) instead of differentiating the LU factorisation.

The gradient through the rule is checked against llad's own derivative of `np.linalg.solve` (its LAPACK
rules) and against central differences.

    python examples/implicit_solve.py [--n 200]
"""
import argparse
import time

import numba
import numpy as np

import llad


@llad.custom_vjp
@numba.njit
def solve(A, b, out):
    """out = A⁻¹ b."""
    out[:] = np.linalg.solve(A, b)


@numba.njit
def solve_fwd(A, b, out):
    solve(A, b, out)
    return None, (A.copy(), out.copy())           # residuals: what the reverse sweep needs


@numba.njit
def solve_bwd(res, dret, dA, db, dout):
    A, x = res
    g = np.linalg.solve(A.T, dout)                # the adjoint system
    if db is not None:
        db += g
    if dA is not None:
        dA -= np.outer(g, x)
    dout[:] = 0.0                                 # out was overwritten by the call
    return None, None, None


solve.defvjp(solve_fwd, solve_bwd)


@numba.njit
def assemble(k, A):
    """A(k): the finite-volume matrix of -(k u')' with u = 0 at both ends; k has n + 1 face values."""
    n = A.shape[0]
    A[:, :] = 0.0
    for i in range(n):
        A[i, i] = k[i] + k[i + 1]
        if i > 0:
            A[i, i - 1] = -k[i]
        if i + 1 < n:
            A[i, i + 1] = -k[i + 1]


@numba.njit
def misfit_with_rule(k, q, measured, A, u):
    assemble(k, A)
    solve(A, q, u)
    return 0.5 * np.sum((u - measured) ** 2)


@numba.njit
def misfit_plain(k, q, measured, A):
    assemble(k, A)
    u = np.linalg.solve(A, q)
    return 0.5 * np.sum((u - measured) ** 2)


def gradient_with_rule(k, q, measured):
    n = q.size
    dk = np.zeros_like(k)
    llad.autodiff(llad.Reverse, misfit_with_rule, llad.Active, llad.Duplicated(k, dk), llad.Const(q),
                  llad.Const(measured), llad.Duplicated(np.zeros((n, n)), np.zeros((n, n))),
                  llad.Duplicated(np.zeros(n), np.zeros(n)))
    return dk


def gradient_plain(k, q, measured):
    n = q.size
    dk = np.zeros_like(k)
    llad.autodiff(llad.Reverse, misfit_plain, llad.Active, llad.Duplicated(k, dk), llad.Const(q),
                  llad.Const(measured), llad.Duplicated(np.zeros((n, n)), np.zeros((n, n))))
    return dk


def main(argv=None) -> float:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=200, help="cells")
    args = p.parse_args(argv)
    n = args.n
    rng = np.random.default_rng(0)
    x = np.linspace(0.0, 1.0, n + 1)
    k = 1.0 + 0.5 * np.sin(3 * x) + 0.1 * rng.random(n + 1)
    q = np.ones(n) / n**2
    measured = np.sin(np.pi * np.linspace(0, 1, n)) * 0.1

    g_rule = gradient_with_rule(k, q, measured)
    g_plain = gradient_plain(k, q, measured)
    rel = np.max(np.abs(g_rule - g_plain)) / np.max(np.abs(g_plain))
    h, i = 1e-4, n // 3          # the misfit is a small difference of squares: a larger step keeps roundoff down
    kp, km = k.copy(), k.copy()
    kp[i] += h
    km[i] -= h
    A = np.zeros((n, n))
    fd = (misfit_plain(kp, q, measured, A) - misfit_plain(km, q, measured, A)) / (2 * h)

    def best(fn):
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            fn(k, q, measured)
            times.append(time.perf_counter() - t0)
        return min(times)

    print(f"{n} cells: misfit {misfit_plain(k, q, measured, A):.6e}")
    print(f"gradient through the custom rule vs llad's LAPACK rules: largest relative difference {rel:.1e}")
    print(f"component {i}: rule {g_rule[i]:.8e}, central difference {fd:.8e}")
    print(f"time per gradient: custom rule {best(gradient_with_rule) * 1e3:.2f} ms, "
          f"LAPACK rules {best(gradient_plain) * 1e3:.2f} ms")
    return max(rel, abs(g_rule[i] - fd) / abs(fd))


if __name__ == "__main__":
    main()
