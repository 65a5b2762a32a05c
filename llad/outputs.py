"""The derivative's signature and its result layout, shared by both modes.

A derivative is a Numba-ABI function `i32 @llad.<mode>.<hash>(ptr %llad.ret, ptr %excinfo, <primal
arguments>, <shadow arguments>)`: the primal's exploded arguments, then for each shadowed parameter its
shadows, exploded the same way (shadow j of LLVM parameter `p` is `%"s<j>.p"`).  It writes one tuple to
`%llad.ret`: the primal result (when asked for, or when it holds a reference), then in reverse mode the
derivative of each Active parameter (and, for `tape_report`, the tape's used and reserved bytes), in
forward mode the k tangents of a Duplicated return.  The primal's own return slot is a local `%retptr`.
"""
from __future__ import annotations

from numba.core import types
from numba.core.registry import cpu_target

from .ir.builder import Builder, fconst
from .ir.model import Param
from .plan import Act, Plan


def returns_float_array(ret: types.Type) -> bool:
    return isinstance(ret, types.Array) and isinstance(ret.dtype, types.Float)


def array_result_in_reverse(fname: str, ret: types.Type) -> str:
    return (f"llad.autodiff: {fname} returns {ret}; reverse modes seed a float result only. Differentiate it "
            "with llad.autodiff_thunk (split mode: the forward thunk returns the result's shadow to seed), or "
            "pass llad.Const as the return activity to ignore the result")


def output_types(plan: Plan, return_type: types.Type) -> tuple[list, bool]:
    """(numba types of the result tuple, whether it starts with the primal result)."""
    # The primal result is returned when asked for, or when it holds a reference that must be released;
    # otherwise LLVM may delete the computations only it needed (sumsin's sum in reverse mode).
    scalar = isinstance(return_type, (types.Number, types.Boolean))
    outs, has_primal = [], return_type is not types.none and (plan.with_primal or not scalar)
    if has_primal:
        outs.append(return_type)
    if plan.reverse:
        if plan.split and plan.ret_activity is Act.DUP:      # the shadow of a returned array, to seed
            outs.append(return_type)
        outs += [plan.argtypes[i] for i, a in enumerate(plan.activities) if a is Act.ACTIVE]
        if plan.report_tape:
            outs += [types.int64, types.int64]
    elif plan.ret_activity is Act.DUP:
        outs += [return_type] * plan.width
    return outs, has_primal


