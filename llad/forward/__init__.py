"""Forward mode: shadows.py (pointer shadows, shared with reverse mode's augmented sweep), lanes.py (one
path for scalar and k-lane tangents), tangent.py (the visitor)."""
from __future__ import annotations

from ..ir.builder import Namer
from ..rules import DERIVATIVE_FMF, MathBuilder
from .shadows import derivative_function
from .tangent import TangentSweep


def _scalar_tangent_vectors(b, state) -> None:
    """With k directions, a float scalar's k tangent parameters `%"d<j>.t"` as one vector `%"dv.t"`."""
    width = state.plan.width
    if width == 1:
        return
    for i, pm in enumerate(state.primal.params):
        if state.plan.shadowtypes[i] and not pm.is_array:
            name, ty = pm.llvm_names[0], pm.llvm_types[0]
            vec = "poison"
            for j in range(width):
                vec = b.insertelement(f"<{width} x {ty}>", vec, ty, f'%"d{j}.{name}"', j,
                                      name=f'%"dv.{name}"' if j == width - 1 else None)


def generate(state) -> None:
    """Build forward mode's derivative function into `state.module` (see pipeline.CompileState)."""
    fn = derivative_function(state.fname, state.outputs.params())
    state.module.functions.append(fn)
    b = MathBuilder(Namer("f"), state.module, fn)
    b.vector_math = state.plan.vector_math
    b.fast = DERIVATIVE_FMF
    b.new_block("llad.entry")
    interleaved_return = "retptr" in state.interleaved
    state.outputs.return_slots(b, interleaved_return, seed=False)
    _scalar_tangent_vectors(b, state)
    b.br(state.fn.entry.name)
    sweep = TangentSweep(state.fn, state.act, state.plan.width, state.location, b, state.outputs, state.scopes,
                         state.interleaved, interleaved_return)
    sweep.guard = state.plan.guard_memory
    sweep.generate()
