"""Run every tool on every kernel in one process and collect timings and checks.

A "cell" is one (kernel, tool) measurement: a dict with ``min_s``/``median_s`` (seconds
per call over ``reps`` timed repeats), ``first_s``/``compile_s`` (first call, and first
call minus the fastest one), ``check``/``ok`` (agreement with the reference) or
``error`` (the exception text; every llad and peer call is guarded).
"""
from __future__ import annotations

import statistics
import sys
import time
import traceback
import types
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numba
import numpy as np
from numba.core.registry import CPUDispatcher

from .check import Reference, Verdict, tangents_for
from .isolate import Journal
from .kernels import Kernel

BATCH = 8
MIN_REPS = 3


@dataclass
class Cell:
    min_s: float | None = None
    median_s: float | None = None
    reps: int = 0
    first_s: float | None = None
    compile_s: float | None = None
    check: str | None = None
    ok: bool | None = None
    error: str | None = None
    estimated: bool = False


def fmt_seconds(s: float | None) -> str:
    return "-" if s is None else f"{s * 1e3:.3f} ms"


def error_text(exc: BaseException) -> str:
    """``Type: message`` plus the innermost frame, enough to find the failing spot."""
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" [at {tb[-1].filename}:{tb[-1].lineno}]" if tb else ""
    return f"{type(exc).__name__}: {exc}{where}"


# ----------------------------------------------------------------------------- timing
def measure(fn: Callable[[], object], setup: Callable[[], None] | None, budget: float) -> tuple[float, float, int]:
    """Time ``fn`` (``setup`` runs untimed before each call) until ``budget`` seconds are
    spent and at least MIN_REPS calls are done, or 3 × budget whatever the count.
    Returns (fastest, median, repeats)."""
    times: list[float] = []
    start = time.perf_counter()
    while True:
        if setup is not None:
            setup()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        elapsed = time.perf_counter() - start
        if (len(times) >= MIN_REPS and elapsed > budget) or elapsed > 3 * budget or len(times) >= 100_000:
            break
    return min(times), statistics.median(times), len(times)


def timed_cell(call: Callable[[], object], setup: Callable[[], None] | None, budget: float,
               verify: Callable[[object], Verdict] | None = None) -> Cell:
    """First call (checked by ``verify``), then the timed repeats; any exception becomes ``error``."""
    cell = Cell()
    try:
        if setup is not None:
            setup()
        t0 = time.perf_counter()
        result = call()
        cell.first_s = time.perf_counter() - t0
        if verify is not None:
            try:
                verdict = verify(result)
            except Exception as exc:  # noqa: BLE001 - a malformed result is a failed check
                verdict = Verdict(False, f"could not check the result: {error_text(exc)}")
            cell.check, cell.ok = str(verdict), verdict.ok
        cell.min_s, cell.median_s, cell.reps = measure(call, setup, budget)
        cell.compile_s = max(cell.first_s - cell.min_s, 0.0)
    except Exception as exc:  # noqa: BLE001 - a failing tool must not stop the benchmark
        cell.error = error_text(exc)
    return cell


# ----------------------------------------------------------------------------- numba compile
def fresh_dispatcher(disp: CPUDispatcher, memo: dict | None = None) -> CPUDispatcher:
    """A new, uncompiled ``numba.njit`` of ``disp.py_func`` whose @njit callees are fresh too,
    so its first call measures Numba's full compile of the kernel and its helpers."""
    memo = {} if memo is None else memo
    if id(disp) in memo:
        return memo[id(disp)]
    py = disp.py_func
    glb = dict(py.__globals__)
    fn = types.FunctionType(py.__code__, glb, py.__name__, py.__defaults__, py.__closure__)
    fresh = numba.njit(fn)
    memo[id(disp)] = fresh
    for name in py.__code__.co_names:
        if isinstance(glb.get(name), CPUDispatcher):
            glb[name] = fresh_dispatcher(glb[name], memo)
    return fresh


def numba_compile_cell(kernel: Kernel, args: tuple, restore: Callable[[], None], primal: Cell) -> Cell:
    cell = Cell()
    try:
        fresh = fresh_dispatcher(kernel.func)
        restore()
        t0 = time.perf_counter()
        fresh(*args)
        cell.first_s = time.perf_counter() - t0
        if primal.min_s is not None:
            cell.compile_s = max(cell.first_s - primal.min_s, 0.0)
    except Exception as exc:  # noqa: BLE001
        cell.error = error_text(exc)
    return cell


