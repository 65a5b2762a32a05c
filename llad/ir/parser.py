"""Read LLVM IR text (as printed by llvmlite.binding) into llad's model.

Reading text in Python is ~50x faster than walking the module through the binding, and the text has
what the binding hides (predicates, GEP source types, flags).  Only the subset the pre-AD pipeline
leaves for numeric code is modelled structurally; everything else is kept as text (see model.py).
"""
from __future__ import annotations

import re

from ..errors import UnsupportedInstructionError
from .model import Block, Function, Instruction, Operand, Param

BINARY = {"fadd", "fsub", "fmul", "fdiv", "frem", "add", "sub", "mul", "udiv", "sdiv", "urem", "srem",
          "shl", "lshr", "ashr", "and", "or", "xor"}
CASTS = {"sitofp", "uitofp", "fptosi", "fptoui", "fptrunc", "fpext", "zext", "sext", "trunc",
         "bitcast", "ptrtoint", "inttoptr"}
FLAGS = {"nsw", "nuw", "exact", "disjoint", "fast", "nnan", "ninf", "nsz", "arcp", "contract", "afn",
         "reassoc", "samesign", "nneg", "inbounds", "nusw", "volatile", "tail", "musttail", "notail"}
PARAM_ATTRS = {"noalias", "nonnull", "noundef", "readonly", "readnone", "writeonly", "nocapture",
               "signext", "zeroext", "inreg", "returned", "immarg", "nofree", "align", "dereferenceable",
               "dereferenceable_or_null", "captures(none)", "range", "initializes"}

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


def parse_operand(s: str) -> Operand:
    """`double %x` / `ptr nonnull align 8 %p` / `i64 3` -> Operand(type, value)."""
    toks = s.split()
    ty, rest = _read_type(toks)
    # drop parameter attributes between type and value
    while len(rest) > 1 and (rest[0] in PARAM_ATTRS or rest[0].startswith(("align", "range(", "dereferenceable"))
                             or rest[0].isdigit()):
        rest = rest[1:]
    return Operand(ty, " ".join(rest))


def _skip_flags(toks: list[str]) -> list[str]:
    while toks and toks[0] in FLAGS:
        toks = toks[1:]
    return toks


def parse_instruction(text: str, line: int) -> Instruction:
    result = None
    body = text
    m = re.match(r'^(%(?:"(?:[^"\\]|\\.)*"|[-a-zA-Z$._0-9]+))\s*=\s*(.*)$', text)
    if m:
        result = m.group(1)[1:]
        if result.startswith('"'):
            result = result[1:-1]
        body = m.group(2)
    toks = body.split()
    lead = _skip_flags(toks)
    opcode = lead[0] if lead else ""
    rest = " ".join(lead[1:])
    ins = Instruction(opcode, result, "void", [], text, line=line)
    parse = _PARSERS.get(opcode, _parse_other)
    parse(ins, rest)
    return ins


def _parse_binary(ins: Instruction, rest: str) -> None:
    toks = _skip_flags(rest.split())
    ty, toks = _read_type(toks)
    a, b = split_top(" ".join(toks))
    ins.type = ty
    ins.operands = [Operand(ty, a), Operand(ty, b)]


def _parse_fneg(ins: Instruction, rest: str) -> None:
    toks = _skip_flags(rest.split())
    ty, toks = _read_type(toks)
    ins.type = ty
    ins.operands = [Operand(ty, " ".join(toks))]


def _parse_cmp(ins: Instruction, rest: str) -> None:
    toks = _skip_flags(rest.split())
    ins.predicate = toks[0]
    ty, toks = _read_type(toks[1:])
    a, b = split_top(" ".join(toks))
    ins.type = "i1"
    ins.operands = [Operand(ty, a), Operand(ty, b)]


def _parse_select(ins: Instruction, rest: str) -> None:
    rest = " ".join(_skip_flags(rest.split()))
    c, a, b = (parse_operand(p) for p in split_top(rest))
    ins.type = a.type
    ins.operands = [c, a, b]


def _parse_phi(ins: Instruction, rest: str) -> None:
    toks = _skip_flags(rest.split())
    ty, toks = _read_type(toks)
    ins.type = ty
    for pair in split_top(" ".join(toks)):
        v, bb = split_top(pair.strip()[1:-1])
        ins.incoming.append((Operand(ty, v.strip()), bb.strip()[1:].strip('"')))
    ins.operands = [v for v, _ in ins.incoming]


def _parse_load(ins: Instruction, rest: str) -> None:
    parts = split_top(" ".join(_skip_flags(rest.split())))
    ins.type = parts[0]
    ins.source_type = parts[0]
    ins.operands = [parse_operand(parts[1])]


def _parse_store(ins: Instruction, rest: str) -> None:
    parts = split_top(" ".join(_skip_flags(rest.split())))
    ins.operands = [parse_operand(parts[0]), parse_operand(parts[1])]


