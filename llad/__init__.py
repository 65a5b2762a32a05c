"""llad: a differentiating compiler for Numba functions (forward and reverse mode, Enzyme-style)."""
from . import frontend as _frontend  # noqa: F401  (installs the IR recorder before anything compiles)
from . import jitted as _jitted  # noqa: F401  (llad.autodiff inside @njit code)
from . import jitted_thunks as _jitted_thunks  # noqa: F401  (llad.autodiff_thunk inside @njit code)
from . import testing  # llad.testing.check_grads
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
from .config import config
from .custom import custom_jvp, custom_vjp
from .errors import ActivityError, DifferentiationError, MemoryGuardError, NoRuleError, UnsupportedInstructionError
from .inspect import dump
from .operators import (
    derivative,
    gradient,
    hessian,
    hvp,
    jacobian,
    make_zero,
    prepare,
    pullback,
    pushforward,
    value_and_gradient,
)
from .thunks import Tape, autodiff_thunk

__all__ = ["autodiff", "dump", "Forward", "ForwardWithPrimal", "Reverse", "ReverseWithPrimal", "Const",
           "Active", "Duplicated", "DuplicatedNoNeed", "BatchDuplicated", "DifferentiationError",
           "NoRuleError", "UnsupportedInstructionError", "ActivityError", "MemoryGuardError", "tape_report",
           "derivative", "gradient", "value_and_gradient", "pushforward", "pullback", "jacobian", "hessian", "hvp",
           "prepare", "make_zero", "testing", "custom_jvp", "custom_vjp", "config",
           "autodiff_thunk", "ReverseSplitWithPrimal", "ReverseSplitNoPrimal", "Tape"]
__version__ = "0.1.0"
