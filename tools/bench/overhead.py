"""Call overhead: `autodiff(Reverse, f, Active, Duplicated(x, dx), Const(y))` as a user writes it (the
annotations built in the call, 4-element arrays, f trivial), beside Numba's own call of f, with the parts
of llad's time: building the two annotations, autodiff with annotations built once, and the prepared
Python path that serves a signature's first `hotpath.TIER_UP_CALLS` calls (docs/design.md, "The call path").

    python -m tools.bench.overhead [--md docs/bench/overhead.md]
"""
from __future__ import annotations

import argparse
import os
import platform
import timeit

import numba
import numpy as np

from llad import Active, Const, Duplicated, Reverse, api, autodiff, hotpath

from .report import git_revision, load_average


@numba.njit
def f(x, y):
    return x[0] * y[0] + x[1]


def _per_call(stmt, number: int = 100_000, repeat: int = 7) -> float:
    return min(timeit.repeat(stmt, number=number, repeat=repeat)) / number


def measure() -> dict:
    x, dx, y = np.ones(4), np.zeros(4), np.ones(4)
    f(x, y)
    for _ in range(hotpath.TIER_UP_CALLS + 1):     # the signature's compiled path
        autodiff(Reverse, f, Active, Duplicated(x, dx), Const(y))
    assert f in api._hot
    ann = (Duplicated(x, dx), Const(y))
    args = (Active, *ann)
    return {
        "numba f(x, y)": _per_call(lambda: f(x, y)),
        "Duplicated(x, dx), Const(y) alone": _per_call(lambda: (Duplicated(x, dx), Const(y))),
        "autodiff, annotations built once": _per_call(lambda: autodiff(Reverse, f, Active, *ann)),
        "autodiff(Reverse, f, Active, Duplicated(x, dx), Const(y))":
            _per_call(lambda: autodiff(Reverse, f, Active, Duplicated(x, dx), Const(y))),
        "the same, prepared Python path (first calls)": _per_call(lambda: api._autodiff_prepared(Reverse, f, args)),
    }


def report(times: dict) -> str:
    base = times["numba f(x, y)"]
    lines = ["# Call overhead of a cached derivative", "",
             f"`python -m tools.bench.overhead --md <this file>` at {git_revision(os.path.dirname(__file__))}; "
             f"{platform.machine()}, {os.cpu_count()} cores, load average {load_average()}; numba {numba.__version__}, "
             "fastest of 7 × 100,000 calls.", "",
             "| call | time per call | / Numba's call |", "|---|---|---|"]
    for name, t in times.items():
        lines.append(f"| `{name}` | {t * 1e6:.2f} µs | {t / base:.1f}× |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--md", help="write the table here")
    args = ap.parse_args(argv)
    text = report(measure())
    print(text)
    if args.md:
        with open(args.md, "w") as fh:
            fh.write(text)


if __name__ == "__main__":
    main()
