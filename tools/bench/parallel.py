"""The parallel reverse sweep (llad/parallel.py): a `@njit(parallel=True)` kernel's gradient on Numba's
threads against the serial derivative (the same call with one thread), beside the parallel primal.

    python -m tools.bench.parallel [--budget 1.0] [--md docs/bench/parallel.md]

Kernels: a prange sum reduction, independent row updates written into an output array (its shadow the
seed), and the same rows followed by `return out.sum()` (the shape whose chunks run forward once more,
for the state the expression is differentiated at).  Every parallel gradient is checked against the
serial one.  Run it while nothing else runs: the point is two busy cores.
"""
from __future__ import annotations

import argparse
import os
import platform

import numba
import numpy as np

import llad

from .harness import measure


@numba.njit(parallel=True)
def prange_sum(x, w):
    s = 0.0
    for i in numba.prange(x.shape[0]):
        s += np.sin(x[i] * w[0]) * x[i]
    return s


@numba.njit(parallel=True)
def rows_written(X, w, out):
    for i in numba.prange(X.shape[0]):
        acc = 0.0
        for j in range(X.shape[1]):
            acc += np.tanh(X[i, j] * w[j])
        out[i] = acc * acc


@numba.njit(parallel=True)
def rows_then_sum(X, w, out):
    for i in numba.prange(X.shape[0]):
        acc = 0.0
        for j in range(X.shape[1]):
            acc += np.tanh(X[i, j] * w[j])
        out[i] = acc * acc
    return out.sum()


def _cases():
    """(name, size, gradient call, setup that resets its shadows untimed, primal call) per kernel; the
    shadows are allocated once and zeroed (or re-seeded) outside the timed region, as tools/bench does."""
    r = np.random.default_rng(0)
    x, w1 = r.uniform(0.1, 1.0, 2_000_000), np.array([0.7])
    X, w = r.standard_normal((20_000, 100)), r.uniform(0.1, 0.5, 100)
    seed = r.standard_normal(20_000)
    dx, dw1 = np.zeros_like(x), np.zeros(1)
    dX, dw, dout, out = np.zeros_like(X), np.zeros_like(w), np.zeros(20_000), np.zeros(20_000)

    def zero(*arrays, seeded=None):
        def setup():
            for a in arrays:
                a[...] = 0.0
            if seeded is not None:
                seeded[...] = seed
        return setup

    def reduction():
        llad.autodiff(llad.Reverse, prange_sum, llad.Active, llad.Duplicated(x, dx), llad.Duplicated(w1, dw1))
        return dx.copy(), dw1.copy()

    def rows():
        llad.autodiff(llad.Reverse, rows_written, llad.Duplicated(X, dX), llad.Duplicated(w, dw),
                      llad.Duplicated(out, dout))
        return dX.copy(), dw.copy()

    def rows_sum():
        llad.autodiff(llad.Reverse, rows_then_sum, llad.Active, llad.Duplicated(X, dX), llad.Duplicated(w, dw),
                      llad.Duplicated(out, dout))
        return dX.copy(), dw.copy()

    return [("prange sum reduction", "(2000000)", reduction, zero(dx, dw1), lambda: prange_sum(x, w1)),
            ("row updates into out", "(20000x100)", rows, zero(dX, dw, seeded=dout), lambda: rows_written(X, w, out)),
            ("row updates, return out.sum()", "(20000x100)", rows_sum, zero(dX, dw, dout),
             lambda: rows_then_sum(X, w, out))]


def run(budget: float) -> list[dict]:
    threads = numba.get_num_threads()
    rows = []
    for name, size, grad, setup, primal in _cases():
        out = {}
        for k in (1, threads):
            numba.set_num_threads(k)
            try:
                calls = llad.parallel.taken["calls"]
                setup()
                result = grad()
                out[k] = (measure(grad, setup, budget)[0], result, llad.parallel.taken["calls"] > calls,
                          measure(primal, None, budget)[0])
            finally:
                numba.set_num_threads(threads)
        err = max(float(np.max(np.abs(a - b)) / max(1e-300, float(np.max(np.abs(b)))))
                  for a, b in zip(out[threads][1], out[1][1]))
        rows.append({"kernel": name, "size": size, "serial_s": out[1][0], "parallel_s": out[threads][0],
                     "took_parallel": out[threads][2], "primal_1_s": out[1][3], "primal_s": out[threads][3],
                     "rel_err": err, "threads": threads})
        print(rows[-1], flush=True)
    return rows


def _t(s: float) -> str:
    return f"{s * 1e3:.2f} ms" if s >= 1e-3 else f"{s * 1e6:.1f} µs"


def report(rows, load_start) -> str:
    load = os.getloadavg()
    threads = rows[0]["threads"] if rows else numba.get_num_threads()
    lines = ["# Parallel reverse sweep: `@njit(parallel=True)` kernels\n",
             f"- machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Numba threading "
             f"layer `{numba.threading_layer()}`, {threads} threads; load average (1 min) {load_start:.2f} at "
             f"the start, {load[0]:.2f} at the end (the benchmark's own threads included); fastest of repeats",
             "- serial: the same call with `numba.set_num_threads(1)` (llad's serial derivative); parallel: "
             f"{threads} threads (llad/parallel.py)\n",
             "| kernel | size | serial gradient | parallel gradient | speed-up | parallel sweep taken | "
             "primal, 1 thread | primal, parallel | gradient / primal (parallel) | parallel vs serial (rel. err.) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['kernel']} | {r['size']} | {_t(r['serial_s'])} | {_t(r['parallel_s'])} | "
                     f"{r['serial_s'] / r['parallel_s']:.2f}× | {'yes' if r['took_parallel'] else 'no'} | "
                     f"{_t(r['primal_1_s'])} | {_t(r['primal_s'])} | {r['parallel_s'] / r['primal_s']:.2f} | "
                     f"{r['rel_err']:.1e} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--budget", type=float, default=1.0, help="seconds per measurement")
    p.add_argument("--md", default=None, help="write the report to this file")
    args = p.parse_args()
    load_start = os.getloadavg()[0]
    text = report(run(args.budget), load_start)
    print(text)
    if args.md:
        with open(args.md, "w") as fh:
            fh.write(text)


if __name__ == "__main__":
    main()
