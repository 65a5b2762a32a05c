"""Crash and hang isolation: a supervisor re-runs the benchmark worker past a bad cell.

All measurements run in one worker process. The worker appends to a journal (JSON lines)
when each cell starts and ends and when each kernel is done. If the worker dies (say a
segfault in freshly compiled derivative code) or a cell runs past ``cell_timeout``, the
supervisor records that cell as an error in the journal and starts a new worker, which
keeps the finished kernels, skips the bad cell and goes on. A normal run never restarts.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


class Journal:
    """Append-only record of a run; ``path=None`` makes a journal that records nothing."""

    def __init__(self, path: str | None):
        self.path = path
        self.done: dict[str, dict] = {}
        self.crashed: dict[tuple[str, str], str] = {}
        if path and os.path.exists(path):
            for event in read_events(path):
                if event["event"] == "result":
                    self.done[event["result"]["kernel"]] = event["result"]
                elif event["event"] == "crash":
                    self.crashed[(event["kernel"], event["cell"])] = event["reason"]
        self.restarts = sum(1 for _ in self.crashed)

    def _write(self, **event) -> None:
        if self.path:
            event["t"] = time.time()
            with open(self.path, "a") as fh:
                fh.write(json.dumps(event, default=str) + "\n")
                fh.flush()
                os.fsync(fh.fileno())

    def start(self, kernel: str, cell: str) -> None:
        self._write(event="start", kernel=kernel, cell=cell)

    def end(self, kernel: str, cell: str) -> None:
        self._write(event="end", kernel=kernel, cell=cell)

    def result(self, result: dict) -> None:
        self._write(event="result", result=result)

    def crash(self, kernel: str, cell: str, reason: str) -> None:
        self._write(event="crash", kernel=kernel, cell=cell, reason=reason)


def read_events(path: str) -> list[dict]:
    events = []
    with open(path) as fh:
        for line in fh:
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut short by a crash
                break
    return events


def pending_cell(path: str) -> tuple[str, str, float] | None:
    """(kernel, cell, start time) of a cell that started and has not ended, if any."""
    open_cells: dict[tuple[str, str], float] = {}
    for event in read_events(path):
        key = (event.get("kernel"), event.get("cell"))
        if event["event"] == "start":
            open_cells[key] = event["t"]
        elif event["event"] in ("end", "crash"):
            open_cells.pop(key, None)
    if not open_cells:
        return None
    (kernel, cell), started = max(open_cells.items(), key=lambda kv: kv[1])
    return kernel, cell, started


def _describe_exit(rc: int) -> str:
    if rc < 0:
        try:
            return signal.Signals(-rc).name
        except ValueError:
            return f"signal {-rc}"
    return f"exit status {rc}"


def supervise(worker_argv: list[str], journal_path: str, cell_timeout: float, max_restarts: int = 30) -> int:
    """Run ``python -m tools.bench <worker_argv> --worker --journal PATH`` until it finishes."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    env.setdefault("LLAD_BENCH_T0", str(time.time()))
    for restart in range(max_restarts + 1):
        cmd = [sys.executable, "-m", "tools.bench", *worker_argv, "--worker", "--journal", journal_path]
        proc = subprocess.Popen(cmd, env=env)
        reason = None
        try:
            while True:
                try:
                    rc = proc.wait(timeout=1.0)
                    break
                except subprocess.TimeoutExpired:
                    pending = pending_cell(journal_path) if os.path.exists(journal_path) else None
                    if pending and time.time() - pending[2] > cell_timeout:
                        proc.kill()
                        proc.wait()
                        rc = None
                        reason = (f"timed out: no result after {cell_timeout:g} s (--cell-timeout); the worker "
                                  "process was killed and the run went on in a fresh process without this cell")
                        break
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        if rc == 0:
            return 0
        pending = pending_cell(journal_path) if os.path.exists(journal_path) else None
        if pending is None:
            print(f"benchmark worker failed ({_describe_exit(rc)}) outside any measured cell; giving up",
                  file=sys.stderr)
            return 1 if rc is None else (rc if rc > 0 else 128 - rc)
        kernel, cell, _ = pending
        if reason is None:
            reason = (f"crashed the benchmark process ({_describe_exit(rc)}); the run went on in a fresh "
                      "process without this cell")
        print(f"[supervisor] {kernel}/{cell}: {reason}; restart {restart + 1}/{max_restarts}", file=sys.stderr)
        Journal(journal_path).crash(kernel, cell, reason)
    print("benchmark worker kept failing; giving up", file=sys.stderr)
    return 1
