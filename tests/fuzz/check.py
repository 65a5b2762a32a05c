"""Load a generated kernel and check llad's derivatives of it.

For a kernel ``kern(x, w, A, out, a)`` (grammar.py) the differentiable outputs are the return value and
the final values of every ``Duplicated`` array, and the scalar loss checked is

    L = ret + sum_j <cot_j, final value of array j>

with random cotangents ``cot_j``.  One call of each mode gives:

* ReverseWithPrimal, shadows seeded with ``cot_j``: afterwards shadow j holds dL/d(array j on entry)
  (Enzyme semantics; for an array the kernel only reads this is cot_j + its gradient), and the
  derivative for ``a`` when ``a`` is Active.
* ForwardWithPrimal, shadows holding directions ``v_j``: the tangent of ret, and afterwards shadow j
  holds the tangent of array j's final values.

Checks, in order (the first failure is reported):

1. the primal value and the final array values of both llad calls equal Numba's (rel 1e-12);
2. the dot-product test  sum_j <grad_j, v_j>  ==  ret_tangent + sum_j <cot_j, out_tangent_j>,
   relative to the sum of the magnitudes of all terms (DOT_TOL);
3. both against central finite differences of L along v (and along ``a`` for an Active ``a``), at two
   step sizes.  If the two differ by more than FD_TOL the sample straddles a kink or a branch flip
   and is skipped ("skip-fd"); else the AD value must match within FD_TOL.
4. BatchDuplicated (two directions) against the single direction; Forward with DuplicatedNoNeed arrays
   (llad may drop primal results) against the Duplicated call; ReverseSplitWithPrimal (forward
   thunk, then reverse thunk with the seed 1.0) and `autodiff(Reverse, ...)` inside an @njit function
   against the ReverseWithPrimal call (every EXTRA_MODES_EVERY-th kernel).
5. Nested (every NESTED_EVERY-th float64 kernel): forward over reverse, the tangent along v of the gradient
   G = d ret / d(arrays on entry) that `autodiff(Reverse, ...)` computes inside @njit, against central
   differences of G at two steps (a kink between them skips the check), and the same with the point and
   the gradient DuplicatedNoNeed (as llad.hvp calls it) against the Duplicated call.  A clean DifferentiationError
   (nested differentiation through a BLAS/LAPACK rule, a recursive call, ...) is the contract's answer:
   recorded, not failed.  The outcome's `numbers["nested"]` says which.

A kernel whose primal raises (a division by an expression that is exactly 0) must raise the same
exception type from llad in both modes ("raises").  Non-finite primal values are skipped.  A kernel that
calls NumPy library functions (grammar's library=True) may get a DifferentiationError ("unsupported": the
contract's answer for code llad cannot differentiate); any other exception is a failure.
"""
from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
import threading
import traceback
from dataclasses import dataclass, field

import numpy as np

from .grammar import KERNEL_NAME, Kernel

DOT_TOL = 1e-10
FD_TOL = 1e-6
PRIMAL_TOL = 1e-12
# float32 kernels: llad's derivative of the float32 kernel against finite differences of the same kernel
# run in float64 (the rounding of the float32 values is not differentiable), as tests/fdcheck.py does
DOT_TOL_F32 = 1e-4
FD_TOL_F32 = 2e-3
PRIMAL_TOL_F32 = 1e-6
STEPS = (1e-5, 1e-6)
# split mode and autodiff inside @njit are checked on every kernel whose key is a multiple of this (1: all;
# the quick profile in tests/test_fuzz.py checks a quarter, to keep the suite's time)
EXTRA_MODES_EVERY = 1
# forward over reverse (check 5) on every kernel whose key is a multiple of this (0: never; tools/fuzz.py
# --nested sets 1)
NESTED_EVERY = 0

OK, SKIP_FD, SKIP_NONFINITE, RAISES, FAIL = "ok", "skip-fd", "skip-nonfinite", "raises", "fail"
UNSUPPORTED = "unsupported"     # a clean DifferentiationError from a kernel calling NumPy library functions


KNOWN_BUG = "known-bug"         # a failure that matches an open llad bug in KNOWN_BUGS

# open llad bugs the fuzzer runs into: (regex on the failure message, the regression file that pins it).
# A failure matching one is counted as KNOWN_BUG, not FAIL, so that the quick profile stays green while
# the bug is open; delete the entry when the bug is fixed (its regression test then guards it).
KNOWN_BUGS: list[tuple[str, str]] = [
    # e.g. (r"UnsupportedInstructionError: .* phi ptr .*", "k_helper_meminfo_phi.py"), open until 7cb9461
]


