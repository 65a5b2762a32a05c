"""Forward mode: shadows.py (pointer shadows, shared with reverse mode's augmented sweep), lanes.py (one
path for scalar and k-lane tangents), tangent.py (the visitor)."""
from __future__ import annotations

from ..ir.builder import Namer
from ..rules import DERIVATIVE_FMF, MathBuilder
from .shadows import derivative_function
from .tangent import TangentSweep


def generate(state) -> None:
    """Build forward mode's derivative function into `state.module` (see pipeline.CompileState)."""
    fn = derivative_function(state.fname, state.outputs.params())
    state.module.functions.append(fn)
    b = MathBuilder(Namer("f"), state.module, fn)
    b.fast = DERIVATIVE_FMF
    b.new_block("llad.entry")
    interleaved_return = "retptr" in state.interleaved
    state.outputs.return_slots(b, interleaved_return, seed=False)
    b.br(state.fn.entry.name)
    TangentSweep(state.fn, state.act, state.plan.width, state.location, b, state.outputs, state.scopes,
                 state.interleaved, interleaved_return).generate()
