"""Hessian-vector products: llad's forward over reverse against its own gradient and JAX's jvp(grad).

    python -m tools.bench.hvp [--kernels rk4,gmm,lstm,ba,kmeans,heat] [--budget 1.0] [--md out.md]

For each kernel of tools/bench/kernels.py: the llad gradient (`Reverse` from Python), llad's HVP (an
`@njit` gradient that calls `autodiff(Reverse, ...)` differentiated by `autodiff(Forward, ...)` with the point
and the gradient `DuplicatedNoNeed` as `llad.hvp` passes them, all
differentiated arguments at once) and `jax.jit(jax.jvp(jax.grad(f)))` on the same inputs, with the
HVP / gradient ratio (the cheap-gradient principle says a small constant) and llad's HVP time over
JAX's.  Every llad HVP is checked against JAX's (relative error printed).
"""
from __future__ import annotations

import argparse
import os
import platform

import numba
import numpy as np

import llad

from .harness import measure
from .kernels import KERNELS
from .peers import JaxPeer, jax, replaced

DEFAULT = ("rk4", "gmm", "lstm", "ba", "kmeans", "heat")


def _gradient_fn(kernel, args):
    """@njit grad(a_0, g_0, ..., c_j, ...): the kernel's reverse gradient inside jitted code."""
    params, call = [], []
    for i in range(len(args)):
        if i in kernel.diff:
            params += [f"a{i}", f"g{i}"]
            call.append(f"llad.Duplicated(a{i}, g{i})")
        else:
            params.append(f"a{i}")
            call.append(f"llad.Const(a{i})")
    src = (f"def grad({', '.join(params)}):\n"
           f"    llad.autodiff(llad.Reverse, f, llad.Active, {', '.join(call)})\n")
    namespace = {"llad": llad, "f": kernel.func}
    exec(compile(src, f"<grad of {kernel.name}>", "exec"), namespace)
    return numba.njit(namespace["grad"])


class LladHVP:
    def __init__(self, kernel, args, directions):
        self.kernel, self.args, self.grad = kernel, args, _gradient_fn(kernel, args)
        self.directions = directions

    def annotated(self, fresh):
        out, hv = [], []
        for i, a in enumerate(fresh):
            if i in self.kernel.diff:
                h = np.zeros_like(a)
                hv.append(h)
                # a copy: a kernel that overwrites its input overwrites the tangent too
                # DuplicatedNoNeed, as llad.hvp passes them: neither the point's final values nor the
                # gradient are wanted, so llad drops what computes only them (as XLA trims jvp(grad)[0])
                out += [llad.DuplicatedNoNeed(a, self.directions[i].copy()),
                        llad.DuplicatedNoNeed(np.zeros_like(a), h)]
            else:
                out.append(llad.Const(a))
        return out, hv

    def __call__(self, fresh):
        ann, hv = self.annotated(fresh)
        llad.autodiff(llad.Forward, self.grad, *ann)
        return hv


def _jax_hvp(kernel, args):
    """jax.jit(jvp(grad(f))) over the differentiated arguments, on JaxPeer's dynamic arguments."""
    peer = JaxPeer(kernel, args)
    grad = jax.grad(peer.f_dyn, argnums=peer.diff_pos)

    def hvp(dyn, tangents):
        return jax.jvp(lambda *d: grad(*replaced(dyn, peer.diff_pos, d)), tuple(dyn[p] for p in peer.diff_pos),
                       tangents)[1]

    return jax.jit(hvp), peer.dyn


def run(names, budget: float) -> list[dict]:
    rows = []
    for name in names:
        k = KERNELS[name]
        args = k.make_args("full")
        rng = np.random.default_rng(1)
        directions = {i: rng.standard_normal(np.shape(args[i])) for i in k.diff}

        def fresh():
            return [a.copy() if isinstance(a, np.ndarray) else a for a in args]

        def grad():
            ann = [llad.Duplicated(a, np.zeros_like(a)) if i in k.diff else llad.Const(a)
                   for i, a in enumerate(fresh())]
            llad.autodiff(llad.Reverse, k.func, llad.Active, *ann)

        hvp = LladHVP(k, args, directions)
        try:
            llad_hv = hvp(fresh())
        except llad.DifferentiationError as e:       # recorded: nesting refuses some kernels
            rows.append({"kernel": name, "error": str(e).split(":")[0][:100]})
            print(rows[-1], flush=True)
            continue
        row = {"kernel": name, "grad_s": measure(grad, None, budget)[0],
               "hvp_s": measure(lambda: hvp(fresh()), None, budget)[0]}
        if jax is not None:
            jhvp, dyn = _jax_hvp(k, args)
            tangents = tuple(jax.numpy.asarray(directions[i]) for i in k.diff)
            jax_hv = [np.asarray(h) for h in jax.block_until_ready(jhvp(dyn, tangents))]
            row["jax_hvp_s"] = measure(lambda: jax.block_until_ready(jhvp(dyn, tangents)), None, budget)[0]
            ref = np.concatenate([h.ravel() for h in jax_hv])
            mine = np.concatenate([h.ravel() for h in llad_hv])
            row["rel_err_vs_jax"] = float(np.max(np.abs(mine - ref)) / max(1e-300, np.max(np.abs(ref))))
        rows.append(row)
        print(row, flush=True)
    return rows


def _t(s: float) -> str:
    return f"{s * 1e3:.2f} ms" if s >= 1e-3 else f"{s * 1e6:.1f} µs"


def report(rows) -> str:
    load = os.getloadavg()
    lines = ["# Hessian-vector products: llad forward over reverse\n",
             f"- machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average "
             f"{load[0]:.2f}; one thread per tool; fastest of repeats\n",
             "| kernel | llad gradient | llad HVP | HVP / gradient | JAX jvp(grad) | llad HVP / JAX | "
             "HVP vs JAX (rel. err.) |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['kernel']} | refused: {r['error']} | | | | | |")
            continue
        jx = r.get("jax_hvp_s")
        vs_jax = f"{r['hvp_s'] / jx:.2f}" if jx else "-"
        lines.append(f"| {r['kernel']} | {_t(r['grad_s'])} | {_t(r['hvp_s'])} | {r['hvp_s'] / r['grad_s']:.2f} | "
                     f"{_t(jx) if jx else '-'} | {vs_jax} | {r.get('rel_err_vs_jax', float('nan')):.1e} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kernels", default=",".join(DEFAULT))
    ap.add_argument("--budget", type=float, default=1.0)
    ap.add_argument("--md")
    args = ap.parse_args(argv)
    text = report(run(args.kernels.split(","), args.budget))
    print(text)
    if args.md:
        with open(args.md, "w") as fh:
            fh.write(text)


if __name__ == "__main__":
    main()