# ----------------------------------------------------------------------------- llad
class LladRunner:
    """Builds the llad calls of the API contract for one kernel."""

    def __init__(self, llad_mod, import_error: str | None, kernel: Kernel, args: tuple,
                 restore: Callable[[], None], ref: Reference, budget: float):
        self.llad, self.import_error = llad_mod, import_error
        self.kernel, self.args, self.restore, self.ref, self.budget = kernel, args, restore, ref, budget

    def _annotate(self, shadow_of: Callable[[int, np.ndarray], object]) -> list:
        ll = self.llad
        return [shadow_of(i, a) if i in self.kernel.diff else ll.Const(a) for i, a in enumerate(self.args)]

    def _guard(self) -> Cell | None:
        if self.llad is None:
            return Cell(error=self.import_error)
        return None

    def forward(self) -> Cell:
        if (cell := self._guard()) is not None:
            return cell
        ll, f, diff = self.llad, self.kernel.func, self.kernel.diff
        tangents = tangents_for(self.kernel, self.args, 0)
        shadows = {i: np.empty_like(self.args[i]) for i in diff}
        seeds = dict(zip(diff, tangents, strict=True))

        def setup():
            self.restore()
            for i in diff:
                np.copyto(shadows[i], seeds[i])

        def call():
            return ll.autodiff(ll.Forward, f, *self._annotate(lambda i, a: ll.Duplicated(a, shadows[i])))

        return timed_cell(call, setup, self.budget, lambda res: self.ref.check_tangent(res[0], tangents))

    def forward_batch(self) -> Cell:
        if (cell := self._guard()) is not None:
            return cell
        ll, f, diff = self.llad, self.kernel.func, self.kernel.diff
        tangent_sets = [tangents_for(self.kernel, self.args, 1 + b) for b in range(BATCH)]
        seeds = {i: tuple(ts[pos] for ts in tangent_sets) for pos, i in enumerate(diff)}
        shadows = {i: tuple(np.empty_like(self.args[i]) for _ in range(BATCH)) for i in diff}

        def setup():
            self.restore()
            for i in diff:
                for sh, seed in zip(shadows[i], seeds[i], strict=True):
                    np.copyto(sh, seed)

        def call():
            return ll.autodiff(ll.Forward, f, *self._annotate(lambda i, a: ll.BatchDuplicated(a, shadows[i])))

        def verify(res) -> Verdict:
            got = res[0]
            if len(got) != BATCH:
                return Verdict(False, f"expected {BATCH} tangents, got {len(got)}")
            verdicts = [self.ref.check_tangent(t, ts) for t, ts in zip(got, tangent_sets, strict=True)]
            bad = [v for v in verdicts if not v.ok]
            return bad[0] if bad else verdicts[0]

        return timed_cell(call, setup, self.budget, verify)

    def primal(self) -> Cell:
        """llad's own primal: `ReverseWithPrimal` with every argument and the return Const (the derivative's
        copy of f, with vector math when it is on, and no reverse sweep)."""
        if (cell := self._guard()) is not None:
            return cell
        ll, f = self.llad, self.kernel.func

        def call():
            return ll.autodiff(ll.ReverseWithPrimal, f, ll.Const, *[ll.Const(a) for a in self.args])

        def verify(res) -> Verdict:
            return self.ref.check_value(res[1], self.value)

        return timed_cell(call, self.restore, self.budget, verify)

    def reverse(self) -> Cell:
        if (cell := self._guard()) is not None:
            return cell
        ll, f, diff = self.llad, self.kernel.func, self.kernel.diff
        shadows = {i: np.zeros_like(self.args[i]) for i in diff}

        def setup():
            self.restore()
            for sh in shadows.values():
                sh.fill(0)

        def call():
            return ll.autodiff(ll.Reverse, f, ll.Active, *self._annotate(lambda i, a: ll.Duplicated(a, shadows[i])))

        def verify(res) -> Verdict:
            verdict = self.ref.check_grad(tuple(shadows[i] for i in diff))
            derivs = res[0]
            if len(derivs) != len(self.args) or any(d is not None for d in derivs):
                detail = f"{verdict.detail}; derivs should be {len(self.args)} Nones, got {derivs!r}"
                return Verdict(False, detail[:300])
            return verdict

        return timed_cell(call, setup, self.budget, verify)


