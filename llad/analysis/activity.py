"""Activity analysis: which values carry derivatives and which pointers need shadows.

A float value is *active* when it depends on an active input (an `Active` scalar, or a load from
memory that has a shadow).  A pointer is active when it points into memory with a shadow: the data
of a `Duplicated` array, the return slot of an active return, or an array allocated inside the
function that an active value is stored into.  Integer, index and pointer arithmetic never carries
a derivative.  The analysis iterates to a fixed point because storing an active value makes an
allocation active, which makes its loads active.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import ActivityError, NoRuleError, UnsupportedInstructionError
from ..ir.callees import CallKind, classify, meminfo_of_data_load, python_name
from ..ir.model import Function, Instruction, is_float
from ..ir.printer import print_instruction
from ..rules import RULES

ALLOCATING = (CallKind.ALLOC, CallKind.WRAP, CallKind.RAW_ALLOC, CallKind.REALLOC)


@dataclass
class Activity:
    values: set[str] = field(default_factory=set)        # active float values
    pointers: set[str] = field(default_factory=set)      # pointers with a shadow
    allocations: set[str] = field(default_factory=set)   # meminfo values of active allocations
    roots: dict[str, frozenset] = field(default_factory=dict)   # pointer -> its roots
    maybe_null: set[str] = field(default_factory=set)     # pointers whose shadow may be null (mixed memory)

    def is_active(self, name: str) -> bool:
        return name in self.values or name in self.pointers


def pointer_roots(fn: Function) -> dict[str, frozenset]:
    """Where each pointer comes from: ('param', name), ('alloc', the allocating call), ('other', name).

    A pointer loaded from memory the function allocated itself gets the roots of the pointers the function
    stores into that memory (a reverse derivative keeps the shadows of arrays allocated in a loop on its
    tape; differentiated again, those are what it reads back), unless a call other than llad's tape
    bookkeeping may write into it: then, like any other loaded pointer, it has an unknown origin."""
    roots: dict[str, frozenset] = {}
    for p in fn.params:
        if p.type.startswith("ptr") or p.type.endswith("*"):
            roots[p.name] = frozenset([("param", p.name)])
    heap: dict[tuple, frozenset] = {}           # an allocation -> roots of the pointers stored into it
    opaque: set[tuple] = set()                  # allocations a call may store pointers into
    changed = True
    while changed:
        changed = False
        for b in fn.blocks:
            for ins in b.instructions:
                if ins.opcode == "call" and classify(ins.callee) not in _NO_POINTER_WRITES:
                    reached = {r for o in ins.operands if o.is_local for r in roots.get(o.name, ())}
                    if not reached <= opaque:
                        opaque |= reached
                        changed = True
                for into, stored in _pointer_writes(fn, ins, roots, heap):
                    for r in into:
                        if not stored <= heap.get(r, frozenset()):
                            heap[r] = heap.get(r, frozenset()) | stored
                            changed = True
                if ins.result is None or not (ins.type == "ptr" or ins.type.endswith("*")):
                    continue
                new = _roots_of(fn, ins, roots, heap, opaque)
                if roots.get(ins.result) != new:
                    roots[ins.result] = new
                    changed = True
    return roots


# calls that may receive a pointer into function-allocated memory without writing pointers into it
_NO_POINTER_WRITES = (CallKind.FREE, CallKind.REFCOUNT, CallKind.MEMSET, CallKind.DATA_POINTER, CallKind.MARKER,
                      CallKind.MATH, CallKind.INTEGER, CallKind.REALLOC, CallKind.MEMCPY)


def _own_memory(roots: frozenset) -> bool:
    return bool(roots) and all(kind == "alloc" for kind, _ in roots)


def _pointer_writes(fn: Function, ins: Instruction, roots: dict, heap: dict):
    """(allocation roots written, roots of the pointers written there) for a store of a pointer into the
    function's own memory, and for realloc and memcpy, which carry stored pointers along."""
    def of(op):
        return roots.get(op.name, frozenset()) if op.is_local else frozenset()

    def content(rs):
        out = frozenset()
        for r in rs:
            out |= heap.get(r, frozenset())
        return out
    if ins.opcode == "store" and ins.operands[0].type == "ptr" and _own_memory(of(ins.operands[1])):
        val = ins.operands[0]
        stored = of(val) if val.is_local else (frozenset([("global", val.text)]) if val.text.startswith("@")
                                               else frozenset())
        return [(of(ins.operands[1]), stored)]
    if ins.opcode == "call" and ins.operands:
        kind = classify(ins.callee)
        if kind is CallKind.REALLOC and ins.result is not None:
            return [(frozenset([("alloc", ins.result)]), content(of(ins.operands[0])))]
        if kind is CallKind.MEMCPY and _own_memory(of(ins.operands[0])):
            return [(of(ins.operands[0]), content(of(ins.operands[1])))]
    return []


