"""Control flow: reverse post-order, dominators, natural loops."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import UnsupportedInstructionError
from ..ir.model import Function


@dataclass
class Loop:
    header: str
    blocks: set[str]
    latches: list[str]
    parent: Loop | None = None
    children: list[Loop] = field(default_factory=list)
    index: int = 0

    @property
    def depth(self) -> int:
        return 1 + (self.parent.depth if self.parent else 0)


@dataclass
class CFG:
    fn: Function
    rpo: list[str]
    idom: dict[str, str]
    loops: list[Loop]
    loop_of: dict[str, Loop | None]     # innermost loop of each block

    def dominates(self, a: str, b: str) -> bool:
        while True:
            if a == b:
                return True
            if b == self.fn.entry.name or b not in self.idom:
                return False
            b = self.idom[b]


def reverse_post_order(fn: Function) -> list[str]:
    seen, order = set(), []
    stack = [(fn.entry.name, iter(fn.entry.succs))]
    seen.add(fn.entry.name)
    while stack:
        node, it = stack[-1]
        for s in it:
            if s not in seen:
                seen.add(s)
                stack.append((s, iter(fn.block_map[s].succs)))
                break
        else:
            order.append(node)
            stack.pop()
    return order[::-1]


def dominators(fn: Function, rpo: list[str]) -> dict[str, str]:
    """Cooper, Harvey & Kennedy's iterative algorithm."""
    index = {b: i for i, b in enumerate(rpo)}
    entry = rpo[0]
    idom = {entry: entry}
    changed = True
    while changed:
        changed = False
        for b in rpo[1:]:
            preds = [p for p in fn.block_map[b].preds if p in idom]
            new = preds[0]
            for p in preds[1:]:
                a, c = p, new
                while a != c:
                    while index[a] > index[c]:
                        a = idom[a]
                    while index[c] > index[a]:
                        c = idom[c]
                new = a
            if idom.get(b) != new:
                idom[b] = new
                changed = True
    del idom[entry]
    return idom


def analyse_cfg(fn: Function, location=lambda ins: "<unknown>", reducible: bool = True) -> CFG:
    """Dominators and natural loops.  `reducible`: refuse a cycle with several entries (reverse mode needs
    every loop's structure); forward mode passes False and such a cycle is simply not a loop to it."""
    rpo = reverse_post_order(fn)
    idom = dominators(fn, rpo)
    cfg = CFG(fn, rpo, idom, [], {})
    index = {b: i for i, b in enumerate(rpo)}
    headers: dict[str, Loop] = {}
    for b in rpo:
        for s in fn.block_map[b].succs:
            if index[s] <= index[b]:          # retreating edge
                if not cfg.dominates(s, b):
                    if not reducible:
                        continue
                    raise UnsupportedInstructionError(
                        "irreducible control flow", location(fn.block_map[b].terminator),
                        "rewrite the loop so it has a single entry")
                loop = headers.setdefault(s, Loop(s, {s}, []))
                loop.latches.append(b)
                work = [b]
                while work:
                    n = work.pop()
                    if n not in loop.blocks:
                        loop.blocks.add(n)
                        work.extend(p for p in fn.block_map[n].preds if p in index)
    loops = sorted(headers.values(), key=lambda lp: len(lp.blocks))
    for i, lp in enumerate(loops):
        for outer in loops[i + 1:]:
            if lp.header in outer.blocks and lp is not outer:
                lp.parent = outer
                outer.children.append(lp)
                break
    for i, lp in enumerate(loops):
        lp.index = i
    loop_of: dict[str, Loop | None] = {b: None for b in rpo}
    for lp in reversed(loops):                 # outermost first, inner loops overwrite
        for b in lp.blocks:
            loop_of[b] = lp
    cfg.loops, cfg.loop_of = loops, loop_of
    return cfg
