"""The adjoint visitor (Enzyme's AdjointGenerator): one method per opcode, and one per call kind,
each propagating an instruction's adjoint to its operands in the reverse sweep.

Adjoints of values used only in their own block live in registers (`local`); the others in an alloca
slot `%"adj.<name>"`, accumulated with `+=` and reset when taken (so an earlier iteration of a loop
starts from zero).  Math comes from the rules table: adjoint(operand_i) += partial_i * adjoint(r).
"""
from __future__ import annotations

from .. import blas, custom_arrays, guard, runtime
from ..errors import UnsupportedInstructionError
from ..forward.shadows import bytes_unless_null, copy_from_maybe_null
from ..ir.builder import fconst, is_const_zero
from ..ir.callees import CallKind, classify, rule_name
from ..ir.model import Block, Function, Instruction, Operand, is_float, ref
from ..ir.printer import print_instruction
from ..rules import FLOAT_CASTS, NEG_ONE, ONE, RULES, PrimalValues, Rule, convert_float, scaled
from .lookup import PrimalLookup


def adjoint_slot(name: str) -> str:
    return ref(f"adj.{name}")


class AdjointVisitor:
    def __init__(self, lookup: PrimalLookup, deferral, param_adjoints: list[str]):
        self.lookup, self.deferral = lookup, deferral
        self.facts, self.fn, self.act, self.b = lookup.facts, lookup.fn, lookup.act, lookup.b
        self.slot_adjoints: set[str] = set(param_adjoints)
        self.local: dict[str, str] = {}            # adjoint accumulated within the current reverse block
        self.guard = False                         # llad.config.guard_memory: check shadows' canaries

    def enter(self, block: Block) -> None:
        self.local = {}

    # --- adjoint storage ----------------------------------------------------------------------------
    def _in_register(self, name: str) -> bool:
        ins = self.fn.defs.get(name)
        if ins is None or name in self.slot_adjoints:
            return False
        return all(u.block is ins.block and u.opcode != "phi" for u in self.facts.users.get(name, []))

    def add(self, op: Operand, value: str) -> None:
        """adjoint(op) += value."""
        if not (op.is_local and op.name in self.act.values) or is_const_zero(value):
            return
        name, ty = op.name, op.type
        if self._in_register(name):
            self.local[name] = self.b.fadd(ty, self.local.get(name, fconst(ty, 0.0)), value)
        else:
            self.slot_adjoints.add(name)
            self.b.accumulate(ty, adjoint_slot(name), value)

    def take(self, ins: Instruction) -> str:
        """The total adjoint of ins's result, and reset it."""
        ty, name = ins.type, ins.result
        total = self.local.pop(name, fconst(ty, 0.0))
        if not self._in_register(name):
            self.slot_adjoints.add(name)
            slot = adjoint_slot(name)
            total = self.b.fadd(ty, total, self.b.load(ty, slot))
            self.b.store(ty, fconst(ty, 0.0), slot)
        return total

    # --- dispatch ---------------------------------------------------------------------------------------
    def visit(self, ins: Instruction) -> None:
        if ins.opcode in ("store", "call") or ins.result in self.act.values:
            getattr(self, "visit_" + ins.opcode, self.visit_other)(ins)

    def visit_other(self, ins: Instruction) -> None:
        if ins.opcode in RULES:
            self.apply_rule(ins, RULES[ins.opcode])
        elif ins.opcode in FLOAT_CASTS:
            src = ins.operands[0]
            self.add(src, self.b.cast(FLOAT_CASTS[ins.opcode], ins.type, self.take(ins), src.type))
        else:
            raise UnsupportedInstructionError(f"instruction `{print_instruction(ins)}`", self.lookup.location(ins),
                                              "llad has no derivative for this instruction")

    def apply_rule(self, ins: Instruction, rule: Rule) -> None:
        ty, b = ins.type, self.b
        adj = self.take(ins)
        if is_const_zero(adj):
            return
        need = self.lookup
        primal = PrimalValues(lambda i: need.need(ins.operands[i]), lambda: need.need_name(ins.result))
        for i, partial in enumerate(rule.partials):
            op = ins.operands[i]
            if partial is None or not (op.is_local and op.name in self.act.values):
                continue
            d = partial(b, ty, primal)
            if d is None:
                continue
            term = scaled(b, ty, d, adj)
            if ins.result in self.facts.select_cone and d not in (ONE, NEG_ONE):
                # the branch a select did not take gets a zero adjoint, and its partial may be NaN or inf
                # there (pow of a negative, division by zero): 0 * NaN must stay 0
                term = b.select(b.fcmp("oeq", ty, adj, fconst(ty, 0.0)), ty, fconst(ty, 0.0), term)
            self.add(op, convert_float(b, term, ty, op.type))

    # --- structural operations ------------------------------------------------------------------------
    def visit_select(self, ins: Instruction) -> None:
        adj = self.take(ins)
        cond, a, c = ins.operands
        zero = fconst(ins.type, 0.0)
        cv = self.lookup.need(cond)
        if a.is_local and a.name in self.act.values:
            self.add(a, self.b.select(cv, ins.type, adj, zero))
        if c.is_local and c.name in self.act.values:
            self.add(c, self.b.select(cv, ins.type, zero, adj))

    def visit_load(self, ins: Instruction) -> None:
        adj = self.take(ins)
        if ins.result in self.facts.in_place_loads:   # its store's reverse left the adjoint in the shadow
            return
        if ins.result in self.facts.deferred:        # every iteration writes its slot: the flush adds them all
            self.deferral.keep(ins, adj)
            return
        if not is_const_zero(adj):
            ptr = ins.operands[0]
            self.b.accumulate(ins.type, self.lookup.memory_shadow(ptr, True), adj, self.lookup.metadata(ptr, True))

    def visit_store(self, ins: Instruction) -> None:
        val, ptr = ins.operands
        if not (ptr.is_local and ptr.name in self.act.pointers) or not is_float(val.type):
            return
        md = self.lookup.metadata(ptr, True)
        adj = self.b.load(val.type, self.lookup.memory_shadow(ptr, False), metadata=md)
        if id(ins) not in self.facts.in_place:        # an in-place update keeps it there (analysis.inplace)
            self.b.store(val.type, fconst(val.type, 0.0), self.lookup.memory_shadow(ptr, True), md)
        self.add(val, adj)

    def visit_call(self, ins: Instruction) -> None:
        getattr(self, "call_" + classify(ins.callee).value, self.call_nothing)(ins)

    # --- calls, by kind ---------------------------------------------------------------------------------
    def call_nothing(self, ins: Instruction) -> None:
        """Bookkeeping and integer calls; unknown calls that activity analysis let through (no active
        value reaches them)."""

    def call_math(self, ins: Instruction) -> None:
        if ins.result in self.act.values:
            self.apply_rule(ins, RULES[rule_name(ins.callee)])

    def call_blas(self, ins: Instruction) -> None:
        blas.reverse(self, ins)

    def call_custom_call(self, ins: Instruction) -> None:
        custom_arrays.reverse(self, ins)

    def call_custom_result(self, ins: Instruction) -> None:
        """Nothing: the call's reverse takes this adjoint (custom_arrays.reverse)."""

    def call_alloc(self, ins: Instruction) -> None:
        if ins.result in self.act.pointers:          # the shadow's last use: free it
            shadow = self.lookup.need_shadow(Operand("ptr", ref(ins.result)))
            if self.guard:
                guard.check_meminfo(self.b, shadow)
            self.b.call("void", "NRT_decref", [("ptr", shadow)])

    def call_raw_alloc(self, ins: Instruction) -> None:
        if ins.result in self.act.pointers:
            self.b.call("void", "NRT_Free", [("ptr", self.lookup.need_shadow(Operand("ptr", ref(ins.result))))])

    def call_memset(self, ins: Instruction) -> None:
        dst, _, size = ins.operands[:3]
        if dst.is_local and dst.name in self.act.pointers:
            sdst, n = self.lookup.need_shadow(dst), self.lookup.need(size)
            if dst.name in self.act.maybe_null:
                n = bytes_unless_null(self.b, sdst, size.type, n)
            self.b.memset(sdst, size.type, n)

    def call_memcpy(self, ins: Instruction) -> None:
        """The source's shadow takes the destination's, which is zeroed (an inactive source: zeroed only).
        A shadow that may be null (mixed memory) is memory without a derivative where it is: nothing to
        zero there, or nothing to add to."""
        dst, src, size = ins.operands[:3]
        if not (dst.is_local and dst.name in self.act.pointers):
            return
        sdst, n = self.lookup.need_shadow(dst), self.lookup.need(size)
        if dst.name in self.act.maybe_null:
            n = bytes_unless_null(self.b, sdst, size.type, n)
        if not (src.is_local and src.name in self.act.pointers):
            self.b.memset(sdst, size.type, n)
            return
        ssrc = self.lookup.need_shadow(src)
        if src.name in self.act.maybe_null:
            ssrc, n = copy_from_maybe_null(self.b, sdst, ssrc, size.type, n)
        ty = element_type(self.fn, self.act, dst.name)
        name = f"llad.addzero.{'f64' if ty == 'double' else 'f32'}"
        runtime.call(self.b, "void", name, [("ptr", sdst), ("ptr", ssrc), (size.type, n)])