# ----------------------------------------------------------------------------- one kernel
def bench_kernel(kernel: Kernel, size: str, budget: float, peer_classes: list, llad_mod,
                 llad_error: str | None, log: Callable[[str], None], journal: Journal) -> dict:
    args = kernel.make_args(size)
    originals = {i: args[i].copy() for i in kernel.mutates}

    def restore():
        for i, a in originals.items():
            np.copyto(args[i], a)

    cells: dict[str, Cell] = {}

    def run_cell(key: str, make: Callable[[], Cell]) -> None:
        """Measure one cell, unless it crashed or hung an earlier worker (see isolate.py)."""
        reason = journal.crashed.get((kernel.name, key))
        if reason is not None:
            cells[key] = Cell(error=reason)
        else:
            journal.start(kernel.name, key)
            cells[key] = make()
            journal.end(kernel.name, key)
        cell = cells[key]
        if cell.error is not None:
            log(f"  {key}: {cell.error[:150]}")
        else:
            log(f"  {key}: {fmt_seconds(cell.min_s)}"
                + (f", first-call overhead {fmt_seconds(cell.compile_s)}" if cell.compile_s is not None else "")
                + ("" if cell.ok is not False else f"  WRONG {cell.check}"))

    restore()
    value = float(kernel.func(*args))  # also compiles the primal
    run_cell("numba_primal", lambda: timed_cell(lambda: kernel.func(*args), restore, budget))
    run_cell("numba_compile", lambda: numba_compile_cell(kernel, args, restore, cells["numba_primal"]))

    restore()
    ref = Reference(kernel, args)
    if kernel.exact_grad is not None:
        ref.adopt_full(kernel.exact_grad(args), "exact")

    for peer_cls in peer_classes:
        tool = peer_cls.tool
        try:
            restore()
            peer = peer_cls(kernel, args)
        except Exception as exc:  # noqa: BLE001
            cells[f"{tool}_grad"] = Cell(error=error_text(exc))
            continue

        def verify_grad(_res, peer=peer, tool=tool) -> Verdict:
            value_verdict = ref.check_value(peer.value(), value)
            grad_verdict = ref.adopt_full(peer.grad(), tool)
            return Verdict(value_verdict.ok and grad_verdict.ok, f"{value_verdict.detail}, {grad_verdict.detail}")

        run_cell(f"{tool}_grad", lambda peer=peer, v=verify_grad: timed_cell(peer.run_grad, None, budget, v))
        if peer.has_jvp:
            tangents = tangents_for(kernel, args, 0)
            peer.set_tangents(tangents)
            run_cell(f"{tool}_jvp", lambda peer=peer, t=tangents: timed_cell(
                peer.run_jvp, None, budget, lambda res: ref.check_tangent(res, t)))

    llad = LladRunner(llad_mod, llad_error, kernel, args, restore, ref, budget)
    llad.value = value
    for key, method in (("llad_primal", llad.primal), ("llad_fwd", llad.forward),
                        ("llad_fwd_batch8", llad.forward_batch), ("llad_rev", llad.reverse)):
        run_cell(key, method)
    restore()

    n_in = kernel.n_inputs(args)
    primal = cells["numba_primal"]
    if primal.min_s is not None:
        cells["fd_estimate"] = Cell(min_s=2 * n_in * primal.min_s, median_s=2 * n_in * primal.median_s,
                                    estimated=True)
    return {
        "kernel": kernel.name,
        "description": kernel.description,
        "shapes": kernel.sizes(size),
        "n_in": n_in,
        "value": value,
        "reference": ref.full_source or "fd only",
        "cells": {k: asdict(c) for k, c in cells.items()},
    }


def import_llad():
    """(module, None) or (None, error text); a module without ``autodiff`` counts as an error."""
    try:
        import llad
    except Exception as exc:  # noqa: BLE001
        return None, error_text(exc)
    missing = [n for n in ("autodiff", "Forward", "Reverse", "Active", "Const", "Duplicated", "BatchDuplicated")
               if not hasattr(llad, n)]
    if missing:
        return None, f"llad does not provide {', '.join(missing)} yet"
    return llad, None


def run(kernels: list[Kernel], size: str, budget: float, with_peers: bool,
        on_result: Callable[[dict], None] | None = None, quiet: bool = False,
        journal: Journal | None = None) -> dict:
    """Benchmark ``kernels``; ``on_result`` sees each kernel's result as soon as it is done.
    Kernels already finished in ``journal`` (by a worker that crashed later) are reused."""
    journal = journal or Journal(None)
    from . import report

    def log(msg: str) -> None:
        if not quiet:
            print(msg, file=sys.stderr, flush=True)

    llad_mod, llad_error = import_llad()
    extra_versions = {}
    peer_classes = []
    if with_peers:
        from . import peers

        peer_classes = peers.available_peers()
        extra_versions.update(peers.versions())
    else:
        extra_versions.update({"jax": "not run (--no-peers)", "torch": "not run (--no-peers)"})
    extra_versions["llad"] = getattr(llad_mod, "__version__", "present") if llad_mod else "unavailable"
    data = {"meta": report.metadata(size, budget, extra_versions), "results": []}
    if llad_error:
        data["meta"]["llad_error"] = llad_error
    if journal.crashed:
        data["meta"]["isolated_cells"] = [f"{k}/{c}: {r}" for (k, c), r in journal.crashed.items()]
    for kernel in kernels:
        if kernel.name in journal.done:
            data["results"].append(journal.done[kernel.name])
            continue
        t0 = time.perf_counter()
        log(f"[{kernel.name}] {kernel.sizes(size)}")
        result = bench_kernel(kernel, size, budget, peer_classes, llad_mod, llad_error, log, journal)
        journal.result(result)
        data["results"].append(result)
        log(f"  done in {time.perf_counter() - t0:.1f} s")
        if on_result is not None:
            on_result(data)
    return data
