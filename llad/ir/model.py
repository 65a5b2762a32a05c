"""llad's model of LLVM IR: modules, functions, blocks, instructions, operands, types.

The parser reads the primal into this model, the generators build the derivative in it, and the
printer (printer.py) turns it into text once, at the end.  An instruction has one source of truth:
its fields (opcode, operands, flags, ...); its text is printed from them (`print_instruction`), never
stored.

Values are referred to by their textual form (`%x`, `%"s0.x"`, `0.0`, `@g`, `null`) inside an
`Operand`, which pairs a value with its type, as LLVM's text does.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

FLOAT_TYPES = ("double", "float")

_PLAIN_NAME = re.compile(r"^[-a-zA-Z$._][-a-zA-Z$._0-9]*$")

# bytes of the scalar types llad keeps, copies or addresses (x86-64 data layout: natural alignment)
TYPE_SIZES = {"double": 8, "i64": 8, "ptr": 8, "float": 4, "i32": 4, "half": 2, "i16": 2, "i8": 1, "i1": 1}


def size_of(ty: str) -> int | None:
    return TYPE_SIZES.get(ty)


def ref(name: str) -> str:
    """The textual reference to a local value or block named `name`."""
    return "%" + name if _PLAIN_NAME.match(name) else '%"' + name + '"'


def global_ref(name: str) -> str:
    """The textual reference to a global or function named `name`."""
    return "@" + name if _PLAIN_NAME.match(name) else '@"' + name + '"'


def unref(text: str) -> str:
    """The name behind a `%name` / `%"name"` reference."""
    body = text[1:]
    return body[1:-1] if body.startswith('"') else body


def is_float(ty: str) -> bool:
    return ty in FLOAT_TYPES


def vector_of(ty: str, k: int) -> str:
    return f"<{k} x {ty}>"


@dataclass
class Operand:
    """A typed value as it appears in an instruction: `double %x`, `i64 3`, `ptr @g`."""

    type: str
    text: str
    attrs: str = ""           # parameter attributes at a call site (`noundef nonnull`)

    @property
    def is_local(self) -> bool:
        return self.text.startswith("%")

    @property
    def name(self) -> str:
        return unref(self.text)


@dataclass
class Instruction:
    opcode: str
    result: str | None            # name without '%', or None
    type: str                     # result type ('void' when none); for a store, the stored value's type
    operands: list[Operand]       # in source order; for calls the arguments; for br/switch the condition
    block: Block | None = None
    flags: tuple[str, ...] = ()   # nsw, nuw, exact, inbounds, fast-math flags, tail, volatile, atomic, ...
    predicate: str = ""           # fcmp / icmp
    callee: str = ""              # call: the function name without '@'
    incoming: list[tuple[Operand, str]] = field(default_factory=list)   # phi: (value, block name)
    targets: list[str] = field(default_factory=list)                    # br / switch: block names
    cases: list[str] = field(default_factory=list)                      # switch: the case values
    source_type: str = ""         # getelementptr source element type, load type, alloca type
    indices: tuple[int, ...] = ()  # extractvalue / insertvalue
    align: int | None = None      # load / store / alloca
    ordering: str = ""            # atomic load / store: monotonic, ...
    metadata: tuple[tuple[str, str], ...] = ()   # (kind, node): ("alias.scope", "!12")

    @property
    def is_terminator(self) -> bool:
        return self.opcode in ("br", "ret", "switch", "unreachable")

    def local_operands(self) -> list[str]:
        """Names of local values this instruction reads (phi incoming values included)."""
        if self.opcode == "phi":
            return [v.name for v, _ in self.incoming if v.is_local]
        return [o.name for o in self.operands if o.is_local]

    def __repr__(self) -> str:
        return f"<{self.opcode} {self.result or ''}>"


@dataclass
class Block:
    name: str
    instructions: list[Instruction] = field(default_factory=list)
    preds: list[str] = field(default_factory=list)

    @property
    def terminator(self) -> Instruction:
        return self.instructions[-1]

    @property
    def phis(self) -> list[Instruction]:
        return [i for i in self.instructions if i.opcode == "phi"]

    @property
    def body(self) -> list[Instruction]:
        """Instructions other than phis and the terminator."""
        return [i for i in self.instructions if i.opcode != "phi" and not i.is_terminator]

    @property
    def succs(self) -> list[str]:
        return list(dict.fromkeys(self.terminator.targets))


@dataclass
class Param:
    name: str
    type: str
    attrs: str = ""               # `noalias`, ...


@dataclass
class Function:
    name: str
    return_type: str
    params: list[Param]
    blocks: list[Block]
    globals_text: list[str] = field(default_factory=list)        # primal globals the body refers to
    declarations: dict[str, str] = field(default_factory=dict)   # callee name -> its `declare` line
    defined: dict[str, str] = field(default_factory=dict)        # other functions of the primal module
    attributes: str = ""          # function attributes after the parameter list (`alwaysinline`)
    linkage: str = ""             # `internal`, ...
    # stack slots a kept call (a custom rule's function) returns its float result through (custom.py)
    opaque_result_slots: set[str] = field(default_factory=set)
    # comparisons with zero of the adjoints a derivative's reverse skips on (analysis.zeroskip): name -> predicate
    zero_tests: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        self.reindex()

    def reindex(self) -> None:
        """Recompute definitions, predecessors and block lookup after blocks changed."""
        self.block_map = {b.name: b for b in self.blocks}
        self.defs: dict[str, Instruction] = {}
        for b in self.blocks:
            for ins in b.instructions:
                ins.block = b
                if ins.result is not None:
                    self.defs[ins.result] = ins
        for b in self.blocks:
            b.preds = []
        for b in self.blocks:
            if b.instructions:
                for s in b.succs:
                    self.block_map[s].preds.append(b.name)
        self.param_types = {p.name: p.type for p in self.params}

    @property
    def entry(self) -> Block:
        return self.blocks[0]

    def users(self) -> dict[str, list[Instruction]]:
        out: dict[str, list[Instruction]] = {}
        for b in self.blocks:
            for ins in b.instructions:
                for n in ins.local_operands():
                    out.setdefault(n, []).append(ins)
        return out


@dataclass
class Module:
    """What the derivative module holds besides its functions' bodies."""

    header: list[str] = field(default_factory=list)              # target datalayout / triple lines
    types: dict[str, list[str]] = field(default_factory=dict)    # named struct types: name -> field types
    globals: dict[str, str] = field(default_factory=dict)        # name -> definition line
    declarations: dict[str, object] = field(default_factory=dict)  # name -> (return type, [argument types]),
    #                                                                or the primal's own `declare` line
    carried: dict[str, str] = field(default_factory=dict)        # primal functions carried as they are
    functions: list[Function] = field(default_factory=list)
    metadata: list[str] = field(default_factory=list)            # module-level metadata nodes
    libraries: list = field(default_factory=list)                # Numba code libraries to link (custom rules)

    def declare(self, name: str, ret: str, argtypes: list[str]) -> None:
        self.declarations.setdefault(name, (ret, list(argtypes)))
