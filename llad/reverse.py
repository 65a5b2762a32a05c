"""Reverse mode: an augmented forward sweep that keeps what the reverse sweep needs, then the reverse
sweep over the control-flow graph, accumulating adjoints.

Layout of the generated function (one LLVM function):

    llad.entry   allocas: return slots, adjoint slots, loop counters, tape states
    <B>          the primal blocks, as they were, plus: shadow pointers and allocations, a predecessor id
                 phi in blocks with several predecessors, a counter in each loop header, and stores of
                 the values the reverse sweep needs onto the tape
    rev.<B>      the reverse of block B: its instructions' adjoints in reverse order, then the adjoints
                 of its phis routed to the predecessor it was entered from
    llad.done    free the tape, write the outputs

Caching (tape.py): a value the reverse sweep needs is recomputed when that is cheap and exact (integer
and pointer arithmetic, GEPs, int->float casts); otherwise it is stored in the forward sweep. Values
defined outside loops live in an alloca slot; values defined in loop L live in L's tape, a growable
array of records indexed by L's global iteration counter (loops are reversed in exactly reverse
order, so the counter counted back down indexes the same records).  The predecessor a block was
entered from is an ordinary cached value (an i8 phi), which reconstructs any reducible control flow.
"""
from __future__ import annotations

from .analysis.activity import ALLOC_CALLS, Activity
from .analysis.cfg import CFG
from .analysis.deferral import deferrable_loads, gather_groups
from .analysis.recompute import (
    final_value_loads,
    induction_variables,
    readonly_load,
    simple_loop_entry,
    trip_count,
    written_roots,
)
from .errors import UnsupportedInstructionError
from .forward import ForwardGenerator
from .ir.builder import Namer, fconst, is_const_zero
from .ir.model import Block, Function, Instruction, Operand, is_float, ref
from .rules import (
    DERIVATIVE_FMF,
    FLOAT_CASTS,
    NEG_ONE,
    ONE,
    RULES,
    MathBuilder,
    PrimalValues,
    rule_name_for_call,
    scaled,
)
from .shadow import gep_text, guarded, meminfo_or_standin, memset_call, null_preserving, shadow_name, shadow_of
from .tape import _SIZES, RECOMPUTABLE, RESERVE_IR, Tape

ACTIVE = "active"
# float arithmetic the reverse sweep recomputes rather than tapes when its operands come for free
CHEAP_FLOAT_OPS = {"fadd", "fsub", "fmul", "fneg", "fdiv", "fpext", "fptrunc"}


def rev(block: str) -> str:
    return ref("rev." + block)


def pred_id_name(block: str) -> str:
    return f"pid.{block}"


