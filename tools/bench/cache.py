"""What the disk cache of derivatives saves: the first reverse-mode call in a fresh process, compiling
(empty cache) against loading (the cache a first process wrote).

    python -m tools.bench.cache [--runs 3]

Per kernel, `runs` pairs of fresh processes with a new cache directory each: the first process compiles
and writes, the second loads.  Each process times its first `llad.autodiff` call, after importing llad
and the kernel, twice: from cold, and split into Numba's one-time runtime start (NRT and the array
typing that any first call of a jitted function in a process pays, run separately first in a third
process kind, `warm`) and the rest.  Reports the median of the runs.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap

KERNELS = textwrap.dedent('''
    import math, numba, numpy as np

    @numba.njit
    def sumsin(x):
        s = 0.0
        for i in range(x.size):
            s += math.sin(x[i]) * x[i]
        return s

    @numba.njit
    def _lse(x):
        m = x[0]
        for i in range(1, x.size):
            if x[i] > m:
                m = x[i]
        s = 0.0
        for i in range(x.size):
            s += math.exp(x[i] - m)
        return m + math.log(s)

    @numba.njit
    def logsumexp_rows(x):
        t = 0.0
        for r in range(x.shape[0]):
            t += _lse(x[r])
        return t

    @numba.njit
    def _rhs(y, p, out):
        out[0] = p[0] * y[0] - p[1] * y[0] * y[1]
        out[1] = -p[2] * y[1] + p[3] * y[0] * y[1]

    @numba.njit
    def rk4(p):
        y = np.array([1.0, 0.5])
        k1, k2, k3, k4, tmp = np.empty(2), np.empty(2), np.empty(2), np.empty(2), np.empty(2)
        h = 0.01
        for _ in range(200):
            _rhs(y, p, k1)
            tmp[:] = y + 0.5 * h * k1
            _rhs(tmp, p, k2)
            tmp[:] = y + 0.5 * h * k2
            _rhs(tmp, p, k3)
            tmp[:] = y + h * k3
            _rhs(tmp, p, k4)
            y += h / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
        return y[0] + y[1]
''')

ARGS = {"sumsin": "np.linspace(0.1, 1.0, 1000)", "logsumexp_rows": "np.linspace(-1.0, 1.0, 400).reshape(20, 20)",
        "rk4": "np.array([1.1, 0.4, 0.4, 0.1])"}

RUN = textwrap.dedent('''
    import json, sys, time
    t0 = time.perf_counter()
    import numpy as np, numba, llad, kernels
    from llad import api, diskcache, nrt
    t_import = time.perf_counter() - t0
    name, warm = sys.argv[1], sys.argv[2] == "warm"
    x = eval(sys.argv[3])
    t_warm = 0.0
    if warm:                    # Numba's one-time runtime start, which any first jitted call pays
        t1 = time.perf_counter()
        nrt.ensure_runtime()
        numba.typeof(x)
        t_warm = time.perf_counter() - t1
    dx = np.zeros_like(x)
    t1 = time.perf_counter()
    llad.autodiff(llad.Reverse, getattr(kernels, name), llad.Duplicated(x, dx))
    t_first = time.perf_counter() - t1
    print(json.dumps({"import": t_import, "warm": t_warm, "first": t_first, "compiled": api.compile_count["n"],
                      "hits": diskcache.stats.hits, "stats": vars(diskcache.stats), "checksum": float(dx.sum())}))
''')


def _process(tmp: str, cache: str, name: str, warm: bool) -> dict:
    env = dict(os.environ, LLAD_CACHE_DIR=cache, PYTHONPATH=os.pathsep.join([tmp, *sys.path]), LLAD_VERBOSE="1")
    out = subprocess.run([sys.executable, os.path.join(tmp, "run.py"), name, "warm" if warm else "cold", ARGS[name]],
                         cwd=tmp, env=env, capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["log"] = [ln for ln in out.stderr.splitlines() if "cache:" in ln]     # why an entry was not used
    return result


def measure(name: str, runs: int) -> dict:
    rows = {"compile": [], "load": [], "compile_warm": [], "load_warm": [], "warmup": []}
    with tempfile.TemporaryDirectory(prefix="llad-cache-bench-") as tmp:
        with open(os.path.join(tmp, "kernels.py"), "w") as fh:
            fh.write(KERNELS)
        with open(os.path.join(tmp, "run.py"), "w") as fh:
            fh.write(RUN)
        for r in range(runs):
            for warm in (False, True):
                cache = os.path.join(tmp, f"cache{r}{warm}")
                first = _process(tmp, cache, name, warm)
                second = _process(tmp, cache, name, warm)
                assert first["compiled"] == 1 and second["compiled"] == 0 and second["hits"] == 1, (first, second)
                assert first["checksum"] == second["checksum"], (first, second)
                suffix = "_warm" if warm else ""
                rows["compile" + suffix].append(first["first"])
                rows["load" + suffix].append(second["first"])
                if warm:
                    rows["warmup"].append(second["warm"])
    return {k: statistics.median(v) for k, v in rows.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    opts = ap.parse_args()
    print("| kernel | first call, compiling | first call, loading | loading, after Numba's runtime start "
          "| Numba's runtime start |")
    print("|---|---|---|---|---|")
    for name in ARGS:
        m = measure(name, opts.runs)
        print(f"| {name} | {1e3 * m['compile']:.0f} ms | {1e3 * m['load']:.1f} ms | {1e3 * m['load_warm']:.1f} ms "
              f"| {1e3 * m['warmup']:.1f} ms |", flush=True)


if __name__ == "__main__":
    main()
