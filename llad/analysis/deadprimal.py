"""Primal results nobody reads: the stores a forward derivative may drop for `DuplicatedNoNeed` arrays.

`DuplicatedNoNeed(v, dv)` tells llad that the caller will not look at the primal values left in `v`.
In forward mode that can remove most of the primal computation: for a Hessian-vector product
(forward over reverse) the primal gradient is such a result, and for a function linear in an input
the tangents need none of the primal values at all (the way a JAX `jvp(grad)` whose primal output is
unused is trimmed by XLA).  LLVM removes unused arithmetic, but not a chain of values that goes
through memory (a loop storing into an array that a later loop loads), so llad drops those stores
itself and leaves the rest to LLVM's dead-code elimination.

The analysis is a liveness over memory *object classes* (Enzyme's and LLVM's "underlying object"):

* every pointer has a set of objects it may point into: a parameter, an allocation site (an NRT
  allocation's meminfo, its data, a raw or reallocated buffer; a reallocation joins the class of the
  buffer it grows), an alloca, a global, or UNKNOWN (a pointer loaded from memory, an integer cast,
  an unknown call's result); getelementptr, phi and select carry their operands' sets;
* a class is *live* when the caller can see it (every parameter but the NoNeed data pointers, every
  global, an allocation whose pointer escapes: stored, returned, passed to an unknown call, cast to an
  integer where some integer is cast back) or when an instruction that is needed loads from it;
* an instruction is needed when it is a root (a terminator, a call with effects, a store through an
  UNKNOWN pointer, an atomic or volatile access) or when a needed instruction uses its value; a store,
  memset or memcpy is needed when it may write a live class (a memcpy then reads its source class).

A load from UNKNOWN makes every class live: nothing is dropped.  The result relies on the NoNeed
arrays not overlapping any other array argument; the API checks that per call (`alias_pairs`) and
takes the variant without this pass when they do.
"""
from __future__ import annotations

from ..ir.callees import CallKind, classify, meminfo_of_data_load
from ..ir.model import Function, Instruction

UNKNOWN = "?"

# calls with no effect on memory and no side effect: needed only when their result is
_PURE_CALLS = (CallKind.MATH, CallKind.DATA_POINTER, CallKind.MARKER)
# calls whose pointer operands llad understands: kept, but their pointers do not escape
_KNOWN_EFFECTS = (CallKind.ALLOC, CallKind.RAW_ALLOC, CallKind.REALLOC, CallKind.FREE, CallKind.REFCOUNT,
                  CallKind.MEMSET, CallKind.MEMCPY, CallKind.MARKER, CallKind.DATA_POINTER)
# uses of a pointer that neither read nor publish the memory behind it
_ADDRESS_ONLY = ("getelementptr", "phi", "select", "icmp", "ptrtoint")


def _holds_pointers(ty: str) -> bool:
    """A pointer type, or an aggregate or vector with pointers in it (`{i8*, i64}`, `[2 x ptr]`)."""
    return "ptr" in ty or "*" in ty


class _Classes:
    """Union-find over object names."""

    def __init__(self):
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def join(self, xs) -> None:
        xs = [self.find(x) for x in xs]
        for x in xs[1:]:
            self.parent[x] = xs[0]


def _global_object(text: str) -> str | None:
    """The object of a constant pointer operand: `@g` or a constant expression on it; None for null."""
    at = text.find("@")
    if at < 0:
        return None
    end = at + 1
    if text[end:end + 1] == '"':
        end = text.index('"', end + 1) + 1
    else:
        while end < len(text) and (text[end].isalnum() or text[end] in "-$._"):
            end += 1
    return "global:" + text[at:end]


