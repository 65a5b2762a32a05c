"""Read LLVM IR text (as printed by llvmlite.binding) into llad's model.

Reading text in Python is ~50x faster than walking the module through the binding, and the text has
what the binding hides (predicates, GEP source types, flags).  Only the subset the pre-AD pipeline
leaves for numeric code is modelled structurally; everything else is kept as text (see model.py).
"""
from __future__ import annotations

import re

from ..errors import UnsupportedInstructionError
from .callees import INDIRECT_CALLEE
from .model import Block, Function, Instruction, Operand, Param, is_float, unref
from .printer import PRINTABLE_OPCODES, print_instruction

BINARY = {"fadd", "fsub", "fmul", "fdiv", "frem", "add", "sub", "mul", "udiv", "sdiv", "urem", "srem",
          "shl", "lshr", "ashr", "and", "or", "xor"}
CASTS = {"sitofp", "uitofp", "fptosi", "fptoui", "fptrunc", "fpext", "zext", "sext", "trunc",
         "bitcast", "ptrtoint", "inttoptr"}
FLAGS = {"nsw", "nuw", "exact", "disjoint", "fast", "nnan", "ninf", "nsz", "arcp", "contract", "afn",
         "reassoc", "samesign", "nneg", "inbounds", "nusw", "volatile", "atomic", "tail", "musttail", "notail"}

_METADATA = re.compile(r",\s*![-a-zA-Z_.0-9]+\s+(?:![0-9]+|!\{[^}]*\})")
_ATTR_GROUP = re.compile(r"\s+#[0-9]+")
_LABEL = re.compile(r'^("(?:[^"\\]|\\.)*"|[-a-zA-Z$._0-9]+):')


def split_top(s: str, sep: str = ",") -> list[str]:
    """Split at `sep` outside (), [], {}, <> and quotes."""
    out, depth, cur, quoted = [], 0, [], False
    for ch in s:
        if ch == '"':
            quoted = not quoted
        elif not quoted:
            if ch in "([{<":
                depth += 1
            elif ch in ")]}>":
                depth -= 1
            elif ch == sep and depth == 0:
                out.append("".join(cur).strip())
                cur = []
                continue
        cur.append(ch)
    tail = "".join(cur).strip()
    if tail:
        out.append(tail)
    return out


def sanitise(line: str) -> str:
    """Drop metadata attachments and attribute-group references: derivatives regenerate them."""
    line = _METADATA.sub("", line)
    line = _ATTR_GROUP.sub("", line)
    return line.rstrip()


def _read_type(tokens: list[str]) -> tuple[str, list[str]]:
    """Take one type from the front of a whitespace-token list ({...}, [...], <...> joined)."""
    if not tokens:
        return "", tokens
    first = tokens[0]
    if first[0] in "{[<":
        closer = {"{": "}", "[": "]", "<": ">"}[first[0]]
        depth, parts = 0, []
        for i, t in enumerate(tokens):
            parts.append(t)
            depth += t.count(first[0]) - t.count(closer)
            if depth == 0:
                return " ".join(parts), tokens[i + 1:]
    return first, tokens[1:]


_ATTR = re.compile(r"^(?:noalias|nonnull|noundef|readonly|readnone|writeonly|nocapture|signext|zeroext|inreg|"
                   r"returned|immarg|nofree|nonnull|noinline|byval\([^)]*\)|captures\([^)]*\)|align \d+|"
                   r"dereferenceable(?:_or_null)?\(\d+\)|range\([^)]*\)|initializes\(\([^)]*\)\)|"
                   r"nofpclass\([^)]*\))(?:\s+|$)")
ORDERINGS = {"unordered", "monotonic", "acquire", "release", "acq_rel", "seq_cst"}


def _take_attrs(s: str) -> tuple[str, str]:
    """Split leading parameter attributes off `s`: (attributes, rest)."""
    attrs = []
    while True:
        m = _ATTR.match(s)
        if not m:
            return " ".join(attrs), s
        attrs.append(m.group(0).strip())
        s = s[m.end():]


def parse_operand(s: str) -> Operand:
    """`double %x` / `ptr nonnull align 8 %p` / `i64 3` -> Operand(type, value, attributes)."""
    ty, rest = _read_type(s.split())
    attrs, value = _take_attrs(" ".join(rest))
    return Operand(ty, value.strip(), attrs)


