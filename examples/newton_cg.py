"""Newton-CG on an n-dimensional Rosenbrock function: llad's prepared gradient as scipy's `jac`, and
llad's Hessian-vector product (forward over reverse) as its `hessp`.

    python examples/newton_cg.py [--n 50]
"""
import argparse

import numba
import numpy as np
from scipy.optimize import minimize

import llad


@numba.njit
def rosenbrock(x):
    s = 0.0
    for i in range(x.shape[0] - 1):
        s += 100.0 * (x[i + 1] - x[i] ** 2) ** 2 + (1.0 - x[i]) ** 2
    return s


def main(argv=None) -> float:
    n = _parser().parse_args(argv).n
    x0 = np.full(n, -0.5)
    res = minimize(rosenbrock, x0, method="Newton-CG", jac=llad.prepare(llad.gradient, rosenbrock, x0),
                   hessp=lambda x, p: llad.hvp(rosenbrock, x, p), options={"xtol": 1e-10})
    err = float(np.max(np.abs(res.x - 1.0)))
    print(f"Newton-CG: {res.nit} iterations, {res.nfev} function, {res.njev} gradient and {res.nhev} "
          f"Hessian-vector evaluations; max |x - 1| = {err:.2e}")
    return err


def _parser():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--n", type=int, default=50)
    return p


if __name__ == "__main__":
    main()