class ReverseGenerator:
    def __init__(self, fn: Function, act: Activity, cfg: CFG, location, param_adjoints: list[str],
                 data_params: set[str], assume_noalias: bool, scopes=None):
        self.fn, self.act, self.cfg, self.location = fn, act, cfg, location
        self.scopes = scopes                       # analysis.alias.AliasScopes, or None
        self.ivs = induction_variables(fn, cfg)
        self.written = written_roots(fn, act.roots)
        self.data_params = data_params if assume_noalias else set()
        self.reloaded: set[str] = set()            # array parameters whose loads the reverse sweep repeats
        self.final_loads = final_value_loads(fn, act.roots, self.data_params)
        # counted loops: the reverse sweep recomputes where an execution's iterations start (the counter
        # when it enters the loop's reverse, minus the trip count) instead of keeping it on the tape
        # (not for a loop holding a return: the reverse sweep enters it there, not through an edge)
        self.trip_counts = {lp.index: tc for lp in cfg.loops if simple_loop_entry(fn, lp) is not None
                            and all(fn.block_map[b].succs for b in lp.blocks)
                            and (tc := trip_count(fn, cfg, self.ivs, lp)) is not None}
        # loads whose adjoints go to a scratch array, added to the shadow after the reverse loop
        self.deferred = deferrable_loads(fn, cfg, act, self.ivs, set(self.trip_counts)) if assume_noalias else {}
        self.defer_slots: dict[int, list[str]] = {}
        for name, lp in sorted(self.deferred.items()):
            self.defer_slots.setdefault(lp.index, []).append(name)
        # stencil groups: one gather loop per group; each load's adjoints stored at the element it reads
        self.gathers = {i: gather_groups(fn, next(lp for lp in cfg.loops if lp.index == i), names, self.ivs)
                        for i, names in self.defer_slots.items()}
        self.defer_shift: dict[str, int] = {}          # load -> scratch index minus iteration index
        self.defer_pad: dict[int, int] = {}            # loop -> extra scratch elements per slot
        for i, groups in self.gathers.items():
            for _, members in groups:
                low, high = min(d for _, d in members), max(d for _, d in members)
                self.defer_pad[i] = max(self.defer_pad.get(i, 0), high - low)
                self.defer_shift.update((name, d - low) for name, d in members)
        self.guarded = _select_operand_cone(fn, act)
        self._free_memo: dict = {}
        self.declarations: dict[str, str] = {}
        self.b = MathBuilder(Namer("r"), declarations=self.declarations)
        self.b.fast = DERIVATIVE_FMF
        self.tape = Tape(fn, cfg)
        self.users = fn.users()
        self.slot_adjoints: set[str] = set(param_adjoints)
        self.local: dict[str, str] = {}            # adjoint accumulated within the current reverse block
        self.avail: dict[str, str] = {}            # primal / shadow values available in the current block
        self.block: Block | None = None

    # --- adjoint storage --------------------------------------------------------------------------
    def _is_local(self, name: str) -> bool:
        ins = self.fn.defs.get(name)
        if ins is None or name in self.slot_adjoints:
            return False
        return all(u.block is ins.block and u.opcode != "phi" for u in self.users.get(name, []))

    def add_adjoint(self, op: Operand, value: str) -> None:
        if not (op.is_local and op.name in self.act.values) or is_const_zero(value):
            return
        name, ty = op.name, op.type
        if self._is_local(name):
            self.local[name] = self.b.fadd(ty, self.local.get(name, fconst(ty, 0.0)), value)
        else:
            self.slot_adjoints.add(name)
            self.b.accumulate(ty, adjoint_slot(name), value)

    def take_adjoint(self, ins: Instruction) -> str:
        """The total adjoint of ins's result, and reset it (so an earlier iteration starts from zero)."""
        ty, name = ins.type, ins.result
        total = self.local.pop(name, fconst(ty, 0.0))
        if not self._is_local(name):
            self.slot_adjoints.add(name)
            slot = adjoint_slot(name)
            total = self.b.fadd(ty, total, self.b.load(ty, slot))
            self.b.store(ty, fconst(ty, 0.0), slot)
        return total

    # --- primal values in the reverse sweep --------------------------------------------------------
    def need(self, op: Operand) -> str:
        if not op.is_local:
            return op.text
        return self.need_name(op.name)

    def need_name(self, name: str) -> str:
        if name in self.avail:
            return self.avail[name]
        ins = self.fn.defs.get(name)
        if ins is None:                                     # a parameter
            return ref(name)
        if _recomputable(ins) or (ins.opcode in CHEAP_FLOAT_OPS and self._free(name, 4)):
            v = self._recompute(ins)
        elif ins.result in self.ivs:
            v = self._induction_variable(ins)
        elif ins.opcode == "load" and self._reloadable(ins):
            self.reloaded |= {r[1] for r in self.act.roots[ins.operands[0].name]}
            v = self.b.load(ins.type, self.need(ins.operands[0]), invariant=True,
                            meta=self._meta(ins.operands[0], False))
        else:
            v = self.tape.load(self.b, name, ins.type, ins.block.name, self.block.name)
        self.avail[name] = v
        return v

    def _reloadable(self, load: Instruction) -> bool:
        """The reverse sweep may repeat this load: its memory holds the same value then."""
        return load.result in self.final_loads or readonly_load(load, self.act.roots, self.written, self.data_params)

    def _free(self, name: str, depth: int) -> bool:
        """Whether `name` can be recomputed in the reverse sweep without reading the tape (cheap
        arithmetic on parameters, induction variables and loads from unwritten arrays)."""
        key = (name, depth)
        if key in self._free_memo:
            return self._free_memo[key]
        ins = self.fn.defs.get(name)
        if ins is None:
            ok = True
        elif ins.result in self.ivs:
            ok = True
        elif ins.opcode == "load":
            ok = self._reloadable(ins) and self._free_ops(ins, depth)
        elif _recomputable(ins) or ins.opcode in CHEAP_FLOAT_OPS:
            ok = depth > 0 and self._free_ops(ins, depth - (ins.opcode in CHEAP_FLOAT_OPS))
        else:
            ok = False
        self._free_memo[key] = ok
        return ok

    def _free_ops(self, ins: Instruction, depth: int) -> bool:
        return all(self._free(o.name, depth) for o in ins.operands if o.is_local)

    def _induction_variable(self, ins: Instruction) -> str:
        g, g0 = self.iteration(self.ivs[ins.result].loop)
        return self._iv_at(ins, self.b.op("sub", "i64", g, g0))

    def _iv_at(self, ins: Instruction, local: str) -> str:
        """The value of induction variable `ins` in iteration `local` (from 0) of its loop's execution."""
        iv = self.ivs[ins.result]
        if ins.type != "i64":
            local = self.b.cast("trunc", "i64", local, ins.type)
        delta = self.b.op("mul", ins.type, local, self.need(iv.step))
        return self.b.op("sub" if iv.negate else "add", ins.type, self.need(iv.start), delta)

    def iteration(self, loop) -> tuple[str, str]:
        """(global index of the current iteration of loop, global index of this execution's first)."""
        pre = simple_loop_entry(self.fn, loop)
        g = self.tape.current_index(self.b, loop, self.block.name)
        if loop.index in self.trip_counts:
            g0 = self.b.load("i64", ref(f"g0r.{loop.index}"))
        else:
            g0 = self.tape.load(self.b, f"g0.{loop.index}", "i64", pre, self.block.name)
        return g, g0

    def _enter_loops(self, block: Block, pred: str) -> None:
        """On the reverse edge block -> pred: for each counted loop the edge enters (backwards), the global
        index of this execution's first iteration, into `%g0r.<loop>`."""
        entered = [lp for lp in self.cfg.loops if lp.index in self.trip_counts and pred in lp.blocks
                   and block.name not in lp.blocks]
        if not entered:
            return
        saved = self.block, dict(self.avail)
        self.block = Block(f"{block.name}.enter.{pred}")       # its own memo keys for tape addresses
        for lp in entered:
            tc, b = self.trip_counts[lp.index], self.b
            start = b.op("add", "i64", self.need(tc.start), str(tc.start_offset)) if tc.start_offset \
                else self.need(tc.start)
            bound = self.need(tc.bound)
            diff = b.op("sub", "i64", *((bound, start) if tc.sign > 0 else (start, bound)))
            n = b.call("i64", "llvm.smax.i64", [("i64", b.op("add", "i64", diff, str(tc.extra))), ("i64", "1")])
            self.declarations["llvm.smax.i64"] = "declare i64 @llvm.smax.i64(i64, i64)"
            ctr = b.load("i64", ref(f"ctr.{lp.index}"))
            b.store("i64", b.op("sub", "i64", ctr, n), ref(f"g0r.{lp.index}"))
            slots = self.defer_slots.get(lp.index)
            if slots:       # room for every iteration's deferred adjoints (contents need not survive)
                i = lp.index
                b.store("i64", n, ref(f"dfn.{i}"))
                room = b.op("add", "i64", n, str(self.defer_pad.get(i, 0)))
                st = b.call("{ ptr, i64 }", "llad.tape.reserve", [("ptr", b.load("ptr", ref(f"dfb.{i}"))),
                                                                  ("i64", b.load("i64", ref(f"dfc.{i}"))),
                                                                  ("i64", room), ("i64", str(8 * len(slots)))])
                b.store("ptr", b.extract("{ ptr, i64 }", st, 0), ref(f"dfb.{i}"))
                b.store("i64", b.extract("{ ptr, i64 }", st, 1), ref(f"dfc.{i}"))
        self.block, self.avail = saved

    def _scratch(self, lp, load: str, local: str) -> str:
        """Where iteration `local` of loop lp keeps the deferred adjoint of `load` (in a stencil group:
        at the element it reads, counted from the group's lowest offset)."""
        if self.defer_shift.get(load):
            local = self.b.op("add", "i64", local, str(self.defer_shift[load]))
        return self._scratch_at(lp, load, local)

    def _scratch_at(self, lp, load: str, local: str) -> str:
        """Element `local` of `load`'s scratch array (one per deferred load, `capacity` elements)."""
        b, i = self.b, lp.index
        slot = self.defer_slots[i].index(load)
        cap = b.load("i64", ref(f"dfc.{i}"))
        off = b.op("add", "i64", b.op("mul", "i64", cap, str(8 * slot)),
                   b.op("mul", "i64", local, str(_SIZES[self.fn.defs[load].type])))
        return b.gep("i8", b.load("ptr", ref(f"dfb.{i}")), [("i64", off)])

    def _flush_deferred(self, lp, label: str) -> None:
        """After lp's reverse loop (on its way out, in block `label`), add the kept adjoints to the
        shadow: a stencil group in one gather loop over the elements it reads, `shadow[e] += t_0[e] +
        t_1[e] + ...` (zeroing first the scratch elements no iteration wrote), every other deferred load
        in its own loop, `shadow[address in iteration j] += t[j]`."""
        saved, i, b = (self.block, self.avail), lp.index, self.b
        n = b.load("i64", ref(f"dfn.{i}"))
        grouped = {name for _, members in self.gathers.get(i, []) for name, _ in members}
        loops = [(f"{slot}", [name], name, 0, n) for slot, name in enumerate(self.defer_slots[i])
                 if name not in grouped]
        for g, (q, members) in enumerate(self.gathers.get(i, [])):
            low, high = min(d for _, d in members), max(d for _, d in members)
            for name, d in members:      # t_m holds the elements its load reads: zero the rest of the range
                size = _SIZES[self.fn.defs[name].type]
                if d - low:
                    b.emit(memset_call(self._scratch_at(lp, name, "0"), "i64", str((d - low) * size)))
                if high - d:
                    end = b.op("add", "i64", n, str(d - low))
                    b.emit(memset_call(self._scratch_at(lp, name, end), "i64", str((high - d) * size)))
            loops.append((f"g{g}", [name for name, _ in members], q, low, b.op("add", "i64", n, str(high - low))))
        for tag, names, ptr_name, low, count in loops:
            load = self.fn.defs[names[0]]
            self.block, self.avail = Block(f"{lp.header}.flush.{tag}"), {}
            head, done = f"dfl.{i}.{tag}", f"dfl.{i}.{tag}.done"
            j, jn = ref(f"dfj.{i}.{tag}"), ref(f"dfjn.{i}.{tag}")
            b.emit(f"br label %{head}")
            b.lines.append(f"{head}:")
            b.emit(f"{j} = phi i64 [ 0, %{label} ], [ {jn}, %{head} ]")
            at = b.op("add", "i64", j, str(low)) if low else j     # the iteration whose address is element j
            for iv_name, iv in self.ivs.items():
                if iv.loop is lp:
                    self.avail[iv_name] = self._iv_at(self.fn.defs[iv_name], at)
            total = None
            for name in names:
                v = b.load(load.type, self._scratch_at(lp, name, j), meta=self.tape.meta)
                total = v if total is None else b.fadd(load.type, total, v)
            ptr = Operand("ptr", ref(ptr_name)) if len(names) > 1 else load.operands[0]
            b.accumulate(load.type, self.need_shadow(ptr), total, self._meta(ptr, True))
            b.emit(f"{jn} = add i64 {j}, 1")
            more = b.icmp("ult", "i64", jn, count)
            b.emit(f"br i1 {more}, label %{head}, label %{done}")
            b.lines.append(f"{done}:")
            label = done
        self.block, self.avail = saved

    def _recompute(self, ins: Instruction) -> str:
        if ins.opcode == "getelementptr":
            text = gep_text(ins, self.need(ins.operands[0]), self.need)
        else:
            text = _rename_operands(ins, self.need)
        r = self.b.namer.fresh()
        self.b.emit(f"{r} = {text}")
        return r

    def memory_shadow(self, op: Operand, for_write: bool) -> str:
        """The shadow to read or write: a stand-in when it may be null (mixed memory)."""
        s = self.need_shadow(op)
        return guarded(self.b, s, for_write) if op.is_local and op.name in self.act.maybe_null else s

    def need_shadow(self, op: Operand) -> str:
        if op.text in ("null", "undef", "poison"):
            return op.text
        if not (op.is_local and op.name in self.act.pointers):
            return shadow_of(op, self.act, 0, self.fn.defs.get(op.name), self.location)
        key = "s0." + op.name
        if key in self.avail:
            return self.avail[key]
        ins = self.fn.defs.get(op.name)
        if ins is None:
            v = shadow_name(op.name)
        elif ins.opcode == "getelementptr":
            base = self.need_shadow(ins.operands[0])
            r = self.b.namer.fresh()
            self.b.emit(f"{r} = {gep_text(ins, base, self.need)}")
            v = r
            if ins.operands[0].is_local and ins.operands[0].name in self.act.maybe_null:
                v = null_preserving(self.b, base, r)
        elif ins.opcode == "select":
            v = self.b.select(self.need(ins.operands[0]), "ptr", self.need_shadow(ins.operands[1]),
                              self.need_shadow(ins.operands[2]))
        elif ins.opcode == "call" and ins.callee == "NRT_MemInfo_data_fast":
            # NRT_MemInfo_data_fast(mi) is the field at byte 24 of the MemInfo, fixed once allocated
            mi = self.need_shadow(ins.operands[0])
            if ins.operands[0].is_local and ins.operands[0].name in self.act.maybe_null:
                mi = meminfo_or_standin(self.b, mi)
            field = self.b.gep("i8", mi, [("i64", "24")])
            v = self.b.load("ptr", field, invariant=True)
        else:                                               # pointer phis, allocations: taped
            v = self.tape.load(self.b, key, "ptr", ins.block.name, self.block.name)
        self.avail[key] = v
        return v

    # --- driver -------------------------------------------------------------------------------------
    def generate(self) -> list[str]:
        for name in self.cfg.rpo:
            self.reverse_block(self.fn.block_map[name])
        return self.b.lines

    def reverse_block(self, block: Block) -> None:
        self.block, self.local, self.avail = block, {}, {}
        self.b.lines.append(f"{rev(block.name)[1:]}:")
        for ins in reversed(block.body):
            self.visit(ins)
        phi_adjoints = [(ins, self.take_adjoint(ins)) for ins in block.phis if ins.result in self.act.values]
        preds = [p for p in block.preds if p in self.cfg.loop_of]
        loop = self.cfg.loop_of.get(block.name)
        header = loop is not None and loop.header == block.name
        entry = simple_loop_entry(self.fn, loop) if header else None
        # which predecessor: read before the loop counter moves to the previous iteration
        if entry is not None:
            g, g0 = self.iteration(loop)
            first = self.b.icmp("eq", "i64", g, g0)
            preds = [entry, loop.latches[0]]
        elif len(preds) > 1:
            pid = self._recomputed_pred_id(block, preds)
            if pid is None:
                pid = self.tape.load(self.b, pred_id_name(block.name), "i8", block.name, block.name)
                self.tape.needs_pred_id(block.name)
        if header:
            self.tape.end_reverse_iteration(self.b, loop)
        if not preds:
            self.b.emit("br label %llad.done")
        elif len(preds) == 1:
            self._route_phis(phi_adjoints, preds[0])
            self._enter_loops(block, preds[0])
            self.b.emit(f"br label {rev(preds[0])}")
        else:
            edges = [ref(f"rev.{block.name}.from.{p}") for p in preds]
            if entry is not None:
                self.b.emit(f"br i1 {first}, label {edges[0]}, label {edges[1]}")
            else:
                cases = " ".join(f"i8 {i}, label {e}" for i, e in enumerate(edges[1:], start=1))
                self.b.emit(f"switch i8 {pid}, label {edges[0]} [ {cases} ]")
            for p, e in zip(preds, edges):
                self.b.lines.append(f"{e[1:]}:")
                self._route_phis(phi_adjoints, p)
                if entry is not None and p == entry and loop.index in self.defer_slots:
                    self._flush_deferred(loop, e[1:])
                self._enter_loops(block, p)
                self.b.emit(f"br label {rev(p)}")

    def _recomputed_pred_id(self, block: Block, preds: list[str]) -> str | None:
        """Which of two predecessors `block` was entered from, without the tape, when one of them, G,
        branches on a condition the reverse sweep recomputes for free (a loop guard `n > 2`): G
        dominates the other, E, every path from `block` back to E passes G, and G, `block` share their
        innermost loop.  Then `block` came from G exactly when G's last branch went to it."""
        if len(preds) != 2:
            return None
        for gi, g in enumerate(preds):
            e, term = preds[1 - gi], self.fn.block_map[g].terminator
            if term.opcode != "br" or len(term.targets) != 2 or len(set(term.targets)) != 2 \
                    or not term.operands[0].is_local or not self.cfg.dominates(g, e) \
                    or self.cfg.loop_of.get(g) is not self.cfg.loop_of.get(block.name) \
                    or e in self._reachable_avoiding(block.name, g) or not self._free(term.operands[0].name, 4):
                continue
            cond = self.need(term.operands[0])
            direct = term.targets[0] == block.name        # the true edge goes to block
            return self.b.select(cond, "i8", str(gi if direct else 1 - gi), str(1 - gi if direct else gi))
        return None

    def _reachable_avoiding(self, start: str, avoid: str) -> set[str]:
        seen, work = set(), list(self.fn.block_map[start].succs)
        while work:
            b = work.pop()
            if b not in seen and b != avoid:
                seen.add(b)
                work.extend(self.fn.block_map[b].succs)
        return seen

    def _route_phis(self, phi_adjoints, pred: str) -> None:
        for ins, adj in phi_adjoints:
            for v, bb in ins.incoming:
                if bb == pred:
                    self.add_adjoint(v, adj)

    # --- instructions -------------------------------------------------------------------------------
    def visit(self, ins: Instruction) -> None:
        op = ins.opcode
        if op == "store":
            self.visit_store(ins)
        elif op == "call":
            self.visit_call(ins)
        elif ins.result in self.act.values:
            if op in RULES:
                self._apply_rule(ins, op)
            elif op == "load":
                self.visit_load(ins)
            elif op == "select":
                self.visit_select(ins)
            elif op in FLOAT_CASTS:
                adj = self.take_adjoint(ins)
                src = ins.operands[0]
                self.add_adjoint(src, self.b.cast(FLOAT_CASTS[op], ins.type, adj, src.type))
            else:
                raise UnsupportedInstructionError(f"instruction `{ins.text}`", self.location(ins),
                                                  "llad has no derivative for this instruction")

    def _apply_rule(self, ins: Instruction, name: str) -> None:
        rule, ty, b = RULES[name], ins.type, self.b
        adj = self.take_adjoint(ins)
        if is_const_zero(adj):
            return
        primal = PrimalValues(lambda i: self.need(ins.operands[i]), lambda: self.need_name(ins.result))
        for i, partial in enumerate(rule.partials):
            op = ins.operands[i]
            if partial is None or not (op.is_local and op.name in self.act.values):
                continue
            d = partial(b, ty, primal)
            if d is None:
                continue
            term = scaled(b, ty, d, adj)
            if ins.result in self.guarded and d not in (ONE, NEG_ONE):
                # the branch a select did not take gets a zero adjoint, and its partial may be NaN or inf
                # there (pow of a negative, division by zero): 0 * NaN must stay 0
                term = b.select(b.fcmp("oeq", ty, adj, fconst(ty, 0.0)), ty, fconst(ty, 0.0), term)
            self.add_adjoint(op, term)

    def visit_select(self, ins: Instruction) -> None:
        adj = self.take_adjoint(ins)
        cond, a, c = ins.operands
        zero = fconst(ins.type, 0.0)
        cv = self.need(cond)
        if a.is_local and a.name in self.act.values:
            self.add_adjoint(a, self.b.select(cv, ins.type, adj, zero))
        if c.is_local and c.name in self.act.values:
            self.add_adjoint(c, self.b.select(cv, ins.type, zero, adj))

    def _meta(self, ptr: Operand, shadow: bool) -> str:
        return "" if self.scopes is None else self.scopes.suffix(ptr, shadow)

    def visit_load(self, ins: Instruction) -> None:
        adj = self.take_adjoint(ins)
        lp = self.deferred.get(ins.result)
        if lp is not None:         # every iteration writes its slot: the flush adds them all
            g, g0 = self.iteration(lp)
            value = fconst(ins.type, 0.0) if is_const_zero(adj) else adj
            self.b.store(ins.type, value, self._scratch(lp, ins.result, self.b.op("sub", "i64", g, g0)),
                         self.tape.meta)
            return
        if not is_const_zero(adj):
            self.b.accumulate(ins.type, self.memory_shadow(ins.operands[0], True), adj,
                              self._meta(ins.operands[0], True))

    def visit_store(self, ins: Instruction) -> None:
        val, ptr = ins.operands
        if not (ptr.is_local and ptr.name in self.act.pointers) or not is_float(val.type):
            return
        meta = self._meta(ptr, True)
        adj = self.b.load(val.type, self.memory_shadow(ptr, False), meta=meta)
        self.b.store(val.type, fconst(val.type, 0.0), self.memory_shadow(ptr, True), meta)
        self.add_adjoint(val, adj)

    def visit_call(self, ins: Instruction) -> None:
        callee = ins.callee
        if callee.startswith(ALLOC_CALLS):
            if ins.result in self.act.pointers:        # the shadow's last use: free it
                self.b.emit(f"call void @NRT_decref(ptr {self.need_shadow(Operand('ptr', ref(ins.result)))})")
        elif callee.startswith("llvm.memset."):
            dst, _, size = ins.operands[:3]
            if dst.is_local and dst.name in self.act.pointers:
                self.b.emit(memset_call(self.need_shadow(dst), size.type, self.need(size)))
        elif callee.startswith(("llvm.memcpy.", "llvm.memmove.")):
            self._memcpy(ins)
        elif ins.result in self.act.values:
            self._apply_rule(ins, rule_name_for_call(callee))

    def _memcpy(self, ins: Instruction) -> None:
        dst, src, size = ins.operands[:3]
        if not (dst.is_local and dst.name in self.act.pointers):
            return
        sdst, n = self.need_shadow(dst), self.need(size)
        if src.is_local and src.name in self.act.pointers:
            ty = element_type(self.fn, self.act, dst.name)
            fn = f"llad.addzero.{'f64' if ty == 'double' else 'f32'}"
            self.b.emit(f'call void @"{fn}"(ptr {sdst}, ptr {self.need_shadow(src)}, {size.type} {n})')
        else:
            self.b.emit(memset_call(sdst, size.type, n))


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


