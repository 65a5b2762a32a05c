"""What users write: the modes and the activity annotations, and the checks run on annotated
arguments before anything is compiled or written."""
from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
from numba.core import types

from .plan import Act


# --- modes ---------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)      # the four modes are singletons: identity equality, a fast hash
class Mode:
    name: str
    reverse: bool
    with_primal: bool
    split: bool = False        # autodiff_thunk's two-call reverse mode

    def __repr__(self) -> str:
        return f"llad.{self.name}"


Forward = Mode("Forward", False, False)
ForwardWithPrimal = Mode("ForwardWithPrimal", False, True)
Reverse = Mode("Reverse", True, False)
ReverseWithPrimal = Mode("ReverseWithPrimal", True, True)
ReverseSplitWithPrimal = Mode("ReverseSplitWithPrimal", True, True, split=True)
ReverseSplitNoPrimal = Mode("ReverseSplitNoPrimal", True, False, split=True)


# --- activities ----------------------------------------------------------------------------------
class Annotation:
    __slots__ = ("val",)

    def __init__(self, val):
        self.val = val

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.val!r})"


class Const(Annotation):
    """Not differentiated."""


class Active(Annotation):
    """A float scalar whose derivative reverse modes return."""


class Duplicated(Annotation):
    """An array `val` with its shadow `dval` (tangent in forward modes, accumulated adjoint in reverse)."""

    __slots__ = ("dval",)

    def __init__(self, val, dval):
        self.val, self.dval = val, dval

    def __repr__(self) -> str:
        return f"{type(self).__name__}(<{_describe(self.val)}>, <{_describe(self.dval)}>)"


class DuplicatedNoNeed(Duplicated):
    """As Duplicated; the primal values left in `val` need not be correct."""


class BatchDuplicated(Annotation):
    """An array with k shadows, differentiated in one pass (vector mode)."""

    __slots__ = ("dvals",)

    def __init__(self, val, dvals):
        self.val, self.dvals = val, dvals


RETURN_ACTIVITIES = {Active: Act.ACTIVE, Const: Act.CONST, Duplicated: Act.DUP, DuplicatedNoNeed: Act.DUP}


def _describe(v) -> str:
    if isinstance(v, np.ndarray):
        return f"{v.dtype}{list(v.shape)} array"
    return type(v).__name__


# --- argument checks (before anything is compiled or written) -----------------------------------------
def _check_float_array(v, what: str) -> None:
    if not isinstance(v, np.ndarray):
        raise TypeError(f"llad.autodiff: {what} must be a numpy array of float32 or float64, got {_describe(v)}")
    if v.dtype not in (np.float32, np.float64):
        raise TypeError(f"llad.autodiff: {what} must have dtype float32 or float64, got {v.dtype}")


def _check_shadow(i: int, v, dv, what: str) -> None:
    _check_float_array(v, f"argument {i} ({what})")
    if not isinstance(dv, np.ndarray):
        raise TypeError(f"llad.autodiff: the shadow of argument {i} must be a numpy array, got {_describe(dv)}")
    if dv.shape != v.shape or dv.dtype != v.dtype:
        raise ValueError(f"llad.autodiff: the shadow of argument {i} is {_describe(dv)} but the array is "
                         f"{_describe(v)}; they must have the same shape and dtype")
    if not dv.flags.writeable:
        raise ValueError(f"llad.autodiff: the shadow of argument {i} is read-only; pass a writeable array")
    if v.size and np.shares_memory(v, dv):
        raise ValueError(f"llad.autodiff: the shadow of argument {i} shares memory with the array itself; "
                         "pass a separate array, e.g. np.zeros_like(x)")


def _is_float_scalar(v) -> bool:
    return isinstance(v, (float, np.floating)) and not isinstance(v, np.ndarray)


def _scalar_tangents(i: int, v, dvs, reverse: bool) -> tuple:
    """The tangents of a float scalar argument (forward modes only), as Python floats."""
    if reverse:
        raise TypeError(f"llad.autodiff: argument {i} is a float scalar annotated Duplicated; reverse modes take "
                        "Active(x) for a float scalar")
    for dv in dvs:
        if not isinstance(dv, (float, int, np.floating, np.integer)) or isinstance(dv, (bool, np.bool_)):
            raise TypeError(f"llad.autodiff: the tangent of the float argument {i} must be a float, got "
                            f"{_describe(dv)}")
    return tuple(float(dv) for dv in dvs)


def _classify(i: int, a, reverse: bool):
    """-> (activity tag, primal value, tuple of shadows: arrays, or floats for a float scalar)."""
    if isinstance(a, BatchDuplicated) and _is_float_scalar(a.val) and isinstance(a.dvals, (tuple, list)) and a.dvals:
        return Act.DUP, float(a.val), _scalar_tangents(i, a.val, a.dvals, reverse)
    if isinstance(a, Duplicated) and _is_float_scalar(a.val):
        return Act.DUP, float(a.val), _scalar_tangents(i, a.val, (a.dval,), reverse)
    if isinstance(a, BatchDuplicated):
        if not isinstance(a.dvals, (tuple, list)) or not a.dvals:
            raise TypeError(f"llad.autodiff: BatchDuplicated(x, shadows) of argument {i} needs a non-empty tuple "
                            "of shadow arrays")
        for dv in a.dvals:
            _check_shadow(i, a.val, dv, "BatchDuplicated")
        if reverse:
            raise TypeError("llad.autodiff: BatchDuplicated is a forward-mode annotation")
        return Act.DUP, a.val, tuple(a.dvals)
    if isinstance(a, Duplicated):
        _check_shadow(i, a.val, a.dval, type(a).__name__)
        return Act.DUP, a.val, (a.dval,)
    if isinstance(a, Active):
        if not reverse:
            raise TypeError(f"llad.autodiff: argument {i} is Active, which forward modes do not take; pass the "
                            "value as Const, or use Duplicated on an array to get its tangent")
        if not isinstance(a.val, (float, np.floating)) or isinstance(a.val, np.ndarray):
            raise TypeError(f"llad.autodiff: Active is for float scalars; argument {i} is {_describe(a.val)}"
                            + (" (use Duplicated(x, dx) for arrays)" if isinstance(a.val, np.ndarray) else ""))
        return Act.ACTIVE, a.val, ()
    if isinstance(a, Const):
        return Act.CONST, a.val, ()
    if isinstance(a, type) and issubclass(a, Annotation):
        raise TypeError(f"llad.autodiff: argument {i} is the class {a.__name__} itself; wrap a value, e.g. "
                        f"{a.__name__}(x)")
    return Act.CONST, a, ()


_SUPPORTED_SCALARS = (bool, int, float, np.integer, np.floating, np.bool_)


def _typeof(i: int, v) -> types.Type:
    if isinstance(v, np.ndarray):
        if v.dtype.hasobject:
            raise TypeError(f"llad.autodiff: argument {i} is an object array, which llad cannot compile")
        return numba.typeof(v)
    if isinstance(v, _SUPPORTED_SCALARS) or (isinstance(v, tuple) and all(isinstance(e, _SUPPORTED_SCALARS)
                                                                           for e in v)):
        return numba.typeof(v)
    raise TypeError(f"llad.autodiff: argument {i} has unsupported type {type(v).__name__}; llad takes numpy "
                    "arrays, numbers and tuples of numbers")
