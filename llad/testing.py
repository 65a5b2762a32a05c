"""`llad.testing.check_grads`: every mode and activity combination of a function against central
differences, and the modes against each other (EnzymeTestUtils' `test_forward`/`test_reverse`, JAX's
`check_grads`).

What is compared, for one combination of annotations (each float or float-array argument `Const`,
`Active` (a float, reverse modes) or `Duplicated`):

* the outputs are f's result (a float or a float array) and the final values of the `Duplicated` arrays;
* forward modes: the tangent of every output along a random direction v of the differentiated inputs,
  against central differences of the outputs along v (`BatchDuplicated`: two directions at once);
* reverse modes (split modes for a function returning an array): the gradient of
  `<w_ret, result> + sum_j <w_j, final x_j>` for random output cotangents w, element by element, against
  central differences of that loss;
* the dot-product test between the two: `<w, J v>` from the forward tangents equals `<J^T w, v>` from the
  reverse gradient.

`order=2` also checks `llad.hvp` (with respect to the first argument, when it is a float array) against
central differences of the gradient.
A mismatch raises `AssertionError` naming the mode, the annotations, the output or input element and the
error; a combination llad refuses because of what f does with it (`ActivityError`: an active value
written into a `Const` array) is skipped; any other refusal propagates.
"""
from __future__ import annotations

import itertools

import numpy as np

from . import annotations as A
from .api import autodiff
from .errors import ActivityError
from .operators import hvp
from .thunks import autodiff_thunk

FORWARD_MODES = (A.Forward, A.ForwardWithPrimal)
REVERSE_MODES = (A.Reverse, A.ReverseWithPrimal, A.ReverseSplitWithPrimal, A.ReverseSplitNoPrimal)
BATCH = "batch"          # forward mode with BatchDuplicated (two directions)


def _kind(v) -> str | None:
    if isinstance(v, np.ndarray) and v.dtype in (np.float32, np.float64):
        return "array"
    if isinstance(v, (float, np.floating)):
        return "float"
    return None


def _copy(v):
    return v.copy() if isinstance(v, np.ndarray) else v


def _wide(v):
    """A float64 copy of a float32 array (differences are taken in float64), else a copy."""
    return v.astype(np.float64) if isinstance(v, np.ndarray) and v.dtype == np.float32 else _copy(v)


def _flat(v) -> np.ndarray:
    return np.atleast_1d(np.asarray(v, dtype=np.float64)).ravel()


class _Problem:
    """f, its arguments and the random directions and cotangents of one check."""

    def __init__(self, f, args, rng):
        self.f, self.args = f, args
        self.kinds = [_kind(a) for a in args]
        self.result = f(*[_copy(a) for a in args])
        if self.result is not None and _kind(self.result) is None and not isinstance(self.result, (int, np.integer)):
            raise TypeError(f"llad.testing.check_grads: f returns {type(self.result).__name__}; it must return "
                            "a float, a float array, an integer or None")
        self.v = [rng.standard_normal(np.shape(a)).astype(a.dtype) if k == "array" else float(rng.standard_normal())
                  for a, k in zip(args, self.kinds)]
        self.w = [rng.standard_normal(np.shape(a)).astype(a.dtype) if k == "array" else None
                  for a, k in zip(args, self.kinds)]
        self.w_ret = (float(rng.uniform(0.5, 2.0)) if _kind(self.result) == "float" else
                      rng.standard_normal(np.shape(self.result)).astype(self.result.dtype)
                      if self.float_result else None)

    @property
    def float_result(self) -> bool:
        return _kind(self.result) is not None

    def outputs(self, args, dup) -> list[np.ndarray]:
        """f's result and the final values of the Duplicated arrays, each flattened (float32 arguments are
        evaluated in float64, for the differences' sake)."""
        args = [_wide(a) for a in args]
        r = self.f(*args)
        return ([_flat(r)] if _kind(r) is not None else []) + [_flat(args[i]) for i in dup if self.kinds[i] == "array"]

    def perturbed(self, i, h, element) -> list:
        """The arguments (float64), element `element` of argument i moved by h."""
        out = [_wide(a) for a in self.args]
        if self.kinds[i] == "array":
            out[i][np.unravel_index(element, out[i].shape)] += h      # element in C order, any layout
        else:
            out[i] = out[i] + h
        return out

    def loss(self, args, dup) -> float:
        outs = self.outputs(args, dup)
        ws = ([self.w_ret] if self.float_result else []) + [self.w[i] for i in dup if self.kinds[i] == "array"]
        return float(sum(np.dot(_flat(w), o) for w, o in zip(ws, outs)))


