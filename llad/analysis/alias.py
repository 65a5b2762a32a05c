"""Alias scopes: which memory of the derivative can never overlap, told to LLVM as scoped-noalias metadata.

Numba's own IR cannot say that two arrays allocated inside a function are distinct (their data
pointers are loaded from the meminfo), so LLVM reloads every value across every store.  The
derivative knows more, by construction:

* each array allocated inside the function (`NRT_MemInfo_alloc*`) is fresh memory, disjoint from
  every other allocation site and from every argument;
* each shadow llad allocates is fresh, and each shadow argument is disjoint from every other array
  when the API checked it for this call (`Plan.assume_noalias`);
* the return slot and its shadow are stack slots of the derivative itself.

Every load and store whose pointer llad can trace to such roots gets `!alias.scope` (the scopes of its
roots) and `!noalias` (every other scope).  Arguments share one scope (a caller may pass overlapping
arrays); a pointer of unknown origin gets no metadata and so may alias anything.  Two accesses of one
allocation site in different loop iterations share its scope, so nothing is claimed between them; a
freed allocation's memory reused by a later one is reached only through a new allocation call.
"""
from __future__ import annotations

from ..ir.callees import FRESH_MEMORY, classify
from ..ir.model import Function
from .activity import Activity

_ARGS = "args"
_TAPE = "tape"           # reverse mode's loop tapes: buffers llad mallocs, disjoint from every array
_BASE = 7_000_000        # metadata ids far above any the primal module might use


class AliasScopes:
    def __init__(self, fn: Function, act: Activity, fresh_shadow_params: bool, active_params: set[str]):
        self.act = act
        fresh = set()
        for b in fn.blocks:
            for ins in b.instructions:
                if ins.opcode == "call" and classify(ins.callee) in FRESH_MEMORY:
                    fresh.add(ins.result)
        self._fresh, self._fresh_shadow_params, self._active_params = fresh, fresh_shadow_params, active_params
        self._ids: dict[str, int] = {}          # scope name -> metadata id
        self._lists: dict[tuple, int] = {}      # (alias.scope names) -> id of its (scope, noalias) pair
        self._cache: dict[tuple, str] = {}

    # --- scopes of one root ---------------------------------------------------------------------------
    def _primal_scope(self, root) -> str | None:
        kind, name = root
        if kind == "param":
            return "ret" if name == "retptr" else _ARGS
        if kind == "alloc":
            return f"a.{name}" if name in self._fresh else _ARGS
        if kind == "global":
            return _ARGS
        return None

    def _shadow_scope(self, root) -> str | None:
        kind, name = root
        if kind == "param":
            if name == "retptr":
                return "s.ret"
            return f"s.{name}" if self._fresh_shadow_params else _ARGS
        if kind == "alloc":
            return f"s.{name}"
        return None

    def scopes_of(self, ptr: str, shadow: bool) -> tuple | None:
        """The names of the scopes a load or store through `ptr` (or its shadow) belongs to; None: no
        claim (a pointer of unknown origin)."""
        roots = self.act.roots.get(ptr)
        if not roots:
            return None
        if shadow:      # roots without a shadow give the null shadow: reads of a constant, writes to a sink
            roots = [r for r in roots if (r[0] == "param" and r[1] in self._active_params)
                     or (r[0] == "alloc" and r[1] in self.act.allocations)]
            if not roots:
                return None
        scopes = [(self._shadow_scope if shadow else self._primal_scope)(r) for r in roots]
        if None in scopes:
            return None
        return tuple(sorted(set(scopes)))

    def _all_scopes(self) -> list[str]:
        """Every scope of the function, discovered before any list is written."""
        if not self._ids:
            names = {_ARGS, "ret", "s.ret", _TAPE}
            for roots in self.act.roots.values():
                for r in roots:
                    for s in (self._primal_scope(r), self._shadow_scope(r)):
                        if s is not None:
                            names.add(s)
            for i, n in enumerate(sorted(names)):
                self._ids[n] = i
        return list(self._ids)

    # --- what generators attach -------------------------------------------------------------------------
    def metadata(self, ptr_operand, shadow: bool) -> tuple:
        """`(("alias.scope", "!N"), ("noalias", "!M"))` for a load or store through `ptr_operand` (or its
        shadow); empty when llad can claim nothing about it."""
        if not ptr_operand.is_local:
            return ()
        key = (ptr_operand.name, shadow)
        out = self._cache.get(key)
        if out is None:
            scopes = self.scopes_of(ptr_operand.name, shadow)
            out = self._cache[key] = () if scopes is None else self._attachment(scopes)
        return out

    def tape_metadata(self) -> tuple:
        return self._attachment((_TAPE,))

    def _attachment(self, scopes: tuple) -> tuple:
        self._all_scopes()
        n = self._list_id(self._lists.setdefault(scopes, len(self._lists)))
        return (("alias.scope", f"!{n}"), ("noalias", f"!{n + 1}"))

    def _list_id(self, n: int) -> int:
        return _BASE + 1 + len(self._ids) + 2 * n

    def nodes(self) -> list[str]:
        """The module-level nodes: one domain, one scope per memory, a (scope, noalias) pair per root set."""
        if not self._lists:
            return []
        self._all_scopes()
        lines = [f'!{_BASE} = distinct !{{!{_BASE}, !"llad: disjoint memory of the derivative"}}']
        lines += [f'!{_BASE + 1 + i} = distinct !{{!{_BASE + 1 + i}, !{_BASE}, !"{n}"}}' for n, i in self._ids.items()]
        for scopes, n in self._lists.items():
            mine = [self._ids[s] for s in scopes]
            others = [i for i in self._ids.values() if i not in mine]
            lines.append(f"!{self._list_id(n)} = !{{{', '.join(f'!{_BASE + 1 + i}' for i in mine)}}}")
            lines.append(f"!{self._list_id(n) + 1} = !{{{', '.join(f'!{_BASE + 1 + i}' for i in others)}}}")
        return lines