def adjoint_slot(name: str) -> str:
    return ref(f"adj.{name}")


def element_type(fn: Function, act: Activity, pointer: str) -> str:
    """The float type stored in the memory `pointer` points into (for memcpy adjoints)."""
    roots = act.roots.get(pointer, frozenset())
    for b in fn.blocks:
        for ins in b.instructions:
            if ins.opcode in ("load", "store"):
                p = ins.operands[-1] if ins.opcode == "store" else ins.operands[0]
                ty = ins.type if ins.opcode == "load" else ins.operands[0].type
                if is_float(ty) and p.is_local and act.roots.get(p.name, frozenset()) & roots:
                    return ty
    return "double"


def _recomputable(ins: Instruction) -> bool:
    if ins.opcode in RECOMPUTABLE:
        return True
    return ins.opcode == "select" and not is_float(ins.type)


def _rename_operands(ins: Instruction, need) -> str:
    """ins's text right of `=`, every local operand replaced by need(operand)."""
    from .ir.model import LOCAL_REF
    body = ins.text.split("=", 1)[1].strip() if ins.result is not None else ins.text
    names = {o.name for o in ins.operands if o.is_local}
    return LOCAL_REF.sub(lambda m: need(Operand("?", m.group(0))) if _unq(m.group(1)) in names else m.group(0), body)


