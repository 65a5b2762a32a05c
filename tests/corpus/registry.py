"""Case and argument specs for the llad kernel corpus.

A *case* is one ``@numba.njit`` kernel plus ``make_args(rng)``, which returns one *spec* per
parameter of the kernel.  A spec says how the argument is annotated, never how llad is called:

* ``dup(array, role=...)``: a differentiable float32/float64 array (``Duplicated`` in llad).
  ``role`` is ``"in"`` (only read), ``"out"`` (only written, every element overwritten) or
  ``"inout"`` (read and overwritten in place).  ``view`` maps a fresh copy of the stored array
  to the argument actually passed (``lambda b: b.T``, ``lambda b: b[::2]``); ``shadow`` is
  ``"like"`` (the shadow has the same layout/strides as the argument) or ``"C"``
  (C-contiguous shadow).
* ``active(x)``: a float scalar; ``Active`` in reverse modes, passed as ``Const`` in forward
  modes (forward derivatives are only taken with respect to arrays).
* ``const(v)``: not differentiated (int, float, bool, tuple of scalars, or an array).

Tags: ``"reverse-only"`` (no differentiable array, so forward tests do not apply),
``"forward-only"``.  The group of a case is the corpus module it lives in: ``core``,
``mathfns`` or ``reverse``.
"""
from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

ROLES = ("in", "out", "inout")
KNOWN_TAGS = frozenset({"reverse-only", "forward-only"})


@dataclass(frozen=True)
class Spec:
    kind: str                                # "dup" | "active" | "const"
    value: Any
    role: str = "in"                         # dup only: "in" | "out" | "inout"
    view: Callable[[np.ndarray], np.ndarray] | None = None
    shadow: str = "like"                     # dup only: "like" | "C"

    @property
    def written(self) -> bool:
        return self.kind == "dup" and self.role != "in"


def dup(value, role: str = "in", view=None, shadow: str = "like") -> Spec:
    value = np.asarray(value) if not isinstance(value, np.ndarray) else value
    if value.dtype not in (np.float32, np.float64):
        raise TypeError(f"dup() wants a float32/float64 array, got {value.dtype}")
    if role not in ROLES or shadow not in ("like", "C"):
        raise ValueError(f"bad role {role!r} or shadow {shadow!r}")
    return Spec("dup", value, role=role, view=view, shadow=shadow)


def active(value: float) -> Spec:
    return Spec("active", float(value))


def const(value, view=None) -> Spec:
    return Spec("const", value, view=view)


@dataclass(frozen=True)
class Case:
    name: str
    func: Any                                # numba Dispatcher
    make_args: Callable[[np.random.Generator], list[Spec]]
    returns: str                             # "float" | "none"
    tags: frozenset[str] = field(default_factory=frozenset)
    group: str = ""
    doc: str = ""

    def rng(self) -> np.random.Generator:
        """A generator seeded from the case name, so every test sees the same inputs."""
        return np.random.default_rng(zlib.crc32(self.name.encode()))

    def specs(self) -> list[Spec]:
        return self.make_args(self.rng())

    def __repr__(self) -> str:                # pytest ids and failure messages
        return f"Case({self.name})"


CASES: list[Case] = []


def case(make_args, returns: str = "float", tags=(), name: str | None = None):
    """Decorator registering an ``@njit`` kernel; stack it above ``@numba.njit``."""
    if returns not in ("float", "none"):
        raise ValueError(returns)
    unknown = set(tags) - KNOWN_TAGS
    if unknown:
        raise ValueError(f"unknown tags {unknown}")

    def register(func):
        py = func.py_func
        cname = name or py.__name__
        if any(c.name == cname for c in CASES):
            raise ValueError(f"duplicate case name {cname}")
        doc = (py.__doc__ or "").strip().splitlines()
        CASES.append(Case(cname, func, make_args, returns, frozenset(tags),
                          py.__module__.rsplit(".", 1)[-1], doc[0] if doc else ""))
        return func

    return register


# ---------------------------------------------------------------- materialising arguments

def is_float32(specs: list[Spec]) -> bool:
    return any(isinstance(s.value, np.ndarray) and s.value.dtype == np.float32 for s in specs)


def materialize(spec: Spec, cast64: bool = False):
    """A fresh argument value: arrays are copied (layout kept) and then viewed."""
    v = spec.value
    if isinstance(v, np.ndarray):
        base = v.copy(order="K")
        if cast64 and base.dtype == np.float32:
            base = base.astype(np.float64, order="K")
        return spec.view(base) if spec.view is not None else base
    return v


def fresh_args(specs: list[Spec], cast64: bool = False) -> list:
    return [materialize(s, cast64) for s in specs]


def make_shadow(spec: Spec, values=None, dtype=None) -> np.ndarray:
    """A shadow for a dup spec, in the layout the spec asks for, holding ``values`` (or 0)."""
    dtype = dtype or spec.value.dtype
    if spec.shadow == "C":
        shape = materialize(spec).shape
        sh = np.zeros(shape, dtype=dtype)
    else:
        base = np.zeros_like(spec.value, dtype=dtype, order="K")
        sh = spec.view(base) if spec.view is not None else base
    if values is not None:
        sh[...] = values
    return sh


def arg_shape(spec: Spec) -> tuple:
    return materialize(spec).shape