# NumPy functions llad currently gets wrong, as "np.name(": a failing kernel that calls one of them counts as
# KNOWN_BUG.  Remove an entry when its bug is fixed.  (np.sort, np.median, np.max, np.min and np.cumsum were
# here until 11f312f: a RuntimeError, and silently wrong derivatives through spilled pointers.)
KNOWN_BUG_CALLS: tuple[str, ...] = ()


def known_bug(message: str) -> str | None:
    import re
    for pattern, where in KNOWN_BUGS:
        if re.search(pattern, message):
            return where
    return None


def calls_library(source: str) -> bool:
    """Whether the kernel calls NumPy functions other than the allocation of its scratch array."""
    return "np." in source.replace("np.zeros(", "").replace("np.ones(", "")

_modules: dict[str, object] = {}
_lock = threading.Lock()
_dir = None


def _module_dir() -> str:
    """A temporary folder for the kernels' module files, removed at exit (kept if LLAD_FUZZ_KEEP is set)."""
    global _dir
    if _dir is None:
        _dir = tempfile.mkdtemp(prefix=f"llad_fuzz_{os.getpid()}_")
        if not os.environ.get("LLAD_FUZZ_KEEP"):
            import atexit
            import shutil
            atexit.register(shutil.rmtree, _dir, True)
    return _dir


def load(source: str, key: str | None = None):
    """The ``kern`` dispatcher of `source`, written to a module file and imported once per source
    (Numba needs a real file for its error messages and llad for its file:line locations)."""
    import hashlib
    key = key or hashlib.sha1(source.encode()).hexdigest()[:16]
    with _lock:
        mod = _modules.get(key)
        if mod is None:
            name = f"llad_fuzz_{key}"
            path = os.path.join(_module_dir(), name + ".py")
            with open(path, "w") as fh:
                fh.write(source)
            spec = importlib.util.spec_from_file_location(name, path)
            mod = importlib.util.module_from_spec(spec)
            sys.modules[name] = mod
            spec.loader.exec_module(mod)
            _modules[key] = mod
    return getattr(mod, KERNEL_NAME)


@dataclass
class Outcome:
    status: str
    message: str = ""
    kernel: Kernel | None = None
    numbers: dict = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.status == FAIL

    def report(self) -> str:
        k = self.kernel
        head = f"[{self.status}] {self.message}"
        if k is None:
            return head
        nums = "".join(f"\n  {n} = {v!r}" for n, v in self.numbers.items())
        return f"{head}{nums}\n  spec: {k.spec_dict()}\n--- source ---\n{k.source}"


def make_inputs(k: Kernel):
    rng = np.random.default_rng(k.seed)
    n = k.n

    def signed(shape):
        return rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.2, 1.5, size=shape)

    values = {"x": signed(n), "w": signed(n), "A": signed((n, n)), "out": signed(n),
              "a": float(rng.uniform(0.5, 1.5))}
    if k.x_strided:                         # every other element of a buffer
        buf = signed(2 * n)
        buf[::2] = values["x"]
        values["x"] = buf[::2]
    if k.A_fortran:
        values["A"] = np.asfortranarray(values["A"])
    if k.f32:
        for name in ("x", "w", "A", "out"):
            v32 = values[name].astype(np.float32)
            if k.x_strided and name == "x":
                buf = np.zeros(2 * n, np.float32)
                buf[::2] = v32
                v32 = buf[::2]
            values[name] = v32
    dup = {"x": True, "w": k.w_dup, "A": k.A_dup, "out": True}
    cot = {name: rng.standard_normal(values[name].shape) for name in dup if dup[name]}
    v = {name: rng.standard_normal(values[name].shape) for name in dup if dup[name]}
    vmax = max(float(np.max(np.abs(d))) for d in v.values())
    v = {name: d / vmax for name, d in v.items()}
    return values, dup, cot, v