def _step(x, rtol_fd: float = 1e-6) -> float:
    scale = np.max(np.abs(x)) if np.size(x) else 1.0
    return rtol_fd * max(1.0, float(scale))


def _describe(mode, acts) -> str:
    return f"{mode!r} with ({', '.join(acts)})"


def _fail(mode, acts, what: str, got, expected, err: float) -> AssertionError:
    return AssertionError(f"llad.testing.check_grads: {_describe(mode, acts)}: {what}: llad gives {got!r}, "
                          f"central differences {expected!r} (error {err:.3g})")


def _compare(mode, acts, what: str, got: np.ndarray, expected: np.ndarray, rtol: float, atol: float) -> None:
    got, expected = _flat(got), _flat(expected)
    bad = np.abs(got - expected) > atol + rtol * np.abs(expected)
    if bad.any():
        k = int(np.argmax(bad))
        raise _fail(mode, acts, f"{what}, element {k}", float(got[k]), float(expected[k]),
                    float(abs(got[k] - expected[k])))


def _forward(p: _Problem, mode, acts, dup, rtol, atol) -> list[np.ndarray]:
    """The tangents of the outputs along v (the first direction with BATCH), checked against differences."""
    batch = mode == BATCH
    directions = [p.v, [(2.0 * v if isinstance(v, np.ndarray) else 2.0 * v) for v in p.v]] if batch else [p.v]
    call_args, shadows = [], {}
    for i, (a, act) in enumerate(zip(p.args, acts)):
        if act == "Duplicated":
            ds = [np.array(d[i], copy=True) if p.kinds[i] == "array" else d[i] for d in directions]
            shadows[i] = ds
            call_args.append(A.BatchDuplicated(_copy(a), tuple(ds)) if batch else A.Duplicated(_copy(a), ds[0]))
        else:
            call_args.append(A.Const(_copy(a)))
    ret = (A.Duplicated,) if p.float_result else (A.Const,)
    res = autodiff(A.Forward if batch else mode, p.f, *ret, *call_args)
    got_all = []
    for j in range(len(directions)):
        got = []
        if p.float_result:
            got.append(_flat(res[0][j] if batch else res[0]))
        got += [_flat(shadows[i][j]) for i in dup if p.kinds[i] == "array"]
        h = max(_step(p.args[i]) for i in dup)
        wide = [_wide(a) for a in p.args]

        def moved(sign):
            return [wide[i] + sign * h * _wide(directions[j][i]) if i in dup else wide[i] for i in range(len(wide))]
        plus, minus = p.outputs(moved(1.0), dup), p.outputs(moved(-1.0), dup)
        expected = [(a - b) / (2 * h) for a, b in zip(plus, minus)]
        for k, (g, e) in enumerate(zip(got, expected)):
            _compare(mode, acts, f"tangent of output {k} (direction {j})", g, e, rtol, atol)
        got_all.append(got)
    return got_all[0]


def _reverse(p: _Problem, mode, acts, rtol, atol) -> dict:
    """The gradient of the loss, per differentiated argument, checked element by element."""
    args, shadows = [], {}
    for i, (a, act) in enumerate(zip(p.args, acts)):
        if act == "Duplicated":
            shadows[i] = np.array(p.w[i], copy=True)
            args.append(A.Duplicated(_copy(a), shadows[i]))
        elif act == "Active":
            args.append(A.Active(a))
        else:
            args.append(A.Const(_copy(a)))
    ret_kind = _kind(p.result)
    if mode.split:
        ret = (A.Active,) if ret_kind == "float" else (A.Duplicated,) if ret_kind == "array" else (A.Const,)
        fwd, rev = autodiff_thunk(mode, p.f, *ret, *args)
        tape, _, shadow = fwd(*args)
        if shadow is not None:
            shadow[...] = p.w_ret
        (derivs,) = rev(*args, p.w_ret if ret_kind == "float" else None, tape)
    else:
        if ret_kind == "array":
            return {}
        ret = (A.Active,) if ret_kind == "float" else (A.Const,)
        # the seed of an Active return is 1: the float result's cotangent scales the shadows' instead
        scale = p.w_ret if ret_kind == "float" else 1.0
        for i in shadows:
            shadows[i] /= scale
        derivs = autodiff(mode, p.f, *ret, *args)[0]
        for i in shadows:
            shadows[i] *= scale
        derivs = tuple(d * scale if d is not None else None for d in derivs)
    dup = [i for i, act in enumerate(acts) if act == "Duplicated"]
    grads = {}
    for i, act in enumerate(acts):
        if act == "Const":
            continue
        got = shadows[i] if act == "Duplicated" else derivs[i]
        h = _step(p.args[i])
        n = np.size(p.args[i])
        expected = np.array([(p.loss(p.perturbed(i, h, e), dup) - p.loss(p.perturbed(i, -h, e), dup))
                             / (2 * h) for e in range(n)])
        _compare(mode, acts, f"derivative with respect to argument {i}", got, expected, rtol, atol)
        grads[i] = _flat(got)
    return grads


