"""Accuracy of the vectorised math functions in llad's derivative code (llad.config.vector_math).

Every function is measured as users get it: an `@njit` loop `y[i] = f(x[i])` differentiated in Forward
mode with vector math on, so the values come from the derivative's own copy of the loop (llad's own
functions or libmvec in the vectorised body, libm in the scalar remainder).  Beside it, the same loop with
vector math off (libm's scalar functions, what Numba's primal calls).

Error in ulps (fractional, glibc's convention: |y - r| / 2^(e - p + 1), e the exponent of r, p the
precision) against a reference: float64 against x87 extended precision (NumPy's longdouble, 11 more
bits: its own error is below 1/1000 ulp away from hard cases), float32 against float64.  The worst
points of each function are re-checked against mpmath at 200 bits, and the maximum reported is the
larger of the two measurements at those points.  Special values (±0, ±inf, NaN, subnormals, overflow and
underflow boundaries) are compared bit for bit with libm's results.

    python -m tools.vecmath_accuracy                  # 10^7 points per function (a few minutes)
    python -m tools.vecmath_accuracy --n 100000       # quick
    python -m tools.vecmath_accuracy --md docs/vector-math-accuracy.md
"""
from __future__ import annotations

import argparse
import math
import platform
import re
import sys
import time
from dataclasses import dataclass

import numba
import numpy as np

import llad
from llad import vecmath


@dataclass(frozen=True)
class Case:
    name: str                 # the Python math function
    arity: int
    sample: object            # sample(rng, n, dtype) -> tuple of arrays
    mp: object                # the mpmath function


def _logu(rng, n, lo, hi):
    """Magnitudes 2^U(lo, hi) times U(1, 2): every binade equally often."""
    return np.exp2(rng.uniform(lo, hi, n)) * rng.uniform(1.0, 2.0, n)


def _signed(rng, v):
    return v * rng.choice([-1.0, 1.0], v.size)


