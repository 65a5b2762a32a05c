"""NumPy idioms inside kernels: Numba's own implementations are inlined and differentiated.

reshape, cumsum and max keep the array's struct in a stack slot and reload the data pointer; llad must
see through that (it once gave a silent zero gradient there) or refuse, never treat it as constant.
"""
from __future__ import annotations

import numba
import numpy as np
import pytest

import llad

IDIOMS = {
    "sum": lambda x: x.sum(),
    "np.sum(x*x)": lambda x: np.sum(x * x),
    "array expression": lambda x: np.sum(np.exp(x) * x),
    "copy": lambda x: (x.copy() * 2).sum(),
    "slices": lambda x: np.sum(x[1:] * x[:-1]),
    "reshape": lambda x: np.sum(x.reshape(2, 3) ** 2),
    "mean": lambda x: np.mean(x ** 2),
    "max": lambda x: np.max(x * x),
    "var": lambda x: np.var(x),
    "norm": lambda x: np.sqrt(np.sum(x ** 2)),
    "cumsum": lambda x: np.cumsum(x)[-1] * x[0],
    "sort": lambda x: np.sort(x)[0] * 2,
    "where": lambda x: np.sum(np.where(x > 0.5, x, x * x)),
    "ufunc": lambda x: np.tanh(x).sum(),
    "prod": lambda x: np.prod(x),
}


@pytest.mark.parametrize("name", sorted(IDIOMS))
def test_idiom_matches_finite_differences_in_both_modes(name):
    f = numba.njit(IDIOMS[name])
    x = np.linspace(0.13, 0.91, 6)
    v = np.random.default_rng(0).random(6)
    fd = (f(x + 1e-6 * v) - f(x - 1e-6 * v)) / 2e-6
    g = np.zeros(6)
    llad.autodiff(llad.Reverse, f, llad.Duplicated(x.copy(), g))
    (t,) = llad.autodiff(llad.Forward, f, llad.Duplicated(x.copy(), v))
    assert t == pytest.approx(fd, rel=1e-6, abs=1e-8)
    assert g @ v == pytest.approx(t, rel=1e-10, abs=1e-12)


def test_lapack_call_without_a_rule_is_refused_with_its_name():
    f = numba.njit(lambda a: np.linalg.eigh(a)[0][0])
    with pytest.raises(llad.NoRuleError, match="numba_ez_xxxevd"):
        llad.autodiff(llad.Reverse, f, llad.Active, llad.Duplicated(np.eye(3), np.zeros((3, 3))))
