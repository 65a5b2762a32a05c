"""What decides a derivative's code: the activity of each argument and the `Plan` (the cache key)."""
from __future__ import annotations

import enum
from dataclasses import dataclass


class Act(enum.Enum):
    """The activity of an argument or of the return value, as every stage after the API sees it."""

    CONST = "const"          # not differentiated
    ACTIVE = "active"        # a float scalar whose derivative reverse mode returns
    DUP = "dup"              # memory with shadows (Duplicated, BatchDuplicated), or a float return with a tangent

    def __repr__(self) -> str:
        return self.name


@dataclass(frozen=True)
class Plan:
    """Everything that decides the derivative's code: the cache key."""

    reverse: bool
    with_primal: bool
    ret_activity: Act
    activities: tuple          # per parameter: an Act
    argtypes: tuple            # numba types of the primal arguments
    shadowtypes: tuple         # per parameter: tuple of numba types of its shadows
    width: int = 1             # k of BatchDuplicated
    assume_noalias: bool = True   # reverse: repeat loads from unwritten arrays (checked per call)
    report_tape: bool = False     # reverse: also return the tape's used and reserved bytes
    interleave: tuple = ()        # forward, width > 1: per parameter, one interleaved shadow (analysis.layout)
    split: bool = False           # reverse: forward and reverse sweeps as two calls (reverse/split.py)
    vector_math: bool = False     # llad's vectorisable exp instead of libm's (llad.config.vector_math)
    guard_memory: bool = False    # bounds-checked tapes, canaries after llad's shadows (llad.config.guard_memory)
    keep_tapes: bool = False      # reverse, called from Python: tape buffers kept between calls (runtime.py)
    skip_zero_adjoints: bool = False  # reverse: skip a loop's reverse when its adjoints are zero (zeroskip.py)
    no_need: tuple = ()           # forward, per parameter: a DuplicatedNoNeed array (analysis.deadprimal)

    @property
    def mode_tag(self) -> str:
        return "rev" if self.reverse else "fwd"