def _mix(rng, n, *parts):
    """Concatenate samplers, n split evenly."""
    k = len(parts)
    return np.concatenate([p(rng, n // k + (i < n % k)) for i, p in enumerate(parts)])


def _finite_range(dtype):
    return (-1074, 1023) if dtype == np.float64 else (-149, 127)


def _exp_max(dtype):
    return (709.78, -745.13) if dtype == np.float64 else (88.72, -103.97)


CASES = [
    Case("exp", 1, lambda r, n, t: (_mix(r, n, lambda r, m: r.uniform(_exp_max(t)[1], _exp_max(t)[0], m),
                                         lambda r, m: r.normal(0, 5, m)),), lambda mp, x: mp.exp(x)),
    Case("exp2", 1, lambda r, n, t: (r.uniform(*(-1075, 1023.9) if t == np.float64 else (-150, 127.9), n),),
         lambda mp, x: mp.power(2, x)),
    Case("log", 1, lambda r, n, t: (_mix(r, n, lambda r, m: _logu(r, m, *_finite_range(t)),
                                         lambda r, m: r.uniform(0.5, 2.0, m)),), lambda mp, x: mp.log(x)),
    Case("log2", 1, lambda r, n, t: (_logu(r, n, *_finite_range(t)),), lambda mp, x: mp.log(x, 2)),
    Case("log10", 1, lambda r, n, t: (_logu(r, n, *_finite_range(t)),), lambda mp, x: mp.log10(x)),
    Case("sin", 1, lambda r, n, t: (_mix(r, n, lambda r, m: r.uniform(-10, 10, m),
                                         lambda r, m: _signed(r, _logu(r, m, -30, 60 if t == np.float64 else 20)),
                                         lambda r, m: r.uniform(-1e5, 1e5, m)),), lambda mp, x: mp.sin(x)),
    Case("cos", 1, lambda r, n, t: (_mix(r, n, lambda r, m: r.uniform(-10, 10, m),
                                         lambda r, m: _signed(r, _logu(r, m, -30, 60 if t == np.float64 else 20)),
                                         lambda r, m: r.uniform(-1e5, 1e5, m)),), lambda mp, x: mp.cos(x)),
    Case("tan", 1, lambda r, n, t: (_mix(r, n, lambda r, m: r.uniform(-10, 10, m),
                                         lambda r, m: _signed(r, _logu(r, m, -30, 40 if t == np.float64 else 20))),),
         lambda mp, x: mp.tan(x)),
    Case("tanh", 1, lambda r, n, t: (r.uniform(-25, 25, n),), lambda mp, x: mp.tanh(x)),
    Case("sinh", 1, lambda r, n, t: (_mix(r, n, lambda r, m: r.uniform(-5, 5, m),
                                          lambda r, m: r.uniform(-_exp_max(t)[0], _exp_max(t)[0], m)),),
         lambda mp, x: mp.sinh(x)),
    Case("cosh", 1, lambda r, n, t: (_mix(r, n, lambda r, m: r.uniform(-5, 5, m),
                                          lambda r, m: r.uniform(-_exp_max(t)[0], _exp_max(t)[0], m)),),
         lambda mp, x: mp.cosh(x)),
    Case("asin", 1, lambda r, n, t: (r.uniform(-1, 1, n),), lambda mp, x: mp.asin(x)),
    Case("acos", 1, lambda r, n, t: (r.uniform(-1, 1, n),), lambda mp, x: mp.acos(x)),
    Case("atan", 1, lambda r, n, t: (_signed(r, _logu(r, n, -40, 60)),), lambda mp, x: mp.atan(x)),
    Case("pow", 2, lambda r, n, t: (_logu(r, n, -20, 20), r.uniform(-40, 40, n)), lambda mp, x, y: mp.power(x, y)),
    Case("atan2", 2, lambda r, n, t: (r.standard_normal(n), r.standard_normal(n)), lambda mp, y, x: mp.atan2(y, x)),
]

SPECIAL64 = [0.0, -0.0, np.inf, -np.inf, np.nan, 5e-324, -5e-324, 2.2250738585072014e-308, 1e-310, 1.0, -1.0,
             0.5, 2.0, 709.782712893384, 709.7827128933841, -745.1332191019412, -745.1332191019411, 710.0, -746.0,
             1e300, -1e300, 1.7976931348623157e308, 1e-300, 3.141592653589793, 1.5707963267948966, 1e22, -1e22]
SPECIAL32 = [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, -1e-45, 1.1754944e-38, 1e-40, 1.0, -1.0, 0.5, 2.0,
             88.72283, 88.72284, -103.97208, -103.97209, 89.0, -104.0, 1e30, -1e30, 3.4028235e38, 1e-30,
             3.1415927, 1.5707964, 1e10, -1e10]


def _kernel(case: Case):
    """`y[i] = math.<f>(x[i], ...)` compiled by Numba."""
    args = ", ".join(f"a{j}" for j in range(case.arity))
    elems = ", ".join(f"a{j}[i]" for j in range(case.arity))
    ns = {"math": math}
    exec(f"def k_{case.name}({args}, y):\n    for i in range(y.size):\n        y[i] = math.{case.name}({elems})\n",
         ns)
    return numba.njit(ns[f"k_{case.name}"])


def evaluate(kernel, xs, vector_math: bool):
    """The values y of the kernel's Forward derivative (its copy of the loop), with vector math on or off,
    and how its optimised code computes the function: libmvec calls, inline SIMD code, or scalar."""
    old = llad.config.vector_math
    llad.config.vector_math = vector_math
    try:
        y = np.zeros_like(xs[0])
        anns = [llad.Duplicated(x, np.zeros_like(x)) for x in xs] + [llad.Duplicated(y, np.zeros_like(y))]
        with np.errstate(all="ignore"):
            llad.autodiff(llad.Forward, kernel, *anns)
        opt = llad.dump(llad.Forward, kernel, *anns, depth="deriv-opt")
        called = set(re.findall(r"@_ZGV\w+?_(\w+)\(", opt))
        name = kernel.py_func.__name__.removeprefix("k_")
        if xs[0].dtype == np.float32 and name in called:    # through libmvec's float64 function: say so
            return y, "libmvec (float64)"
        if called:
            return y, "libmvec"
        return y, "inline" if re.search(r"<\d+ x (double|float)>", opt) else "no"
    finally:
        llad.config.vector_math = old


def reference(case: Case, xs):
    """float64: longdouble NumPy; float32: float64 NumPy (or mpmath where NumPy has no such function)."""
    wide = np.longdouble if xs[0].dtype == np.float64 else np.float64
    w = [x.astype(wide) for x in xs]
    fn = {"exp": np.exp, "exp2": np.exp2, "log": np.log, "log2": np.log2, "log10": np.log10, "sin": np.sin,
          "cos": np.cos, "tan": np.tan, "tanh": np.tanh, "sinh": np.sinh, "cosh": np.cosh, "asin": np.arcsin,
          "acos": np.arccos, "atan": np.arctan, "pow": np.power, "atan2": np.arctan2}[case.name]
    with np.errstate(all="ignore"):
        return fn(*w)


def ulp_error(y, ref):
    """|y - ref| in ulps of ref's binade at y's precision (wide arithmetic); inf where one is finite and
    the other not, 0 where both are the same non-finite value."""
    p, emin = (53, -1074) if y.dtype == np.float64 else (24, -149)
    wide = ref.dtype
    with np.errstate(all="ignore"):
        rounded = ref.astype(y.dtype)
        _, e = np.frexp(ref)
        ulp = np.ldexp(np.ones_like(ref), np.maximum(e.astype(np.int64) - p, emin))
        err = np.abs(y.astype(wide) - ref) / ulp
    same_nonfinite = ~np.isfinite(rounded) & ((y == rounded) | (np.isnan(y) & np.isnan(rounded)))
    overflow = ~np.isfinite(y) & np.isfinite(rounded)
    err = np.where(same_nonfinite, 0, err)
    err = np.where(overflow | (np.isnan(y) != np.isnan(rounded)), np.inf, err)
    return err


def mp_ulps(case: Case, xs, y, idx, mp):
    out = []
    p, emin = (53, -1074) if y.dtype == np.float64 else (24, -149)
    for i in idx:
        args = [mp.mpf(float(x[i])) for x in xs]
        r = case.mp(mp, *args)
        if not mp.isfinite(r) or r == 0:
            out.append(0.0 if float(r) == float(y[i]) else math.inf)
            continue
        e = int(mp.floor(mp.log(abs(r), 2))) + 1
        ulp = mp.ldexp(1, max(e - p, emin))
        out.append(float(abs(mp.mpf(float(y[i])) - r) / ulp))
    return out


def measure(case: Case, dtype, n: int, seed: int, mp):
    rng = np.random.default_rng(seed)
    xs = [np.ascontiguousarray(a, dtype=dtype) for a in case.sample(rng, n, dtype)]
    kernel = _kernel(case)
    t0 = time.perf_counter()
    y_vec, vectorised = evaluate(kernel, xs, True)         # how: libmvec calls, inline SIMD code, or not
    y_lib, _ = evaluate(kernel, xs, False)
    ref = reference(case, xs)
    row = {"function": case.name, "dtype": np.dtype(dtype).name, "points": n, "vectorised": vectorised}
    for tag, y in (("llad", y_vec), ("libm", y_lib)):
        err = ulp_error(y, ref)
        worst = np.argsort(err)[-16:]
        confirmed = mp_ulps(case, xs, y, worst, mp)
        k = int(np.argmax(confirmed))
        row[f"{tag}_max"] = max(confirmed)
        row[f"{tag}_at"] = tuple(float(x[worst[k]]) for x in xs)
        row[f"{tag}_numpy_max"] = float(err[worst[-1]])
    special = np.array(SPECIAL64 if dtype == np.float64 else SPECIAL32, dtype=dtype)
    # every special value in every lane of the vectorised body (and the scalar remainder)
    rep = [np.repeat(special, 24)[rng.permutation(special.size * 24)]]
    if case.arity == 2:
        rep = [rep[0], np.tile(special, 24)[rng.permutation(special.size * 24)]]
    s_vec, _ = evaluate(kernel, rep, True)
    s_lib, _ = evaluate(kernel, rep, False)
    differ = _class(s_vec) != _class(s_lib)
    row["special_mismatches"] = sorted({tuple(float(x[i]) for x in rep) for i in np.flatnonzero(differ)})
    row["special_ulps"] = float(np.max(ulp_error(s_vec, s_lib.astype(ref.dtype)), initial=0.0))
    row["seconds"] = time.perf_counter() - t0
    return row


def _class(y):
    """What must be identical to libm at special arguments: NaN, +-inf, +-0, subnormal, or normal with
    its sign (a finite normal result may differ in its last bits: the ulp columns measure that)."""
    tiny = np.finfo(y.dtype).tiny
    with np.errstate(all="ignore"):
        return np.select([np.isnan(y), np.isposinf(y), np.isneginf(y), (y == 0) & ~np.signbit(y), y == 0,
                          np.abs(y) < tiny, y > 0], [0, 1, 2, 3, 4, 5, 6], 7)


def _fmt_at(at):
    return ", ".join(f"{v:.17g}" for v in at)


def markdown(rows, n, seed) -> str:
    lines = [
        "# Vectorised math: measured accuracy",
        "",
        f"Produced by `python -m tools.vecmath_accuracy --n {n} --seed {seed} --md <this file>` "
        f"(machine: {platform.processor() or platform.machine()}, {vecmath.describe()}; "
        f"numba {numba.__version__}, numpy {np.__version__}). What the table measures: `docs/vector-math.md`.",
        "",
        "Max error in ulps over the sampled points (fractional ulps, the worst 16 points re-checked against "
        "mpmath at 200 bits), with an argument where it is reached; `vectorised`: how the optimised derivative "
        "computes it (`libmvec` calls; `libmvec (float64)`: a float32 function computed by libmvec's float64 one and "
        "rounded once; `inline` SIMD code: llad's own function, llad/ownmath.py and llad/runtime.py; or `no`); "
        "`special values`: results at ±0, ±inf, NaN, subnormals, overflow/underflow "
        "boundaries: the same class as libm's result (NaN, ±inf, ±0, subnormal, sign) at every one (`same`, with "
        "the largest ulp distance from libm's value among them) or the arguments where the class differs.",
        "",
        "| function | dtype | points | vectorised | llad max ulp | at | libm max ulp | at | special values |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        sm = r["special_mismatches"]
        special = f"same ({r['special_ulps']:.2g} ulp)" if not sm else "differ at " + "; ".join(_fmt_at(a) for a in sm[:4]) + \
            (f" (+{len(sm) - 4})" if len(sm) > 4 else "")
        lines.append(f"| {r['function']} | {r['dtype']} | {r['points']:,} | {r['vectorised']} | "
                     f"{r['llad_max']:.3g} | {_fmt_at(r['llad_at'])} | {r['libm_max']:.3g} | "
                     f"{_fmt_at(r['libm_at'])} | {special} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10_000_000, help="points per function and dtype")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--only", help="comma-separated function names")
    ap.add_argument("--md", help="write the markdown table here")
    args = ap.parse_args(argv)
    import mpmath
    mpmath.mp.prec = 200
    if not vecmath.available():
        print("libmvec is not available here: vector math uses llad's own exp only", file=sys.stderr)
    rows = []
    for case in CASES:
        if args.only and case.name not in args.only.split(","):
            continue
        for dtype in (np.float64, np.float32):
            r = measure(case, dtype, args.n, args.seed, mpmath.mp)
            rows.append(r)
            print(f"{r['function']:>6} {r['dtype']:>7}: llad {r['llad_max']:.3g} ulp (numpy-ref {r['llad_numpy_max']:.3g}) "
                  f"libm {r['libm_max']:.3g} ulp, vectorised={r['vectorised']}, special mismatches "
                  f"{len(r['special_mismatches'])}, {r['seconds']:.1f} s", flush=True)
    if args.md:
        with open(args.md, "w") as fh:
            fh.write(markdown(rows, args.n, args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