def _unq(s: str) -> str:
    return s[1:-1] if s.startswith('"') else s


class AugmentedForward(ForwardGenerator):
    """The forward sweep of reverse mode: the primal, shadow pointers, and stores onto the tape."""

    tangents = False

    def __init__(self, fn, act, cfg, tape: Tape, location, on_return, ivs, scopes=None):
        super().__init__(fn, act, 1, location, on_return, scopes=scopes)
        self.cfg, self.tape = cfg, tape
        self.b.namer.prefix = "a"
        # counted loops reserve their whole tape before they start: no check per iteration, so the
        # forward sweep's loop can still be vectorised
        self.counted = {}
        for lp in cfg.loops:
            tc = trip_count(fn, cfg, ivs, lp)
            if tc is not None:
                self.counted[simple_loop_entry(fn, lp)] = (lp, tc)
                tape.presized.add(lp.index)

    def before_terminator(self, block: Block) -> None:
        entry = self.counted.get(block.name)
        if entry is None:
            return
        lp, tc = entry
        b = self.b
        first = b.op("add", "i64", tc.start.text, str(tc.start_offset)) if tc.start_offset else tc.start.text
        diff = b.op("sub", "i64", *((tc.bound.text, first) if tc.sign > 0 else (first, tc.bound.text)))
        n = b.op("add", "i64", diff, str(tc.extra))
        n = b.call("i64", "llvm.smax.i64", [("i64", n), ("i64", "1")])
        self.declarations["llvm.smax.i64"] = "declare i64 @llvm.smax.i64(i64, i64)"
        c = self.b.load("i64", ref(f"ctr.{lp.index}"))
        self.b.lines.append(f"@@RESERVE.{lp.index}.{self.b.op('add', 'i64', c, n)}@@")

    def extra_phis(self, block: Block) -> list[str]:
        if block.name not in self.tape.pred_id_blocks:
            return []
        preds = [p for p in block.preds if p in self.cfg.loop_of]
        # one entry per edge: a switch with several cases to this block is that many edges
        pairs = ", ".join(f"[ {i}, {ref(p)} ]" for i, p in enumerate(preds)
                          for _ in range(max(1, self.fn.block_map[p].terminator.targets.count(block.name))))
        return [f"{ref(pred_id_name(block.name))} = phi i8 {pairs}"]

    def after_phis(self, block: Block) -> None:
        # the header's counter moves first: every tape store below is indexed by this iteration
        loop = self.cfg.loop_of.get(block.name)
        if loop is not None and loop.header == block.name:
            self.tape.begin_forward_iteration(self.b, loop)
        for ins in block.phis:
            self._store(ins)
        if block.name in self.tape.pred_id_blocks:
            self.tape.store(self.b, pred_id_name(block.name), block.name)
        for lp in self.cfg.loops:
            name = f"g0.{lp.index}"
            if self.tape.is_cached(name) and simple_loop_entry(self.fn, lp) == block.name:
                self.b.emit(f"{ref(name)} = load i64, ptr {ref(f'ctr.{lp.index}')}")
                self.tape.store(self.b, name, block.name)

    def _shadow_allocation(self, ins: Instruction) -> None:
        # The reverse sweep frees each shadow at the allocation's reverse; if f raises instead, the
        # failure path frees every shadow allocated so far from this list.
        super()._shadow_allocation(ins)
        self.b.emit(f"call void @llad.shadows.push(ptr %llad.shadows, ptr {shadow_name(ins.result)})")
        self.tape.has_shadow_allocations = True

    def after_instruction(self, ins: Instruction) -> None:
        if ins.opcode != "phi":
            self._store(ins)

    def _store(self, ins: Instruction) -> None:
        if ins.result is None:
            return
        block = ins.block.name
        if self.tape.is_cached(ins.result):
            self.tape.store(self.b, ins.result, block)
        if self.tape.is_cached("s0." + ins.result):
            self.tape.store(self.b, "s0." + ins.result, block)


