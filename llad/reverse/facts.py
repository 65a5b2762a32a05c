"""The facts reverse mode needs about the primal, computed once per derivative (Enzyme's GradientUtils
keeps the same): induction variables, what the function writes, which loads see final values, the trip
counts of counted loops, which loads' adjoints are deferred, and the selects' operand cones."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..analysis.activity import Activity
from ..analysis.cfg import CFG, Loop
from ..analysis.deferral import deferrable_loads, gather_groups
from ..analysis.inplace import in_place_updates
from ..analysis.recompute import (
    TripCount,
    final_value_loads,
    induction_variables,
    simple_loop_entry,
    trip_count,
    written_roots,
)
from ..analysis.zeroskip import skippable_loops
from ..ir.model import Function


@dataclass
class ReverseFacts:
    fn: Function
    act: Activity
    cfg: CFG
    ivs: dict                              # induction variable name -> InductionVariable
    written: set                           # roots of all memory the function writes
    data_params: set[str]                  # array data pointers (empty: the API could not check aliasing)
    final_loads: set[str]                  # loads of values nothing writes afterwards
    trip_counts: dict[int, TripCount]      # counted loops the reverse sweep enters knowing their trip count
    presized: dict[str, tuple]             # block before a counted loop -> (loop, trip count): tape reserved there
    deferred: dict[str, Loop]              # loads whose adjoints go to a scratch array (deferral.py)
    defer_slots: dict[int, list[str]]      # loop -> its deferred loads, in scratch-slot order
    gathers: dict[int, list]               # loop -> stencil groups [(address, [(load, element offset)])]
    defer_shift: dict[str, int] = field(default_factory=dict)   # load -> scratch index minus iteration index
    defer_pad: dict[int, int] = field(default_factory=dict)     # loop -> extra scratch elements per slot
    select_cone: set[str] = field(default_factory=set)          # values computed only to be chosen by a select
    users: dict = field(default_factory=dict)
    skippable: dict[int, list[str]] = field(default_factory=dict)  # loop -> live-out values (analysis.zeroskip)
    in_place: dict[int, str] = field(default_factory=dict)   # id(store) -> the load it updates (analysis.inplace)
    in_place_loads: set[str] = field(default_factory=set)     # those loads: their reverse adds nothing

    def loop(self, index: int) -> Loop:
        return next(lp for lp in self.cfg.loops if lp.index == index)


def reverse_facts(fn: Function, act: Activity, cfg: CFG, data_params: set[str], assume_noalias: bool,
                  skip_zero_adjoints: bool = False) -> ReverseFacts:
    ivs = induction_variables(fn, cfg)
    data_params = data_params if assume_noalias else set()
    counted = {lp.index: tc for lp in cfg.loops if (tc := trip_count(fn, cfg, ivs, lp)) is not None}
    # the reverse sweep recomputes where an execution's iterations start (the counter when it enters the
    # loop's reverse, minus the trip count) instead of keeping it on the tape; not for a loop holding a
    # return: the reverse sweep enters it there, not through an edge
    trip_counts = {i: tc for i, tc in counted.items()
                   if simple_loop_entry(fn, lp := next(x for x in cfg.loops if x.index == i)) is not None
                   and all(fn.block_map[b].succs for b in lp.blocks)}
    presized = {simple_loop_entry(fn, lp): (lp, counted[lp.index]) for lp in cfg.loops if lp.index in counted}
    deferred = deferrable_loads(fn, cfg, act, ivs, set(trip_counts)) if assume_noalias else {}
    defer_slots: dict[int, list[str]] = {}
    for name, lp in sorted(deferred.items()):
        defer_slots.setdefault(lp.index, []).append(name)
    facts = ReverseFacts(fn, act, cfg, ivs, written_roots(fn, act.roots), data_params,
                         final_value_loads(fn, act.roots, data_params), trip_counts, presized, deferred,
                         defer_slots, {}, users=fn.users())
    for i, names in defer_slots.items():
        facts.gathers[i] = groups = gather_groups(fn, facts.loop(i), names, ivs)
        for _, members in groups:
            low, high = min(d for _, d in members), max(d for _, d in members)
            facts.defer_pad[i] = max(facts.defer_pad.get(i, 0), high - low)
            facts.defer_shift.update((name, d - low) for name, d in members)
    facts.select_cone = _select_operand_cone(fn, act)
    facts.in_place = {k: v for k, v in in_place_updates(fn, act, facts.users).items() if v not in deferred}
    facts.in_place_loads = set(facts.in_place.values())
    if skip_zero_adjoints:
        facts.skippable = skippable_loops(fn, cfg, act, set(trip_counts), set(defer_slots), facts.users)
    return facts


def _select_operand_cone(fn: Function, act: Activity) -> set[str]:
    """Active values computed only to be chosen (or not) by a select: everything feeding a select's
    value operands through arithmetic, up to loads and phis."""
    work = [o.name for b in fn.blocks for ins in b.instructions if ins.opcode == "select" and ins.result in act.values
            for o in ins.operands[1:] if o.is_local]
    cone: set[str] = set()
    while work:
        name = work.pop()
        ins = fn.defs.get(name)
        if name in cone or ins is None or ins.opcode in ("load", "phi") or name not in act.values:
            continue
        cone.add(name)
        work.extend(o.name for o in ins.operands if o.is_local)
    return cone
