"""Print llad's IR model as LLVM text: the one place text is made from instructions."""
from __future__ import annotations

from .model import Block, Function, Instruction, Module, Operand, global_ref, ref

_BINARY = {"fadd", "fsub", "fmul", "fdiv", "frem", "add", "sub", "mul", "udiv", "sdiv", "urem", "srem",
           "shl", "lshr", "ashr", "and", "or", "xor"}
_CASTS = {"sitofp", "uitofp", "fptosi", "fptoui", "fptrunc", "fpext", "zext", "sext", "trunc", "bitcast",
          "ptrtoint", "inttoptr", "addrspacecast"}
# flags printed before the opcode (the rest follow it)
_LEADING = ("tail", "musttail", "notail")


def _typed(op: Operand) -> str:
    return f"{op.type} {op.attrs + ' ' if op.attrs else ''}{op.text}"


def _flags(ins: Instruction) -> str:
    fl = [f for f in ins.flags if f not in _LEADING and f not in ("volatile", "atomic")]
    return "".join(f + " " for f in fl)


def _metadata(ins: Instruction) -> str:
    return "".join(f", !{kind} {node}" for kind, node in ins.metadata)


def _memory(ins: Instruction) -> str:
    out = f" {ins.ordering}" if ins.ordering else ""
    if ins.align:
        out += f", align {ins.align}"
    return out


def print_instruction(ins: Instruction) -> str:
    op = ins.opcode
    lhs = f"{ref(ins.result)} = " if ins.result is not None else ""
    body = _PRINTERS.get(op)
    if body is None:
        raise ValueError(f"llad's printer has no form for opcode {op!r}")
    return lhs + body(ins) + _metadata(ins)


def _binary(ins):
    a, b = ins.operands
    return f"{ins.opcode} {_flags(ins)}{ins.type} {a.text}, {b.text}"


def _fneg(ins):
    return f"fneg {_flags(ins)}{ins.type} {ins.operands[0].text}"


def _cmp(ins):
    a, b = ins.operands
    return f"{ins.opcode} {_flags(ins)}{ins.predicate} {a.type} {a.text}, {b.text}"


def _select(ins):
    return f"select {_flags(ins)}" + ", ".join(_typed(o) for o in ins.operands)


def _phi(ins):
    pairs = ", ".join(f"[ {v.text}, {ref(bb)} ]" for v, bb in ins.incoming)
    return f"phi {_flags(ins)}{ins.type} {pairs}"


def _load(ins):
    atomic = "atomic " if "atomic" in ins.flags else ""
    volatile = "volatile " if "volatile" in ins.flags else ""
    return f"load {atomic}{volatile}{ins.type}, ptr {ins.operands[0].text}{_memory(ins)}"


def _store(ins):
    atomic = "atomic " if "atomic" in ins.flags else ""
    volatile = "volatile " if "volatile" in ins.flags else ""
    return f"store {atomic}{volatile}{_typed(ins.operands[0])}, ptr {ins.operands[1].text}{_memory(ins)}"


def _gep(ins):
    rest = ", ".join(_typed(o) for o in ins.operands)
    return f"getelementptr {_flags(ins)}{ins.source_type}, {rest}"


def _cast(ins):
    src = ins.operands[0]
    return f"{ins.opcode} {_flags(ins)}{src.type} {src.text} to {ins.type}"


def _call(ins):
    lead = "".join(f + " " for f in ins.flags if f in _LEADING)
    args = ", ".join(_typed(o) for o in ins.operands)
    return f"{lead}call {_flags(ins)}{ins.type} {global_ref(ins.callee)}({args})"


def _br(ins):
    if not ins.operands:
        return f"br label {ref(ins.targets[0])}"
    return f"br i1 {ins.operands[0].text}, label {ref(ins.targets[0])}, label {ref(ins.targets[1])}"


def _switch(ins):
    cond = ins.operands[0]
    cases = " ".join(f"{cond.type} {v}, label {ref(t)}" for v, t in zip(ins.cases, ins.targets[1:]))
    return f"switch {_typed(cond)}, label {ref(ins.targets[0])} [ {cases} ]"


def _ret(ins):
    return f"ret {_typed(ins.operands[0])}" if ins.operands else "ret void"


def _alloca(ins):
    count = f", {_typed(ins.operands[0])}" if ins.operands else ""
    return f"alloca {ins.source_type}{count}{_memory(ins)}"


def _extractvalue(ins):
    agg = ins.operands[0]
    return f"extractvalue {_typed(agg)}, {', '.join(map(str, ins.indices))}"


def _insertvalue(ins):
    agg, val = ins.operands
    return f"insertvalue {_typed(agg)}, {_typed(val)}, {', '.join(map(str, ins.indices))}"


def _freeze(ins):
    return f"freeze {_typed(ins.operands[0])}"


def _insertelement(ins):
    return "insertelement " + ", ".join(_typed(o) for o in ins.operands)


def _extractelement(ins):
    return "extractelement " + ", ".join(_typed(o) for o in ins.operands)


def _shufflevector(ins):
    return "shufflevector " + ", ".join(_typed(o) for o in ins.operands)


_PRINTERS = {**{op: _binary for op in _BINARY}, **{op: _cast for op in _CASTS},
             "fneg": _fneg, "icmp": _cmp, "fcmp": _cmp, "select": _select, "phi": _phi, "load": _load,
             "store": _store, "getelementptr": _gep, "call": _call, "br": _br, "switch": _switch, "ret": _ret,
             "unreachable": lambda ins: "unreachable", "alloca": _alloca, "extractvalue": _extractvalue,
             "insertvalue": _insertvalue, "freeze": _freeze, "insertelement": _insertelement,
             "extractelement": _extractelement, "shufflevector": _shufflevector}

PRINTABLE_OPCODES = frozenset(_PRINTERS)


def print_block(block: Block) -> list[str]:
    lines = [f"{ref(block.name)[1:]}:"]
    lines += ["  " + print_instruction(i) for i in block.instructions]
    return lines


def print_function(fn: Function) -> str:
    params = ", ".join(f"{p.type} {p.attrs + ' ' if p.attrs else ''}{ref(p.name)}" for p in fn.params)
    linkage = fn.linkage + " " if fn.linkage else ""
    attrs = " " + fn.attributes if fn.attributes else ""
    lines = [f'define {linkage}{fn.return_type} @"{fn.name}"({params}){attrs} {{']
    for b in fn.blocks:
        lines += print_block(b)
    lines.append("}")
    return "\n".join(lines)


def declaration(name: str, ret: str, argtypes: list[str]) -> str:
    return f"declare {ret} {global_ref(name)}({', '.join(argtypes)})"


def print_module(module: Module) -> str:
    lines = list(module.header)
    lines += [f"{ref(name)} = type {{ {', '.join(fields)} }}" for name, fields in module.types.items()]
    lines += list(module.globals.values())
    defined = {f.name for f in module.functions} | set(module.carried)
    lines += [d if isinstance(d, str) else declaration(name, *d)
              for name, d in module.declarations.items() if name not in defined]
    lines += list(module.carried.values())
    lines += [print_function(f) for f in module.functions]
    lines += module.metadata
    return "\n".join(lines) + "\n"
