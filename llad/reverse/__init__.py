"""Reverse mode: an augmented forward sweep that keeps what the reverse sweep needs, then the reverse
sweep over the control-flow graph, accumulating adjoints.  One LLVM function:

    llad.entry   allocas: return slots, adjoint slots, loop counters, tape states
    <B>          the primal blocks, as they were, plus shadow pointers and allocations, a predecessor id
                 phi where the reverse sweep needs one, a counter in each loop header, and stores of the
                 values the reverse sweep reads from the tape                        (augmented.py)
    rev.<B>      the reverse of block B: its instructions' adjoints in reverse order, then the adjoints
                 of its phis routed to the predecessor it was entered from          (sweep.py, adjoint.py)
    llad.done    free the tape, write the outputs

The package follows Enzyme's seams: facts.py (analyses computed once), lookup.py (a primal value in the
reverse sweep: recompute or tape), tape.py (the cache), deferral.py (stencil accumulations), sweep.py
(CFG reversal), adjoint.py (the visitor), augmented.py (the forward sweep).
"""
from __future__ import annotations

from .. import blas, custom_arrays, recursion, runtime
from ..forward.shadows import derivative_function
from ..ir.builder import Builder, Namer, fconst
from ..ir.callees import CallKind, classify
from ..plan import Act
from ..rules import DERIVATIVE_FMF, MathBuilder
from . import split
from .adjoint import AdjointVisitor, adjoint_slot
from .augmented import AugmentedSweep
from .deferral import Deferral
from .facts import reverse_facts
from .lookup import PrimalLookup
from .sweep import ReverseSweep
from .tape import Tape

SHADOW_STACK = "%llad.shadows"


def generate(state) -> None:
    """Build reverse mode's derivative function into `state.module` (see pipeline.CompileState)."""
    plan, fn, act, cfg, primal = state.plan, state.fn, state.act, state.cfg, state.primal
    der = derivative_function(state.fname, state.outputs.params())
    state.module.functions.append(der)

    def builder(prefix: str) -> Builder:
        b = MathBuilder(Namer(prefix), state.module, der)
        b.fast, b.vector_math = DERIVATIVE_FMF, plan.vector_math
        return b

    facts = reverse_facts(fn, act, cfg, {p.data_param for p in primal.params if p.is_array}, plan.assume_noalias,
                          plan.skip_zero_adjoints)
    tape = Tape(cfg, state.module)
    tape.metadata = state.scopes.tape_metadata() if state.scopes is not None else ()
    tape.guard = plan.guard_memory
    tape.keep = plan.keep_tapes
    lookup = PrimalLookup(facts, tape, builder("r"), state.location, state.scopes)
    deferral = Deferral(lookup, tape.metadata)
    active_params = [primal.params[i].llvm_names[0] for i, a in enumerate(plan.activities) if a is Act.ACTIVE]
    adjoints = AdjointVisitor(lookup, deferral, active_params)
    adjoints.guard = plan.guard_memory
    # the reverse sweep first: it decides what the tape holds
    ReverseSweep(lookup, adjoints, deferral).generate()
    reverse_blocks, der.blocks = der.blocks, []
    tape.declare_types()
    # the shadow stack also frees the copies BLAS rules keep (if f raises, or a split tape is dropped)
    shadow_allocations = _allocates_shadows(fn, act) or blas.has_copies(tape) or custom_arrays.has_boxes(tape) \
        or recursion.has_frames(tape)
    # the entry block's allocas are known now: everything the reverse sweep reads from the forward sweep
    _entry_block(builder("p"), state, tape, deferral, adjoints, facts, shadow_allocations)
    entry, der.blocks = der.blocks, []
    frame = split.Frame(entry[0]) if plan.split else None
    aug = AugmentedSweep(facts, tape, state.location, builder("a"), state.scopes)
    aug.guard = plan.guard_memory
    aug.has_shadow_allocations = shadow_allocations
    returns = split.return_blocks(fn)
    if frame is not None:
        aug.suspend_at_return = lambda b, ins: split.suspend(b, frame, ins, returns.index(ins.block.name),
                                                             state.outputs)
    aug.generate()
    forward_blocks, der.blocks = der.blocks, []
    _done_block(builder("e"), state, tape, deferral, active_params, shadow_allocations)
    if frame is not None:
        b = builder("s")
        split.resume(b, frame, returns, state.outputs.ret_llty if plan.ret_activity is Act.ACTIVE else None,
                     state.outputs)
        split.release(b, frame, lambda b: _free_forward_memory(b, tape, deferral, shadow_allocations),
                      state.outputs)
        state.annotations["frame_bytes"] = frame.bytes
    der.blocks = entry + forward_blocks + reverse_blocks + der.blocks
    state.annotations["tape"] = tape
    written = {r[1] for r in facts.written if r[0] == "param"}
    index = {p.data_param: p.index for p in primal.params if p.is_array}
    state.alias_pairs = tuple((index[a], index[w]) for a in lookup.reloaded for w in written
                              if a in index and w in index and a != w)