def _copy(v, dtype=None):
    """A copy with the same layout (a strided view stays a strided view of a copied buffer), in `dtype`."""
    if not isinstance(v, np.ndarray):
        return v
    if v.flags.c_contiguous or v.flags.f_contiguous:
        return v.astype(dtype or v.dtype, order="K", copy=True)
    base = np.array(v.base, dtype=dtype or v.dtype)
    return np.ndarray(v.shape, base.dtype, buffer=base, offset=0, strides=(v.strides[0] // v.itemsize * base.itemsize,))


def _call_primal(f, values, shift=None, h=0.0, da=0.0, dtype=None):
    vals = {n: _copy(v, dtype) for n, v in values.items()}
    if shift:
        for n, d in shift.items():
            vals[n][...] += h * d
    vals["a"] = vals["a"] + da
    ret = f(vals["x"], vals["w"], vals["A"], vals["out"], vals["a"])
    return ret, vals


def _loss(f, values, cot, shift=None, h=0.0, da=0.0) -> tuple[float, float]:
    """L (always evaluated in float64), and the magnitude of its terms (the scale of its rounding error)."""
    ret, vals = _call_primal(f, values, shift, h, da, dtype=np.float64)
    terms = [float(ret)] + [float(np.sum(c * vals[n])) for n, c in cot.items()]
    mag = abs(float(ret)) + sum(float(np.sum(np.abs(c * vals[n]))) for n, c in cot.items())
    return sum(terms), mag


def _central(f, values, cot, h, shift=None, along_a=False):
    """Central difference of L at step h (along `shift`, or along the scalar a), and its rounding noise."""
    step_a = h if along_a else 0.0
    lp, mp = _loss(f, values, cot, shift, h, step_a)
    lm, mm = _loss(f, values, cot, shift, -h, -step_a)
    return (lp - lm) / (2 * h), 1e-15 * max(mp, mm) / h


def _fd_pair(f, values, cot, shift=None, along_a=False, tol=FD_TOL):
    """FD at the two STEPS, and whether they are usable: not when the two disagree (a kink or a branch
    between the samples) or rounding noise hides the derivative."""
    fds, noise = zip(*(_central(f, values, cot, h, shift, along_a) for h in STEPS))
    if not all(np.isfinite(fds)) or _rel(fds[0], fds[1]) > tol:
        return fds, False
    if max(noise) > 0.1 * tol * max(1.0, abs(fds[0])):
        return fds, False
    return fds, True


def _rel(a, b) -> float:
    return abs(a - b) / max(1.0, abs(a), abs(b))


def _same(actual, expected, tol=PRIMAL_TOL) -> bool:
    actual, expected = np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    if actual.shape != expected.shape:
        return False
    both_nan = np.isnan(actual) & np.isnan(expected)
    diff = np.abs(np.where(both_nan, 0.0, actual - expected))
    return bool(np.all(diff <= tol * np.maximum(1.0, np.abs(np.where(both_nan, 0.0, expected)))))


def _args(llad, k: Kernel, values, shadows, reverse: bool):
    from llad import Active, Const, Duplicated
    out = []
    for name in ("x", "w", "A", "out"):
        if name in shadows:
            out.append(Duplicated(values[name], shadows[name]))
        else:
            out.append(Const(values[name]))
    out.append(Active(values["a"]) if (reverse and k.a_active) else Const(values["a"]))
    return out


def _check_batch(llad, k: Kernel, values, v, tangent, tangents, tol) -> str | None:
    """Lane 0 must equal the one-direction forward call, lane 1 (direction -v/2) -1/2 of it: this covers
    the interleaved shadow layout (small arrays) of vector mode."""
    vals = {n: _copy(x) for n, x in values.items()}
    lanes = {n: (np.array(v[n], dtype=values[n].dtype), np.array(-0.5 * v[n], dtype=values[n].dtype)) for n in v}
    args = [llad.BatchDuplicated(vals[n], lanes[n]) if n in lanes else llad.Const(vals[n])
            for n in ("x", "w", "A", "out")] + [llad.Const(vals["a"])]
    (ts,) = llad.autodiff(llad.Forward, load(k.source, k.key), *args)
    if not (_same(ts[0], tangent, tol) and _same(ts[1], -0.5 * np.asarray(tangent), tol)):
        return f"BatchDuplicated tangents {ts} differ from the single direction's {tangent}"
    for n in lanes:
        if not (_same(lanes[n][0], tangents[n], tol) and _same(lanes[n][1], -0.5 * tangents[n], tol)):
            return f"BatchDuplicated: the tangent of array {n} differs from the single direction's"
    return None


def _check_no_need(llad, k: Kernel, values, v, tangent, tangents, tol) -> str | None:
    """Forward with every differentiated array DuplicatedNoNeed must give Duplicated's tangents: llad may
    drop the primal results nobody reads then (llad/analysis/deadprimal.py), never a value a tangent uses."""
    vals = {n: _copy(x) for n, x in values.items()}
    shadows = {n: np.array(v[n], dtype=values[n].dtype) for n in v}
    args = [llad.DuplicatedNoNeed(vals[n], shadows[n]) if n in shadows else llad.Const(vals[n])
            for n in ("x", "w", "A", "out")] + [llad.Const(vals["a"])]
    (t,) = llad.autodiff(llad.Forward, load(k.source, k.key), *args)
    if not _same(t, tangent, tol):
        return f"DuplicatedNoNeed: the tangent {t} differs from Duplicated's {tangent}"
    for n in shadows:
        if not _same(shadows[n], tangents[n], tol):
            return f"DuplicatedNoNeed: the tangent of array {n} differs from Duplicated's"
    return None


def _shadows_like(llad, values, seeds) -> dict:
    """Shadows with their arrays' layout (split mode and @njit callers require it), holding the seeds."""
    out = {}
    for n, s in seeds.items():
        out[n] = llad.make_zero(values[n])
        out[n][...] = s
    return out


def _njit_reverse(llad, k: Kernel, f, dup: set):
    """An @njit function calling autodiff(Reverse, f, ...) with the kernel's annotations inside jitted code."""
    import numba
    params, ann = [], []
    for n in ("x", "w", "A", "out"):
        params.append(n)
        if n in dup:
            params.append(f"d{n}")
            ann.append(f"llad.Duplicated({n}, d{n})")
        else:
            ann.append(f"llad.Const({n})")
    params.append("a")
    ann.append("llad.Active(a)" if k.a_active else "llad.Const(a)")
    src = f"def g({', '.join(params)}):\n    return llad.autodiff(llad.Reverse, f, llad.Active, {', '.join(ann)})\n"
    namespace = {"llad": llad, "f": f}
    exec(compile(src, f"<fuzz @njit reverse of {k.key}>", "exec"), namespace)
    return numba.njit(namespace["g"])


def _check_split_and_njit(llad, k: Kernel, f, values, cot, derivs, primal, grads, tol) -> str | None:
    """ReverseSplitWithPrimal (fwd, then rev with the seed 1.0) and Reverse inside @njit must give the
    ReverseWithPrimal call's derivatives (shadows and the Active a's) and primal."""
    def differs(shadows, da, label):
        for n in grads:
            if not _same(shadows[n], grads[n], tol):
                return f"{label}: the derivative for {n} differs from ReverseWithPrimal's"
        if k.a_active and not _same(da, derivs[4], tol):
            return f"{label}: the derivative for a ({da}) differs from ReverseWithPrimal's ({derivs[4]})"
        return None

    vals = {n: _copy(x) for n, x in values.items()}
    shadows = _shadows_like(llad, vals, {n: np.asarray(c, dtype=values[n].dtype) for n, c in cot.items()})
    args = _args(llad, k, vals, shadows, True)
    fwd, rev = llad.autodiff_thunk(llad.ReverseSplitWithPrimal, f, llad.Active, *args)
    tape, p, shadow_result = fwd(*args)
    if not _same(p, primal, tol) or shadow_result is not None:
        return f"split mode: the forward thunk returned {p!r}, {shadow_result!r} for the primal {primal!r}, None"
    (d,) = rev(*args, 1.0, tape)
    bad = differs(shadows, d[4], "split mode")
    if bad is not None:
        return bad
    vals = {n: _copy(x) for n, x in values.items()}
    shadows = _shadows_like(llad, vals, {n: np.asarray(c, dtype=values[n].dtype) for n, c in cot.items()})
    g = _njit_reverse(llad, k, f, set(shadows))
    flat = []
    for n in ("x", "w", "A", "out"):
        flat.append(vals[n])
        if n in shadows:
            flat.append(shadows[n])
    (d,) = g(*flat, vals["a"])
    return differs(shadows, d[4], "autodiff inside @njit")


def check_kernel(k: Kernel) -> Outcome:
    outcome = _check_kernel(k)
    if outcome.status == FAIL:
        calls = [c[:-1] for c in KNOWN_BUG_CALLS if c in k.source]
        if calls:
            outcome.status = KNOWN_BUG
            outcome.message = f"{outcome.message} (the kernel calls {', '.join(calls)}: an open bug)"
    return outcome


def _check_kernel(k: Kernel) -> Outcome:
    import llad
    from llad import ForwardWithPrimal, ReverseWithPrimal
    try:
        f = load(k.source, k.key)
    except Exception as e:                                # the grammar made something Numba cannot load
        return Outcome(FAIL, f"loading the kernel failed: {type(e).__name__}: {e}", k)
    values, dup, cot, v = make_inputs(k)

    # --- Numba's primal -----------------------------------------------------------------------------
    try:
        ret0, finals = _call_primal(f, values)
        primal_exc = None
    except Exception as e:                                # noqa: BLE001 - compared with llad's below
        primal_exc = e
    if primal_exc is not None and not isinstance(primal_exc, (ArithmeticError, np.linalg.LinAlgError)):
        # an arithmetic error, or LAPACK refusing a matrix (infs or NaNs from values that overflowed, a
        # singular one), is the function's at these inputs: llad must raise the same (RAISES below)
        return Outcome(FAIL, f"the primal raised {type(primal_exc).__name__}: {primal_exc} (grammar bug)", k)

    # --- llad, both modes ---------------------------------------------------------------------------
    results = {}
    for mode in (ReverseWithPrimal, ForwardWithPrimal):
        vals = {n: _copy(x) for n, x in values.items()}
        seeds = cot if mode.reverse else v
        shadows = {n: np.array(seeds[n], dtype=values[n].dtype) for n in seeds}
        try:
            res = llad.autodiff(mode, f, *_args(llad, k, vals, shadows, mode.reverse))
        except Exception as e:                            # noqa: BLE001
            if primal_exc is not None and type(e) is type(primal_exc):
                continue
            if isinstance(e, llad.DifferentiationError) and calls_library(k.source):
                return Outcome(UNSUPPORTED, f"{type(e).__name__}: {str(e).splitlines()[0][:300]}", k)
            where = known_bug(f"{type(e).__name__}: {e}")
            if where:
                return Outcome(KNOWN_BUG, f"{type(e).__name__} (open bug, see regressions/{where})", k)
            tb = traceback.format_exc(limit=-3)
            return Outcome(FAIL, f"{mode!r} raised {type(e).__name__}: {e}\n{tb}", k)
        if primal_exc is not None:
            return Outcome(FAIL, f"the primal raises {type(primal_exc).__name__} but {mode!r} returned", k)
        results[mode.reverse] = (res, vals, shadows)
    if primal_exc is not None:
        return Outcome(RAISES, type(primal_exc).__name__, k)

    finite = np.isfinite(ret0) and all(np.all(np.isfinite(finals[n])) for n in ("x", "w", "out"))
    if not finite:
        return Outcome(SKIP_NONFINITE, "non-finite primal", k)

    (derivs, rprimal), rvals, grads = results[True]
    (tangent, fprimal), fvals, tangents = results[False]
    ptol, dot_tol, fd_tol = (PRIMAL_TOL_F32, DOT_TOL_F32, FD_TOL_F32) if k.f32 else (PRIMAL_TOL, DOT_TOL, FD_TOL)
    if k.f32:   # the seeds as llad saw them (rounded to float32)
        cot = {n: c.astype(np.float32).astype(np.float64) for n, c in cot.items()}
        v = {n: d.astype(np.float32).astype(np.float64) for n, d in v.items()}
    for label, p, vals in (("reverse", rprimal, rvals), ("forward", fprimal, fvals)):
        if not _same(p, ret0, ptol):
            return Outcome(FAIL, f"{label} primal differs from Numba's", k, {"llad": p, "numba": ret0})
        for n in ("x", "w", "A", "out"):
            if not _same(vals[n], finals[n], ptol):
                return Outcome(FAIL, f"{label}: final values of {n} differ from Numba's", k,
                               {"llad": vals[n], "numba": finals[n]})

    # --- dot-product test ---------------------------------------------------------------------------
    lhs_terms = [float(np.sum(grads[n] * v[n])) for n in v]
    rhs_terms = [float(tangent)] + [float(np.sum(cot[n] * tangents[n])) for n in cot]
    lhs, rhs = sum(lhs_terms), sum(rhs_terms)
    scale = max(1.0, sum(abs(t) for t in lhs_terms + rhs_terms),
                sum(float(np.sum(np.abs(grads[n] * v[n]))) for n in v))
    nums = {"<grad, v>": lhs, "jvp": rhs}
    if not (np.isfinite(lhs) and np.isfinite(rhs)):
        finite_terms = [abs(t) for t in lhs_terms + rhs_terms + [float(ret0)] if np.isfinite(t)]
        if k.f32 and max(finite_terms, default=0.0) > 1e30:
            # products of float32 values near their range: adjoints or tangents overflow float32
            return Outcome(SKIP_NONFINITE, "derivatives beyond float32's range", k, nums)
        return Outcome(FAIL, "non-finite derivative at a finite primal", k, nums)
    if abs(lhs - rhs) > dot_tol * scale:
        return Outcome(FAIL, "dot-product test: reverse and forward disagree", k,
                       {**nums, "rel err": abs(lhs - rhs) / scale})

    # --- vector mode: BatchDuplicated with directions (v, -v/2) against the single-direction call -------
    bad = _check_batch(llad, k, values, v, tangent, tangents, max(ptol, 1e-9))
    if bad is not None:
        return Outcome(FAIL, bad, k)

    # --- DuplicatedNoNeed: the same tangents with the primal results left to llad ----------------------
    bad = _check_no_need(llad, k, values, v, tangent, tangents, max(ptol, 1e-9))
    if bad is not None:
        return Outcome(FAIL, bad, k)
    nums["noneed"] = "ok"

    # --- finite differences ----------------------------------------------------------------------------
    skipped = False
    fds, usable = _fd_pair(f, values, cot, shift=v, tol=fd_tol)
    nums["fd"] = list(fds)
    if not usable:
        skipped = True
    elif min(_rel(lhs, fd) for fd in fds) > fd_tol and min(_rel(rhs, fd) for fd in fds) > fd_tol:
        return Outcome(FAIL, "finite differences disagree with both modes", k, nums)
    if k.a_active:
        da = derivs[4]
        fa, usable = _fd_pair(f, values, cot, along_a=True, tol=fd_tol)
        nums.update({"d/da": da, "fd d/da": list(fa)})
        if not usable:
            skipped = True
        elif da is None or min(_rel(da, x) for x in fa) > fd_tol:
            return Outcome(FAIL, "finite differences disagree with the derivative for the Active a", k, nums)

    # --- split mode and autodiff inside @njit against the ReverseWithPrimal call ------------------------
    if int(k.key, 16) % EXTRA_MODES_EVERY == 0:
        # split mode (compiled without the noalias assumption, so without alias scopes or deferral) and
        # the @njit call are other programs that add the same adjoint terms in another order: in float32
        # an element whose terms cancel moves by more than the primal's tolerance (campaign chunk 100059:
        # 1.3e-6 of an element of 2e17 summing terms up to 8e18), so float32 kernels get the tolerance of
        # the dot-product test, the other comparison of two orders
        bad = _check_split_and_njit(llad, k, f, values, cot, derivs, rprimal, grads,
                                    dot_tol if k.f32 else max(ptol, 1e-9))
        if bad is not None:
            return Outcome(FAIL, bad, k)
    # --- nested: forward over reverse against differences of the gradient ---------------------------------
    if NESTED_EVERY and not k.f32 and int(k.key, 16) % NESTED_EVERY == 0:
        bad, nums["nested"] = _check_nested(llad, k, f, values, v)
        if bad is not None:
            return Outcome(FAIL, bad, k, nums)
    if skipped:
        return Outcome(SKIP_FD, "finite differences at two steps disagree (kink or branch flip)", k, nums)
    return Outcome(OK, "", k, nums)


def _check_nested(llad, k: Kernel, f, values, v) -> tuple[str | None, str]:
    """Check 5 (module docstring): (failure or None, what happened: ok / skip-fd / refused: <message>)."""
    names = [n for n in ("x", "w", "A", "out") if n in v]
    g = _njit_reverse(llad, k, f, set(names))

    def gradient(shift=None, h=0.0):
        vals = {n: _copy(x) for n, x in values.items()}
        for n in names:
            if shift is not None:
                vals[n][...] += h * shift[n]
        shadows = {n: llad.make_zero(vals[n]) for n in names}
        flat = []
        for n in ("x", "w", "A", "out"):
            flat.append(vals[n])
            if n in shadows:
                flat.append(shadows[n])
        g(*flat, vals["a"])
        return shadows

    vals = {n: _copy(x) for n, x in values.items()}
    args, hv = [], {}
    for n in ("x", "w", "A", "out"):
        if n in names:
            hv[n] = llad.make_zero(vals[n])
            args += [llad.Duplicated(vals[n], np.array(v[n], dtype=vals[n].dtype)),
                     llad.Duplicated(llad.make_zero(vals[n]), hv[n])]
        else:
            args.append(llad.Const(vals[n]))
    args.append(llad.Const(vals["a"]))
    try:
        llad.autodiff(llad.Forward, g, *args)
    except llad.DifferentiationError as e:
        return None, f"refused: {type(e).__name__}: {str(e).splitlines()[0][:200]}"
    except Exception as e:                                # noqa: BLE001 - anything else is a failure
        return f"nested: forward over reverse raised {type(e).__name__}: {e}", "fail"
    # the HVP as llad.hvp computes it: the point and the gradient DuplicatedNoNeed (their primal values unused)
    vals = {n: _copy(x) for n, x in values.items()}
    lean = {n: llad.make_zero(vals[n]) for n in names}
    args = []
    for n in ("x", "w", "A", "out"):
        if n in names:
            args += [llad.DuplicatedNoNeed(vals[n], np.array(v[n], dtype=vals[n].dtype)),
                     llad.DuplicatedNoNeed(llad.make_zero(vals[n]), lean[n])]
        else:
            args.append(llad.Const(vals[n]))
    llad.autodiff(llad.Forward, g, *args, llad.Const(vals["a"]))
    for n in names:
        if not _same(lean[n], hv[n], 1e-9):
            return f"nested: forward over reverse with DuplicatedNoNeed differs from Duplicated for {n}", "fail"
    fds = [{n: (p[n] - m[n]) / (2 * h) for n in names}
           for h in STEPS for p, m in [(gradient(v, h), gradient(v, -h))]]
    for n in names:
        a, b = np.asarray(fds[0][n]), np.asarray(fds[1][n])
        if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))) or \
                np.max(np.abs(a - b)) > FD_TOL * max(1.0, float(np.max(np.abs(a)))):
            return None, "skip-fd"
    for n in names:
        scale = max(1.0, float(np.max(np.abs(fds[1][n]))))
        if min(float(np.max(np.abs(hv[n] - fd[n]))) for fd in fds) > FD_TOL * scale:
            return (f"nested: forward over reverse (the tangent of the gradient for {n}) disagrees with "
                    f"differences of the gradient: {hv[n]} vs {fds[1][n]}"), "fail"
    return None, "ok"