# llad's own stand-ins for a shadow that is null (forward/shadows.py): a derivative differentiated again
# (forward over reverse) stores active values into the sink and reads the zeros.  They are memory without
# a derivative, like a Const array's: the outer derivative's stores through them go to its own sink and
# its loads read zero tangents (nothing reads the sink back, the zeros are constants).
SCRATCH_GLOBALS = ("@llad.sink.", "@llad.zero.", "@llad.nomi")


def _roots_of(fn: Function, ins: Instruction, roots: dict[str, frozenset], heap: dict, opaque: set[tuple]) -> frozenset:
    def of(op):
        if op.is_local:
            return roots.get(op.name, frozenset())
        if op.text.startswith(SCRATCH_GLOBALS):
            return frozenset([("scratch", op.text)])
        return frozenset([("global", op.text)]) if op.text.startswith("@") else frozenset()

    if ins.opcode == "getelementptr":
        return of(ins.operands[0])
    if ins.opcode == "select":
        return of(ins.operands[1]) | of(ins.operands[2])
    if ins.opcode == "phi":
        out = frozenset()
        for v, _ in ins.incoming:
            out |= of(v)
        return out
    kind = classify(ins.callee) if ins.opcode == "call" else None
    if kind in ALLOCATING:
        return frozenset([("alloc", ins.result)])
    mi = ins.operands[0] if kind is CallKind.DATA_POINTER else meminfo_of_data_load(fn, ins)
    if mi is not None and mi.is_local:
        alloc = frozenset(("alloc", r[1]) for r in roots.get(mi.name, ()) if r[0] == "alloc")
        if alloc:
            return alloc
    elif ins.opcode == "load" and ins.operands[0].is_local:
        where = roots.get(ins.operands[0].name, frozenset())
        if _own_memory(where) and not where & opaque:
            stored = frozenset()
            for r in where:
                stored |= heap.get(r, frozenset())
            if stored and not any(kind == "other" for kind, _ in stored):
                return stored
    return frozenset([("other", ins.result)])


def analyse_activity(fn: Function, active_params: set[str], active_pointer_params: set[str],
                     const_pointer_params: set[str], location, discarded: frozenset = frozenset()) -> Activity:
    """`active_params`: float parameters that are Active; `active_pointer_params`: pointers with a shadow
    (Duplicated data pointers, the return slot); `const_pointer_params`: data of Const arrays;
    `discarded`: pointer parameters whose derivative nobody asked for (the return slot of a Const return)."""
    act = Activity(roots=pointer_roots(fn))
    act.values |= active_params
    active_roots = {("param", p) for p in active_pointer_params}
    while True:
        before = (len(act.values), len(act.pointers), len(active_roots))
        act.pointers = {n for n, r in act.roots.items() if r & active_roots}
        for b in fn.blocks:
            for ins in b.instructions:
                _visit(fn, ins, act, active_roots, const_pointer_params, location, discarded)
        active_roots -= {r for r in active_roots if r[0] == "scratch"}    # never given a shadow
        if (len(act.values), len(act.pointers), len(active_roots)) == before:
            break
    act.allocations = {r[1] for r in active_roots if r[0] == "alloc"}
    act.maybe_null = {n for n in act.pointers if act.roots[n] - active_roots}
    if active_roots:
        _refuse_untracked_float_memory(fn, act, location)
        _refuse_escaping_shadowed_pointers(fn, act, location)
    return act