def _take_flags(toks: list[str]) -> tuple[tuple[str, ...], list[str]]:
    flags = []
    while toks and toks[0] in FLAGS:
        flags.append(toks[0])
        toks = toks[1:]
    return tuple(flags), toks


def parse_instruction(text: str) -> Instruction:
    result = None
    body = text
    m = re.match(r'^(%(?:"(?:[^"\\]|\\.)*"|[-a-zA-Z$._0-9]+))\s*=\s*(.*)$', text)
    if m:
        result = m.group(1)[1:]
        if result.startswith('"'):
            result = result[1:-1]
        body = m.group(2)
    lead_flags, lead = _take_flags(body.split())
    opcode = lead[0] if lead else ""
    flags, rest = _take_flags(lead[1:])
    ins = Instruction(opcode, result, "void", [])
    ins.flags = lead_flags + flags
    _PARSERS.get(opcode, _parse_unknown)(ins, " ".join(rest))
    return ins


def _parse_binary(ins: Instruction, rest: str) -> None:
    ty, toks = _read_type(rest.split())
    a, b = split_top(" ".join(toks))
    ins.type = ty
    ins.operands = [Operand(ty, a), Operand(ty, b)]


def _parse_fneg(ins: Instruction, rest: str) -> None:
    ty, toks = _read_type(rest.split())
    ins.type = ty
    ins.operands = [Operand(ty, " ".join(toks))]


def _parse_cmp(ins: Instruction, rest: str) -> None:
    toks = rest.split()
    ins.predicate = toks[0]
    ty, toks = _read_type(toks[1:])
    a, b = split_top(" ".join(toks))
    ins.type = "i1"
    ins.operands = [Operand(ty, a), Operand(ty, b)]


def _parse_select(ins: Instruction, rest: str) -> None:
    c, a, b = (parse_operand(p) for p in split_top(rest))
    ins.type = a.type
    ins.operands = [c, a, b]


def _parse_phi(ins: Instruction, rest: str) -> None:
    ty, toks = _read_type(rest.split())
    ins.type = ty
    for pair in split_top(" ".join(toks)):
        v, bb = split_top(pair.strip()[1:-1])
        ins.incoming.append((Operand(ty, v.strip()), bb.strip()[1:].strip('"')))
    ins.operands = [v for v, _ in ins.incoming]


def _memory_suffix(ins: Instruction, parts: list[str]) -> list[str]:
    """Take `align N` off the end of a load/store's parts, and the atomic ordering off the pointer."""
    for p in list(parts):
        if p.startswith("align "):
            ins.align = int(p.split()[1])
            parts.remove(p)
    toks = parts[-1].split()
    if toks[-1] in ORDERINGS:
        ins.ordering = toks[-1]
        parts[-1] = " ".join(toks[:-1])
    return parts


def _parse_load(ins: Instruction, rest: str) -> None:
    flags, toks = _take_flags(rest.split())
    ins.flags += flags
    parts = _memory_suffix(ins, split_top(" ".join(toks)))
    ins.type = ins.source_type = parts[0]
    ins.operands = [parse_operand(parts[1])]


def _parse_store(ins: Instruction, rest: str) -> None:
    flags, toks = _take_flags(rest.split())
    ins.flags += flags
    parts = _memory_suffix(ins, split_top(" ".join(toks)))
    ins.operands = [parse_operand(parts[0]), parse_operand(parts[1])]
    ins.type = ins.operands[0].type


def _parse_gep(ins: Instruction, rest: str) -> None:
    parts = split_top(rest)
    ins.source_type = parts[0]
    ins.type = "ptr"
    ins.operands = [parse_operand(p) for p in parts[1:]]


def _parse_cast(ins: Instruction, rest: str) -> None:
    toks = rest.split()
    i = len(toks) - 1 - toks[::-1].index("to")
    ins.operands = [parse_operand(" ".join(toks[:i]))]
    ins.type = " ".join(toks[i + 1:])


_CALLING_CONVENTIONS = re.compile(r"^(?:ccc|fastcc|coldcc|cc \d+)\s+")


