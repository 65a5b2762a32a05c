"""llad: a differentiating compiler for Numba functions (forward and reverse mode, Enzyme-style)."""
from . import frontend as _frontend  # noqa: F401  (installs the IR recorder before anything compiles)
from . import jitted as _jitted  # noqa: F401  (llad.autodiff inside @njit code)
from .annotations import (
    Active,
    BatchDuplicated,
    Const,
    Duplicated,
    DuplicatedNoNeed,
    Forward,
    ForwardWithPrimal,
    Reverse,
    ReverseSplitNoPrimal,
    ReverseSplitWithPrimal,
    ReverseWithPrimal,
)
from .api import autodiff, tape_report
from .errors import ActivityError, DifferentiationError, NoRuleError, UnsupportedInstructionError
from .inspect import dump
from .operators import hessian, hvp, jacobian
from .thunks import Tape, autodiff_thunk

__all__ = ["autodiff", "dump", "Forward", "ForwardWithPrimal", "Reverse", "ReverseWithPrimal", "Const",
           "Active", "Duplicated", "DuplicatedNoNeed", "BatchDuplicated", "DifferentiationError",
           "NoRuleError", "UnsupportedInstructionError", "ActivityError", "tape_report", "hvp", "hessian", "jacobian",
           "autodiff_thunk", "ReverseSplitWithPrimal", "ReverseSplitNoPrimal", "Tape"]
__version__ = "0.1.0"