class _Objects:
    """The objects every pointer value of `fn` may point into."""

    def __init__(self, fn: Function, classes: _Classes):
        self.fn, self.classes = fn, classes
        self.of: dict[str, frozenset] = {p.name: frozenset([f"param:{p.name}"]) for p in fn.params
                                         if p.type == "ptr"}
        changed = True
        while changed:                        # phis may be cyclic: iterate to the fixed point
            changed = False
            for b in fn.blocks:
                for ins in b.instructions:
                    if ins.result is None or ins.type != "ptr":
                        continue
                    objs = self._compute(ins)
                    if objs != self.of.get(ins.result):
                        self.of[ins.result] = objs
                        changed = True

    def operand(self, op) -> frozenset:
        if op.is_local:
            if op.type != "ptr" and _holds_pointers(op.type):
                return frozenset([UNKNOWN])     # an aggregate: the pointers in it are not tracked
            return self.of.get(op.name, frozenset())
        g = _global_object(op.text)
        return frozenset([g]) if g else frozenset()

    def _compute(self, ins: Instruction) -> frozenset:
        op = ins.opcode
        if op == "getelementptr":
            return self.operand(ins.operands[0])
        if op == "phi":
            return frozenset().union(*(self.operand(v) for v, _ in ins.incoming))
        if op == "select":
            return self.operand(ins.operands[1]) | self.operand(ins.operands[2])
        if op == "alloca":
            return frozenset([f"alloca:{ins.result}"])
        if op == "load":
            mi = meminfo_of_data_load(self.fn, ins)
            return self._data_of(mi) if mi is not None else frozenset([UNKNOWN])
        if op == "call":
            kind = classify(ins.callee)
            if kind is CallKind.ALLOC:        # a meminfo; its data is `data:mi:<site>`
                return frozenset([f"mi:{ins.result}"])
            if kind is CallKind.RAW_ALLOC:
                return frozenset([f"raw:{ins.result}"])
            if kind is CallKind.REALLOC:      # the grown buffer: one class with the buffer it copies
                objs = self.operand(ins.operands[0]) | {f"raw:{ins.result}"}
                self.classes.join(objs)
                return objs
            if kind is CallKind.DATA_POINTER:
                return self._data_of(ins.operands[0])
        return frozenset([UNKNOWN])

    def _data_of(self, meminfo) -> frozenset:
        """The data of a meminfo: known only for an NRT allocation of this function."""
        objs = self.operand(meminfo)
        if objs and all(o.startswith("mi:") for o in objs):
            return frozenset(f"data:{o}" for o in objs)
        return frozenset([UNKNOWN])


