"""`llad.autodiff_thunk`: split mode (Enzyme.jl's `autodiff_thunk`).

    fwd, rev = llad.autodiff_thunk(llad.ReverseSplitWithPrimal, f, llad.Active, llad.Duplicated(x, dx))
    tape, primal, shadow_result = fwd(llad.Duplicated(x, dx))
    (derivs,) = rev(llad.Duplicated(x, dx), 1.0, tape)

Both thunks call one split derivative (reverse/split.py) in different phases; the tape is a `Tape`
object owning the frame buffer.  The reverse thunk consumes it (a second use raises `ValueError`); a
tape dropped unused frees the forward sweep's memory.  The derivative keeps every value the reverse
sweep needs on its tape (it re-reads no argument array), so the arrays may change between the calls,
but the shadows given to both thunks must be the same arrays (allocated shadows point into them).
Inside `@njit` the same calls are typed and lowered by jitted_thunks.py.
"""
from __future__ import annotations

import weakref

import numpy as np

from . import api, guard
from .annotations import (
    RETURN_ACTIVITIES,
    Forward,
    ForwardWithPrimal,
    Mode,
    ReverseSplitNoPrimal,
    ReverseSplitWithPrimal,
)
from .plan import Act

_PHASE_FORWARD, _PHASE_REVERSE, _PHASE_RELEASE = 1, 2, 3


class Tape:
    """What a forward thunk leaves for its reverse thunk: owns the frame (and, through it, the tapes)."""

    __slots__ = ("derivative", "frame", "args", "_consumed", "__weakref__")

    def __init__(self, derivative, frame: np.ndarray, args: tuple):
        self.derivative, self.frame, self.args = derivative, frame, args
        self._consumed = [False]         # shared with the finalizer, which must not hold the tape itself
        weakref.finalize(self, _release, derivative, frame, args, self._consumed)

    @property
    def consumed(self) -> bool:
        return self._consumed[0]

    def consume(self) -> None:
        self._consumed[0] = True

    def __repr__(self) -> str:
        state = "consumed" if self.consumed else f"{self.frame.nbytes} bytes of frame"
        return f"<llad.Tape of {self.derivative.function_name}, {state}>"


def _release(derivative, frame, args, state) -> None:
    """A tape dropped without its reverse call: free what its forward sweep allocated."""
    if not state[0]:
        try:
            derivative.entry(*args, _PHASE_RELEASE, frame.ctypes.data, 0.0)
        except Exception:   # noqa: BLE001 - interpreter shutdown: nothing left to free into
            pass


def autodiff_thunk(mode: Mode, f, *args):
    """Split-mode thunks: `(fwd, rev)` for ReverseSplitWithPrimal / ReverseSplitNoPrimal; for Forward and
    ForwardWithPrimal one thunk with `autodiff`'s forward result layout.  The annotated arguments fix the
    types; the thunks take new values of the same types."""
    if mode is Forward or mode is ForwardWithPrimal:
        ret = args[0] if args and isinstance(args[0], type) else None
        return _forward_thunk(mode, f, ret)
    if mode is not ReverseSplitWithPrimal and mode is not ReverseSplitNoPrimal:
        raise TypeError(f"llad.autodiff_thunk: mode must be ReverseSplitWithPrimal, ReverseSplitNoPrimal, Forward or "
                        f"ForwardWithPrimal, got {mode!r}")
    ret = args[0] if args and isinstance(args[0], type) and args[0] in RETURN_ACTIVITIES else None
    plan, dispatcher, classified, shadows = api.prepare(mode, f, args)
    _check_split_shadows(classified)
    d = api._get_derivative(dispatcher, plan)
    n_params = len(classified)
    return _SplitForward(mode, f, ret, plan, d, n_params), _SplitReverse(mode, f, ret, plan, d, n_params)


def _forward_thunk(mode: Mode, f, ret):
    def thunk(*args):
        return api.autodiff(mode, f, *((ret,) if ret is not None else ()), *args)
    return thunk


def _check_split_shadows(classified) -> None:
    for i, (tag, v, shadows) in enumerate(classified):
        for dv in shadows:
            if tag is Act.DUP and dv.strides != v.strides:
                raise ValueError(f"llad.autodiff_thunk: the shadow of argument {i} must have its array's strides in "
                                 "split mode (the tape may point into it between the two calls)")


class _SplitThunk:
    def __init__(self, mode, f, ret, plan, d, n_params):
        self.mode, self.f, self.ret, self.plan, self.d, self.n = mode, f, ret, plan, d, n_params

    def _flat(self, args) -> tuple:
        full = ((self.ret,) if self.ret is not None else ()) + tuple(args)
        plan, _, classified, shadows = api.prepare(self.mode, self.f, full)
        if plan != self.plan:
            raise TypeError("llad.autodiff_thunk: the arguments' types or annotations differ from the ones the "
                            "thunks were made for")
        _check_split_shadows(classified)
        return tuple(v for _, v, _ in classified) + tuple(dv for s in shadows for dv in s)

    def _guard_check(self) -> None:
        """llad.config.guard_memory: the tape and the shadows llad allocated (the arguments' shadows are the
        caller's own here: both thunks must see the same arrays)."""
        if self.plan.guard_memory:
            guard.check(self.d, [], getattr(self.f, "__name__", str(self.f)))


class _SplitForward(_SplitThunk):
    def __call__(self, *args):
        """-> (tape, primal result or None, shadow of a returned array or None)."""
        flat = self._flat(args)
        frame = np.zeros(self.d.frame_bytes, dtype=np.uint8)
        result = self.d.entry(*flat, _PHASE_FORWARD, frame.ctypes.data, 0.0)
        self._guard_check()
        primal = result[0] if self.d.has_primal_output and self.mode.with_primal else None
        shadow = result[1] if self.plan.ret_activity is Act.DUP else None
        return Tape(self.d, frame, flat), primal, shadow


class _SplitReverse(_SplitThunk):
    def __call__(self, *args):
        """rev(*args, seed, tape) -> (derivs,): one entry per argument, as `Reverse`."""
        if len(args) != self.n + 2:
            raise TypeError(f"llad.autodiff_thunk: the reverse thunk takes the {self.n} arguments, the seed and "
                            f"the tape, got {len(args)} values")
        *params, seed, tape = args
        if not isinstance(tape, Tape) or tape.derivative is not self.d:
            raise TypeError("llad.autodiff_thunk: the last argument must be a tape from this thunk pair's forward "
                            "thunk")
        if tape.consumed:
            raise ValueError("llad.autodiff_thunk: this tape was already used by a reverse call; run the forward "
                             "thunk again")
        if self.plan.ret_activity is Act.ACTIVE:
            if not isinstance(seed, (float, int, np.floating)):
                raise TypeError(f"llad.autodiff_thunk: the seed of an Active return is a float, got {seed!r}")
        elif seed is not None:
            raise TypeError("llad.autodiff_thunk: the seed is None when the return is not Active (a returned "
                            "array is seeded through the forward thunk's shadow_result)")
        flat = self._flat(params)
        tape.consume()                              # the reverse sweep frees the tape's memory
        result = self.d.entry(*flat, _PHASE_REVERSE, tape.frame.ctypes.data, float(seed or 0.0))
        self._guard_check()
        return api._shape_result(_REVERSE_LAYOUT, self.plan, self.d, result, False)


class _ReverseLayout:
    """autodiff's `Reverse` result layout (derivs only), for the reverse thunk."""

    reverse, with_primal = True, False


_REVERSE_LAYOUT = _ReverseLayout()

