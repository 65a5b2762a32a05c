"""Operators on `autodiff` (DifferentiationInterface's names): derivatives, gradients, JVPs and VJPs,
dense Jacobians, Hessian-vector products and dense Hessians, `prepare` and `make_zero`.

`x` is the differentiated argument (a float array or a float); further arguments are contexts (bare
values or `Const`), never differentiated.  `gradient` is reverse mode, `derivative` and `pushforward`
forward mode, `pullback` split mode (its seed is the output cotangent).

`jacobian` takes forward mode (`BatchDuplicated`, several columns per pass) or reverse mode (split mode,
one row per pass, seeding the returned array's shadow) by shape.  `hvp` and `hessian` differentiate the
gradient in forward mode (forward over reverse): `hvp` with one direction, `hessian` with
`BatchDuplicated` directions, several Hessian columns per pass.  The gradient is an `@njit` function
llad generates per (function, number of contexts) that calls
`autodiff(Reverse, f, Active, Duplicated(x, gx), Const(c)...)` inside jitted code, so the outer
derivative sees the inner one's IR and differentiates it like any other code.
"""
from __future__ import annotations

import threading

import numba
import numpy as np

from . import frontend, jitted  # noqa: F401  (jitted: autodiff inside @njit, which the gradient uses)
from .annotations import (
    Active,
    BatchDuplicated,
    Const,
    Duplicated,
    DuplicatedNoNeed,
    Forward,
    Reverse,
    ReverseSplitNoPrimal,
    ReverseWithPrimal,
)
from .api import autodiff
from .thunks import autodiff_thunk

HESSIAN_BATCH = 8          # Hessian columns per forward pass
JACOBIAN_BATCH = 8         # Jacobian columns per forward pass

_gradients: dict = {}
_lock = threading.Lock()


def _gradient_of(f, n_contexts: int):
    """`grad(x, gx, c0, ...)`: gx += d f(x, c0, ...) / dx, compiled with f as a global."""
    dispatcher = frontend.as_dispatcher(f)
    key = (dispatcher, n_contexts)
    with _lock:
        g = _gradients.get(key)
        if g is None:
            ctx = "".join(f", c{i}" for i in range(n_contexts))
            consts = "".join(f", Const(c{i})" for i in range(n_contexts))
            src = (f"def grad(x, gx{ctx}):\n"
                   f"    autodiff(Reverse, f, Active, Duplicated(x, gx){consts})\n")
            namespace = {"autodiff": autodiff, "Reverse": Reverse, "Active": Active, "Duplicated": Duplicated,
                         "Const": Const, "f": dispatcher}
            exec(compile(src, f"<llad gradient of {dispatcher.py_func.__name__}>", "exec"), namespace)
            g = _gradients[key] = numba.njit(namespace["grad"])
    return g


def _contexts(ctx) -> tuple:
    return tuple(c.val if isinstance(c, Const) else c for c in ctx)


def _float_array(x, what: str) -> np.ndarray:
    if not isinstance(x, np.ndarray) or x.dtype not in (np.float32, np.float64):
        raise TypeError(f"llad.{what}: x must be a float32 or float64 array, got {type(x).__name__}")
    return x


def _is_float(x) -> bool:
    return isinstance(x, (float, np.floating)) and not isinstance(x, np.ndarray)


def _differentiated(x, what: str):
    """x as autodiff takes it: a float array, or a Python float."""
    if _is_float(x):
        return float(x)
    return _float_array(x, what)