def _refuse_escaping_shadowed_pointers(fn: Function, act: Activity, location) -> None:
    """A pointer into memory with a derivative, stored in a stack slot that a call receives (Numba
    boxing an array for `objmode`, a foreign function): the callee may read or write the array, and
    no derivative follows it."""
    from ..ir.forwarding import base_alloca, reads_slots_only
    holders = set()
    for b in fn.blocks:
        for ins in b.instructions:
            if ins.opcode == "store" and ins.operands[0].is_local and ins.operands[0].name in act.pointers \
                    and ins.operands[1].is_local:
                slot = base_alloca(fn, ins.operands[1].name)
                if slot is not None:
                    holders.add(slot)
    if not holders:
        return
    for b in fn.blocks:
        for ins in b.instructions:
            if ins.opcode != "call" or reads_slots_only(ins) or classify(ins.callee) is CallKind.MEMSET:
                continue
            if any(o.is_local and base_alloca(fn, o.name) in holders for o in ins.operands):
                raise NoRuleError(
                    f"call to `{ins.callee}`", location(ins),
                    "it receives an array that carries a derivative (boxed for object mode or passed to a "
                    "foreign function), which llad cannot follow; keep object-mode blocks and foreign calls "
                    "away from differentiated arrays, or mark the array Const")


def _refuse_untracked_float_memory(fn: Function, act: Activity, location) -> None:
    """A float load or store through a pointer llad cannot trace to an array (one loaded from memory,
    an integer turned into a pointer, a foreign call's result) might touch memory that has a
    derivative: rather than silently treat it as constant, refuse."""
    for b in fn.blocks:
        for ins in b.instructions:
            if ins.opcode == "load" and is_float(ins.type):
                ptr = ins.operands[0]
            elif ins.opcode == "store" and is_float(ins.operands[0].type):
                ptr = ins.operands[1]
            else:
                continue
            roots = act.roots.get(ptr.name, frozenset()) if ptr.is_local else frozenset()
            if ptr.is_local and ptr.name in fn.opaque_result_slots:
                continue        # a custom rule's result slot: its value goes through the rule (custom.py)
            if any(kind == "other" for kind, _ in roots):
                raise UnsupportedInstructionError(
                    f"`{print_instruction(ins)}`", location(ins),
                    "it reads or writes floats through a pointer llad cannot trace to an array (the pointer "
                    "was loaded from memory), so llad cannot tell whether it carries a derivative; copy the "
                    "array (e.g. `y = x.copy()` before reshaping), or mark every array argument Const")


def _operand_active(act: Activity, op) -> bool:
    return op.is_local and op.name in act.values


