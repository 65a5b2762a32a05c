#!/usr/bin/env python3
"""Markdown tables from gbrun summaries: llad next to the other tools.

    python tools/gradbench/compare.py [RESULTS] [--reference DIR] [--tools llad,jax,pytorch,manual,example]
                                      [--stat median|min|mean]

RESULTS (default tools/gradbench/results) holds the <eval>-<tool>.json files that run_evals.sh
writes.  A tool/eval pair missing there is taken from --reference (e.g. the shared gradbench
results folder) and its cells are marked with *.  Prints an outcome table (one row per eval, one
column per tool) and a timing table (one row per eval x workload x function; the median (or --stat)
of the `evaluate` timings, with ✗ for an output the eval judged invalid or a failed evaluate).
"""
from __future__ import annotations

import argparse
import glob
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
EVAL_ORDER = ("hello", "lse", "llsq", "ode", "det", "kmeans", "gmm", "lstm", "ba", "particle", "saddle")


def fmt_ns(ns: float | None) -> str:
    if ns is None:
        return "-"
    if ns >= 1e9:
        return f"{ns / 1e9:.2f} s"
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    return f"{ns / 1e3:.1f} µs"


def load(folder: str) -> dict:
    """(eval, tool) -> summary."""
    out = {}
    for path in glob.glob(os.path.join(folder, "*.json")):
        ev, tool = os.path.basename(path)[:-5].split("-", 1)
        with open(path) as f:
            out[ev, tool] = json.load(f)
    return out


def outcome_cell(summary: dict | None, marker: str) -> str:
    if summary is None:
        return ""
    counts = summary["counts"]
    if summary["outcome"] == "undefined":
        return "undefined" + marker
    return f"{counts['valid']}/{counts['evaluate']} valid{marker}"


def timing_cell(evaluate: dict | None, marker: str, stat: str) -> str:
    if evaluate is None:
        return ""
    stats = evaluate["timings"].get("evaluate") or {}
    mark = "" if evaluate["verdict"] == "valid" else " ✗"
    return f"{fmt_ns(stats.get(stat + '_ns'))}{mark}{marker}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="?", default=os.path.join(HERE, "results"))
    ap.add_argument("--reference", help="folder of summaries for tools not run here (cells marked *)")
    ap.add_argument("--tools", default="llad,jax,pytorch,manual,example")
    ap.add_argument("--stat", default="median", choices=("median", "min", "mean"))
    args = ap.parse_args()
    tools = args.tools.split(",")
    here = load(args.results)
    reference = load(args.reference) if args.reference else {}

    def summary(ev: str, tool: str) -> tuple[dict | None, str]:
        if (ev, tool) in here:
            return here[ev, tool], ""
        return reference.get((ev, tool)), "*"

    evals = [e for e in EVAL_ORDER if any(summary(e, t)[0] for t in tools)]
    print("| eval | " + " | ".join(tools) + " |")
    print("| --- |" + " --- |" * len(tools))
    for ev in evals:
        print(f"| {ev} | " + " | ".join(outcome_cell(*summary(ev, t)) for t in tools) + " |")

    print()
    print("| eval | workload | function | " + " | ".join(tools) + " |")
    print("| --- | --- | --- |" + " --- |" * len(tools))
    for ev in evals:
        if ev == "hello":
            continue
        rows: dict[tuple, dict] = {}
        for tool in tools:
            s, marker = summary(ev, tool)
            for e in (s or {}).get("evaluates", []):
                rows.setdefault((e["description"], e["function"]), {})[tool] = (e, marker)
        for (workload, function), cells in rows.items():
            line = [timing_cell(*cells[t], args.stat) if t in cells else "" for t in tools]
            print(f"| {ev} | {workload} | {function} | " + " | ".join(line) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
