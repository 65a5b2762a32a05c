"""Gradient descent with `llad.autodiff` inside `@njit` against the same loop in Python.

    python -m tools.bench.njit_loop [--steps 10000] [--md out.md]

A 100-parameter least-squares problem (120 residuals), `steps` steps of plain gradient descent: once
written entirely in `@numba.njit` (the reverse-mode gradient called inside the loop), once as a Python
loop calling `llad.autodiff` per step.  Reports the time per step of each, the per-call overhead of a
call from Python, and the largest relative difference of the final iterates (they should agree to
rounding).
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import numba
import numpy as np

import llad


@numba.njit
def least_squares(x, A, b):
    s = 0.0
    for i in range(A.shape[0]):
        r = -b[i]
        for j in range(x.shape[0]):
            r += A[i, j] * x[j]
        s += r * r
    return s


@numba.njit
def descend(x, dx, A, b, steps, lr):
    for _ in range(steps):
        dx[:] = 0.0
        llad.autodiff(llad.Reverse, least_squares, llad.Active, llad.Duplicated(x, dx), llad.Const(A), llad.Const(b))
        x -= lr * dx


def descend_python(x, dx, A, b, steps, lr):
    for _ in range(steps):
        dx[:] = 0.0
        llad.autodiff(llad.Reverse, least_squares, llad.Active, llad.Duplicated(x, dx), llad.Const(A), llad.Const(b))
        x -= lr * dx


def run(steps: int) -> dict:
    rng = np.random.default_rng(0)
    A, b = rng.normal(size=(120, 100)), rng.normal(size=120)
    lr = 1e-4
    descend(np.zeros(100), np.zeros(100), A, b, 1, lr)                 # compile
    descend_python(np.zeros(100), np.zeros(100), A, b, 1, lr)
    best = {}
    for name, fn in (("njit", descend), ("python", descend_python)):
        times = []
        for _ in range(3):
            x, dx = np.zeros(100), np.zeros(100)
            t0 = time.perf_counter()
            fn(x, dx, A, b, steps, lr)
            times.append(time.perf_counter() - t0)
            best[name + "_x"] = x
        best[name] = min(times) / steps
    primals = []
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(steps):
            least_squares(best["njit_x"], A, b)
        primals.append(time.perf_counter() - t0)
    primal = min(primals) / steps
    diff = np.max(np.abs(best["njit_x"] - best["python_x"])) / np.max(np.abs(best["python_x"]))
    return {"steps": steps, "njit_step_s": best["njit"], "python_step_s": best["python"],
            "primal_call_from_python_s": primal, "max_rel_diff": float(diff),
            "loss": float(least_squares(best["njit_x"], A, b)), "loss0": float(least_squares(np.zeros(100), A, b))}


def report(r: dict) -> str:
    load = os.getloadavg()
    return (f"# llad.autodiff inside @njit: gradient descent, {r['steps']} steps, 100 parameters\n\n"
            f"- machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average "
            f"{load[0]:.2f}; numba {numba.__version__}\n\n"
            "| loop | time per step | \n|---|---|\n"
            f"| `@njit` loop calling `llad.autodiff` | {r['njit_step_s'] * 1e6:.2f} µs |\n"
            f"| Python loop calling `llad.autodiff` | {r['python_step_s'] * 1e6:.2f} µs |\n"
            f"| (the primal alone, called from Python) | {r['primal_call_from_python_s'] * 1e6:.2f} µs |\n\n"
            f"Final iterates: largest relative difference {r['max_rel_diff']:.1e}; loss {r['loss0']:.4g} -> "
            f"{r['loss']:.4g}.\n")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=10000)
    ap.add_argument("--md", help="also write the report here")
    args = ap.parse_args(argv)
    text = report(run(args.steps))
    print(text)
    if args.md:
        with open(args.md, "w") as fh:
            fh.write(text)


if __name__ == "__main__":
    main()
