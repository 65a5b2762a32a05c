"""Command line: ``python -m tools.bench [--quick] [--kernels a,b] [--json F] [--md F] [--plot F] [--no-peers]``."""
from __future__ import annotations

import argparse
import faulthandler
import os
import sys
import tempfile
import time
import warnings

from . import harness, isolate, report
from .kernels import KERNELS

FULL_BUDGET_S = 1.0  # target seconds of timed repeats per measurement
QUICK_BUDGET_S = 0.12


def parse_args(argv):
    ap = argparse.ArgumentParser(
        prog="python -m tools.bench",
        description="Time llad's derivatives of loop-style Numba kernels against Numba, JAX, PyTorch "
                    "and finite differences, in one process, and check every gradient.")
    ap.add_argument("--quick", action="store_true", help="small sizes and short repeats (about a minute)")
    ap.add_argument("--kernels", default="", help=f"comma-separated subset of: {','.join(KERNELS)}")
    ap.add_argument("--json", metavar="PATH", help="write all results as JSON (updated after each kernel)")
    ap.add_argument("--md", metavar="PATH", help="also write the markdown report to PATH")
    ap.add_argument("--plot", metavar="PATH", help="write a log-scale PNG of gradient time per kernel")
    ap.add_argument("--no-peers", action="store_true", help="skip JAX and PyTorch")
    ap.add_argument("--budget", type=float, default=None,
                    help=f"seconds of repeats per measurement (default {FULL_BUDGET_S}, quick {QUICK_BUDGET_S})")
    ap.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    ap.add_argument("--single-process", action="store_true",
                    help="no supervisor: a crash in compiled code ends the whole run")
    ap.add_argument("--cell-timeout", type=float, default=None, metavar="S",
                    help="kill and skip a measurement running longer than S seconds (default 180, quick 60)")
    ap.add_argument("--journal", metavar="PATH", help=argparse.SUPPRESS)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    opts = ap.parse_args(argv)
    names = [n.strip() for n in opts.kernels.split(",") if n.strip()] or list(KERNELS)
    unknown = [n for n in names if n not in KERNELS]
    if unknown:
        ap.error(f"unknown kernel(s) {', '.join(unknown)}; choose from {', '.join(KERNELS)}")
    opts.names = names
    return opts


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    opts = parse_args(argv)
    if not (opts.worker or opts.single_process):
        timeout = opts.cell_timeout or (60.0 if opts.quick else 180.0)
        if opts.journal:
            return isolate.supervise(argv, opts.journal, timeout)
        fd, journal = tempfile.mkstemp(prefix="llad-bench-", suffix=".jsonl")
        os.close(fd)
        try:
            return isolate.supervise(argv, journal, timeout)
        finally:
            os.unlink(journal)
    return run_worker(opts)


def run_worker(opts) -> int:
    import llad
    llad.config.cache_dir = None  # compile times measure compilations, not loads from the disk cache
    faulthandler.enable()  # a crash in compiled code still prints where it happened
    warnings.simplefilter("ignore", category=Warning)
    size = "quick" if opts.quick else "full"
    budget = opts.budget if opts.budget is not None else (QUICK_BUDGET_S if opts.quick else FULL_BUDGET_S)

    def save(data):
        if opts.json:
            report.write_json(data, opts.json)

    t0 = float(os.environ.get("LLAD_BENCH_T0", time.time()))
    data = harness.run([KERNELS[n] for n in opts.names], size, budget, not opts.no_peers,
                       on_result=save, quiet=opts.quiet, journal=isolate.Journal(opts.journal))
    data["meta"]["wall_s"] = round(time.time() - t0, 1)
    data["meta"]["load_average_at_end"] = report.load_average()
    save(data)
    text = report.to_markdown(data) + f"\nTotal wall time: {data['meta']['wall_s']} s\n"
    print(text)
    if opts.md:
        with open(opts.md, "w") as fh:
            fh.write(text)
    if opts.plot:
        report.plot(data, opts.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