def make_zero(x):
    """A zeroed shadow of x with x's layout (dtype, shape and strides: a strided view gets a buffer
    spanning its base's bytes); 0.0 for a float, a tuple of shadows for a tuple."""
    if isinstance(x, tuple):
        return tuple(make_zero(v) for v in x)
    if _is_float(x):
        return type(x)(0.0) if isinstance(x, np.floating) else 0.0
    if not isinstance(x, np.ndarray):
        raise TypeError(f"llad.make_zero: expected a float, a float array or a tuple of them, got {type(x).__name__}")
    if x.flags.c_contiguous or x.flags.f_contiguous:
        return np.zeros_like(x, order="K")
    low, high = np.lib.array_utils.byte_bounds(x)
    first = x.__array_interface__["data"][0]
    buffer = np.zeros((high - low) // x.itemsize, dtype=x.dtype)
    return np.ndarray(x.shape, x.dtype, buffer=buffer, offset=first - low, strides=x.strides)


def gradient(f, x, *ctx):
    """d f(x, *ctx) / d x for a float result: an array like x (a float for a float x)."""
    return value_and_gradient(f, x, *ctx)[1]


def value_and_gradient(f, x, *ctx):
    """(f(x, *ctx), its gradient with respect to x), one reverse pass."""
    x = _differentiated(x, "gradient")
    consts = tuple(Const(c) for c in _contexts(ctx))
    if isinstance(x, float):
        derivs, value = autodiff(ReverseWithPrimal, f, Active, Active(x), *consts)
        return value, derivs[0]
    g = make_zero(x)
    _, value = autodiff(ReverseWithPrimal, f, Active, Duplicated(x, g), *consts)
    return value, g


def derivative(f, t, *ctx):
    """d f(t, *ctx) / d t for a float t: a float, or an array if f returns one."""
    if not _is_float(t):
        raise TypeError(f"llad.derivative: t must be a float, got {type(t).__name__} (llad.jacobian takes arrays)")
    return pushforward(f, float(t), 1.0, *ctx)


def pushforward(f, x, v, *ctx):
    """The tangent of f's result along v (a JVP): a float, or an array like the result."""
    x = _differentiated(x, "pushforward")
    consts = tuple(Const(c) for c in _contexts(ctx))
    if isinstance(x, float):
        arg = Duplicated(x, float(v))
    else:
        v = np.asarray(v, dtype=x.dtype)
        if v.shape != x.shape:
            raise ValueError(f"llad.pushforward: v has shape {v.shape}, x has {x.shape}")
        arg = Duplicated(x, v.copy())           # forward mode writes the tangent of what f writes into v
    (tangent,) = autodiff(Forward, f, Duplicated, arg, *consts)
    return tangent


def pullback(f, x, w, *ctx):
    """The cotangent of x for the output cotangent w (a VJP): w is a float for a float result, an array
    like the result for an array result."""
    x = _differentiated(x, "pullback")
    consts = tuple(Const(c) for c in _contexts(ctx))
    scalar_x = isinstance(x, float)
    gx = None if scalar_x else make_zero(x)
    arg = Active(x) if scalar_x else Duplicated(x, gx)
    fwd, rev = autodiff_thunk(ReverseSplitNoPrimal, f, arg, *consts)
    tape, _, shadow = fwd(arg, *consts)
    if shadow is None:           # a float result: w is the seed
        if not _is_float(w) and not (isinstance(w, np.ndarray) and w.ndim == 0):
            raise TypeError(f"llad.pullback: {frontend.as_dispatcher(f).py_func.__name__} returns a float, so w "
                            "must be a float")
        (derivs,) = rev(arg, *consts, float(w), tape)
    else:
        w = np.asarray(w, dtype=shadow.dtype)
        if w.shape != shadow.shape:
            raise ValueError(f"llad.pullback: w has shape {w.shape}, the result has {shadow.shape}")
        shadow[...] = w
        (derivs,) = rev(arg, *consts, None, tape)
    return derivs[0] if scalar_x else gx


def hvp(f, x, v, *ctx) -> np.ndarray:
    """H(x) v, the Hessian of the scalar function f(x, *ctx) with respect to x times v (an array like x)."""
    x = _float_array(x, "hvp")
    v = np.asarray(v, dtype=x.dtype)
    if v.shape != x.shape:
        raise ValueError(f"llad.hvp: v has shape {v.shape}, x has {x.shape}")
    contexts = _contexts(ctx)
    grad = _gradient_of(f, len(contexts))
    hv = np.zeros_like(x)
    # neither the point's final values nor the gradient itself are wanted: llad drops what computes only
    # them (analysis/deadprimal.py), the way XLA trims jvp(grad)'s unused primal output
    autodiff(Forward, grad, DuplicatedNoNeed(x.copy(), v.copy()), DuplicatedNoNeed(np.zeros_like(x), hv),
             *(Const(c) for c in contexts))
    return hv


def hessian(f, x, *ctx) -> np.ndarray:
    """The dense Hessian of the scalar function f(x, *ctx) with respect to x, `(x.size, x.size)`
    (x flattened in C order), HESSIAN_BATCH columns per forward-over-reverse pass."""
    x = _float_array(x, "hessian")
    contexts = _contexts(ctx)
    grad = _gradient_of(f, len(contexts))
    n = x.size
    out = np.empty((n, n), dtype=x.dtype)
    for start in range(0, n, HESSIAN_BATCH):
        cols = range(start, min(n, start + HESSIAN_BATCH))
        columns = tuple(np.zeros_like(x) for _ in cols)
        autodiff(Forward, grad, BatchDuplicated(x.copy(), _unit_directions(x, cols)),
                 BatchDuplicated(np.zeros_like(x), columns), *(Const(c) for c in contexts))
        for j, col in zip(cols, columns):
            out[:, j] = col.reshape(-1)
    return out


def _unit_directions(x: np.ndarray, cols) -> tuple:
    out = []
    for j in cols:
        e = np.zeros(x.size, dtype=x.dtype)
        e[j] = 1.0
        out.append(e.reshape(x.shape))
    return tuple(out)


def jacobian(f, x, *ctx) -> np.ndarray:
    """The dense Jacobian of f(x, *ctx) (a float or a float array) with respect to x, `(f(x).size, x.size)`,
    both flattened in C order.  Forward mode, JACOBIAN_BATCH columns per pass, unless the result has at
    most x.size / JACOBIAN_BATCH elements: then reverse mode, one row per pass (a float result: one
    gradient)."""
    x = _float_array(x, "jacobian")
    contexts = _contexts(ctx)
    consts = tuple(Const(c) for c in contexts)
    y = frontend.as_dispatcher(f)(x.copy(), *contexts)
    if not isinstance(y, (float, np.floating, np.ndarray)) or (isinstance(y, np.ndarray)
                                                               and y.dtype not in (np.float32, np.float64)):
        raise TypeError(f"llad.jacobian: f must return a float or a float array, got {type(y).__name__}")
    m, n = np.size(y), x.size
    out = np.empty((m, n), dtype=x.dtype)
    if not isinstance(y, np.ndarray):
        gx = np.zeros_like(x)
        autodiff(Reverse, f, Active, Duplicated(x.copy(), gx), *consts)
        out[0] = gx.reshape(-1)
    elif m <= n // JACOBIAN_BATCH:
        gx = np.zeros_like(x)
        fwd, rev = autodiff_thunk(ReverseSplitNoPrimal, f, Duplicated(x.copy(), gx), *consts)
        for i in range(m):
            xc = x.copy()
            gx[...] = 0.0
            tape, _, shadow = fwd(Duplicated(xc, gx), *consts)
            shadow.flat[i] = 1.0
            rev(Duplicated(xc, gx), *consts, None, tape)
            out[i] = gx.reshape(-1)
    else:
        for start in range(0, n, JACOBIAN_BATCH):
            cols = range(start, min(n, start + JACOBIAN_BATCH))
            (tangents,) = autodiff(Forward, f, BatchDuplicated(x.copy(), _unit_directions(x, cols)), *consts)
            for j, t in zip(cols, tangents):
                out[:, j] = np.reshape(t, -1)
    return out


_WITH_DIRECTION = ("pushforward", "pullback", "hvp")


class Prepared:
    """`prepare(op, f, x, *ctx)`: op for f, compiled ahead for arguments like x and the contexts.  Called
    as `p(x, *ctx)` (`p(x, v, *ctx)` for pushforward, pullback and hvp); returns a fresh result, or
    writes it into `out=` (the gradient operators then compute straight into `out`, no allocation).
    Pickles by reference to op and f (module-level functions)."""

    def __init__(self, op, f, x, *ctx):
        name = getattr(op, "__name__", None)
        if globals().get(name) is not op or name in ("prepare", "make_zero"):
            raise TypeError(f"llad.prepare: op must be one of llad's operators (llad.gradient, llad.jacobian, ...), "
                            f"got {op!r}")
        self.op, self.f, self.n_contexts = op, f, len(ctx)
        # compile now: one call on throw-away copies, with a zero direction for the operators that take one
        x0 = x if _is_float(x) else np.array(x, copy=True)
        if name in _WITH_DIRECTION:
            if name == "pullback":
                y = frontend.as_dispatcher(f)(np.array(x, copy=True) if not _is_float(x) else x, *_contexts(ctx))
                direction = 0.0 if _is_float(y) else np.zeros_like(y)
            else:
                direction = make_zero(x0)
            op(f, x0, direction, *ctx)
        else:
            op(f, x0, *ctx)

    def __call__(self, x, *rest, out=None):
        name = self.op.__name__
        n_direction = 1 if name in _WITH_DIRECTION else 0
        if len(rest) != n_direction + self.n_contexts:
            raise TypeError(f"llad.prepare: this prepared {name} takes x{', v' if n_direction else ''} and "
                            f"{self.n_contexts} context(s), got {1 + len(rest)} arguments")
        if out is not None and name in ("gradient", "value_and_gradient") and isinstance(out, np.ndarray):
            return self._gradient_into(x, rest, out, name)
        result = self.op(self.f, x, *rest)
        if out is None:
            return result
        target = result[1] if name == "value_and_gradient" else result
        out[...] = target
        return (result[0], out) if name == "value_and_gradient" else out

    def _gradient_into(self, x, ctx, out: np.ndarray, name: str):
        x = _float_array(x, name)
        if out.shape != x.shape or out.dtype != x.dtype:
            raise ValueError(f"llad.prepare: out has shape {out.shape} and dtype {out.dtype}; the gradient has "
                             f"{x.shape} and {x.dtype}")
        out[...] = 0.0
        _, value = autodiff(ReverseWithPrimal, self.f, Active, Duplicated(x, out),
                            *(Const(c) for c in _contexts(ctx)))
        return (value, out) if name == "value_and_gradient" else out

    def __repr__(self) -> str:
        return f"<llad.prepare({self.op.__name__}, {getattr(self.f, '__name__', self.f)!r})>"


def prepare(op, f, x, *ctx) -> Prepared:
    """op (one of the operators above) for f, compiled ahead for arguments like x and ctx; see `Prepared`."""
    return Prepared(op, f, x, *ctx)
