"""Gradient references and checks: finite differences, hand-written gradients, peers.

``python -m tools.bench.check [--quick] [--kernels a,b] [--no-peers]`` checks every
kernel's hand-written gradient (where there is one) and every peer's value and gradient
against fourth-order central finite differences of the Numba kernel, without timing.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field

import numpy as np

from .kernels import KERNELS, Kernel, call

FD_RTOL = {np.float64: 1e-5, np.float32: 1e-3}  # per-coordinate FD agreement
FULL_RTOL = {np.float64: 1e-8, np.float32: 1e-4}  # full-gradient agreement with a reference
VALUE_RTOL = {np.float64: 1e-9, np.float32: 1e-4}  # loss value agreement (summation order differs)


def kernel_dtype(kernel: Kernel, args: tuple) -> type:
    return np.float32 if any(args[i].dtype == np.float32 for i in kernel.diff) else np.float64


def _as_f64(args: tuple) -> tuple:
    """Float64 copies of the float arrays (int arrays copied as they are)."""
    return tuple(a.astype(np.float64 if a.dtype.kind == "f" else a.dtype) if isinstance(a, np.ndarray) else a
                 for a in args)


def rel_err(got, ref) -> float:
    """max |got - ref| / max |ref| over a tuple of arrays (inf on shape mismatch or NaN)."""
    if len(got) != len(ref):
        return float("inf")
    num, den = 0.0, 0.0
    for g, r in zip(got, ref, strict=True):
        g = np.asarray(g, dtype=np.float64)
        r = np.asarray(r, dtype=np.float64)
        if g.shape != r.shape:
            return float("inf")
        num = max(num, float(np.max(np.abs(g - r), initial=0.0)))
        den = max(den, float(np.max(np.abs(r), initial=0.0)))
    if not np.isfinite(num):
        return float("inf")
    return num / den if den > 0 else num


@dataclass
class Verdict:
    ok: bool
    detail: str

    def __str__(self) -> str:
        return ("ok " if self.ok else "WRONG ") + self.detail


@dataclass
class Reference:
    """Finite-difference and (where available) full-gradient reference for one kernel input."""

    kernel: Kernel
    args: tuple
    ncoords: int = 4
    seed: int = 0
    full: tuple | None = None
    full_source: str = ""
    coords: list[tuple[int, int]] = field(default_factory=list)
    fd: np.ndarray | None = None
    _dir_cache: dict = field(default_factory=dict)

    def __post_init__(self):
        self.dtype = kernel_dtype(self.kernel, self.args)
        self.args64 = _as_f64(self.args)
        self.f0 = abs(self._eval(self.args64))
        self.n_terms = max(a.size for a in self.args if isinstance(a, np.ndarray))
        rng = np.random.default_rng(self.seed)
        for pos, i in enumerate(self.kernel.diff):
            size = self.args[i].size
            for flat in rng.choice(size, min(self.ncoords, size), replace=False):
                self.coords.append((pos, int(flat)))
        fd = [self._fd_coord(pos, flat) for pos, flat in self.coords]
        self.fd = np.array([v for v, _ in fd])
        self.fd_noise = np.array([e for _, e in fd])

    # -- finite differences on float64 copies -------------------------------------------
    def _eval(self, args) -> float:
        return float(call(self.kernel, args))

    def _fd_along(self, perturb, h: float) -> tuple[float, float]:
        """Fourth-order central difference of s -> f(args + s*v) with step ``h``.

        Returns (derivative, noise): a generous bound on its rounding error, assuming
        rounding in a loss accumulated over ``n_terms`` terms grows like sqrt(n_terms)."""
        f = {s: self._eval(perturb(s * h)) for s in (-2, -1, 1, 2)}
        deriv = (-f[2] + 8 * f[1] - 8 * f[-1] + f[-2]) / (12.0 * h)
        return deriv, 30.0 * np.finfo(np.float64).eps * self.f0 * np.sqrt(self.n_terms) / h

    def _fd_coord(self, pos: int, flat: int) -> tuple[float, float]:
        i = self.kernel.diff[pos]
        x0 = self.args64[i].reshape(-1)[flat]

        def perturb(step):
            a = self.args64[i].copy()
            a.reshape(-1)[flat] = x0 + step
            return self.args64[:i] + (a,) + self.args64[i + 1:]

        return self._fd_along(perturb, self.kernel.fd_step * max(1.0, abs(x0)))

    def directional(self, tangents: tuple) -> tuple[float, float]:
        """(d/ds f(x + s v), its error bound) for one tangent per differentiated argument."""
        if self.full is not None:
            return float(sum(np.vdot(g.astype(np.float64), t.astype(np.float64))
                             for g, t in zip(self.full, tangents, strict=True))), 0.0
        key = tuple(id(t) for t in tangents)
        if key not in self._dir_cache:

            def perturb(step):
                a = list(self.args64)
                for i, t in zip(self.kernel.diff, tangents, strict=True):
                    a[i] = a[i] + step * t.astype(np.float64)
                return tuple(a)

            # all coordinates move at once: a smaller step keeps the truncation error down
            self._dir_cache[key] = self._fd_along(perturb, 0.1 * self.kernel.fd_step)
        return self._dir_cache[key]

    # -- verdicts -------------------------------------------------------------------------
    def check_grad(self, grads) -> Verdict:
        """Compare a gradient (one array per diff arg) with FD coords and the full reference.

        The FD error is relative, with the denominator floored at the FD noise / rtol."""
        try:
            grads = tuple(np.asarray(g) for g in grads)
            got = np.array([float(grads[pos].reshape(-1)[flat]) for pos, flat in self.coords])
        except Exception as exc:  # noqa: BLE001 - report anything malformed
            return Verdict(False, f"malformed gradient: {type(exc).__name__}: {exc}")
        rtol = FD_RTOL[self.dtype]
        err = float(np.max(np.abs(got - self.fd) / np.maximum(np.abs(self.fd), self.fd_noise / rtol)))
        ok = bool(np.isfinite(err) and err <= rtol)
        detail = f"fd {err:.1e}"
        if self.full is not None:
            ferr = rel_err(grads, self.full)
            ok = ok and ferr <= FULL_RTOL[self.dtype]
            detail += f", {self.full_source} {ferr:.1e}"
        return Verdict(ok, detail)

    def check_tangent(self, got, tangents: tuple) -> Verdict:
        try:
            got = float(got)
        except Exception as exc:  # noqa: BLE001
            return Verdict(False, f"malformed tangent {type(got).__name__}: {exc}")
        ref, noise = self.directional(tangents)
        rtol = FD_RTOL[self.dtype] if self.full is None else FULL_RTOL[self.dtype] * 100
        err = abs(got - ref) / max(abs(ref), noise / rtol, 1e-300)
        return Verdict(bool(err <= rtol), f"{self.full_source or 'fd'} {err:.1e}")

    def check_value(self, got, ref: float) -> Verdict:
        err = abs(float(got) - ref) / max(abs(ref), 1e-300)
        return Verdict(bool(err <= VALUE_RTOL[self.dtype]), f"value {err:.1e}")

    def adopt_full(self, grads, source: str) -> Verdict:
        """Use ``grads`` as the full reference if they agree with finite differences."""
        verdict = self.check_grad(grads)
        if verdict.ok and self.full is None:
            self.full = tuple(np.asarray(g) for g in grads)
            self.full_source = source
        return verdict


def tangents_for(kernel: Kernel, args: tuple, seed: int) -> tuple:
    rng = np.random.default_rng(1000 + seed)
    return tuple(rng.standard_normal(args[i].shape).astype(args[i].dtype) for i in kernel.diff)


def check_kernel(kernel: Kernel, size: str, peers: list) -> dict[str, str]:
    """Check the hand gradient and every peer for one kernel; return {what: verdict}."""
    args = kernel.make_args(size)
    ref = Reference(kernel, args)
    value = float(call(kernel, args))
    out = {"value": f"{value:.6g}"}
    if kernel.exact_grad is not None:
        out["exact"] = str(ref.adopt_full(kernel.exact_grad(args), "exact"))
    for peer_cls in peers:
        try:
            peer = peer_cls(kernel, args)
            out[peer.tool] = f"{ref.check_value(peer.value(), value)}; {ref.adopt_full(peer.grad(), peer.tool)}"
            if peer.has_jvp:
                tans = tangents_for(kernel, args, 0)
                out[peer.tool + "_jvp"] = str(ref.check_tangent(peer.jvp(tans), tans))
        except Exception as exc:  # noqa: BLE001
            out[getattr(peer_cls, "tool", "peer")] = f"ERROR {type(exc).__name__}: {exc}"
    out["reference"] = ref.full_source or "fd only"
    return out


def main(argv=None) -> int:
    from . import peers as peer_mod

    ap = argparse.ArgumentParser(prog="python -m tools.bench.check", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--kernels", default="")
    ap.add_argument("--no-peers", action="store_true")
    opts = ap.parse_args(argv)
    names = [n for n in opts.kernels.split(",") if n] or list(KERNELS)
    peer_classes = [] if opts.no_peers else peer_mod.available_peers()
    failed = False
    for name in names:
        res = check_kernel(KERNELS[name], "quick" if opts.quick else "full", peer_classes)
        for what, verdict in res.items():
            failed |= "WRONG" in verdict or "ERROR" in verdict
            print(f"{name:10s} {what:10s} {verdict}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
