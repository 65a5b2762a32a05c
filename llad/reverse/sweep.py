"""CFG reversal: one reverse block `rev.<B>` per primal block B, in reverse post-order of the primal.

`rev.B` runs the adjoints of B's instructions in reverse order, then routes the adjoints of B's phis to
the predecessor B was entered from and branches to that predecessor's reverse.  Which predecessor is an
ordinary primal value: the index of the incoming edge (an i8 phi the augmented sweep adds, taped), or,
at a loop header, whether this is the execution's first iteration, or, when a dominating guard's
condition is free to recompute, that condition.  So any reducible control flow is reversed exactly.
Predecessors of a return block that bring an exception status are left out: the forward sweep returns
there without starting the reverse sweep.
"""
from __future__ import annotations

from ..analysis.recompute import simple_loop_entry
from ..ir.builder import fconst
from ..ir.model import Block, Instruction, ref
from .adjoint import AdjointVisitor, adjoint_slot
from .deferral import Deferral
from .lookup import FREE_DEPTH, PrimalLookup


def rev(block: str) -> str:
    return "rev." + block


def pred_id_name(block: str) -> str:
    return f"pid.{block}"


class ReverseSweep:
    def __init__(self, lookup: PrimalLookup, adjoints: AdjointVisitor, deferral: Deferral):
        self.lookup, self.adjoints, self.deferral = lookup, adjoints, deferral
        self.facts, self.fn, self.cfg, self.b, self.tape = lookup.facts, lookup.fn, lookup.facts.cfg, lookup.b, \
            lookup.tape

    def generate(self) -> None:
        for name in self.cfg.rpo:
            self.reverse_block(self.fn.block_map[name])

    def reverse_block(self, block: Block) -> None:
        self.lookup.enter(block)
        self.adjoints.enter(block)
        self.b.new_block(rev(block.name))
        for ins in reversed(block.body):
            self.adjoints.visit(ins)
        phi_adjoints = [(ins, self.adjoints.take(ins)) for ins in block.phis if ins.result in self.facts.act.values]
        preds = [p for p in block.preds if p in self.cfg.loop_of]
        failing = self._failing_preds(block)
        if failing and len([p for p in preds if p not in failing]) == 1:
            preds = [p for p in preds if p not in failing]
        loop = self.cfg.loop_of.get(block.name)
        header = loop is not None and loop.header == block.name
        entry = simple_loop_entry(self.fn, loop) if header else None
        # which predecessor: read before the loop counter moves to the previous iteration
        if entry is not None:
            g, g0 = self.lookup.iteration(loop)
            first = self.b.icmp("eq", "i64", g, g0)
            preds = [entry, loop.latches[0]]
        elif len(preds) > 1:
            pid = self._recomputed_pred_id(block, preds)
            if pid is None:
                pid = self.tape.load(self.b, pred_id_name(block.name), "i8", block.name, block.name)
                self.tape.needs_pred_id(block.name)
        if header:
            self.tape.end_reverse_iteration(self.b, loop)
        if not preds:
            self.b.br("llad.done")
        elif len(preds) == 1:
            self._leave(block, preds[0], phi_adjoints, loop, entry)
        else:
            edges = [f"rev.{block.name}.from.{p}" for p in preds]
            if entry is not None:
                self.b.cbr(first, edges[0], edges[1])
            else:
                self.b.switch("i8", pid, edges[0], list(enumerate(edges[1:], start=1)))
            for p, e in zip(preds, edges):
                if p in failing:
                    continue
                self.b.new_block(e)
                self._leave(block, p, phi_adjoints, loop, entry)
            for p, e in zip(preds, edges):
                if p in failing:
                    self.b.new_block(e)
                    self.b.append(Instruction("unreachable", None, "void", []))

    def _failing_preds(self, block: Block) -> set[str]:
        """Predecessors of a return block that bring a nonzero status (an exception): the forward sweep
        returns there and never starts the reverse sweep, so their reverse is dead code (left out, the
        reverse loops keep a single entry; a derivative differentiated again needs that)."""
        term = block.terminator
        if term.opcode != "ret" or not term.operands or not term.operands[0].is_local:
            return set()
        status = self.fn.defs.get(term.operands[0].name)
        if status is None or status.opcode != "phi" or status.block is not block:
            return set()
        return {bb for v, bb in status.incoming if not v.is_local and v.text != "0"}

    def _leave(self, block: Block, pred: str, phi_adjoints, loop, entry) -> None:
        """The reverse edge block -> pred: route phi adjoints, flush deferred adjoints when leaving a
        loop's reverse, note where counted loops the edge enters start, and branch."""
        for ins, adj in phi_adjoints:
            for v, bb in ins.incoming:
                if bb == pred:
                    self.adjoints.add(v, adj)
        if entry is not None and pred == entry and loop.index in self.facts.defer_slots:
            self.deferral.flush(loop, self.b.block.name)
        self._enter_loops(block, pred)
        loop = self.cfg.loop_of.get(pred)
        if loop is not None and loop.index in self.facts.skippable and block.name not in loop.blocks:
            self._skip_if_zero(loop, rev(pred))
        else:
            self.b.br(rev(pred))

    def _skip_if_zero(self, loop, enter: str) -> None:
        """Entering the reverse of `loop` (analysis.zeroskip): when every adjoint leaving it is zero, go
        straight to the reverse of the block before it, with the loop's counter where its reverse would
        have left it.  Each adjoint goes through `llvm.arithmetic.fence` (no code) before its comparison:
        that marks the comparison as such a test for a derivative differentiated again (forward mode over
        it also asks for the adjoints' tangents to be zero)."""
        b = self.b
        zero = "true"
        for name in self.facts.skippable[loop.index]:
            ty = self.fn.defs[name].type
            self.adjoints.slot_adjoints.add(name)
            fenced = b.call(ty, f"llvm.arithmetic.fence.{'f64' if ty == 'double' else 'f32'}",
                            [(ty, b.load(ty, adjoint_slot(name)))])
            test = b.fcmp("oeq", ty, fenced, fconst(ty, 0.0))
            zero = test if zero == "true" else b.op("and", "i1", zero, test)
        skip = f"{b.block.name}.zeroskip"
        b.cbr(zero, skip, enter)
        b.new_block(skip)
        b.store("i64", b.load("i64", ref(f"g0r.{loop.index}")), ref(f"ctr.{loop.index}"))
        b.br(rev(simple_loop_entry(self.fn, loop)))

    def _enter_loops(self, block: Block, pred: str) -> None:
        """On the reverse edge block -> pred: for each counted loop the edge enters (backwards), the global
        index of this execution's first iteration, into `%g0r.<loop>`."""
        entered = [lp for lp in self.cfg.loops if lp.index in self.facts.trip_counts and pred in lp.blocks
                   and block.name not in lp.blocks]
        if not entered:
            return
        lookup, b = self.lookup, self.b
        saved = lookup.block, lookup.avail
        lookup.enter(Block(f"{block.name}.enter.{pred}"))       # its own memo keys for tape addresses
        lookup.avail = dict(saved[1])
        for lp in entered:
            tc = self.facts.trip_counts[lp.index]
            start = b.op("add", "i64", lookup.need(tc.start), str(tc.start_offset)) if tc.start_offset \
                else lookup.need(tc.start)
            bound = lookup.need(tc.bound)
            diff = b.op("sub", "i64", *((bound, start) if tc.sign > 0 else (start, bound)))
            n = b.call("i64", "llvm.smax.i64", [("i64", b.op("add", "i64", diff, str(tc.extra))), ("i64", "1")])
            ctr = b.load("i64", ref(f"ctr.{lp.index}"))
            b.store("i64", b.op("sub", "i64", ctr, n), ref(f"g0r.{lp.index}"))
            if lp.index in self.facts.defer_slots:
                self.deferral.reserve(lp, n)
        lookup.block, lookup.avail = saved

    def _recomputed_pred_id(self, block: Block, preds: list[str]) -> str | None:
        """Which of two predecessors `block` was entered from, without the tape, when one of them, G,
        branches on a condition the reverse sweep recomputes for free (a loop guard `n > 2`): G
        dominates the other, E, every path from `block` back to E passes G, and G, `block` share their
        innermost loop.  Then `block` came from G exactly when G's last branch went to it."""
        if len(preds) != 2:
            return None
        for gi, g in enumerate(preds):
            e, term = preds[1 - gi], self.fn.block_map[g].terminator
            if term.opcode != "br" or len(term.targets) != 2 or len(set(term.targets)) != 2 \
                    or not term.operands[0].is_local or not self.cfg.dominates(g, e) \
                    or self.cfg.loop_of.get(g) is not self.cfg.loop_of.get(block.name) \
                    or e in self._reachable_avoiding(block.name, g) \
                    or not self.lookup.free(term.operands[0].name, FREE_DEPTH):
                continue
            cond = self.lookup.need(term.operands[0])
            direct = term.targets[0] == block.name        # the true edge goes to block
            return self.b.select(cond, "i8", str(gi if direct else 1 - gi), str(1 - gi if direct else gi))
        return None

    def _reachable_avoiding(self, start: str, avoid: str) -> set[str]:
        seen, work = set(), list(self.fn.block_map[start].succs)
        while work:
            b = work.pop()
            if b not in seen and b != avoid:
                seen.add(b)
                work.extend(self.fn.block_map[b].succs)
        return seen