def _visit(fn, ins: Instruction, act: Activity, active_roots: set, const_ptrs: set[str], location,
           discarded) -> None:
    op = ins.opcode
    if op == "store":
        val, ptr = ins.operands
        if val.is_local and val.type == "ptr" and _into_active_return(act, ptr, discarded):
            _require_returned_memory(ins, act.roots.get(val.name, frozenset()), const_ptrs, location)
            active_roots |= act.roots.get(val.name, frozenset())
        elif _operand_active(act, val):
            roots = act.roots.get(ptr.name, frozenset()) if ptr.is_local else frozenset()
            roots = frozenset(r for r in roots if not (r[0] == "param" and r[1] in discarded))
            _require_shadow_for_store(ins, roots, const_ptrs, location)
            active_roots |= roots
        return
    if op == "call" and classify(ins.callee) is CallKind.BLAS:
        _visit_blas(ins, act, active_roots, const_ptrs, location)
        return
    if op == "call" and classify(ins.callee) is CallKind.CUSTOM_CALL:
        _visit_custom_call(ins, act, active_roots, const_ptrs, location)
        return
    if op == "call" and classify(ins.callee) is CallKind.CUSTOM_RESULT:
        from ..custom_arrays import call_active
        call = fn.defs.get(ins.operands[1].name)
        if call is not None and call_active(call, act):
            act.values.add(ins.result)
        return
    if op == "call" and classify(ins.callee) is CallKind.MEMCPY:
        dst, src = ins.operands[0], ins.operands[1]
        if src.is_local and src.name in act.pointers and dst.is_local:
            roots = act.roots.get(dst.name, frozenset())
            _require_shadow_for_store(ins, roots, const_ptrs, location)
            active_roots |= roots
        return
    if op == "load" and ins.result in act.pointers and ins.operands[0].is_local \
            and meminfo_of_data_load(fn, ins) is None:
        # its shadow is read from the shadow of the memory it is loaded from, which must then have one
        active_roots |= act.roots.get(ins.operands[0].name, frozenset())
        return
    if ins.result is None or not is_float(ins.type):
        if op == "call":
            _check_call(fn, ins, act, location)
        elif op not in _ENDS_A_DERIVATIVE and any(_operand_active(act, o) for o in ins.operands):
            # e.g. a bitcast of a float to an integer: its derivative would silently vanish
            raise UnsupportedInstructionError(
                f"`{print_instruction(ins)}`", location(ins),
                "an active float value flows into an operation llad has no derivative for (a bit-level "
                "reinterpretation or an aggregate); rewrite it with arithmetic, or mark its inputs Const")
        return
    if op == "load":
        ptr = ins.operands[0]
        if ptr.is_local and ptr.name in act.pointers:
            act.values.add(ins.result)
        return
    if op == "phi" or op == "select" or op in RULES or op in ("fptrunc", "fpext"):
        operands = ins.operands[1:] if op == "select" else ins.operands
        if any(_operand_active(act, o) for o in operands):
            act.values.add(ins.result)
        return
    if op == "call":
        _check_call(fn, ins, act, location)
        if any(_operand_active(act, o) for o in ins.operands):
            act.values.add(ins.result)


def _visit_blas(ins: Instruction, act: Activity, active_roots: set, const_ptrs: set[str], location) -> None:
    """A BLAS call (blas.py): its output (memory, or dot's value) is active when an input's memory is."""
    from ..blas import blas_rule, refuse_active_scalars
    rule = blas_rule(ins.callee)
    refuse_active_scalars(ins, act, location)
    if not any(ins.operands[i].is_local and ins.operands[i].name in act.pointers for i in rule.inputs):
        return
    if rule.output is None:
        act.values.add(ins.result)
        return
    out = ins.operands[rule.output]
    roots = act.roots.get(out.name, frozenset()) if out.is_local else frozenset()
    _require_shadow_for_store(ins, roots, const_ptrs, location)
    active_roots |= roots


def _visit_custom_call(ins: Instruction, act: Activity, active_roots: set, const_ptrs: set[str], location) -> None:
    """A custom rule's function with array arguments (custom_arrays.py): when a derivative reaches it, the
    memory of each float array it may write holds active values afterwards."""
    from ..custom_arrays import call_active, refuse_const_outputs, written_arrays
    if not call_active(ins, act):
        return
    refuse_const_outputs(ins, act, const_ptrs, location)
    for op in written_arrays(ins):
        roots = act.roots.get(op.name, frozenset()) if op.is_local else frozenset()
        _require_shadow_for_store(ins, roots, const_ptrs, location)
        active_roots |= roots