def dead_primal_stores(fn: Function, no_need: dict[str, tuple] | set[str]) -> list[Instruction]:
    """The stores, memsets and memcpys of `fn` that only write memory nobody needs, when the pointer
    parameters in `no_need` are data the caller does not read afterwards.  `no_need` maps each such data
    pointer to the other pointer parameters of its array (meminfo, parent): one of those reaching an
    unknown call or memory could reach the data too, which then counts as seen."""
    no_need = no_need if isinstance(no_need, dict) else {p: () for p in no_need}
    fn.reindex()
    classes = _Classes()
    objects = _Objects(fn, classes)
    live: set[str] = set()
    writers: dict[str, list[Instruction]] = {}        # class -> stores, memsets, memcpys that may write it
    needed: set[int] = set()
    work: list[Instruction] = []

    def need(ins: Instruction) -> None:
        if id(ins) not in needed:
            needed.add(id(ins))
            work.append(ins)

    def make_live(objs) -> bool:
        """Mark classes live (and their writers needed); False when UNKNOWN is among them."""
        for o in objs:
            if o == UNKNOWN:
                return False
            c = classes.find(o)
            if c not in live:
                live.add(c)
                for w in writers.get(c, ()):
                    need(w)
        return True

    roots, escaping, header_written = [], [], False
    held: dict[str, set] = {}                 # class -> objects of the pointers stored into it
    copies = []                               # (destination, source) objects of each memcpy
    # an address turned into an integer (llad's own overlap checks do) is only compared, unless some integer
    # becomes a pointer again: then it escapes
    address_only = _ADDRESS_ONLY if not any(i.opcode == "inttoptr" for b in fn.blocks for i in b.instructions) \
        else tuple(o for o in _ADDRESS_ONLY if o != "ptrtoint")
    for b in fn.blocks:
        for ins in b.instructions:
            op = ins.opcode
            written = None
            if op == "store":
                written = ins.operands[1]
            elif op == "call" and classify(ins.callee) in (CallKind.MEMSET, CallKind.MEMCPY):
                written = ins.operands[0]
            if written is not None:
                objs = objects.operand(written)
                if UNKNOWN in objs or "volatile" in ins.flags or ins.ordering:
                    roots.append(ins)
                for o in objs - {UNKNOWN}:
                    writers.setdefault(classes.find(o), []).append(ins)
                header_written |= any(o.startswith("mi:") for o in objs)
                if op == "store" and _holds_pointers(ins.operands[0].type):
                    # a pointer, or an aggregate holding pointers (their objects unknown: say UNKNOWN)
                    value = objects.operand(ins.operands[0]) if ins.operands[0].type == "ptr" else {UNKNOWN}
                    for o in objs:
                        held.setdefault(classes.find(o), set()).update(value)
                elif op == "call" and classify(ins.callee) is CallKind.MEMCPY:
                    copies.append((objs, objects.operand(ins.operands[1])))
                continue
            if ins.is_terminator or op in ("fence", "atomicrmw", "cmpxchg", "va_arg"):
                roots.append(ins)
            elif op == "call":
                kind = classify(ins.callee)
                if kind not in _PURE_CALLS:
                    roots.append(ins)
                if kind not in _KNOWN_EFFECTS:
                    escaping += [o for o in ins.operands if _holds_pointers(o.type)]
            if op not in address_only and op not in ("load", "call"):
                escaping += [o for o in ins.operands if _holds_pointers(o.type)]
    # a data pointer is known from its meminfo only while no store writes into a meminfo
    if header_written and any(o.startswith("data:") for objs in objects.of.values() for o in objs):
        return []
    visible = _visible(fn, no_need, objects, classes, escaping, held, copies)
    make_live(visible - {UNKNOWN})
    for ins in roots:
        need(ins)
    while work:
        ins = work.pop()
        for name in ins.local_operands():
            d = fn.defs.get(name)
            if d is not None:
                need(d)
        if ins.opcode == "load" and not make_live(objects.operand(ins.operands[0])):
            return []
        if ins.opcode == "call" and classify(ins.callee) is CallKind.MEMCPY and \
                not make_live(objects.operand(ins.operands[1])):
            return []
    return [ins for ws in writers.values() for ins in ws if id(ins) not in needed]


def _visible(fn: Function, no_need: dict, objects: _Objects, classes: _Classes, escaping, held, copies) -> set:
    """What the caller, or code llad does not see, may read: every parameter but the NoNeed data, the
    globals, and what escapes.  An object escapes when its pointer reaches an unknown call, a return, an
    integer cast back or memory that is visible or escaped; a meminfo's data escapes with it, and a NoNeed
    array's data with its meminfo or parent.  A pointer stored into the function's own memory (a tape)
    escapes only with that memory, or when a pointer loaded back from memory (UNKNOWN) escapes."""
    base = {f"param:{p.name}" for p in fn.params if p.type == "ptr" and p.name not in no_need}
    base |= {o for objs in objects.of.values() for o in objs if o.startswith("global:")}
    escaped = set().union(*(objects.operand(op) for op in escaping))
    while True:
        for dst, src in copies:               # a memcpy carries the pointers stored in its source along
            moved = set().union(*(held.get(classes.find(o), ()) for o in src))
            if UNKNOWN in src:
                moved = set().union(*held.values())
            for o in dst:
                held.setdefault(classes.find(o), set()).update(moved)
        new = set(escaped)
        for o in base | escaped | {UNKNOWN}:
            new |= held.get(classes.find(o), set())
        if UNKNOWN in new:
            new |= set().union(*held.values())
        new |= {"data:" + o for o in new if o.startswith("mi:")}
        new |= {f"param:{data}" for data, siblings in no_need.items() if any(f"param:{s}" in new for s in siblings)}
        if new == escaped:
            return base | escaped
        escaped = new


def drop_dead_primal_stores(fn: Function, no_need: dict[str, tuple]) -> int:
    """Remove what `dead_primal_stores` finds; the number removed."""
    dead = {id(i) for i in dead_primal_stores(fn, no_need)}
    if not dead:
        return 0
    for b in fn.blocks:
        b.instructions = [i for i in b.instructions if id(i) not in dead]
    fn.reindex()
    return len(dead)
