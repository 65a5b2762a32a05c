"""Compare benchmark runs of two versions of llad, kernel by kernel.

    python -m tools.bench.compare --before b1.json b2.json --after a1.json a2.json [--md out.md]

Each side may have several runs (alternate them: before, after, before, after, so that drift of a shared
machine hits both); a cell's time is the fastest over that side's runs.  Printed per kernel and cell:
after / before for the fastest time and for the first-call compile time (the Numba primal column is the
noise floor: the code it times is the same on both sides), then each llad cell over the same run's
primal, the median over runs.
"""
from __future__ import annotations

import argparse
import json
import statistics

CELLS = ("numba_primal", "llad_fwd", "llad_fwd_batch8", "llad_rev")
COMPILE_CELLS = ("llad_fwd", "llad_fwd_batch8", "llad_rev")


def _fastest(paths: list[str]) -> dict:
    """{kernel: {cell: (min_s, compile_s)}}, the fastest of every run for each."""
    out: dict = {}
    for path in paths:
        with open(path) as fh:
            results = json.load(fh)["results"]
        for r in results:
            cells = out.setdefault(r["kernel"], {})
            for name, cell in r["cells"].items():
                t, c = cell.get("min_s"), cell.get("compile_s")
                old = cells.get(name, (None, None))
                cells[name] = (_min(old[0], t), _min(old[1], c))
    return out


def _relative(paths: list[str]) -> dict:
    """{kernel: {cell: median over runs of (cell time / that run's Numba primal time)}}: a machine that is
    slower for a whole run slows the primal too, so this ratio is steadier than raw times."""
    out: dict = {}
    for path in paths:
        with open(path) as fh:
            results = json.load(fh)["results"]
        for r in results:
            base = r["cells"].get("numba_primal", {}).get("min_s")
            for name in CELLS[1:]:
                t = r["cells"].get(name, {}).get("min_s")
                if base and t:
                    out.setdefault(r["kernel"], {}).setdefault(name, []).append(t / base)
    return {k: {c: statistics.median(v) for c, v in cells.items()} for k, cells in out.items()}


def relative_table(before: dict, after: dict) -> str:
    head = ["kernel"] + [f"{c} / primal: before -> after" for c in CELLS[1:]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for kernel in before:
        if kernel in after:
            row = [kernel] + [f"{before[kernel].get(c, float('nan')):.2f} -> {after[kernel].get(c, float('nan')):.2f}"
                              for c in CELLS[1:]]
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def _min(a, b):
    return b if a is None else a if b is None else min(a, b)


def _ratio(after, before) -> str:
    return "-" if after is None or before is None or before == 0 else f"{after / before:.3f}"


def table(before: dict, after: dict) -> str:
    head = ["kernel"] + [f"{c} after/before" for c in CELLS] + [f"{c} compile after/before" for c in COMPILE_CELLS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for kernel in before:
        if kernel not in after:
            continue
        b, a = before[kernel], after[kernel]
        row = [kernel] + [_ratio(a.get(c, (None,))[0], b.get(c, (None,))[0]) for c in CELLS]
        row += [_ratio(a.get(c, (None, None))[1], b.get(c, (None, None))[1]) for c in COMPILE_CELLS]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", nargs="+", required=True)
    ap.add_argument("--after", nargs="+", required=True)
    ap.add_argument("--md", help="also write the table here")
    args = ap.parse_args(argv)
    text = table(_fastest(args.before), _fastest(args.after)) + "\n" + \
        relative_table(_relative(args.before), _relative(args.after))
    print(text)
    if args.md:
        with open(args.md, "w") as fh:
            fh.write(text)


if __name__ == "__main__":
    main()
