"""Finite-difference references and error measures for the llad corpus tests.

Conventions
-----------
* A kernel's differentiable *outputs* are its float return value (if any) and the final
  values of every ``dup`` array argument (for a read-only array that is its input value).
  A reverse-mode *loss* is ``ret_seed * f(...) + sum_j <cot_j, final value of array j>``;
  its gradient with respect to the values held on entry is what llad's shadows must hold
  after a reverse call (Enzyme semantics), and what ``fd_gradient`` estimates.
* Steps: central differences with ``h = H_REL * max(1, |x|)`` per element (gradients) or
  ``h = H_REL * max(1, max|x|) / max|v|`` along a direction ``v`` (JVPs).
* float32 kernels are evaluated in float64 for the finite differences: every float32
  array is cast to float64 (same layout and view) and the kernel, which must be dtype
  generic, is called on those.  The AD result (float32) is then compared at 1e-3.
* Error measure, used by every comparison::

      rel_err(actual, expected) = max_i |a_i - e_i| / max(1, max_i |e_i|)

  over the concatenation of all derivative components (scalars and flattened arrays).
  It is an absolute error for derivatives of size <= 1 and a relative one above.
* Dot-product test: with reverse seeds (ret_seed, cot) and forward directions v,
  ``sum_j <grad_j, v_j> == ret_seed * ret_tangent + sum_j <cot_j, out_tangent_j>``;
  the error is ``|lhs - rhs| / max(1, sum of |terms| on both sides)``.
"""
from __future__ import annotations

import numpy as np
from corpus.registry import Spec, fresh_args, is_float32

H_REL = 1e-6
TOL_F64 = 1e-6
TOL_F32 = 1e-3
DOT_TOL_F64 = 1e-10
DOT_TOL_F32 = 1e-4


def tolerance(specs: list[Spec]) -> float:
    return TOL_F32 if is_float32(specs) else TOL_F64


def dot_tolerance(specs: list[Spec]) -> float:
    return DOT_TOL_F32 if is_float32(specs) else DOT_TOL_F64


def evaluate(func, specs: list[Spec], shifts: dict | None = None, cast64: bool | None = None):
    """Call ``func`` on fresh arguments, each shifted by ``shifts[i]`` (array or float).

    Returns ``(ret, outs)``: the return value as a float (or None) and, per argument, a
    float64 copy of a dup array's final values (None for other arguments)."""
    if cast64 is None:
        cast64 = is_float32(specs)
    args = fresh_args(specs, cast64=cast64)
    for i, d in (shifts or {}).items():
        if isinstance(args[i], np.ndarray):
            args[i][...] += d
        else:
            args[i] = args[i] + d
    ret = func(*args)
    outs = [np.array(a, dtype=np.float64) if s.kind == "dup" else None
            for s, a in zip(specs, args)]
    return (None if ret is None else float(ret)), outs


def fd_directional(func, specs: list[Spec], directions: list, h_rel: float = H_REL):
    """Central-difference JVP along ``directions`` (an array per dup arg, None elsewhere).

    Returns ``(ret_tangent, out_tangents)`` laid out like ``evaluate``'s result."""
    moving = {i: np.asarray(d, dtype=np.float64) for i, d in enumerate(directions)
              if d is not None}
    if not moving:
        raise ValueError("fd_directional needs at least one direction")
    xmax = max(float(np.max(np.abs(np.asarray(specs[i].value, dtype=np.float64))))
               for i in moving)
    vmax = max(float(np.max(np.abs(d))) for d in moving.values()) or 1.0
    h = h_rel * max(1.0, xmax) / vmax
    rp, op = evaluate(func, specs, {i: h * d for i, d in moving.items()})
    rm, om = evaluate(func, specs, {i: -h * d for i, d in moving.items()})
    ret_t = None if rp is None else (rp - rm) / (2 * h)
    outs_t = [None if a is None else (a - b) / (2 * h) for a, b in zip(op, om)]
    return ret_t, outs_t


def loss(ret, outs, ret_seed: float, cotangents: list) -> float:
    total = ret_seed * ret if (ret is not None and ret_seed) else 0.0
    for o, c in zip(outs, cotangents):
        if c is not None:
            total += float(np.sum(np.asarray(c, dtype=np.float64) * o))
    return total