def _allocates_shadows(fn, act) -> bool:
    return any(ins.opcode == "call" and classify(ins.callee) is CallKind.ALLOC and ins.result in act.pointers
               for b in fn.blocks for ins in b.instructions)


def _done_block(b: Builder, state, tape: Tape, deferral: Deferral, active_params, shadow_allocations) -> None:
    """After the reverse sweep: free the tape and write the outputs."""
    b.new_block("llad.done")
    extra = [(state.fn.param_types[p], b.load(state.fn.param_types[p], adjoint_slot(p))) for p in active_params]
    if state.plan.report_tape:
        extra += tape.report(b)
    tape.free_all(b)
    if shadow_allocations:      # each shadow was released at its allocation's reverse: free the stack itself
        b.call("void", "free", [("ptr", b.load("ptr", b.gep("i8", SHADOW_STACK, [("i64", "16")])))])
    deferral.free_all(b)
    state.outputs.store(b, extra)
    b.ret("i32", "0")


def _free_forward_memory(b: Builder, tape: Tape, deferral: Deferral, shadow_allocations) -> None:
    """What a forward sweep allocated, freed without a reverse sweep (split mode's dropped tape)."""
    tape.free_all(b)
    if shadow_allocations:
        runtime.call(b, "void", "llad.shadows.release", [("ptr", SHADOW_STACK)])
    deferral.free_all(b)


def _entry_block(b: Builder, state, tape: Tape, deferral: Deferral, adjoints: AdjointVisitor, facts,
                 shadow_allocations) -> None:
    """Allocas and their initial values: return slots, the shadow stack, tape states, adjoint slots."""
    b.new_block("llad.entry")
    split_mode = state.plan.split
    if split_mode:
        b.cast("inttoptr", "i64", split.FRAME, "ptr", name=split.FRAME_PTR)
    # split mode seeds the return's shadow when it resumes
    state.outputs.return_slots(b, False, seed=state.plan.ret_activity is Act.ACTIVE and not split_mode)
    if shadow_allocations:
        # {count, capacity, base}: the base as a pointer, so that SROA keeps it one (an i64 slot would
        # come back through inttoptr, which a derivative differentiated again cannot trace)
        b.alloca("{i64, i64, ptr}", name=SHADOW_STACK)
        b.store("{i64, i64, ptr}", "zeroinitializer", SHADOW_STACK)
    tape.allocate(b, presize=not split_mode)
    for i in sorted(facts.trip_counts):
        b.alloca("i64", name=f"%g0r.{i}")
    deferral.allocate(b)
    for name in sorted(adjoints.slot_adjoints):
        ty = state.fn.param_types.get(name) or state.fn.defs[name].type
        b.alloca(ty, name=adjoint_slot(name))
        b.store(ty, fconst(ty, 0.0), adjoint_slot(name))
    if split_mode:
        split.dispatch(b, state.fn.entry.name)
    else:
        b.br(state.fn.entry.name)

