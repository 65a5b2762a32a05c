"""Forward mode: the tangent of every active value, next to the primal instruction it comes from.

A visitor with one method per opcode.  Each primal instruction is re-emitted as it is; for an active
one the visitor then emits its tangent.  With k > 1 directions (`BatchDuplicated`) the tangent of a
float value is one `<k x double>` vector (vector mode): each partial is computed once and multiplies
all k directions in one SIMD operation; only loads and stores touch the k shadows one by one.  Math
comes from the rules table; this file only knows the structural operations (phi, select, memory,
runtime calls).
"""
from __future__ import annotations

from .analysis.activity import ALLOC_CALLS, Activity
from .errors import UnsupportedInstructionError
from .ir.builder import Namer, fconst
from .ir.model import Function, Instruction, Operand, is_float, ref
from .rules import (
    DERIVATIVE_FMF,
    FLOAT_CASTS,
    NEG_ONE,
    ONE,
    RULES,
    MathBuilder,
    PrimalValues,
    rule_name_for_call,
    scaled,
)
from .shadow import gep_text, guarded, meminfo_or_standin, memset_call, null_preserving, shadow_name, shadow_of


def tangent_name(name: str, j: int) -> str:
    return ref(f"d{j}.{name}")


def vector_tangent_name(name: str) -> str:
    return ref(f"dv.{name}")