def fd_gradient(func, specs: list[Spec], ret_seed: float = 1.0, cotangents: list | None = None,
                h_rel: float = H_REL) -> list:
    """Central-difference gradient of ``loss`` w.r.t. every dup element and Active scalar.

    Returns one entry per argument: an array (dup, shape of the argument as passed), a
    float (active) or None (const)."""
    cotangents = cotangents or [None] * len(specs)
    grads: list = []
    for i, s in enumerate(specs):
        if s.kind == "active":
            h = h_rel * max(1.0, abs(s.value))
            lp = loss(*evaluate(func, specs, {i: h}), ret_seed, cotangents)
            lm = loss(*evaluate(func, specs, {i: -h}), ret_seed, cotangents)
            grads.append((lp - lm) / (2 * h))
        elif s.kind == "dup":
            x = fresh_args([s], cast64=True)[0]
            g = np.zeros(x.shape)
            for idx in np.ndindex(*x.shape):
                h = h_rel * max(1.0, abs(float(x[idx])))
                e = np.zeros(x.shape)
                e[idx] = h
                lp = loss(*evaluate(func, specs, {i: e}), ret_seed, cotangents)
                lm = loss(*evaluate(func, specs, {i: -e}), ret_seed, cotangents)
                g[idx] = (lp - lm) / (2 * h)
            grads.append(g)
        else:
            grads.append(None)
    return grads


# ---------------------------------------------------------------- comparisons

def flat(values) -> np.ndarray:
    """Concatenate scalars and arrays (skipping None) into one float64 vector."""
    parts = [np.ravel(np.asarray(v, dtype=np.float64)) for v in values if v is not None]
    return np.concatenate(parts) if parts else np.zeros(0)


def rel_err(actual, expected) -> float:
    """max |a - e| / max(1, max |e|) over the flattened components (see module doc)."""
    if len(actual) != len(expected):
        raise AssertionError(f"{len(actual)} derivative entries, expected {len(expected)}")
    for k, (a, e) in enumerate(zip(actual, expected)):
        if (a is None) != (e is None):
            raise AssertionError(f"entry {k}: got {a!r}, expected {e!r}")
        if a is not None and np.shape(a) != np.shape(e):
            raise AssertionError(f"entry {k}: shape {np.shape(a)}, expected {np.shape(e)}")
    a, e = flat(actual), flat(expected)
    if e.size == 0:
        return 0.0
    if not np.all(np.isfinite(a)):
        return float("inf")
    return float(np.max(np.abs(a - e)) / max(1.0, float(np.max(np.abs(e)))))


def assert_close(actual, expected, tol: float, what: str) -> None:
    err = rel_err(actual, expected)
    if not err <= tol:
        a, e = flat(actual), flat(expected)
        worst = int(np.argmax(np.abs(a - e))) if a.size else -1
        raise AssertionError(
            f"{what}: rel err {err:.3e} > {tol:.0e}; worst component {worst}: "
            f"got {a[worst]!r}, expected {e[worst]!r}\n got      {a}\n expected {e}")


def dot_product_error(grads: list, directions: list, ret_seed: float, ret_tangent,
                      cotangents: list, out_tangents: list):
    """Compare <reverse gradient, v> with the forward JVP(v) contracted with the seeds.

    ``grads``/``out_tangents`` are per-argument (dup entries used); Active scalars are
    skipped because forward directions exist only for arrays.  Returns (lhs, rhs, err)."""
    lhs_terms = [flat([g]) * flat([v]) for g, v in zip(grads, directions)
                 if v is not None and g is not None]
    rhs_terms = [flat([c]) * flat([t]) for c, t in zip(cotangents, out_tangents)
                 if c is not None and t is not None]
    if ret_tangent is not None and ret_seed:
        rhs_terms.append(np.array([ret_seed * float(ret_tangent)]))
    lhs = float(sum(np.sum(t) for t in lhs_terms))
    rhs = float(sum(np.sum(t) for t in rhs_terms))
    scale = sum(float(np.sum(np.abs(t))) for t in lhs_terms + rhs_terms)
    return lhs, rhs, abs(lhs - rhs) / max(1.0, scale)