def _parse_call(ins: Instruction, rest: str) -> None:
    m = re.search(r'(@("[^"]*"|[-a-zA-Z$._0-9]+)|%("[^"]*"|[-a-zA-Z$._0-9]+))\(', rest)
    head, tail = rest[:m.start()].strip(), rest[m.end() - 1:]
    head = _CALLING_CONVENTIONS.sub("", head)
    _, head = _take_attrs(head)
    if head.endswith(")"):                      # `ret (argtypes, ...)`: a variadic callee's type
        depth, i = 0, len(head)
        while True:
            i -= 1
            depth += (head[i] == ")") - (head[i] == "(")
            if depth == 0:
                break
        ins.source_type, head = head[i:], head[:i].strip()
    ins.type = head
    target = m.group(1)
    args = tail[1:_matching_paren(tail)]
    ins.operands = [parse_operand(a) for a in split_top(args)]
    if target.startswith("@"):
        ins.callee = unref("%" + target[1:])
    else:     # through a function pointer (ctypes/cffi): no rule can apply; the pointer is the last operand
        ins.callee = INDIRECT_CALLEE
        ins.flags += ("indirect",)
        ins.operands.append(Operand("ptr", target))


def _matching_paren(s: str) -> int:
    depth = 0
    for i, ch in enumerate(s):
        depth += (ch == "(") - (ch == ")")
        if depth == 0:
            return i
    return len(s)


def _parse_br(ins: Instruction, rest: str) -> None:
    parts = split_top(rest)
    if len(parts) == 1:
        ins.targets = [parts[0].split()[-1][1:].strip('"')]
    else:
        ins.operands = [parse_operand(parts[0])]
        ins.targets = [p.split()[-1][1:].strip('"') for p in parts[1:3]]


def _parse_switch(ins: Instruction, rest: str) -> None:
    head, cases = rest.split("[", 1)
    cond, default = split_top(head)
    ins.operands = [parse_operand(cond)]
    ins.targets = [default.split()[-1][1:].strip('"')]
    for m in re.finditer(r"\S+\s+(-?\w+),\s*label\s+(%\S+)", cases):
        ins.cases.append(m.group(1))
        ins.targets.append(m.group(2)[1:].strip('"'))


def _parse_ret(ins: Instruction, rest: str) -> None:
    if rest.strip() != "void":
        ins.operands = [parse_operand(rest)]


def _parse_alloca(ins: Instruction, rest: str) -> None:
    parts = split_top(rest)
    ins.type = "ptr"
    ins.source_type = parts[0]
    for p in parts[1:]:
        if p.startswith("align "):
            ins.align = int(p.split()[1])
        else:
            ins.operands = [parse_operand(p)]


def _parse_extractvalue(ins: Instruction, rest: str) -> None:
    parts = split_top(rest)
    ins.operands = [parse_operand(parts[0])]
    ins.indices = tuple(int(p) for p in parts[1:])
    ins.type = member_type(ins.operands[0].type, ins.indices)


def member_type(aggregate: str, indices: tuple[int, ...]) -> str:
    """The type of the member of a literal struct or array type at `indices` ("?" for anything else: a
    named type, which nothing that needs the type reads)."""
    ty = aggregate.strip()
    for i in indices:
        if ty.startswith("{") and ty.endswith("}"):
            members = split_top(ty[1:-1])
            if i >= len(members):
                return "?"
            ty = members[i]
        elif ty.startswith("[") and ty.endswith("]") and " x " in ty:
            ty = ty[1:-1].split(" x ", 1)[1].strip()
        else:
            return "?"
    return ty


def _parse_insertvalue(ins: Instruction, rest: str) -> None:
    parts = split_top(rest)
    ins.operands = [parse_operand(parts[0]), parse_operand(parts[1])]
    ins.indices = tuple(int(p) for p in parts[2:])
    ins.type = ins.operands[0].type


def _parse_freeze(ins: Instruction, rest: str) -> None:
    ins.operands = [parse_operand(rest)]
    ins.type = ins.operands[0].type


def _parse_unknown(ins: Instruction, rest: str) -> None:
    """An opcode llad does not model: kept only so that `check_supported` can name it."""
    ins.type = "?"
    ins.source_type = rest


_PARSERS = {**{op: _parse_binary for op in BINARY}, **{op: _parse_cast for op in CASTS},
            "fneg": _parse_fneg, "fcmp": _parse_cmp, "icmp": _parse_cmp, "select": _parse_select,
            "phi": _parse_phi, "load": _parse_load, "store": _parse_store, "getelementptr": _parse_gep,
            "call": _parse_call, "br": _parse_br, "switch": _parse_switch, "ret": _parse_ret,
            "unreachable": lambda ins, rest: None, "alloca": _parse_alloca, "extractvalue": _parse_extractvalue,
            "insertvalue": _parse_insertvalue, "freeze": _parse_freeze}


