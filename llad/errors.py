"""Errors a user can act on."""
from __future__ import annotations


class DifferentiationError(Exception):
    """llad cannot differentiate an operation.

    The message names the operation, the Python file:line it came from, and what to do.
    """

    def __init__(self, operation: str, location: str = "<unknown>", hint: str = "", ir: str = ""):
        self.operation = operation
        self.location = location
        self.hint = hint
        self.ir = ir
        msg = f"cannot differentiate {operation} at {location}"
        if hint:
            msg += f": {hint}"
        super().__init__(msg)


class UnsupportedInstructionError(DifferentiationError):
    """An LLVM instruction outside the subset llad reads."""


class NoRuleError(DifferentiationError):
    """A call to a function without a derivative rule."""


class MemoryGuardError(RuntimeError):
    """`llad.config.guard_memory`: a derivative wrote outside its tape or a shadow (a bug in llad, or in f
    itself writing outside an array: Numba does not check bounds).  Raised after the call that did it."""


class ActivityError(DifferentiationError):
    """An active value flows somewhere it cannot (a Const array, an integer)."""
