"""Gradients through BLAS and LAPACK calls (`@`, `np.linalg.solve`): llad against the Numba primal and JAX.

    python -m tools.bench.linalg [--budget 1.0] [--md docs/bench/linalg.md]

For each kernel: the Numba primal, llad's reverse gradient (`autodiff(Reverse, ...)` from Python, every
array argument Duplicated), their ratio, and `jax.jit(jax.grad(f))` on the same inputs.  Every tool runs
on one thread (OpenBLAS through SciPy for Numba and llad, XLA's Eigen for JAX), set before NumPy loads.
Each llad gradient is checked against JAX's (relative error printed).
"""
from __future__ import annotations

import os

for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import platform  # noqa: E402

import numba  # noqa: E402
import numpy as np  # noqa: E402

import llad  # noqa: E402

from .harness import measure  # noqa: E402
from .hvp import _t  # noqa: E402
from .peers import jax  # noqa: E402


@numba.njit
def matmul_loss(A, B):
    return np.sum(np.tanh(A @ B))


@numba.njit
def least_squares(A, x, b):
    r = A @ x - b
    return np.sum(r * r)


@numba.njit
def solve_loss(A, b):
    return np.sum(np.linalg.solve(A, b) ** 2)


def _jax_fns():
    jnp = jax.numpy
    return {
        "matmul_loss": lambda A, B: jnp.sum(jnp.tanh(A @ B)),
        "least_squares": lambda A, x, b: jnp.sum((A @ x - b) ** 2),
        "solve_loss": lambda A, b: jnp.sum(jnp.linalg.solve(A, b) ** 2),
    }


def _cases():
    rng = np.random.default_rng(0)
    n = 256
    well = rng.standard_normal((n, n)) / np.sqrt(n) + 2.0 * np.eye(n)
    return [
        ("matmul_loss", "512x512 @ 512x512", matmul_loss,
         (rng.standard_normal((512, 512)) / 20, rng.standard_normal((512, 512)) / 20), (0, 1)),
        ("least_squares", "2000x500 @ 500", least_squares,
         (rng.standard_normal((2000, 500)), rng.standard_normal(500), rng.standard_normal(2000)), (0, 1)),
        ("solve_loss", "solve 256x256", solve_loss, (well, rng.standard_normal(n)), (0, 1)),
    ]


def run(budget: float, names=None) -> list[dict]:
    rows = []
    jfns = _jax_fns() if jax is not None else {}
    for name, shape, f, args, diff in _cases():
        if names and name not in names:
            continue
        shadows = [np.zeros_like(a) for a in args]

        def grad():
            ann = [llad.Duplicated(a, s) if i in diff else llad.Const(a) for i, (a, s) in enumerate(zip(args, shadows))]
            llad.autodiff(llad.Reverse, f, llad.Active, *ann)

        row = {"kernel": name, "shape": shape}
        try:
            grad()
        except llad.DifferentiationError as e:
            row["error"] = str(e).split(":")[0][:100]
            rows.append(row)
            print(row, flush=True)
            continue
        for s in shadows:
            s[:] = 0
        grad()
        mine = [shadows[i].copy() for i in diff]
        f(*args)                 # Numba compiles the primal itself here (llad compiled its own copy)
        row["primal_s"] = measure(lambda: f(*args), None, budget)[0]
        row["grad_s"] = measure(grad, None, budget)[0]
        if name in jfns:
            jg = jax.jit(jax.grad(jfns[name], argnums=diff))
            jargs = [jax.numpy.asarray(a) for a in args]
            ref = [np.asarray(g) for g in jax.block_until_ready(jg(*jargs))]
            row["jax_s"] = measure(lambda: jax.block_until_ready(jg(*jargs)), None, budget)[0]
            flat_ref, flat = np.concatenate([r.ravel() for r in ref]), np.concatenate([m.ravel() for m in mine])
            row["rel_err_vs_jax"] = float(np.max(np.abs(flat - flat_ref)) / np.max(np.abs(flat_ref)))
        rows.append(row)
        print(row, flush=True)
    return rows


def report(rows) -> str:
    load = os.getloadavg()
    lines = ["# Gradients through BLAS and LAPACK calls\n",
             f"- machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average "
             f"{load[0]:.2f}; one thread per tool (OpenBLAS for Numba and llad, Eigen for JAX); fastest of "
             f"repeats; `python -m tools.bench.linalg`\n",
             "| kernel | shape | Numba primal | llad gradient | gradient / primal | JAX jit(grad) | llad / JAX | "
             "vs JAX (rel. err.) |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['kernel']} | {r['shape']} | | refused: {r['error']} | | | | |")
            continue
        jx = r.get("jax_s")
        lines.append(f"| {r['kernel']} | {r['shape']} | {_t(r['primal_s'])} | {_t(r['grad_s'])} | "
                     f"{r['grad_s'] / r['primal_s']:.2f} | {_t(jx) if jx else '-'} | "
                     f"{r['grad_s'] / jx:.2f} | {r.get('rel_err_vs_jax', float('nan')):.1e} |"
                     if jx else f"| {r['kernel']} | {r['shape']} | {_t(r['primal_s'])} | {_t(r['grad_s'])} | "
                     f"{r['grad_s'] / r['primal_s']:.2f} | - | - | - |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=float, default=1.0)
    ap.add_argument("--kernels", default="")
    ap.add_argument("--md")
    args = ap.parse_args(argv)
    text = report(run(args.budget, [k for k in args.kernels.split(",") if k]))
    print(text)
    if args.md:
        with open(args.md, "w") as fh:
            fh.write(text)


if __name__ == "__main__":
    main()