def _function_lines(module_text: str, name: str) -> list[str]:
    lines = module_text.splitlines()
    key1, key2 = f"@{name}(", f'@"{name}"('
    for i, ln in enumerate(lines):
        if ln.startswith("define") and (key1 in ln or key2 in ln):
            out = [ln]
            for ln2 in lines[i + 1:]:
                out.append(ln2)
                if ln2 == "}":
                    return out
    raise KeyError(name)


def _parse_header(line: str, name: str) -> tuple[str, list[Param]]:
    pre, _, after = line.partition("@")
    ret = pre.split()[1:]
    params_text = after[after.index("(") + 1:]
    depth, end = 1, 0
    while depth:
        depth += (params_text[end] == "(") - (params_text[end] == ")")
        end += 1
    end -= 1
    params = []
    for p in split_top(params_text[:end]):
        toks = p.split()
        pname = toks[-1][1:].strip('"')
        params.append(Param(pname, _read_type(toks)[0]))
    return ret[-1], params


def parse_function(module_text: str, name: str) -> Function:
    lines = _function_lines(module_text, name)
    ret_type, params = _parse_header(lines[0], name)
    blocks: list[Block] = []
    pending: list[str] = []
    for raw in lines[1:-1]:
        if not raw.strip() or raw.lstrip().startswith((";", "#dbg_")) or "@llvm.dbg." in raw \
                or "@llvm.experimental.noalias.scope.decl" in raw:
            # comments, debug records (`njit(debug=True)`), and the scope declarations LLVM leaves when it
            # inlines a function with noalias parameters (a derivative): no semantics, metadata not carried
            continue
        if not raw.startswith(" "):
            m = _LABEL.match(raw)
            blocks.append(Block(m.group(1).strip('"')))
            continue
        if pending or raw.strip().startswith("switch"):
            pending.append(raw.strip())
            if "]" not in raw:
                continue
            raw, pending = " ".join(pending), []
        text = sanitise(raw.strip())
        blocks[-1].instructions.append(parse_instruction(text))
    globals_text, declarations, defined = _module_context(module_text, name)
    return Function(name, ret_type, params, blocks, globals_text, declarations, defined)


def _module_context(module_text: str, entry: str) -> tuple[list[str], dict[str, str], dict[str, str]]:
    """Globals and named types, declarations, and the other functions the module defines (e.g. NRT destructors the
    entry function passes by address), each as sanitised text the derivative module can carry."""
    globals_text, decls, defined = [], {}, {}
    current: list[str] | None = None
    for ln in module_text.splitlines():
        if current is not None:
            current.append(sanitise(ln))
            if ln == "}":
                current = None
            continue
        if ln.startswith("@") or (ln.startswith("%") and " = type " in ln):
            globals_text.append(sanitise(ln))     # globals, and named types (a derivative's tape records)
        elif ln.startswith("declare"):
            at = ln.index("@")
            m = re.match(r'"([^"]*)"|([-a-zA-Z$._0-9]+)', ln[at + 1:])
            callee = m.group(1) or m.group(2)
            decls[callee] = _ATTR_GROUP.sub("", ln)
        elif ln.startswith("define"):
            at = ln.index("@")
            m = re.match(r'"([^"]*)"|([-a-zA-Z$._0-9]+)', ln[at + 1:])
            name = m.group(1) or m.group(2)
            if name != entry:
                current = [_ATTR_GROUP.sub("", ln).replace(" local_unnamed_addr", "")]
                defined[name] = current
    return globals_text, decls, {name: "\n".join(body) for name, body in defined.items()}


def check_supported(fn: Function, location) -> None:
    """Reject constructs llad never handles (vectors, atomic float accesses, opcodes it does not model),
    naming the instruction.  Atomic integer loads and stores (a derivative's tape-size hints) are
    inactive code, copied as they are."""
    for b in fn.blocks:
        for ins in b.instructions:
            vector = any("<" in t and " x " in t for t in [ins.type] + [o.type for o in ins.operands])
            atomic_float = "atomic" in ins.flags and is_float(ins.type)
            if vector or ins.opcode not in PRINTABLE_OPCODES or atomic_float \
                    or ins.opcode in ("insertelement", "extractelement", "shufflevector"):
                text = print_instruction(ins) if ins.opcode in PRINTABLE_OPCODES else f"{ins.opcode} {ins.source_type}"
                raise UnsupportedInstructionError(
                    f"instruction `{text}`", location(ins),
                    "vector and atomic instructions are outside what llad differentiates")