# --- regressions ---------------------------------------------------------------------------------------

REGRESSION_DIR = os.path.join(os.path.dirname(__file__), "regressions")


def regression_text(outcome: Outcome) -> str:
    """A regression file: the kernel source, then the spec and the failure as module constants."""
    k = outcome.kernel
    msg = outcome.message.splitlines()[0] if outcome.message else ""
    return (f"# llad fuzz regression {k.key}: {msg}\n# ruff: noqa  (generated code)\n{k.source}\n\n"
            f"FUZZ_SPEC = {k.spec_dict()!r}\n"
            f"# XFAIL = \"llad bug: ...\"   (set while the bug is open)\n")


def save_regression(outcome: Outcome, directory: str = REGRESSION_DIR) -> str:
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, f"k_{outcome.kernel.key}.py")
    with open(path, "w") as fh:
        fh.write(regression_text(outcome))
    return path


def load_regression(path: str) -> tuple[Kernel, str | None]:
    """The Kernel stored in a regression file, and its XFAIL reason (None when it must pass)."""
    with open(path) as fh:
        text = fh.read()
    ns: dict = {}
    exec(compile("\n".join(ln for ln in text.splitlines() if ln.startswith(("FUZZ_SPEC", "XFAIL"))),
                 path, "exec"), ns)
    spec = ns["FUZZ_SPEC"]
    source = text.split("\n", 1)[1].split("\nFUZZ_SPEC")[0].rstrip() + "\n"
    k = Kernel(source, spec["n"], spec["w_dup"], spec["A_dup"], spec["a_active"], spec["seed"],
               x_strided=spec.get("x_strided", False), A_fortran=spec.get("A_fortran", False),
               f32=spec.get("f32", False))
    return k, ns.get("XFAIL")
