"""Operators on `autodiff`: dense Jacobians, Hessian-vector products and dense Hessians.

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
from .annotations import Active, BatchDuplicated, Const, Duplicated, Forward, Reverse, ReverseSplitNoPrimal
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


def hvp(f, x, v, *ctx) -> np.ndarray:
    """H(x) v, the Hessian of the scalar function f(x, *ctx) with respect to x times v (an array like x)."""
    x = _float_array(x, "hvp")
    v = np.asarray(v, dtype=x.dtype)
    if v.shape != x.shape:
        raise ValueError(f"llad.hvp: v has shape {v.shape}, x has {x.shape}")
    contexts = _contexts(ctx)
    grad = _gradient_of(f, len(contexts))
    hv = np.zeros_like(x)
    autodiff(Forward, grad, Duplicated(x.copy(), v.copy()), Duplicated(np.zeros_like(x), hv),
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