class Outputs:
    """Signature, return slots and result tuple of one derivative."""

    def __init__(self, plan: Plan, primal, primal_params: list[Param]):
        self.plan, self.primal, self.primal_params = plan, primal, primal_params
        ret = primal.return_type
        self.types, self.has_primal = output_types(plan, ret)
        self.numba_type = types.Tuple(self.types) if self.types else types.Tuple([types.int8])
        context = cpu_target.target_context
        self.ret_llty = str(context.get_value_type(ret)) if ret is not types.none else "ptr"
        self.out_llty = str(context.get_value_type(self.numba_type))

    def params(self) -> list[Param]:
        plan = self.plan
        out = [Param("llad.ret", "ptr", "noalias"), Param("excinfo", "ptr", "noalias")]
        out += [Param(p.name, p.type) for p in self.primal_params[2:]]
        for i, pm in enumerate(self.primal.params):
            if plan.shadowtypes[i] and not pm.is_array:       # a float scalar's tangents (forward modes)
                out += [Param(f"d{j}.{pm.llvm_names[0]}", pm.llvm_types[0]) for j in range(len(plan.shadowtypes[i]))]
                continue
            for j in range(len(plan.shadowtypes[i])):
                for position, (n, ty) in enumerate(zip(pm.llvm_names, pm.llvm_types)):
                    # shadow data overlaps nothing else the derivative touches (the API checks it per call)
                    attr = "noalias" if position == 4 and plan.assume_noalias else ""
                    out.append(Param(f"s{j}.{n}", ty, attr))
        if plan.split:
            out += [Param("llad.phase", "i32"), Param("llad.frame", "i64"), Param("llad.seed", self.seed_llty)]
        return out

    @property
    def returns_array(self) -> bool:
        return isinstance(self.primal.return_type, types.Array)

    @property
    def shadow_output(self) -> bool:
        """Split mode returns the shadow of a returned array, which the caller seeds."""
        return self.plan.split and self.plan.ret_activity is Act.DUP

    def result_meminfo(self, b: Builder, shadow: bool = False) -> str:
        """The meminfo of the returned array (or of its shadow), from its return slot."""
        return b.load("ptr", '%"s0.retptr"' if shadow else "%retptr")

    @property
    def seed_llty(self) -> str:
        """The type of a split derivative's return seed (a dummy double when the return is not Active)."""
        return self.ret_llty if self.plan.ret_activity is Act.ACTIVE else "double"

    def numba_argtypes(self) -> tuple:
        """Numba types of the derivative's arguments after %llad.ret and %excinfo."""
        plan = self.plan
        flat = tuple(plan.argtypes) + tuple(t for shadows in plan.shadowtypes for t in shadows)
        if plan.split:
            flat += (types.int32, types.int64, types.float32 if self.seed_llty == "float" else types.float64)
        return flat

    def return_slots(self, b: Builder, interleaved: bool, seed: bool) -> None:
        """The primal's return slot, and its shadows (zeroed; seeded with 1 for reverse mode's Active return)."""
        ty, plan = self.ret_llty, self.plan
        b.alloca(ty, name="%retptr")
        if interleaved:
            b.alloca(f"[{plan.width} x {ty}]", name='%"s0.retptr"')
            b.store(f"[{plan.width} x {ty}]", "zeroinitializer", '%"s0.retptr"')
        elif plan.ret_activity is not Act.CONST:
            for j in range(plan.width if not plan.reverse else 1):
                b.alloca(ty, name=f'%"s{j}.retptr"')
                b.store(ty, fconst(ty, 1.0) if seed else "zeroinitializer", f'%"s{j}.retptr"')

    def store(self, b: Builder, extra=(), interleaved: bool = False) -> None:
        """Copy the primal result, the return tangents and `extra` (type, value) pairs into the result tuple."""
        values = []
        if self.has_primal:
            values.append((self.ret_llty, b.load(self.ret_llty, "%retptr")))
        if not self.plan.reverse and self.plan.ret_activity is Act.DUP:
            for j in range(self.plan.width):
                lane = b.gep(self.ret_llty, '%"s0.retptr"', [("i64", str(j))]) if interleaved else f'%"s{j}.retptr"'
                values.append((self.ret_llty, b.load(self.ret_llty, lane)))
        elif self.shadow_output:
            values.append((self.ret_llty, b.load(self.ret_llty, '%"s0.retptr"')))
        values += list(extra)
        for slot, (ty, v) in enumerate(values):
            b.store(ty, v, b.gep(self.out_llty, "%llad.ret", [("i32", "0"), ("i32", str(slot))]))


def no_need_disjointness(primal, plan: Plan) -> tuple:
    """The pairs of arrays that must not overlap for a forward derivative that drops the primal results of
    its DuplicatedNoNeed arrays (analysis.deadprimal): each such array against every other array argument."""
    if not (plan.no_need and plan.assume_noalias) or plan.reverse:
        return ()
    arrays = [i for i, p in enumerate(primal.params) if p.is_array]
    return tuple(((i, -1), (j, -1)) for i in arrays if plan.no_need[i] for j in arrays
                 if j != i and not (plan.no_need[j] and j < i))


def shadow_disjointness(primal, plan: Plan) -> tuple:
    """The pairs of arrays that must not overlap for the shadows' `noalias` to hold: each shadow
    against every other array argument and every other shadow (checked per call by the API)."""
    if not plan.assume_noalias:
        return ()
    arrays = [(i, -1) for i, p in enumerate(primal.params) if p.is_array]
    shadows = [(i, k) for i, s in enumerate(plan.shadowtypes) if primal.params[i].is_array for k in range(len(s))]
    pairs = []
    for n, (i, k) in enumerate(shadows):
        pairs += [((i, k), a) for a in arrays if a[0] != i]
        pairs += [((i, k), other) for other in shadows[n + 1:]]
    return tuple(pairs)
