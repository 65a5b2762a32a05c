"""A whole optimiser inside `@numba.njit`: gradient descent with momentum on a least-squares fit, each
step calling `llad.autodiff(Reverse, ...)` inside jitted code (the derivative is linked into the loop).
The same steps from a Python loop give the same iterates; the jitted loop has no per-call dispatch.

    python examples/optimizer_in_njit.py [--steps 2000]
"""
import argparse
import time

import numba
import numpy as np

import llad


@numba.njit
def residual_norm(w, A, b):
    s = 0.0
    for i in range(A.shape[0]):
        r = -b[i]
        for j in range(A.shape[1]):
            r += A[i, j] * w[j]
        s += r * r
    return 0.5 * s


@numba.njit
def descend(w, A, b, steps, lr, beta):
    g = np.zeros_like(w)
    velocity = np.zeros_like(w)
    for _ in range(steps):
        g[:] = 0.0
        llad.autodiff(llad.Reverse, residual_norm, llad.Active, llad.Duplicated(w, g), llad.Const(A), llad.Const(b))
        velocity[:] = beta * velocity - lr * g
        w += velocity
    return residual_norm(w, A, b)


def descend_python(w, A, b, steps, lr, beta):
    velocity = np.zeros_like(w)
    for _ in range(steps):
        g = llad.gradient(residual_norm, w, A, b)
        velocity[:] = beta * velocity - lr * g
        w += velocity
    return residual_norm(w, A, b)


def main(argv=None) -> float:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=2000)
    steps = ap.parse_args(argv).steps
    rng = np.random.default_rng(1)
    A, b = rng.standard_normal((60, 20)), rng.standard_normal(60)
    lr = 1.0 / np.linalg.norm(A, 2) ** 2
    w_jit, w_py = np.zeros(20), np.zeros(20)
    descend(np.zeros(20), A, b, 1, lr, 0.9)                     # compile
    descend_python(np.zeros(20), A, b, 1, lr, 0.9)
    t0 = time.perf_counter()
    loss = descend(w_jit, A, b, steps, lr, 0.9)
    t1 = time.perf_counter()
    descend_python(w_py, A, b, steps, lr, 0.9)
    t2 = time.perf_counter()
    best = np.linalg.lstsq(A, b, rcond=None)[0]
    diff = float(np.max(np.abs(w_jit - w_py)))
    print(f"{steps} steps: loss {loss:.6f}; |w - lstsq| = {np.max(np.abs(w_jit - best)):.2e}; "
          f"jitted loop and Python loop iterates differ by {diff:.1e}")
    print(f"per step: {(t1 - t0) / steps * 1e6:.1f} us in @njit, {(t2 - t1) / steps * 1e6:.1f} us from Python")
    return diff


if __name__ == "__main__":
    main()
