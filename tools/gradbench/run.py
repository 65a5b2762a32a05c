#!/usr/bin/env python3
"""GradBench tool for llad: JSON-lines protocol on stdin/stdout.

Run from the project root:

    python tools/gradbench/run.py [--multithreaded]

Messages (see docs/gradbench.md and GradBench's protocol):

* ``start``    -> ``{"id", "tool": "llad", "config": {...versions...}}``
* ``define``   -> imports the module and compiles every kernel and llad derivative it uses on a tiny
  input (reported as a ``compile`` timing); ``success: false`` for modules llad does not implement.
* ``evaluate`` -> converts the input (untimed), runs the function ``min_runs`` times and until
  ``min_seconds`` have accumulated, one ``evaluate`` timing per run (monotonic clock, computation only).
* anything else -> ``{"id"}``.

Only responses go to stdout; everything else (Numba warnings, prints) is sent to stderr.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def timed_runs(fn, args: Any, raw: Any) -> tuple[Any, list[dict]]:
    """fn(args) at least min_runs times and until min_seconds have passed; one timing per run."""
    has_runs = isinstance(raw, dict)
    min_runs = int(raw.get("min_runs", 1)) if has_runs else 1
    min_seconds = float(raw.get("min_seconds", 0.0)) if has_runs else 0.0
    timings: list[dict] = []
    total_ns = 0
    result = None
    while len(timings) < max(min_runs, 1) or total_ns < min_seconds * 1e9:
        start = time.perf_counter_ns()
        result = fn(args)
        elapsed = time.perf_counter_ns() - start
        timings.append({"name": "evaluate", "nanoseconds": elapsed})
        total_ns += elapsed
    return result, timings


def llad_commit() -> str | None:
    """The checked-out commit of the llad repository (with '+dirty' for local changes), if git can tell."""
    def git(*args: str) -> str:
        return subprocess.run(("git", "-C", ROOT, *args), capture_output=True, text=True, timeout=10).stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", "llad")
        return (commit + ("+dirty" if dirty else "")) or None
    except (OSError, subprocess.SubprocessError):
        return None


class Tool:
    def __init__(self, multithreaded: bool) -> None:
        self.multithreaded = multithreaded
        self.modules: dict[str, Any] = {}

    def start(self, message: dict) -> dict:
        import numba
        import numpy

        import llad
        return {"tool": "llad", "config": {
            "llad": llad.__version__, "llad_commit": llad_commit(), "numba": numba.__version__,
            "numpy": numpy.__version__,
            "python": platform.python_version(), "threads": 1,
            "multithreaded_flag": self.multithreaded}}

    def load(self, name: str) -> int:
        """Import module `name` and compile its kernels and derivatives; the nanoseconds it took."""
        from tools.gradbench import modules
        module = modules.load(name)             # KeyError: llad does not implement it
        start = time.perf_counter_ns()
        module.warm_up()
        compile_ns = time.perf_counter_ns() - start
        self.modules[name] = module
        return compile_ns

    def define(self, message: dict) -> dict:
        try:
            compile_ns = self.load(message["module"])
        except KeyError as e:
            return {"success": False, "error": str(e.args[0])}
        return {"success": True, "timings": [{"name": "compile", "nanoseconds": compile_ns}]}

    def evaluate(self, message: dict) -> dict:
        name, function = message["module"], message["function"]
        extra = []
        if name not in self.modules:            # evaluate without define: compile first, report it
            extra.append({"name": "compile", "nanoseconds": self.load(name)})
        spec = self.modules[name].FUNCTIONS[function]
        raw = message["input"]
        start = time.perf_counter_ns()
        args = spec.prepare(raw)
        prepare_ns = time.perf_counter_ns() - start
        result, timings = timed_runs(spec.compute, args, raw)
        output = spec.to_json(result)
        json.dumps(output, allow_nan=False)     # ValueError (-> failure) on NaN or infinity
        return {"success": True, "output": output,
                "timings": extra + [{"name": "prepare", "nanoseconds": prepare_ns}] + timings}

    def handle(self, message: dict) -> dict:
        kind = message.get("kind")
        response: dict = {"id": message.get("id")}
        try:
            if kind == "start":
                response.update(self.start(message))
            elif kind == "define":
                response.update(self.define(message))
            elif kind == "evaluate":
                response.update(self.evaluate(message))
        except Exception as e:  # noqa: BLE001  (report, never crash: the eval records a failure)
            response.update(success=False, error="".join(traceback.format_exception(e)))
        return response


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--multithreaded", action="store_true",
                        help="accepted for GradBench compatibility; llad kernels run on one thread")
    args = parser.parse_args()
    protocol_out = sys.stdout
    sys.stdout = sys.stderr                     # nothing but responses may reach the protocol stream
    tool = Tool(args.multithreaded)
    for line in sys.stdin:
        if not line.strip():
            continue
        response = tool.handle(json.loads(line))
        protocol_out.write(json.dumps(response, allow_nan=False) + "\n")
        protocol_out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
