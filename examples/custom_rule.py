"""A user derivative rule: logistic regression whose loss uses a stable softplus with a hand-written
jvp (`llad.custom_jvp`). The gradient llad computes through the rule is compared with the closed form
X^T (sigmoid(X w) - y) / n.

    python examples/custom_rule.py [--n 2000 --d 8]
"""
import argparse
import math

import numba
import numpy as np

import llad


@llad.custom_jvp
@numba.njit
def softplus(z):
    """log(1 + e^z), written to overflow for large z: the rule below is what llad differentiates."""
    return math.log1p(math.exp(z)) if z < 30.0 else z


@softplus.defjvp
@numba.njit
def softplus_jvp(z, dz):
    return softplus(z), dz / (1.0 + math.exp(-z))      # d softplus = sigmoid(z) dz


@numba.njit
def logistic_loss(w, X, y):
    n, d = X.shape
    total = 0.0
    for i in range(n):
        z = 0.0
        for j in range(d):
            z += X[i, j] * w[j]
        total += softplus(z) - y[i] * z
    return total / n


def main(argv=None) -> float:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--d", type=int, default=8)
    a = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((a.n, a.d))
    y = (rng.random(a.n) < 0.5).astype(np.float64)
    w = rng.standard_normal(a.d)
    g = llad.gradient(logistic_loss, w, X, y)
    closed = X.T @ (1.0 / (1.0 + np.exp(-X @ w)) - y) / a.n
    err = float(np.max(np.abs(g - closed)))
    print(f"gradient through the custom rule: {np.array2string(g, precision=4)}")
    print(f"largest difference from the closed form: {err:.2e}")
    return err


if __name__ == "__main__":
    main()
