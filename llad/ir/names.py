"""Keep the primal's local names out of the namespace of the names llad generates.

Generators name what they add after the primal value it belongs to (`%"s0.x"` is the shadow of `%x`,
`%"d0.x"` its tangent, `rev.B` the reverse of block B) or with a fresh counter (`%r12`).  A primal that
already contains such names (a function calling a derivative, differentiated again: its IR has the
inner derivative's names, inlined) would collide with them; those primal names get a prefix that no
generated name has.  Other names are left as they are, so dumps stay readable.
"""
from __future__ import annotations

import re

from .model import Function, Operand, ref

# what generators produce: shadow / tangent / adjoint / tape / deferral / reverse-block names, and the
# builders' fresh counters (forward `f`; reverse `r`, `a`, `e`, `p`, split `s`; runtime functions `t`)
GENERATED = re.compile(r"^(?:(?:s|d)\d+|dv|adj|pid|slot|ctr|tape|rtape|peak|cap|g0r?|dfb|dfc|dfn|dfjn?|dfl|hint|rev|"
                       r"llad)\.|^[tfraeps]\d+(?:\.|$)")


def avoid_generated_names(fn: Function) -> int:
    """Rename local values and blocks of `fn` that look like generated names; returns how many."""
    taken = {p.name for p in fn.params} | {b.name for b in fn.blocks} | set(fn.defs)
    renamed: dict[str, str] = {}
    for name in sorted(taken):
        if GENERATED.match(name):
            new = "x." + name
            while new in taken:
                new = "x." + new
            taken.add(new)
            renamed[name] = new
    if not renamed:
        return 0
    params = {p.name for p in fn.params}
    if params & set(renamed):
        raise ValueError(f"a parameter named like a generated value: {sorted(params & set(renamed))}")

    def op(o: Operand) -> Operand:
        return Operand(o.type, ref(renamed[o.name]), o.attrs) if o.is_local and o.name in renamed else o

    for b in fn.blocks:
        b.name = renamed.get(b.name, b.name)
        for ins in b.instructions:
            if ins.result in renamed:
                ins.result = renamed[ins.result]
            ins.operands = [op(o) for o in ins.operands]
            ins.incoming = [(op(v), renamed.get(bb, bb)) for v, bb in ins.incoming]
            ins.targets = [renamed.get(t, t) for t in ins.targets]
    fn.reindex()
    return len(renamed)

