"""llad's model of an LLVM function: blocks, instructions, operands, types.

Only what the AD pass reads is modelled structurally (opcode, result, typed operands, the callee of a
call, phi incoming pairs, branch targets, comparison predicates).  Every instruction also keeps its
sanitised text, so that an instruction the pass does not need to understand (inactive integer code)
can be re-emitted as it is, with its operands renamed.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

FLOAT_TYPES = ("double", "float")

_PLAIN_NAME = re.compile(r"^[-a-zA-Z$._][-a-zA-Z$._0-9]*$")
LOCAL_REF = re.compile(r'%("(?:[^"\\]|\\.)*"|[-a-zA-Z$._0-9]+)')


def ref(name: str) -> str:
    """The textual reference to a local value or block named `name`."""
    return "%" + name if _PLAIN_NAME.match(name) else '%"' + name + '"'


def unref(text: str) -> str:
    """The name behind a `%name` / `%"name"` reference."""
    body = text[1:]
    return body[1:-1] if body.startswith('"') else body


def is_float(ty: str) -> bool:
    return ty in FLOAT_TYPES


@dataclass
class Operand:
    """A typed value as it appears in an instruction: `double %x`, `i64 3`, `ptr @g`."""

    type: str
    text: str

    @property
    def is_local(self) -> bool:
        return self.text.startswith("%")

    @property
    def name(self) -> str:
        return unref(self.text)

    @property
    def is_constant(self) -> bool:
        return not self.text.startswith("%") and not self.text.startswith("@")


@dataclass
class Instruction:
    opcode: str
    result: str | None            # name without '%', or None
    type: str                     # result type ('void' when none)
    operands: list[Operand]       # in source order; for calls the arguments only
    text: str                     # sanitised source text (no metadata, no attribute groups)
    block: Block | None = None
    predicate: str = ""           # fcmp / icmp
    callee: str = ""              # call: the function name without '@'
    incoming: list[tuple[Operand, str]] = field(default_factory=list)   # phi: (value, block name)
    targets: list[str] = field(default_factory=list)                    # br / switch: block names
    source_type: str = ""         # getelementptr source element type, load type
    line: int = 0                 # index in the function text, for messages

    @property
    def is_terminator(self) -> bool:
        return self.opcode in ("br", "ret", "switch", "unreachable")

    def local_operands(self) -> list[str]:
        """Names of local values this instruction reads (phi incoming values included)."""
        if self.opcode == "phi":
            return [v.name for v, _ in self.incoming if v.is_local]
        return [o.name for o in self.operands if o.is_local]

    def __repr__(self) -> str:
        return f"<{self.text}>"


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


@dataclass
class Function:
    name: str
    return_type: str
    params: list[Param]
    blocks: list[Block]
    globals_text: list[str]       # global variable definitions the body refers to
    declarations: dict[str, str]  # callee name -> sanitised `declare` line
    defined: dict[str, str] = field(default_factory=dict)   # other functions the module defines: their text

    def __post_init__(self):
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