def reverse_function_body(fn, act, cfg, plan, primal, location, out_llty, ret_llty, has_primal, ret, scopes=None):
    from .pipeline import ACTIVE as ACT
    from .pipeline import _store_outputs
    active_params = [primal.params[i].llvm_names[0] for i, a in enumerate(plan.activities) if a == ACT]
    data_params = {p.data_param for p in primal.params if p.is_array}
    gen = ReverseGenerator(fn, act, cfg, location, active_params, data_params, plan.assume_noalias, scopes)
    tape = gen.tape
    if scopes is not None:
        tape.meta = scopes.tape_suffix()
    rev_lines = gen.generate()

    def on_return(b, ins):
        status = ins.operands[0].text
        tape.begin_reverse(b)
        ok = b.icmp("eq", "i32", status, "0")
        fail = ref(f"llad.fail.{ins.block.name}")
        b.emit(f"br i1 {ok}, label {rev(ins.block.name)}, label {fail}")
        b.lines.append(f"{fail[1:]}:")
        tape.free_all(b, failed=True)
        b.emit(f"ret i32 {status}")

    aug = AugmentedForward(fn, act, cfg, tape, location, on_return, gen.ivs, scopes)
    fwd_lines = aug.generate()
    done = MathBuilder(Namer("e"), declarations=gen.declarations)
    done.lines.append("llad.done:")
    extra = []
    for p in active_params:
        extra.append((fn.param_types[p], done.load(fn.param_types[p], adjoint_slot(p))))
    if plan.report_tape:
        extra += tape.report(done)
    tape.free_all(done)
    for i in sorted(gen.defer_slots):
        done.emit(f"call void @free(ptr {done.load('ptr', f'%dfb.{i}')})")
    _store_outputs(done, out_llty, ret_llty, has_primal, plan, ret, extra)
    done.emit("ret i32 0")

    prologue = tape.prologue()
    prologue += [f"  %g0r.{i} = alloca i64" for i in sorted(gen.trip_counts)]
    for i in sorted(gen.defer_slots):
        prologue += [f"  %dfb.{i} = alloca ptr", f"  store ptr null, ptr %dfb.{i}", f"  %dfc.{i} = alloca i64",
                     f"  store i64 0, ptr %dfc.{i}", f"  %dfn.{i} = alloca i64"]
    for name in sorted(gen.slot_adjoints):
        ty = fn.param_types.get(name) or fn.defs[name].type
        slot = adjoint_slot(name)
        prologue += [f"  {slot} = alloca {ty}", f"  store {ty} {fconst(ty, 0.0)}, ptr {slot}"]
    if plan.ret_activity == ACT:
        prologue.append(f'  store {ret_llty} {fconst(ret_llty, 1.0)}, ptr %"s0.retptr"')
    decls = {**aug.declarations, **gen.declarations, **tape.declarations()}

    def finish(text: str) -> str:
        text = tape.finish(text)
        if "llad.tape.reserve" in text:
            text += RESERVE_IR
        return text
    written = {r[1] for r in gen.written if r[0] == "param"}
    index = {p.data_param: p.index for p in primal.params if p.is_array}
    alias_pairs = tuple((index[a], index[w]) for a in gen.reloaded for w in written
                        if a in index and w in index and a != w)
    return fwd_lines + rev_lines + done.lines, decls, prologue, finish, alias_pairs, tape
