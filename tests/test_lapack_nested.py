"""Second derivatives through the linear-algebra rules (llad/blas.py): the reverse rules of solve, det,
slogdet, inv and cholesky call SciPy's trmm, trsm, laswp and getrs, which forward mode differentiates
again (forward over reverse: Hessian-vector products and Hessians; forward over forward).  Each is
checked against central differences of the gradient, and the Hessian for symmetry and against the HVP."""
from __future__ import annotations

import numba
import numpy as np
import pytest

import llad


@numba.njit
def solve_cubed(A, b):                   # gesv; the reverse solves with Aᵀ (getrs 'T')
    return np.sum(np.linalg.solve(A, b) ** 3)


@numba.njit
def solve_transposed(A, b):              # gesv of a transposed copy
    return np.sum(np.sin(np.linalg.solve(A.T.copy(), b)))


@numba.njit
def solve_many(A, B):                    # several right-hand sides
    return np.sum(np.linalg.solve(A, B) ** 3)


@numba.njit
def log_determinant(A):                  # getrf: the reverse's trmm and trsm on the factors
    return np.linalg.slogdet(A)[1]


@numba.njit
def determinant(A):
    return np.linalg.det(A)


@numba.njit
def inverse_cubed(A):                    # getrf then getri: laswp, trmm and gemm
    return np.sum(np.linalg.inv(A) ** 3)


@numba.njit
def cholesky_cubed(S):                   # potrf: trsm and trmm with the factor
    L = np.linalg.cholesky(S)
    return np.sum(L ** 3) + np.sum(np.log(np.diag(L)))


@numba.njit
def gaussian_nll(S, x):                  # slogdet and solve together
    return 0.5 * np.linalg.slogdet(S)[1] + 0.5 * np.dot(x, np.linalg.solve(S, x))


def _rng(seed):
    return np.random.default_rng(seed)


def _matrix(seed, n=4, spd=False):
    r = _rng(seed)
    a = r.standard_normal((n, n)) + n * np.eye(n)
    return a @ a.T if spd else a


def _gradient(f, x, rest):
    dx = np.zeros_like(x)
    llad.autodiff(llad.Reverse, f, llad.Active, llad.Duplicated(x.copy(), dx), *[llad.Const(c) for c in rest])
    return dx


CASES = {
    "solve": (solve_cubed, lambda: (_matrix(1), _rng(2).standard_normal(4))),
    "solve wrt b": (lambda b, A: solve_cubed(A, b), None),
    "solve transposed": (solve_transposed, lambda: (_matrix(3), _rng(4).standard_normal(4))),
    "solve many": (solve_many, lambda: (_matrix(5), _rng(6).standard_normal((4, 3)))),
    "slogdet": (log_determinant, lambda: (_matrix(7),)),
    "det": (determinant, lambda: (_matrix(8),)),
    "inv": (inverse_cubed, lambda: (_matrix(9),)),
    "cholesky": (cholesky_cubed, lambda: (_matrix(10, spd=True),)),
    "gaussian": (gaussian_nll, lambda: (_matrix(11, spd=True), _rng(12).standard_normal(4))),
}


@numba.njit
def solve_cubed_in_b(b, A):
    return solve_cubed(A, b)


CASES["solve wrt b"] = (solve_cubed_in_b, lambda: (_rng(13).standard_normal(4), _matrix(14)))


@pytest.mark.parametrize("name", sorted(CASES))
def test_hessian_vector_products_agree_with_differences_of_the_gradient(name):
    f, make = CASES[name]
    x, *rest = make()
    v = _rng(99).standard_normal(x.shape)
    hv = llad.hvp(f, x, v, *rest)
    h = 1e-5
    fd = (_gradient(f, x + h * v, rest) - _gradient(f, x - h * v, rest)) / (2 * h)
    np.testing.assert_allclose(hv, fd, rtol=1e-6, atol=1e-6 * np.abs(fd).max())


@pytest.mark.parametrize("name", ["solve", "slogdet", "inv", "cholesky"])
def test_the_hessian_is_symmetric_and_agrees_with_the_products(name):
    f, make = CASES[name]
    x, *rest = make()
    H = llad.hessian(f, x, *rest)
    scale = np.abs(H).max()
    np.testing.assert_allclose(H, H.T, rtol=0, atol=1e-10 * scale)
    v = _rng(98).standard_normal(x.shape)
    np.testing.assert_allclose(H @ v.ravel(), llad.hvp(f, x, v, *rest).ravel(), rtol=1e-10, atol=1e-12 * scale)


def test_second_directional_derivative_by_forward_over_forward():
    """d²/dt² f(A + t V) at t = 0, from the forward derivative of solve differentiated forward again."""
    A, b = _matrix(15), _rng(16).standard_normal(4)
    V = _rng(17).standard_normal((4, 4))

    @numba.njit
    def tangent(A, V, b):
        (t,) = llad.autodiff(llad.Forward, solve_cubed, llad.Duplicated(A, V), llad.Const(b))
        return t

    (second,) = llad.autodiff(llad.Forward, tangent, llad.Duplicated(A, V), llad.Const(V), llad.Const(b))
    h = 1e-4
    fd = (solve_cubed(A + h * V, b) - 2 * solve_cubed(A, b) + solve_cubed(A - h * V, b)) / h ** 2
    assert second == pytest.approx(fd, rel=1e-5)


def _tangent_of(f, contexts: int):
    """g(x, v, *c) = the directional derivative of f at x along v, computed inside @njit."""
    if contexts == 0:
        @numba.njit
        def g(x, v):
            (t,) = llad.autodiff(llad.Forward, f, llad.Duplicated(x, v))
            return t
    else:
        @numba.njit
        def g(x, v, c):
            (t,) = llad.autodiff(llad.Forward, f, llad.Duplicated(x, v), llad.Const(c))
            return t
    return g


@pytest.mark.parametrize("name", ["solve", "solve transposed", "slogdet", "det", "inv", "cholesky"])
def test_reverse_over_forward_gives_the_same_products(name):
    """The gradient of x -> <grad f(x), v> (reverse mode over the forward derivative, whose linear-algebra
    rules call trmm, trsm, laswp and getrs) is H v: it must equal forward over reverse."""
    f, make = CASES[name]
    x, *rest = make()
    v = _rng(97).standard_normal(x.shape)
    dx = np.zeros_like(x)
    llad.autodiff(llad.Reverse, _tangent_of(f, len(rest)), llad.Active, llad.Duplicated(x.copy(), dx),
                  llad.Const(v), *[llad.Const(c) for c in rest])
    hv = llad.hvp(f, x, v, *rest)
    np.testing.assert_allclose(dx, hv, rtol=1e-10, atol=1e-12 * np.abs(hv).max())
