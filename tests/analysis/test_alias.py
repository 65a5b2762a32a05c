"""llad.analysis.alias: the scoped-noalias claims the derivative makes about its memory."""
from __future__ import annotations

import re

from llad.analysis.activity import analyse_activity
from llad.analysis.alias import AliasScopes
from llad.ir.model import Operand
from llad.ir.parser import parse_function

# x: Duplicated, y: Const; two allocation sites a and b (a receives an active value), an array wrapped
# around existing memory (NRT_MemInfo_new), and a pointer loaded from memory
MEMORY = """
define i32 @f(ptr %retptr, ptr %excinfo, ptr %x, ptr %y, ptr %box, i1 %c) {
entry:
  %ma = call ptr @NRT_MemInfo_alloc_aligned(i64 64, i32 32)
  %da = call ptr @NRT_MemInfo_data_fast(ptr %ma)
  %mb = call ptr @NRT_MemInfo_alloc_safe_aligned(i64 64, i32 32)
  %db = call ptr @NRT_MemInfo_data_fast(ptr %mb)
  %mw = call ptr @NRT_MemInfo_new(ptr %y, i64 64, ptr null, ptr null)
  %dw = call ptr @NRT_MemInfo_data_fast(ptr %mw)
  %px = getelementptr double, ptr %x, i64 1
  %py = getelementptr double, ptr %y, i64 1
  %pa = getelementptr double, ptr %da, i64 2
  %pb = getelementptr double, ptr %db, i64 2
  %unknown = load ptr, ptr %box, align 8
  %k = load i64, ptr %unknown, align 8
  %xa = select i1 %c, ptr %px, ptr %pa
  %xy = select i1 %c, ptr %px, ptr %py
  %au = select i1 %c, ptr %pa, ptr %unknown
  %v = load double, ptr %px, align 8
  store double %v, ptr %pa, align 8
  %w = load double, ptr %py, align 8
  store double %w, ptr %pb, align 8
  %s = load double, ptr %pa, align 8
  store double %s, ptr %retptr, align 8
  ret i32 0
}

declare ptr @NRT_MemInfo_alloc_aligned(i64, i32)
declare ptr @NRT_MemInfo_alloc_safe_aligned(i64, i32)
declare ptr @NRT_MemInfo_new(ptr, i64, ptr, ptr)
declare ptr @NRT_MemInfo_data_fast(ptr)
"""

ACTIVE_PTRS = {"x", "retptr"}


def scopes(fresh_shadow_params: bool = True) -> AliasScopes:
    fn = parse_function(MEMORY, "f")
    act = analyse_activity(fn, set(), set(ACTIVE_PTRS), {"y"}, lambda ins=None: "test.py:1")
    assert act.allocations == {"ma"}          # b only ever holds Const data
    return AliasScopes(fn, act, fresh_shadow_params, ACTIVE_PTRS)


def test_two_allocation_sites_get_different_scopes():
    s = scopes()
    a, b = s.scopes_of("pa", False), s.scopes_of("pb", False)
    assert a is not None and b is not None
    assert len(a) == 1 and len(b) == 1 and a != b
    assert s.scopes_of("da", False) == a      # the data pointer and a pointer into it: one allocation


def test_arguments_share_one_scope():
    s = scopes()
    assert s.scopes_of("px", False) == s.scopes_of("py", False) == s.scopes_of("x", False)
    assert s.scopes_of("px", False) != s.scopes_of("pa", False)


def test_memory_wrapped_by_meminfo_new_is_not_fresh():
    """NRT_MemInfo_new wraps memory that already exists: it may be an argument's, so it shares their scope."""
    s = scopes()
    assert s.scopes_of("dw", False) == s.scopes_of("px", False)


def test_return_slot_has_its_own_scope():
    s = scopes()
    ret = s.scopes_of("retptr", False)
    assert ret is not None and ret != s.scopes_of("px", False) and ret != s.scopes_of("pa", False)


def test_pointer_of_unknown_origin_gets_no_claim():
    s = scopes()
    assert s.scopes_of("unknown", False) is None
    assert s.scopes_of("au", False) is None            # partly unknown is unknown
    assert s.scopes_of("no-such-pointer", False) is None
    assert s.metadata(Operand("ptr", "%unknown"), False) == ()


def test_pointer_with_two_roots_belongs_to_both_scopes():
    s = scopes()
    both = s.scopes_of("xa", False)
    assert set(both) == set(s.scopes_of("px", False)) | set(s.scopes_of("pa", False))


def test_shadow_scopes():
    s = scopes(fresh_shadow_params=True)
    sx, sa, sret = s.scopes_of("px", True), s.scopes_of("pa", True), s.scopes_of("retptr", True)
    assert None not in (sx, sa, sret)
    assert len({sx, sa, sret}) == 3
    # a shadow is never in a primal scope
    primal = {s.scopes_of(p, False) for p in ("px", "pa", "pb", "retptr")}
    assert not {sx, sa, sret} & primal


def test_shadow_of_memory_without_a_shadow_gets_no_claim():
    s = scopes()
    assert s.scopes_of("py", True) is None         # a Const argument
    assert s.scopes_of("pb", True) is None         # an allocation that never holds an active value


def test_shadow_of_a_mixed_pointer_is_the_shadowed_part():
    s = scopes()
    assert s.scopes_of("xy", True) == s.scopes_of("px", True)


def test_shadow_arguments_share_the_argument_scope_unless_checked_fresh():
    s = scopes(fresh_shadow_params=False)
    assert s.scopes_of("px", True) == s.scopes_of("px", False)      # no claim between x and its shadow
    assert s.scopes_of("retptr", True) != s.scopes_of("retptr", False)
    assert s.scopes_of("pa", True) != s.scopes_of("pa", False)


def _metadata(s: AliasScopes) -> dict[str, list[str]]:
    out = {}
    for line in s.nodes():
        m = re.match(r"^(!\d+) = (?:distinct )?!\{(.*)\}$", line)
        assert m, line
        out[m.group(1)] = [t.strip() for t in m.group(2).split(",")]
    return out


def test_attachments_and_nodes_say_each_scope_is_disjoint_from_every_other():
    s = scopes()
    names = ("px", "pa", "pb", "retptr")
    attached = {n: s.metadata(Operand("ptr", "%" + n), False) for n in names}
    shadow = s.metadata(Operand("ptr", "%pa"), True)
    pairs = {}
    for n, md in [*attached.items(), ("shadow pa", shadow)]:
        kinds = dict(md)
        assert set(kinds) == {"alias.scope", "noalias"}, (n, md)
        pairs[n] = (kinds["alias.scope"], kinds["noalias"])
    md = _metadata(s)
    own = {n: set(md[scope]) for n, (scope, _) in pairs.items()}
    other = {n: set(md[noalias]) for n, (_, noalias) in pairs.items()}
    for n in pairs:
        assert own[n] and not own[n] & other[n]
        for m in pairs:
            if m != n:
                assert own[m] <= other[n], (n, m)      # each memory is disjoint from every other
    assert s.metadata(Operand("ptr", "%px"), False) == attached["px"]      # cached, stable
    assert s.metadata(Operand("ptr", "%py"), False) == attached["px"]      # same scope: same lists


def test_no_metadata_without_any_claim():
    assert scopes().nodes() == []