def _parse_gep(ins: Instruction, rest: str) -> None:
    parts = split_top(" ".join(_skip_flags(rest.split())))
    ins.source_type = parts[0]
    ins.type = "ptr"
    ins.operands = [parse_operand(p) for p in parts[1:]]


def _parse_cast(ins: Instruction, rest: str) -> None:
    toks = _skip_flags(rest.split())
    i = len(toks) - 1 - toks[::-1].index("to")
    ins.operands = [parse_operand(" ".join(toks[:i]))]
    ins.type = " ".join(toks[i + 1:])


def _parse_call(ins: Instruction, rest: str) -> None:
    if not re.search(r'@("[^"]*"|[-a-zA-Z$._0-9]+)\(', rest):
        # an indirect call (a ctypes/cffi function pointer): no rule can apply
        ins.callee = "<indirect call through a function pointer>"
        ins.type = rest.split()[0]
        args = rest[rest.rindex("(", 0, rest.rindex(")")) + 1:rest.rindex(")")]
        ins.operands = [parse_operand(a) for a in split_top(args)]
        return
    at = rest.index("@")
    head, tail = rest[:at], rest[at + 1:]
    htoks = [t for t in head.split() if t not in FLAGS]
    # the return type is the last token(s) before the callee; skip return attributes
    htoks = [t for t in htoks if t not in PARAM_ATTRS and not t.startswith(("range(", "align"))]
    ins.type = htoks[-1] if htoks else "void"
    if tail.startswith('"'):
        end = tail.index('"', 1)
        ins.callee, args = tail[1:end], tail[end + 1:]
    else:
        m = re.match(r"[-a-zA-Z$._0-9]+", tail)
        ins.callee, args = m.group(0), tail[m.end():]
    args = args[args.index("(") + 1:args.rindex(")")]
    ins.operands = [parse_operand(a) for a in split_top(args)]


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
    for m in re.finditer(r"label\s+(%\S+)", cases):
        ins.targets.append(m.group(1)[1:].strip('"'))


def _parse_ret(ins: Instruction, rest: str) -> None:
    if rest.strip() != "void":
        ins.operands = [parse_operand(rest)]


def _parse_other(ins: Instruction, rest: str) -> None:
    """Instructions kept as text: operands are the local references in it."""
    ins.type = "?"
    ins.operands = [Operand("?", "%" + m.group(1)) for m in re.finditer(r'%("(?:[^"\\]|\\.)*"|[-a-zA-Z$._0-9]+)',
                                                                         rest)]


_PARSERS = {**{op: _parse_binary for op in BINARY}, **{op: _parse_cast for op in CASTS},
            "fneg": _parse_fneg, "fcmp": _parse_cmp, "icmp": _parse_cmp, "select": _parse_select,
            "phi": _parse_phi, "load": _parse_load, "store": _parse_store, "getelementptr": _parse_gep,
            "call": _parse_call, "br": _parse_br, "switch": _parse_switch, "ret": _parse_ret,
            "unreachable": lambda ins, rest: None}


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
    ret = [t for t in pre.split()[1:] if t not in PARAM_ATTRS and not t.startswith(("range(", "align"))
           and t not in ("local_unnamed_addr", "dso_local", "internal", "linkonce_odr", "hidden")]
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
    for lineno, raw in enumerate(lines[1:-1], start=1):
        if not raw.strip() or raw.lstrip().startswith((";", "#dbg_")) or "@llvm.dbg." in raw:
            continue    # comments and debug records (`njit(debug=True)`): no semantics
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
        blocks[-1].instructions.append(parse_instruction(text, lineno))
    globals_text, declarations, defined = _module_context(module_text, name)
    return Function(name, ret_type, params, blocks, globals_text, declarations, defined)


def _module_context(module_text: str, entry: str) -> tuple[list[str], dict[str, str], dict[str, str]]:
    """Globals, declarations, and the other functions the module defines (e.g. NRT destructors the
    entry function passes by address), each as sanitised text the derivative module can carry."""
    globals_text, decls, defined = [], {}, {}
    current: list[str] | None = None
    for ln in module_text.splitlines():
        if current is not None:
            current.append(sanitise(ln))
            if ln == "}":
                current = None
            continue
        if ln.startswith("@"):
            globals_text.append(sanitise(ln))
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
    """Reject constructs llad never handles (vectors, atomics), naming the instruction."""
    for b in fn.blocks:
        for ins in b.instructions:
            if "<" in ins.type and "x" in ins.type or ins.opcode in ("atomicrmw", "cmpxchg", "fence",
                                                                      "invoke", "landingpad", "indirectbr"):
                raise UnsupportedInstructionError(
                    f"instruction `{ins.text}`", location(ins),
                    "vector and atomic instructions are outside what llad differentiates")
