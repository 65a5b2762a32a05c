"""The lowering depths of a derivative: what `llad.dump` and `llad dump` show.

Every depth is the text llad really used for the derivative `autodiff` runs with the same arguments
(it is taken from the compile cache, not recomputed): python -> numba -> llvm -> deriv -> deriv-opt
-> asm, plus `cfg`, the derivative's control-flow graph as Graphviz DOT.
"""
from __future__ import annotations

import inspect as pyinspect
import io
import re

from .ir.model import Module
from .ir.printer import print_instruction, print_module

DEPTHS = ("python", "numba", "llvm", "deriv", "deriv-opt", "asm")
EXTRA_DEPTHS = ("cfg",)


def dump(mode, f, *args, depth: str = "deriv", annotate: bool = False) -> str:
    """The text of one lowering depth of the derivative `autodiff(mode, f, *args)` runs."""
    from .api import derivative_for
    if depth not in DEPTHS + EXTRA_DEPTHS + ("all",):
        raise ValueError(f"llad.dump: depth must be one of {', '.join(DEPTHS + EXTRA_DEPTHS)} or 'all', "
                         f"got {depth!r}")
    d = derivative_for(mode, f, args, need_ir=True)[-1]     # the primal's IR, also after a disk-cache load
    if depth == "all":
        return "\n".join(f";; ===== {dp} =====\n{_depth(d, dp, annotate)}" for dp in DEPTHS)
    return _depth(d, depth, annotate)


def _depth(d, depth: str, annotate: bool = False) -> str:
    if depth == "python":
        return pyinspect.getsource(d.primal.dispatcher.py_func)
    if depth == "numba":
        buf = io.StringIO()
        d.primal.dispatcher.inspect_types(file=buf, signature=d.primal.signature)
        return buf.getvalue()
    if depth == "llvm":
        return annotated_primal(d) if annotate else primal_as_read(d)
    if depth == "deriv":
        return d.text
    if depth == "deriv-opt":
        return d.library.get_llvm_str()
    if depth == "asm":
        return d.library.get_asm_str()
    if depth == "cfg":
        return cfg_dot(d)
    raise ValueError(depth)


def primal_as_read(d) -> str:
    """The primal module as the AD pass reads it: after the pre-AD pipeline and llad's own rewrite of
    spilled pointers (ir/forwarding.py), printed from llad's model of the function."""
    fn = d.function
    header = [ln for ln in d.primal.text.splitlines() if ln.startswith(("target datalayout", "target triple"))]
    module = Module(header, globals={str(i): g for i, g in enumerate(fn.globals_text)},
                    declarations=dict(fn.declarations), carried=dict(fn.defined), functions=[fn])
    return print_module(module)


def annotated_primal(d) -> str:
    """The primal IR with each instruction marked active/inactive and each taped value's slot."""
    act = d.annotations["activity"]
    tape = d.annotations.get("tape")
    taped = {e.name: e for e in tape.entries.values()} if tape is not None else {}
    loc = f"{d.primal.python_file}:{d.primal.python_line}"
    out = [f"; function {d.primal.entry_name}", f"; from {loc} (Numba emits no per-line debug info by default: "
           "locations are the function's)"]
    for block in d.function.blocks:
        out.append(f"{block.name}:")
        for ins in block.instructions:
            tags = []
            if ins.result is not None:
                if ins.result in act.values:
                    tags.append("active")
                elif ins.result in act.pointers:
                    tags.append("shadowed pointer")
                else:
                    tags.append("inactive")
                e = taped.get(ins.result)
                if e is not None:
                    tags.append(f"tape: {'slot' if e.loop is None else 'loop ' + e.loop.header} #{e.id}")
            elif ins.opcode == "store" and ins.operands[1].is_local and ins.operands[1].name in act.pointers:
                tags.append("active store")
            note = f"  ; {', '.join(tags)}" if tags else ""
            out.append(f"  {print_instruction(ins)}{note}")
    return "\n".join(out) + "\n"


_LABEL = re.compile(r'^("?)([-a-zA-Z$._0-9]+)\1:')


def cfg_dot(d) -> str:
    """Graphviz DOT of the derivative function: forward-sweep blocks blue, reverse-sweep orange."""
    lines = d.text.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("define") and "@\"llad." in ln)
    blocks: dict[str, list[str]] = {}
    order: list[str] = []
    cur = None
    for ln in lines[start + 1:]:
        if ln == "}":
            break
        m = _LABEL.match(ln)
        if m:
            cur = m.group(2)
            order.append(cur)
            blocks[cur] = []
        elif cur is not None and ln.strip():
            blocks[cur].append(ln.strip())
    out = ["digraph llad {", '  node [shape=box, style=filled, fontname="monospace", fontsize=10];']
    for name in order:
        colour = "#f9d7a6" if name.startswith("rev.") else "#dddddd" if name.startswith("llad.") else "#b9d3f0"
        n = len(blocks[name])
        out.append(f'  "{name}" [fillcolor="{colour}", label="{name}\\n{n} instructions"];')
    for name in order:
        if not blocks[name]:
            continue
        term = blocks[name][-1]
        targets = re.findall(r"label %\"?([-a-zA-Z$._0-9]+)\"?", term)
        if term.startswith("br i1"):
            cond = term.split()[2].rstrip(",")
            labels = [f"{cond} true", f"{cond} false"]
        elif term.startswith("switch"):
            labels = ["default"] + [c.split(",")[0] for c in re.findall(r"(i8 \d+), label", term)]
        else:
            labels = [""] * len(targets)
        for t, lab in zip(targets, labels):
            out.append(f'  "{name}" -> "{t}" [label="{lab}"];')
    out.append("}")
    return "\n".join(out) + "\n"
