"""Forward mode: the tangent of every active value, next to the primal instruction it comes from.

A visitor with one method per opcode (and one per call kind, see ir/callees.py).  Each primal
instruction is re-emitted as it is; for an active one the visitor then emits its tangent through the
lane helper (lanes.py), which makes scalar and k-direction tangents one code path.  Math comes from the
rules table; this file only knows the structural operations (phi, select, memory, runtime calls).
"""
from __future__ import annotations

from .. import blas, custom_arrays, guard
from ..ir.callees import CallKind, classify, rule_name
from ..ir.model import Block, Instruction, is_float, ref
from ..rules import FLOAT_CASTS, RULES, PrimalValues, Rule, convert_float
from .lanes import Lanes
from .shadows import ShadowSweep, bytes_unless_null, copy_from_maybe_null

_ALIGN = {"double": 8, "float": 4, "half": 2}


class TangentSweep(ShadowSweep):
    """Forward mode's one sweep: the primal, shadow pointers and tangents; `outputs` writes the result."""

    def __init__(self, fn, act, k, location, b, outputs, scopes=None, interleaved=frozenset(),
                 interleaved_return: bool = False):
        super().__init__(fn, act, k, location, b, scopes, interleaved)
        self.lanes = Lanes(b, act, k)
        self.outputs, self.interleaved_return = outputs, interleaved_return
        self.custom_tangents: dict[str, list[str]] = {}     # a custom call's status -> its result's tangents

    def visit_block(self, block: Block) -> None:
        phis = block.phis
        for ins in phis:
            self.copy(ins)
        for ins in phis:
            if self.is_active(ins):
                self.visit_phi(ins)
        for ins in block.instructions[len(phis):]:
            if ins.opcode == "ret":
                self.outputs.store(self.b, interleaved=self.interleaved_return)
                self.copy(ins)
                continue
            if ins.opcode == "call" and ins.callee.startswith(custom_arrays.CALL_PREFIX) and \
                    custom_arrays.call_active(ins, self.act):
                custom_arrays.forward(self, ins)          # the jvp rule in place of the call
                continue
            if ins.opcode == "fcmp" and ins.result in self.fn.zero_tests:
                self.zero_test(ins)
                continue
            before = blas.before(self, ins) if ins.opcode == "call" and ins.callee.startswith("llad.blas.") else None
            self.copy(ins)
            if before is not None:
                blas.forward(self, ins, before)
            elif self.is_active(ins) or ins.opcode in ("store", "call"):
                self.dispatch(ins)

    def zero_test(self, ins: Instruction) -> None:
        """A derivative's test that an adjoint is zero before it skips a loop's reverse (analysis.zeroskip):
        zero only if its tangents are zero too (`une`, the negated test: nonzero if any of them is)."""
        value = next(o for o in ins.operands if o.is_local)
        if value.name not in self.act.values:
            self.copy(ins)
            return
        own = self.b.fcmp(ins.predicate, value.type, value.text, "0.0")
        tangent = self.lanes.of(value)
        join = "and" if ins.predicate == "oeq" else "or"
        for j in range(self.k):
            lane = self.b.fcmp(ins.predicate, value.type, self.lanes.lane(value.type, tangent, j), "0.0")
            own = self.b.op(join, "i1", own, lane, name=ref(ins.result) if j == self.k - 1 else None)

    # --- structural operations ------------------------------------------------------------------
    def visit_phi(self, ins: Instruction) -> None:
        if ins.result in self.act.pointers:
            self.pointer_phi(ins)
            return
        self.b.phi(self.lanes.ty(ins.type), [(self.lanes.of(v), bb) for v, bb in ins.incoming],
                   name=self.lanes.name(ins.result))

    def visit_select(self, ins: Instruction) -> None:
        if ins.result in self.act.pointers:
            self.pointer_select(ins)
            return
        cond, a, c = ins.operands
        self.b.select(cond.text, self.lanes.ty(ins.type), self.lanes.of(a), self.lanes.of(c),
                      name=self.lanes.name(ins.result))

    def visit_load(self, ins: Instruction) -> None:
        if ins.result in self.act.pointers:
            self.pointer_load(ins)
            return
        ptr, ty, md = ins.operands[0], ins.type, self.alias_metadata(ins, shadow=True)
        name = self.lanes.name(ins.result)
        if ptr.is_local and ptr.name in self.interleaved:
            self.b.load(self.lanes.ty(ty), self.memory_shadow(ptr, 0, ins, False), metadata=md, align=_ALIGN[ty],
                        name=name)
            return
        one = not self.lanes.vector
        loads = [self.b.load(ty, self.memory_shadow(ptr, j, ins, False), metadata=md, name=name if one else None)
                 for j in range(self.k)]
        self.lanes.combine(ty, loads, name)

    def visit_store(self, ins: Instruction) -> None:
        val, ptr = ins.operands
        if not (ptr.is_local and ptr.name in self.act.pointers):
            if ptr.text == "%retptr" and val.is_local and val.name in self.act.pointers:
                # a returned array's meminfo whose tangent nobody asked for: its shadow is released here
                for j in self.lanes_of(val.name):
                    self.b.call("void", "NRT_decref", [("ptr", self.shadow(val, j, ins))])
            return
        if not is_float(val.type):
            if self.is_returned_field(ins):
                self.returned_array_field(ins)
            elif val.type == "ptr":         # a pointer into memory with a shadow: its shadow goes beside it
                for j in range(self.k):
                    shadow = self.shadow(val, j, ins) if val.is_local and val.name in self.act.pointers else "null"
                    self.b.store("ptr", shadow, self.memory_shadow(ptr, j, ins, True))
            return
        md = self.alias_metadata(ins, shadow=True)
        if ptr.name in self.interleaved:
            self.b.store(self.lanes.ty(val.type), self.lanes.of(val), self.memory_shadow(ptr, 0, ins, True),
                         metadata=md, align=_ALIGN[val.type])
            return
        tangent = self.lanes.of(val)
        for j in range(self.k):
            self.b.store(val.type, self.lanes.lane(val.type, tangent, j), self.memory_shadow(ptr, j, ins, True), md)

    def visit_other(self, ins: Instruction) -> None:
        if ins.opcode in RULES:
            self.apply_rule(ins, RULES[ins.opcode])
        elif ins.opcode in FLOAT_CASTS:
            src = ins.operands[0]
            self.b.cast(ins.opcode, self.lanes.ty(src.type), self.lanes.of(src), self.lanes.ty(ins.type),
                        name=self.lanes.name(ins.result))
        else:
            super().visit_other(ins)

    # --- calls, by kind ---------------------------------------------------------------------------------
    def call_math(self, ins: Instruction) -> None:
        if self.is_active(ins):
            self.apply_rule(ins, RULES[rule_name(ins.callee)])

    def call_custom_result(self, ins: Instruction) -> None:
        if self.is_active(ins):
            custom_arrays.forward_result(self, ins)

    def call_refcount(self, ins: Instruction) -> None:
        op = ins.operands[0]
        if op.is_local and op.name in self.act.pointers:
            checked = self.guard and ins.callee.startswith("NRT_decref") and self._allocated_here(op)
            for j in self.lanes_of(op.name):
                if checked:
                    guard.check_meminfo(self.b, self.shadow(op, j, ins))
                self.b.call("void", ins.callee, [("ptr", self.shadow(op, j, ins))])

    def _allocated_here(self, op) -> bool:
        """A meminfo that only ever comes from this function's allocations (whose shadows have canaries)."""
        roots = self.act.roots.get(op.name, frozenset())
        return bool(roots) and all(kind == "alloc" and classify(self.fn.defs[name].callee) is CallKind.ALLOC
                                   for kind, name in roots)

    def call_free(self, ins: Instruction) -> None:
        op = ins.operands[0]
        if op.is_local and op.name in self.act.pointers:
            for j in self.lanes_of(op.name):
                self.b.call("void", ins.callee, [("ptr", self.shadow(op, j, ins))])

    def call_memset(self, ins: Instruction) -> None:
        dst, _, size = ins.operands[:3]
        if dst.is_local and dst.name in self.act.pointers:
            n = self.scaled_size(size) if dst.name in self.interleaved else size.text
            for j in self.lanes_of(dst.name):
                shadow = self.shadow(dst, j, ins)
                self.b.memset(shadow, size.type,
                              bytes_unless_null(self.b, shadow, size.type, n) if dst.name in self.act.maybe_null else n)

    def call_memcpy(self, ins: Instruction) -> None:
        dst, src, size = ins.operands[:3]
        if not (dst.is_local and dst.name in self.act.pointers):
            return
        n = self.scaled_size(size) if dst.name in self.interleaved else size.text
        for j in self.lanes_of(dst.name):      # an active source has the destination's layout (analysis.layout)
            shadow = self.shadow(dst, j, ins)
            nj = bytes_unless_null(self.b, shadow, size.type, n) if dst.name in self.act.maybe_null else n
            if not (src.is_local and src.name in self.act.pointers):
                self.b.memset(shadow, size.type, nj)
                continue
            from_ = self.shadow(src, j, ins)
            if src.name in self.act.maybe_null:
                from_, nj = copy_from_maybe_null(self.b, shadow, from_, size.type, nj)
            self.b.call("void", ins.callee, [("ptr", shadow), ("ptr", from_), (size.type, nj), ("i1", "false")])

    def call_unknown(self, ins: Instruction) -> None:
        pass     # activity analysis refused it if an active value reaches it

    call_jitted = call_indirect = call_unknown

    # --- rules ------------------------------------------------------------------------------------
    def apply_rule(self, ins: Instruction, rule: Rule) -> None:
        """tangent(r) = sum_i partial_i * tangent(operand_i), each partial from the rules table."""
        ty, b, lanes = ins.type, self.b, self.lanes
        primal = PrimalValues(lambda i: ins.operands[i].text, lambda: ref(ins.result))
        total = lanes.zero(ty)
        for i, partial in enumerate(rule.partials):
            op = ins.operands[i]
            if partial is None or not (op.is_local and op.name in self.act.values):
                continue
            d = partial(b, ty, primal)
            if d is not None:
                tangent = convert_float(b, lanes.of(op), lanes.ty(op.type), lanes.ty(ty))
                total = b.fadd(lanes.ty(ty), total, lanes.scale(ty, d, tangent))
        b.op("fadd", lanes.ty(ty), total, lanes.minus_zero(ty), name=lanes.name(ins.result))