class ForwardGenerator:
    tangents = True            # False: only shadow pointers and allocations (reverse mode's forward sweep)

    def __init__(self, fn: Function, act: Activity, k: int, location, on_return,
                 interleaved: frozenset = frozenset(), scopes=None):
        self.fn, self.act, self.k, self.location = fn, act, k, location
        self.scopes = scopes               # analysis.alias.AliasScopes, or None: no alias metadata
        self.interleaved = interleaved     # pointers/allocations with one interleaved shadow (analysis.layout)
        self.on_return = on_return          # (builder, ret instruction) -> None: emits the epilogue
        self.declarations: dict[str, str] = {}
        self.b = MathBuilder(Namer("f"), declarations=self.declarations)
        self.b.fast = DERIVATIVE_FMF
        self.vector = k > 1

    # --- vector mode ------------------------------------------------------------------------------
    def vty(self, ty: str) -> str:
        return f"<{self.k} x {ty}>"

    def vtangent(self, op: Operand) -> str:
        if op.is_local and op.name in self.act.values:
            return vector_tangent_name(op.name)
        return "zeroinitializer"

    def splat(self, ty: str, v: str) -> str:
        one = self.b.namer.fresh()
        self.b.emit(f"{one} = insertelement {self.vty(ty)} poison, {ty} {v}, i32 0")
        r = self.b.namer.fresh()
        self.b.emit(f"{r} = shufflevector {self.vty(ty)} {one}, {self.vty(ty)} poison, <{self.k} x i32> "
                    "zeroinitializer")
        return r

    def alias_suffix(self, ins: Instruction, shadow: bool) -> str:
        """Scoped-noalias metadata for a load or store (of the primal, or of its shadow)."""
        if self.scopes is None or ins.opcode not in ("load", "store"):
            return ""
        return self.scopes.suffix(ins.operands[0 if ins.opcode == "load" else 1], shadow)

    def lanes(self, name: str | None) -> range:
        """The shadows a pointer (or allocation) has: one when interleaved, else k."""
        return range(1) if name in self.interleaved else range(self.k)

    def interleaved_gep(self, ins: Instruction, base: str) -> str:
        """`ins` on an interleaved shadow: every byte offset scaled by k."""
        if len(ins.operands) == 2:         # one index: k elements of the source type per step
            return gep_text(ins, base, source_type=f"[{self.k} x {ins.source_type}]")
        g, off = self.b.namer.fresh(), self.b.namer.fresh()
        idx = ", ".join(f"{o.type} {o.text}" for o in ins.operands[1:])
        self.b.emit(f"{g} = getelementptr {ins.source_type}, ptr null, {idx}")
        self.b.emit(f"{off} = ptrtoint ptr {g} to i64")
        scaled_off = self.b.namer.fresh()
        self.b.emit(f"{scaled_off} = mul i64 {off}, {self.k}")
        return f"getelementptr i8, ptr {base}, i64 {scaled_off}"

    def scaled_size(self, size: Operand) -> str:
        r = self.b.namer.fresh()
        self.b.emit(f"{r} = mul {size.type} {size.text}, {self.k}")
        return r

    # --- values ---------------------------------------------------------------------------------
    def tangent(self, op: Operand, j: int) -> str:
        if op.is_local and op.name in self.act.values:
            return tangent_name(op.name, j)
        return fconst(op.type, 0.0)

    def shadow(self, op: Operand, j: int, ins: Instruction) -> str:
        return shadow_of(op, self.act, j, ins, self.location)

    def memory_shadow(self, op: Operand, j: int, ins: Instruction, for_write: bool) -> str:
        """The shadow to load from / store to: a stand-in when it may be null (mixed memory)."""
        s = self.shadow(op, j, ins)
        return guarded(self.b, s, for_write) if op.is_local and op.name in self.act.maybe_null else s

    def is_active(self, ins: Instruction) -> bool:
        return ins.result is not None and (ins.result in self.act.values or ins.result in self.act.pointers)

    # --- driver ---------------------------------------------------------------------------------
    def generate(self) -> list[str]:
        lines = self.b.lines
        for block in self.fn.blocks:
            lines.append(f"{ref(block.name)[1:]}:")
            phis = block.phis
            for ins in phis:
                self.b.emit(ins.text)
            for line in self.extra_phis(block):
                self.b.emit(line)
            for ins in phis:
                if self.is_active(ins) and (self.tangents or ins.result in self.act.pointers):
                    self.visit_phi(ins)
            self.after_phis(block)
            for ins in block.instructions[len(phis):]:
                if ins.opcode == "ret":
                    self.on_return(self.b, ins)
                    continue
                if ins.is_terminator:
                    self.before_terminator(block)
                self.b.emit(ins.text + self.alias_suffix(ins, False))
                if self.is_active(ins) or ins.opcode in ("store", "call"):
                    self.visit(ins)
                self.after_instruction(ins)
        return lines

    def visit(self, ins: Instruction) -> None:
        if not self.tangents and ins.result is not None and ins.result not in self.act.pointers \
                and ins.opcode != "call":
            return
        getattr(self, "visit_" + ins.opcode.replace("getelementptr", "gep"), self.visit_other)(ins)

    def extra_phis(self, block) -> list[str]:
        """Hook: phis to add to a block (reverse mode: which predecessor the block was entered from)."""
        return []

    def after_phis(self, block) -> None:
        """Hook: code after a block's phis (reverse mode: loop counters, tape, caches)."""

    def after_instruction(self, ins: Instruction) -> None:
        """Hook: code after an instruction (reverse mode: caching for the reverse sweep)."""

    def before_terminator(self, block) -> None:
        """Hook: code at the end of a block (reverse mode: sizing a loop's tape before it starts)."""

    # --- structural operations ------------------------------------------------------------------
    def visit_phi(self, ins: Instruction) -> None:
        for j in self.lanes(ins.result):
            if ins.result in self.act.pointers:
                pairs = ", ".join(f"[ {self.shadow(v, j, ins)}, {ref(bb)} ]" for v, bb in ins.incoming)
                self.b.emit(f"{shadow_name(ins.result, j)} = phi ptr {pairs}")
            elif self.vector:
                if j == 0:
                    pairs = ", ".join(f"[ {self.vtangent(v)}, {ref(bb)} ]" for v, bb in ins.incoming)
                    self.b.emit(f"{vector_tangent_name(ins.result)} = phi {self.vty(ins.type)} {pairs}")
            else:
                pairs = ", ".join(f"[ {self.tangent(v, j)}, {ref(bb)} ]" for v, bb in ins.incoming)
                self.b.emit(f"{tangent_name(ins.result, j)} = phi {ins.type} {pairs}")

    def visit_select(self, ins: Instruction) -> None:
        cond, a, c = ins.operands
        for j in self.lanes(ins.result):
            if ins.result in self.act.pointers:
                self.b.emit(f"{shadow_name(ins.result, j)} = select i1 {cond.text}, ptr "
                            f"{self.shadow(a, j, ins)}, ptr {self.shadow(c, j, ins)}")
            elif self.vector:
                if j == 0:
                    vt = self.vty(ins.type)
                    self.b.emit(f"{vector_tangent_name(ins.result)} = select i1 {cond.text}, {vt} "
                                f"{self.vtangent(a)}, {vt} {self.vtangent(c)}")
            else:
                self.b.emit(f"{tangent_name(ins.result, j)} = select i1 {cond.text}, {ins.type} "
                            f"{self.tangent(a, j)}, {ins.type} {self.tangent(c, j)}")

    def visit_gep(self, ins: Instruction) -> None:
        base_op = ins.operands[0]
        for j in self.lanes(ins.result):
            base = self.shadow(base_op, j, ins)
            text = self.interleaved_gep(ins, base) if ins.result in self.interleaved else gep_text(ins, base)
            if base_op.is_local and base_op.name in self.act.maybe_null:
                g = self.b.namer.fresh()
                self.b.emit(f"{g} = {text}")
                null_preserving(self.b, base, g, shadow_name(ins.result, j))
            else:
                self.b.emit(f"{shadow_name(ins.result, j)} = {text}")

    def visit_load(self, ins: Instruction) -> None:
        if ins.operands[0].is_local and ins.operands[0].name in self.interleaved:
            ptr = self.memory_shadow(ins.operands[0], 0, ins, False)
            self.b.emit(f"{vector_tangent_name(ins.result)} = load {self.vty(ins.type)}, ptr {ptr}, "
                        f"align {_ALIGN[ins.type]}{self.alias_suffix(ins, True)}")
            return
        vec = "poison"
        for j in range(self.k):
            ptr = self.memory_shadow(ins.operands[0], j, ins, False)
            if not self.vector:
                self.b.emit(f"{tangent_name(ins.result, j)} = load {ins.type}, ptr {ptr}{self.alias_suffix(ins, True)}")
                continue
            lane = self.b.namer.fresh()
            self.b.emit(f"{lane} = load {ins.type}, ptr {ptr}{self.alias_suffix(ins, True)}")
            nxt = vector_tangent_name(ins.result) if j == self.k - 1 else self.b.namer.fresh()
            self.b.emit(f"{nxt} = insertelement {self.vty(ins.type)} {vec}, {ins.type} {lane}, i32 {j}")
            vec = nxt

    def visit_store(self, ins: Instruction) -> None:
        val, ptr = ins.operands
        if not self.tangents or not (ptr.is_local and ptr.name in self.act.pointers) or not is_float(val.type):
            return
        if ptr.name in self.interleaved:
            self.b.emit(f"store {self.vty(val.type)} {self.vtangent(val)}, ptr "
                        f"{self.memory_shadow(ptr, 0, ins, True)}, align {_ALIGN[val.type]}"
                        f"{self.alias_suffix(ins, True)}")
            return
        for j in range(self.k):
            if self.vector:
                lane = self.b.namer.fresh()
                self.b.emit(f"{lane} = extractelement {self.vty(val.type)} {self.vtangent(val)}, i32 {j}")
            else:
                lane = self.tangent(val, j)
            self.b.emit(f"store {val.type} {lane}, ptr {self.memory_shadow(ptr, j, ins, True)}"
                        f"{self.alias_suffix(ins, True)}")

    def visit_call(self, ins: Instruction) -> None:
        callee = ins.callee
        if callee.startswith(ALLOC_CALLS):
            if ins.result in self.act.pointers:
                self._shadow_allocation(ins)
        elif callee == "NRT_MemInfo_data_fast":
            if ins.result in self.act.pointers:
                for j in self.lanes(ins.result):
                    mi = self.shadow(ins.operands[0], j, ins)
                    if ins.operands[0].is_local and ins.operands[0].name in self.act.maybe_null:
                        mi = meminfo_or_standin(self.b, mi)
                    self.b.emit(f"{shadow_name(ins.result, j)} = call ptr @NRT_MemInfo_data_fast(ptr {mi})")
        elif callee in ("NRT_decref", "NRT_incref"):
            op = ins.operands[0]
            if op.is_local and op.name in self.act.pointers and self.tangents:
                for j in self.lanes(op.name):
                    self.b.emit(f"call void @{callee}(ptr {self.shadow(op, j, ins)})")
        elif callee.startswith("llvm.memset."):
            self._memset(ins)
        elif callee.startswith(("llvm.memcpy.", "llvm.memmove.")):
            self._memcpy(ins)
        elif self.is_active(ins) and self.tangents:
            name = rule_name_for_call(callee)
            self._apply_rule(ins, name)

    def visit_other(self, ins: Instruction) -> None:
        op = ins.opcode
        if op in RULES:
            self._apply_rule(ins, op)
        elif op in FLOAT_CASTS and self.vector:
            src = ins.operands[0]
            self.b.emit(f"{vector_tangent_name(ins.result)} = {op} {self.vty(src.type)} {self.vtangent(src)} to "
                        f"{self.vty(ins.type)}")
        elif op in FLOAT_CASTS:
            src = ins.operands[0]
            for j in range(self.k):
                self.b.emit(f"{tangent_name(ins.result, j)} = {op} {src.type} {self.tangent(src, j)} to {ins.type}")
        else:
            raise UnsupportedInstructionError(f"instruction `{ins.text}`", self.location(ins),
                                              "llad has no derivative for this instruction")

    # --- rules ------------------------------------------------------------------------------------
    def _apply_rule(self, ins: Instruction, name: str) -> None:
        rule, ty, b = RULES[name], ins.type, self.b
        primal = PrimalValues(lambda i: ins.operands[i].text, lambda: ref(ins.result))
        partials = [None] * len(rule.partials)
        for i, partial in enumerate(rule.partials):
            op = ins.operands[i]
            if partial is not None and op.is_local and op.name in self.act.values:
                partials[i] = partial(b, ty, primal)
        if self.vector:
            vt, total = self.vty(ty), "zeroinitializer"
            for i, d in enumerate(partials):
                if d is None:
                    continue
                t = self.vtangent(ins.operands[i])
                term = scaled(b, vt, d if d in (ONE, NEG_ONE) else self.splat(ty, d), t)
                total = b.fadd(vt, total, term)
            minus_zero = ", ".join([f"{ty} {fconst(ty, -0.0)}"] * self.k)
            b.emit(f"{vector_tangent_name(ins.result)} = fadd {vt} {total}, <{minus_zero}>")
            return
        for j in range(self.k):
            total = fconst(ty, 0.0)
            for i, d in enumerate(partials):
                if d is None:
                    continue
                t = self.tangent(ins.operands[i], j)
                term = scaled(b, ty, d, t)
                total = b.fadd(ty, total, term)
            b.emit(f"{tangent_name(ins.result, j)} = fadd {ty} {total}, {fconst(ty, -0.0)}")

    # --- memory -----------------------------------------------------------------------------------
    def _shadow_allocation(self, ins: Instruction) -> None:
        size, rest = ins.operands[0], ins.operands[1:]
        if ins.result in self.interleaved:
            size = Operand(size.type, self.scaled_size(size))
        args = ", ".join(f"{o.type} {o.text}" for o in [size, *rest])
        for j in self.lanes(ins.result):
            mi = shadow_name(ins.result, j)
            self.b.emit(f"{mi} = call ptr @{ins.callee}({args})")
            data = self.b.namer.fresh("sdata")
            self.b.emit(f"{data} = call ptr @NRT_MemInfo_data_fast(ptr {mi})")
            self.b.emit(memset_call(data, size.type, size.text))
        self.declarations[ins.callee] = self.fn.declarations.get(ins.callee, "")

    def _memset(self, ins: Instruction) -> None:
        dst, _, size = ins.operands[:3]
        if self.tangents and dst.is_local and dst.name in self.act.pointers:
            n = self.scaled_size(size) if dst.name in self.interleaved else size.text
            for j in self.lanes(dst.name):
                self.b.emit(memset_call(self.shadow(dst, j, ins), size.type, n))

    def _memcpy(self, ins: Instruction) -> None:
        dst, src, size = ins.operands[:3]
        if not self.tangents or not (dst.is_local and dst.name in self.act.pointers):
            return
        n = self.scaled_size(size) if dst.name in self.interleaved else size.text
        for j in self.lanes(dst.name):      # an active source has the destination's layout (analysis.layout)
            if src.is_local and src.name in self.act.pointers:
                self.b.emit(f"call void @{ins.callee}(ptr {self.shadow(dst, j, ins)}, ptr "
                            f"{self.shadow(src, j, ins)}, {size.type} {n}, i1 false)")
            else:
                self.b.emit(memset_call(self.shadow(dst, j, ins), size.type, n))


_ALIGN = {"double": 8, "float": 4, "half": 2}


def forward_function_body(fn: Function, act: Activity, k: int, location, on_return,
                          interleaved: frozenset = frozenset(), scopes=None) -> tuple[list[str], dict]:
    gen = ForwardGenerator(fn, act, k, location, on_return, interleaved, scopes)
    return gen.generate(), gen.declarations