def element_type(fn: Function, act, pointer: str) -> str:
    """The float type stored in the memory `pointer` points into (for memcpy adjoints): from a float load or
    store, or a BLAS call (its routine names the type), that reaches the same memory, or memory copied to or
    from it."""
    roots = set(act.roots.get(pointer, frozenset()))
    while True:
        grown = set(roots)
        for b in fn.blocks:
            for ins in b.instructions:
                ty = _float_access(ins, act, roots)
                if ty is not None:
                    return ty
                if ins.opcode == "call" and classify(ins.callee) is CallKind.MEMCPY:
                    ends = [act.roots.get(o.name, frozenset()) for o in ins.operands[:2] if o.is_local]
                    if any(e & roots for e in ends):
                        grown.update(*ends)
        if grown == roots:
            break
        roots = grown
    if not any(ins.type == "float" or any(o.type == "float" for o in ins.operands)
               for b in fn.blocks for ins in b.instructions):
        return "double"             # no float32 anywhere in the function: the only float type it has
    raise UnsupportedInstructionError(
        f"a copy of memory ({pointer}) whose float type llad cannot tell", "<reverse sweep>",
        "nothing in the function reads or writes it as floats; please report this kernel")


def _float_access(ins: Instruction, act, roots: set) -> str | None:
    """The float type ins reads or writes memory of `roots` as, if it does."""
    if ins.opcode in ("load", "store"):
        p = ins.operands[-1] if ins.opcode == "store" else ins.operands[0]
        ty = ins.type if ins.opcode == "load" else ins.operands[0].type
        if is_float(ty) and p.is_local and act.roots.get(p.name, frozenset()) & roots:
            return ty
    elif ins.opcode == "call" and classify(ins.callee) is CallKind.BLAS:
        rule = blas.blas_rule(ins.callee)
        floats = [ins.operands[i] for i in rule.pointers if i not in rule.integers]
        if any(o.is_local and act.roots.get(o.name, frozenset()) & roots for o in floats):
            return blas.float_type(ins.callee)
    return None