# operations on active floats whose non-float result legitimately carries no derivative
_ENDS_A_DERIVATIVE = {"fcmp", "fptosi", "fptoui", "store", "ret", "br", "switch", "phi", "select"}


def _check_call(fn: Function, ins: Instruction, act: Activity, location) -> None:
    kind = classify(ins.callee)
    if kind not in (CallKind.MATH, CallKind.INDIRECT, CallKind.JITTED, CallKind.UNKNOWN):
        return      # memory, runtime bookkeeping, integer intrinsics
    if kind is CallKind.MATH:
        return
    if not any(_operand_active(act, o) or (o.is_local and o.name in act.pointers) for o in ins.operands):
        return
    if kind is CallKind.INDIRECT:
        raise NoRuleError(
            "an indirect call (a recursive @njit function, or a ctypes/cffi function pointer)", location(ins),
            "llad differentiates calls by inlining them, which recursion and foreign function pointers "
            "prevent; rewrite the recursion as a loop, or keep the call's arguments Const")
    from ..custom_arrays import helper_of
    if helper_of(ins.callee) is not None:
        what, name = helper_of(ins.callee)
        raise NoRuleError(f"the {what} of `{name}` (a custom rule with array arguments)", location(ins),
                          "llad does not differentiate a derivative through a custom rule with array arguments "
                          "again (nested differentiation such as llad.hvp); give the function a rule for "
                          "scalars, or leave it undecorated so that llad differentiates its body")
    if ins.callee.startswith(("llad.rev.", "llad.fwd.")):
        raise NoRuleError(f"a call to `{ins.callee}`, llad's derivative of a recursive function", location(ins),
                          "llad does not differentiate a derivative through a recursive call again (nested "
                          "differentiation such as llad.hvp); write the recursion as a loop for that")
    if kind is CallKind.JITTED or ins.callee in fn.defined:
        raise NoRuleError(
            f"a call to `{python_name(ins.callee) or ins.callee}` that llad could not inline (recursion?)",
            location(ins), "llad differentiates calls by inlining them; rewrite the recursion as a loop")
    raise NoRuleError(f"call to `{ins.callee}`", location(ins),
                      "llad has no derivative rule for it; mark the arguments that reach it Const, or add a "
                      "rule to llad.rules")


def _into_active_return(act: Activity, ptr, discarded) -> bool:
    """Whether `ptr` points into the return slot of a returned array whose tangent was asked for."""
    return ptr.is_local and "retptr" not in discarded and ("param", "retptr") in act.roots.get(ptr.name, ())


def _require_returned_memory(ins, roots, const_ptrs, location) -> None:
    """A returned array's tangent is an array: its memory needs a shadow (a zeroed one when nothing
    active is written to it)."""
    for kind, name in roots:
        if (kind == "param" and (name in const_ptrs or name in ("excinfo", "retptr"))) or kind in ("other", "global", "scratch"):
            what = "an array annotated Const" if kind == "param" else "memory llad cannot give a shadow to"
            raise ActivityError(
                "the returned array", location(ins),
                f"it is (or views) {what}, so it has no tangent; annotate that argument Duplicated, or pass "
                "llad.Const as the return activity")


def _require_shadow_for_store(ins, roots, const_ptrs, location) -> None:
    for kind, name in roots:
        if kind == "param" and name in const_ptrs:
            raise ActivityError(
                f"`{print_instruction(ins)}`", location(ins),
                "an active value is stored into an array annotated Const; annotate that array "
                "Duplicated(x, dx) (or DuplicatedNoNeed) so its derivative has somewhere to go")
        if kind in ("other", "global") or (kind == "param" and name in ("excinfo",)):
            raise ActivityError(
                f"`{print_instruction(ins)}`", location(ins),
                "an active value is stored into memory llad cannot give a shadow to "
                "(a pointer loaded from memory or a global)")
