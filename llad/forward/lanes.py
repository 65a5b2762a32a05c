"""One path for scalar and k-lane tangents (in the spirit of Enzyme's `applyChainRule(width, ...)`).

With one direction the tangent of a float value `%v` is a scalar `%"d0.v"`; with k directions
(`BatchDuplicated`, vector mode) it is one `<k x T>` vector `%"dv.v"`, so each partial derivative is
computed once and multiplies all k directions in one SIMD operation.  Visitors ask this helper for the
tangent type, the tangent of an operand, and how to scale it, and never branch on k themselves.
"""
from __future__ import annotations

from ..analysis.activity import Activity
from ..ir.builder import Builder, fconst
from ..ir.model import Operand, ref, vector_of
from ..rules import NEG_ONE, ONE


class Lanes:
    def __init__(self, b: Builder, act: Activity, k: int):
        self.b, self.act, self.k = b, act, k
        self.vector = k > 1

    def ty(self, ty: str) -> str:
        """The type of a tangent of a `ty` value."""
        return vector_of(ty, self.k) if self.vector else ty

    def name(self, result: str) -> str:
        """The tangent of the value named `result`."""
        return ref(f"dv.{result}") if self.vector else ref(f"d0.{result}")

    def of(self, op: Operand) -> str:
        """The tangent of an operand: its tangent value, or zero when it is inactive."""
        if op.is_local and op.name in self.act.values:
            return self.name(op.name)
        return "zeroinitializer" if self.vector else fconst(op.type, 0.0)

    def zero(self, ty: str) -> str:
        return "zeroinitializer" if self.vector else fconst(ty, 0.0)

    def scale(self, ty: str, partial: str, tangent: str) -> str:
        """partial * tangent, the partial a scalar (splat across the lanes)."""
        vt = self.ty(ty)
        if partial == ONE:
            return tangent
        if partial == NEG_ONE:
            return self.b.fneg(vt, tangent)
        return self.b.fmul(vt, self.b.splat(ty, partial, self.k) if self.vector else partial, tangent)

    def combine(self, ty: str, lanes: list[str], name: str) -> str:
        """The tangent `name` from one scalar per direction (with one direction: that scalar, which the
        caller already named `name`)."""
        if not self.vector:
            return lanes[0]
        vec = "poison"
        for j, v in enumerate(lanes):
            vec = self.b.insertelement(self.ty(ty), vec, ty, v, j, name=name if j == self.k - 1 else None)
        return vec

    def lane(self, ty: str, tangent: str, j: int) -> str:
        """Direction j of a tangent."""
        return self.b.extractelement(self.ty(ty), tangent, j) if self.vector else tangent

    def minus_zero(self, ty: str) -> str:
        """-0.0 in every lane: x + (-0.0) is x exactly, so a sum can be named without changing it."""
        if not self.vector:
            return fconst(ty, -0.0)
        return "<" + ", ".join([f"{ty} {fconst(ty, -0.0)}"] * self.k) + ">"