def _combinations(kinds, reverse: bool):
    choices = [("Const",) if k is None else ("Const", "Active") if (k == "float" and reverse) else
               ("Const", "Duplicated") for k in kinds]
    for acts in itertools.product(*choices):
        if any(a != "Const" for a in acts):
            yield acts


def check_grads(f, *args, order: int = 1, modes=None, rtol: float = 1e-5, atol: float = 1e-6, seed: int = 0):
    """Check llad's derivatives of f at args in every mode (or those in `modes`) and every activity
    combination; see the module docstring.  Returns the number of (mode, combination) pairs checked."""
    if order not in (1, 2):
        raise ValueError("llad.testing.check_grads: order must be 1 or 2")
    rng = np.random.default_rng(seed)
    p = _Problem(f, args, rng)
    all_modes = FORWARD_MODES + (BATCH,) + REVERSE_MODES
    modes = all_modes if modes is None else tuple(modes)
    checked = 0
    for acts in _combinations(p.kinds, reverse=False):
        dup = [i for i, a in enumerate(acts) if a == "Duplicated"]
        tangents = None
        for mode in [m for m in modes if m in FORWARD_MODES or m == BATCH]:
            try:
                t = _forward(p, mode, acts, dup, rtol, atol)
            except ActivityError:
                continue
            tangents = tangents or t
            checked += 1
        if any(a == "Duplicated" and p.kinds[i] == "float" for i, a in enumerate(acts)):
            continue            # a float with a tangent: forward modes only (reverse takes it Active, below)
        for mode in [m for m in modes if m in REVERSE_MODES]:
            try:
                grads = _reverse(p, mode, acts, rtol, atol)
            except ActivityError:
                continue
            checked += 1
            if tangents is not None and grads:
                _dot_product(p, mode, acts, dup, tangents, grads)
    for acts in _combinations(p.kinds, reverse=True):
        if "Active" in acts:
            for mode in [m for m in modes if m in REVERSE_MODES]:
                try:
                    _reverse(p, mode, acts, rtol, atol)
                except ActivityError:
                    continue
                checked += 1
    if order == 2:
        checked += _check_hvp(p, rtol, atol)
    if checked == 0:
        raise AssertionError("llad.testing.check_grads: nothing was checked (no float argument, or every "
                             "combination refused)")
    return checked


def _dot_product(p: _Problem, mode, acts, dup, tangents, grads) -> None:
    """<w, J v> (forward) == <J^T w, v> (reverse)."""
    ws = ([p.w_ret] if p.float_result else []) + [p.w[i] for i in dup if p.kinds[i] == "array"]
    lhs = float(sum(np.dot(_flat(w), t) for w, t in zip(ws, tangents)))
    rhs = float(sum(np.dot(grads[i], _flat(p.v[i])) for i in dup))
    tol = 1e-4 if any(isinstance(a, np.ndarray) and a.dtype == np.float32 for a in p.args) else 1e-10
    if abs(lhs - rhs) > tol * max(1.0, abs(lhs) + abs(rhs)):
        raise AssertionError(f"llad.testing.check_grads: {_describe(mode, acts)}: dot-product test between forward "
                             f"and reverse mode: <w, J v> = {lhs!r}, <J^T w, v> = {rhs!r}")


def _check_hvp(p: _Problem, rtol, atol) -> int:
    """llad.hvp differentiates the first argument (the others are contexts): checked when that is a float
    array and f returns a float."""
    if _kind(p.result) != "float" or p.kinds[0] != "array":
        return 0
    others = p.args[1:]
    got = hvp(p.f, p.args[0], p.v[0], *others)
    h = _step(p.args[0])

    def grad(x):
        g = np.zeros_like(x)
        autodiff(A.Reverse, p.f, A.Active, A.Duplicated(x.copy(), g), *(A.Const(_copy(o)) for o in others))
        return g
    expected = (grad(p.args[0] + h * p.v[0]) - grad(p.args[0] - h * p.v[0])) / (2 * h)
    _compare("hvp", ["Duplicated"] + ["Const"] * len(others), "Hessian-vector product", got, expected, rtol, atol)
    return 1
