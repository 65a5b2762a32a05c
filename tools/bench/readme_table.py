"""Print the README's benchmark table from a `python -m tools.bench --json` file."""
from __future__ import annotations

import json
import statistics
import sys

LABELS = {"sumsin": "sumsin n=1e6", "logsumexp": "logsumexp n=1e6", "gmm": "GMM d=10 k=25 n=1000",
          "ba": "bundle adjustment 10k obs", "lstm": "LSTM", "rk4": "RK4 ODE 100×1000",
          "heat": "heat stencil 1000×500", "ludet": "LU determinant n=64", "kmeans": "k-means 10000×20×8",
          "matmul": "naive matmul n=128", "alloc": "allocation inside", "sumsin32": "sumsin float32"}


def fmt(s: float | None) -> str:
    if s is None:
        return "–"
    return f"{s * 1e3:.3g} ms" if s >= 1e-3 else f"{s * 1e6:.3g} µs"


def main(path: str) -> None:
    data = json.load(open(path))
    print("| kernel | Numba primal | llad reverse | rev / primal | JAX grad | PyTorch grad | llad fwd / primal "
          "| fwd ×8 / primal |")
    print("|---|---|---|---|---|---|---|---|")
    ratios = []
    for r in data["results"]:
        c = {k: v.get("min_s") for k, v in r["cells"].items()}
        p = c["numba_primal"]
        rev = c.get("llad_rev") or c.get("llad_reverse")
        ratios.append(rev / p)
        print(f"| {LABELS.get(r['kernel'], r['kernel'])} | {fmt(p)} | {fmt(rev)} | {rev / p:.2f} | "
              f"{fmt(c.get('jax_grad'))} | {fmt(c.get('torch_grad'))} | {c['llad_fwd'] / p:.2f} | "
              f"{c['llad_fwd_batch8'] / p:.2f} |")
    print(f"\nreverse / primal: median {statistics.median(ratios):.2f}, max {max(ratios):.2f}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/bench/latest.json")
