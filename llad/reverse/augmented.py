"""The augmented forward sweep of reverse mode: the primal, its shadow pointers and allocations, each
loop's iteration counter, the predecessor ids and the values the reverse sweep reads from the tape.

It shares the shadow-pointer code with forward mode (forward/shadows.py) and adds no tangents: loads
and stores of active memory are the reverse sweep's business.
"""
from __future__ import annotations

from .. import blas, custom_arrays, runtime
from ..errors import DifferentiationError
from ..forward.shadows import ShadowSweep, shadow_name
from ..ir.callees import meminfo_of_data_load
from ..ir.model import Block, Instruction, ref
from ..ir.printer import print_instruction
from .facts import ReverseFacts
from .sweep import pred_id_name, rev
from .tape import Tape


class AugmentedSweep(ShadowSweep):
    def __init__(self, facts: ReverseFacts, tape: Tape, location, b, scopes=None):
        super().__init__(facts.fn, facts.act, 1, location, b, scopes)
        self.facts, self.cfg, self.tape = facts, facts.cfg, tape
        self.has_shadow_allocations = False
        self.suspend_at_return = None     # split mode: (builder, ret) -> None, ends the forward call

    def visit_block(self, block: Block) -> None:
        phis = block.phis
        for ins in phis:
            self.copy(ins)
        self._pred_id_phi(block)
        for ins in phis:
            if ins.result in self.act.pointers:
                self.pointer_phi(ins)
        loop = self.cfg.loop_of.get(block.name)
        if loop is not None and loop.header == block.name:
            # the header's counter moves first: every tape store below is indexed by this iteration
            self.tape.begin_forward_iteration(self.b, loop, presized=loop.index in self._presized_loops())
        for ins in phis:
            self._keep(ins)
        if block.name in self.tape.pred_id_blocks:
            self.tape.store(self.b, pred_id_name(block.name), block.name)
        self._keep_loop_starts(block)
        for ins in block.instructions[len(phis):]:
            if ins.opcode == "ret":
                self.visit_ret(ins)
                continue
            if ins.is_terminator:
                self._reserve_counted_loop(block)
            if ins.opcode == "call" and ins.callee.startswith(custom_arrays.CALL_PREFIX) and \
                    custom_arrays.call_active(ins, self.act):
                custom_arrays.augmented(self, ins)         # the vjp rule's fwd in place of the call
                self._keep(ins)
                continue
            if ins.opcode == "call" and ins.callee.startswith("llad.blas."):
                blas.keep_copies(self, ins)          # what a BLAS rule reads as it was before the call
            self.copy(ins)
            if ins.result in self.act.pointers or ins.opcode == "call":
                self.dispatch(ins)
            elif ins.opcode == "store" and self.is_returned_field(ins):
                self.returned_array_field(ins)
            self._keep(ins)

    def visit_ret(self, ins: Instruction) -> None:
        """The forward sweep is over: on success into the reverse sweep, else free and return the status."""
        status = ins.operands[0].text
        self.tape.begin_reverse(self.b)
        fail = f"llad.fail.{ins.block.name}"
        ok = self.b.icmp("eq", "i32", status, "0")
        if self.suspend_at_return is not None:
            self.b.cbr(ok, f"llad.suspend.{ins.block.name}", fail)
            self.b.new_block(f"llad.suspend.{ins.block.name}")
            self.suspend_at_return(self.b, ins)
        else:
            self.b.cbr(ok, rev(ins.block.name), fail)
        self.b.new_block(fail)
        self.tape.free_all(self.b)
        if self.has_shadow_allocations:
            runtime.call(self.b, "void", "llad.shadows.release", [("ptr", "%llad.shadows")])
        self.b.ret("i32", status)

    # --- pointer shadows ------------------------------------------------------------------------------
    def visit_phi(self, ins: Instruction) -> None:
        pass                                       # pointer phis are built right after the block's phis

    def visit_select(self, ins: Instruction) -> None:
        self.pointer_select(ins)

    def visit_load(self, ins: Instruction) -> None:
        if meminfo_of_data_load(self.fn, ins) is None:
            # a pointer kept in memory with a shadow (forward mode follows it through that shadow): the
            # reverse sweep would need the pointer shadows kept the same way, which is not built
            raise DifferentiationError(
                f"`{print_instruction(ins)}`", self.location(ins),
                "reverse mode over pointers kept in memory (the shadows a reverse derivative keeps on its "
                "tape: reverse over reverse) is not supported; differentiate the gradient in forward mode "
                "(forward over reverse) instead")
        self.pointer_load(ins)

    def call_alloc(self, ins: Instruction) -> None:
        # The reverse sweep frees each shadow at the allocation's reverse; if f raises instead, the
        # failure path frees every shadow allocated so far from this list.
        super().call_alloc(ins)
        if ins.result in self.act.pointers:
            runtime.call(self.b, "void", "llad.shadows.push",
                         [("ptr", "%llad.shadows"), ("ptr", shadow_name(ins.result))])

    def call_nothing(self, ins: Instruction) -> None:
        """Calls whose shadows the reverse sweep handles (memset, memcpy, refcounts) or that have none."""

    def call_raw_alloc(self, ins: Instruction) -> None:
        # not on the shadow stack (which releases meminfos): raw shadow memory leaks if f raises
        super().call_alloc(ins)

    def call_realloc(self, ins: Instruction) -> None:
        if ins.result in self.act.pointers:
            raise DifferentiationError(
                f"`{print_instruction(ins)}`", self.location(ins),
                "reverse mode over memory that grows with realloc (the tape of a reverse derivative: reverse "
                "over reverse) is not supported; differentiate the gradient in forward mode (forward over "
                "reverse) instead")

    def call_blas(self, ins: Instruction) -> None:
        blas.keep_copies_after(self, ins)

    call_free = call_refcount = call_memset = call_memcpy = call_nothing
    call_math = call_unknown = call_jitted = call_indirect = call_nothing

    # --- the tape -------------------------------------------------------------------------------------
    def _keep(self, ins: Instruction) -> None:
        """Store ins's result (or its shadow) when the reverse sweep reads it from the tape."""
        if ins.result is None:
            return
        for name in (ins.result, "s0." + ins.result):
            if self.tape.is_cached(name):
                self.tape.store(self.b, name, ins.block.name)

    def _pred_id_phi(self, block: Block) -> None:
        if block.name not in self.tape.pred_id_blocks:
            return
        preds = [p for p in block.preds if p in self.cfg.loop_of]
        # one entry per edge: a switch with several cases to this block is that many edges
        pairs = [(str(i), p) for i, p in enumerate(preds)
                 for _ in range(max(1, self.fn.block_map[p].terminator.targets.count(block.name)))]
        self.b.phi("i8", pairs, name=ref(pred_id_name(block.name)))

    def _keep_loop_starts(self, block: Block) -> None:
        """Where an execution of a loop without a known trip count starts: its counter on entry."""
        for lp in self.cfg.loops:
            name = f"g0.{lp.index}"
            if self.tape.is_cached(name) and self.tape.entry(name).block == block.name:
                self.b.load("i64", ref(f"ctr.{lp.index}"), name=ref(name))
                self.tape.store(self.b, name, block.name)

    def _presized_loops(self) -> set[int]:
        return {lp.index for lp, _ in self.facts.presized.values()}

    def _reserve_counted_loop(self, block: Block) -> None:
        """Before a counted loop starts, reserve its whole tape: no check per iteration, so the forward
        sweep's loop can still be vectorised."""
        entry = self.facts.presized.get(block.name)
        if entry is None:
            return
        lp, tc = entry
        if not self.tape.has_records(lp):
            return
        b = self.b
        first = b.op("add", "i64", tc.start.text, str(tc.start_offset)) if tc.start_offset else tc.start.text
        diff = b.op("sub", "i64", *((tc.bound.text, first) if tc.sign > 0 else (first, tc.bound.text)))
        n = b.call("i64", "llvm.smax.i64", [("i64", b.op("add", "i64", diff, str(tc.extra))), ("i64", "1")])
        self.tape.reserve(b, lp, b.op("add", "i64", b.load("i64", ref(f"ctr.{lp.index}")), n))
