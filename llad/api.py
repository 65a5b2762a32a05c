"""`llad.autodiff`: the compile cache, the shadow buffers a call passes, and calling the derivative (the
per-call hot path).  Modes and annotations: annotations.py."""
from __future__ import annotations

import dataclasses
import inspect
import threading

import numba
import numpy as np
from numba.core import types
from numpy.lib.array_utils import byte_bounds

from . import diskcache, frontend, guard, hotpath, parallel
from .analysis.layout import LayoutConflict
from .annotations import (
    RETURN_ACTIVITIES,
    Active,
    Annotation,
    BatchDuplicated,
    Const,
    Duplicated,
    DuplicatedNoNeed,
    Mode,
    _classify,
    _typeof,
)
from .config import config
from .outputs import array_result_in_reverse, returns_float_array
from .pipeline import build_derivative
from .plan import Act, Plan


def _same_layout_shadow(v: np.ndarray, dv: np.ndarray) -> np.ndarray:
    """dv itself when it has v's strides, else a copy with v's exact byte layout (the AD pass addresses
    shadows with the primal's strides)."""
    if dv.strides == v.strides:
        return dv
    if v.flags.c_contiguous or v.flags.f_contiguous:
        out = np.empty_like(v, order="K")
        if out.strides == v.strides:
            out[...] = dv
            return out
    lo, hi = byte_bounds(v)
    buf = np.zeros((hi - lo) // v.itemsize + 1, dtype=v.dtype)
    out = np.ndarray(v.shape, v.dtype, buffer=buf, offset=v.__array_interface__["data"][0] - lo,
                     strides=v.strides)
    out[...] = dv
    return out


# Vector mode interleaves a BatchDuplicated argument's k shadows (analysis/layout.py) when the copy in
# and out costs little next to what it saves: k times the array's bytes at most this much.
INTERLEAVE_MAX_BYTES = 4 << 20


def _interleaves(v, width: int) -> bool:
    return width > 1 and v.nbytes * width <= INTERLEAVE_MAX_BYTES


class _Lanes(tuple):
    """The one shadow of an interleaved argument, `(lane0,)`, with the full `shape + (k,)` view."""

    full: np.ndarray


def _interleave(v: np.ndarray, dvs) -> np.ndarray | None:
    """A buffer holding the k shadows side by side, element for element at k times v's own byte
    offsets (v's strides times k, any sign); its `[..., j]` is shadow j.  None when a shadow does not
    fit (the slow path then raises the full message)."""
    for dv in dvs:
        if dv.shape != v.shape or (v.size and np.may_share_memory(dv, v) and np.shares_memory(dv, v)):
            return None
    k, isz = len(dvs), v.itemsize
    if v.size == 0:
        return np.zeros(v.shape + (k,), v.dtype)
    lo, hi = byte_bounds(v)
    buf = _aligned_empty((hi - lo) * k // isz, v.dtype)
    full = np.ndarray(v.shape + (k,), v.dtype, buffer=buf, offset=(v.__array_interface__["data"][0] - lo) * k,
                      strides=tuple(st * k for st in v.strides) + (isz,))
    for j, dv in enumerate(dvs):
        full[..., j] = dv
    return full


def _aligned_empty(n: int, dtype, align: int = 64) -> np.ndarray:
    """np.empty(n, dtype) starting on an `align`-byte boundary: an interleaved element's k tangents are
    one vector access, which should not straddle two cache lines (NumPy aligns to 16 bytes)."""
    nbytes = n * np.dtype(dtype).itemsize
    raw = np.empty(nbytes + align, np.uint8)
    start = -raw.ctypes.data % align
    return raw[start:start + nbytes].view(dtype)


def _lanes(full: np.ndarray) -> _Lanes:
    out = _Lanes((full[..., 0],))
    out.full = full
    return out


# --- the cache -----------------------------------------------------------------------------------
_cache: dict = {}
_cache_lock = threading.Lock()
_key_locks: dict = {}
compile_count = {"n": 0}


def _get_derivative(dispatcher, plan: Plan, need_ir: bool = False):
    """The derivative from memory, else from the disk cache (diskcache.py), else compiled (and written
    to disk).  `need_ir`: one with the primal's IR (`llad.dump`), built again if the one in memory was
    loaded from disk."""
    key = (dispatcher, plan)          # the dispatcher itself: an id could be reused after it dies
    d = _cache.get(key)
    if d is not None and not (need_ir and d.loaded):
        return d
    with _cache_lock:
        lock = _key_locks.setdefault(key, threading.Lock())
    with lock:
        d = _cache.get(key)
        if d is None or (need_ir and d.loaded):
            digest = diskcache.key(dispatcher, plan)
            d = None if need_ir else diskcache.load(digest, plan)
            if d is None:
                d = build_derivative(dispatcher, plan, diskcache.salt(digest))
                with _cache_lock:
                    compile_count["n"] += 1
                diskcache.save(digest, d)
            _cache[key] = d
    return d


_dispatchers: dict = {}


def _dispatcher_for(f):
    d = _dispatchers.get(id(f))
    if d is None or d[0] is not f:
        with _cache_lock:                  # one dispatcher per plain function, even across threads
            d = _dispatchers.get(id(f))
            if d is None or d[0] is not f:
                d = (f, frontend.as_dispatcher(f))
                _dispatchers[id(f)] = d
    return d[1]


def prepare(mode: Mode, f, args: tuple, interleave: bool = True):
    """Validate the call and find (or build) its derivative; nothing is written to any array."""
    if not isinstance(mode, Mode):
        raise TypeError(f"llad.autodiff: the first argument must be a mode (llad.Forward, llad.Reverse, ...), "
                        f"got {mode!r}")
    ret_activity = None
    if args and isinstance(args[0], type) and args[0] in RETURN_ACTIVITIES:
        ret_activity, args = args[0], args[1:]
    elif args and isinstance(args[0], type) and issubclass(args[0], Annotation):
        raise TypeError(f"llad.autodiff: {args[0].__name__} cannot be a return activity")
    dispatcher = _dispatcher_for(f)
    _check_arity(dispatcher, len(args))
    classified = [_classify(i, a, mode.reverse) for i, a in enumerate(args)]
    if ret_activity is Active and not mode.reverse:
        raise TypeError("llad.autodiff: return activity Active is for reverse modes; forward modes take "
                        "Duplicated or Const")
    if ret_activity in (Duplicated, DuplicatedNoNeed) and mode.reverse and not mode.split:
        raise TypeError("llad.autodiff: return activity Duplicated is for forward modes; reverse modes take "
                        "Active (a float result) or Const")
    widths = {len(s) for tag, _, s in classified if tag == Act.DUP}
    if len(widths) > 1:
        raise ValueError("llad.autodiff: every BatchDuplicated argument must have the same number of shadows")
    width = widths.pop() if widths else 1
    argtypes = tuple(_typeof(i, v) for i, (_, v, _) in enumerate(classified))
    # guarded memory checks each shadow array as the caller's: k split shadows, not one interleaved copy
    interleave = interleave and not config.guard_memory
    inter = tuple(interleave and tag == Act.DUP and not mode.reverse and isinstance(v, np.ndarray)
                  and _interleaves(v, width) for tag, v, _ in classified)
    shadows = [_lanes(_interleave(v, s)) if x else
               tuple(_same_layout_shadow(v, dv) for dv in s) if isinstance(v, np.ndarray) else s
               for x, (_, v, s) in zip(inter, classified)]
    shadowtypes = tuple(tuple(numba.typeof(dv) for dv in s) for s in shadows)
    ret_tag = _default_return(dispatcher, argtypes, mode) if ret_activity is None else RETURN_ACTIVITIES[ret_activity]
    # with many shadows, checking per call that none overlaps another array costs more than the
    # `noalias` it buys: such calls compile the variant without it
    few_arrays = sum(len(s) for s in shadows) <= MAX_NOALIAS_SHADOWS
    # split mode keeps on its tape every value it reads, so the arrays may change between its two calls
    plan = Plan(mode.reverse, mode.with_primal, ret_tag, tuple(t for t, _, _ in classified), argtypes,
                shadowtypes, width, assume_noalias=few_arrays and not mode.split,
                interleave=inter if any(inter) else (), split=mode.split, vector_math=config.vector_math,
                guard_memory=config.guard_memory, keep_tapes=mode.reverse,
                skip_zero_adjoints=mode.reverse and not mode.split,
                no_need=_no_need(mode, args, classified))
    return plan, dispatcher, classified, shadows


def _no_need(mode: Mode, args, classified) -> tuple:
    """Per parameter, whether it is a DuplicatedNoNeed array of a forward mode (analysis.deadprimal); ()
    when none is."""
    flags = tuple(not mode.reverse and type(a) is DuplicatedNoNeed and isinstance(v, np.ndarray)
                  for a, (_, v, _) in zip(args, classified))
    return flags if any(flags) else ()


def derivative_for(mode: Mode, f, args: tuple, need_ir: bool = False):
    """`prepare`, then the derivative: the all-split variant when interleaved layouts would meet."""
    plan, dispatcher, classified, shadows = prepare(mode, f, args)
    try:
        return plan, dispatcher, classified, shadows, _get_derivative(dispatcher, plan, need_ir)
    except LayoutConflict:
        plan, dispatcher, classified, shadows = prepare(mode, f, args, interleave=False)
        return plan, dispatcher, classified, shadows, _get_derivative(dispatcher, plan, need_ir)


def _copy_back(classified, shadows, written) -> None:
    """Results written into temporary shadows (other strides, or interleaved) go to the caller's arrays."""
    for i, ((_, _, given), used) in enumerate(zip(classified, shadows)):
        if isinstance(used, _Lanes):
            if i in written:
                for j, dv in enumerate(given):
                    dv[...] = used.full[..., j]
            continue
        for dv, tmp in zip(given, used):
            if tmp is not dv and isinstance(dv, np.ndarray):
                dv[...] = tmp


MAX_NOALIAS_SHADOWS = 8


def _check_arity(dispatcher, n: int) -> None:
    sig = inspect.signature(dispatcher.py_func)
    params = list(sig.parameters.values())
    if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params):
        return
    if n != len(params):
        raise TypeError(f"llad.autodiff: {dispatcher.py_func.__name__} takes {len(params)} arguments, "
                        f"{n} {'was' if n == 1 else 'were'} annotated (pass every argument, defaults included)")


def _default_return(dispatcher, argtypes, mode: Mode) -> str:
    """Active (reverse) or Duplicated (forward) for a float result, and in forward modes for a float array
    result (reverse modes refuse one: it needs a seed, which split mode takes); Const otherwise (a tuple
    result is a status the arrays a function writes come with, docs/errors.md)."""
    ret = diskcache.return_type(dispatcher, argtypes)       # compiles the primal unless known
    if isinstance(ret, types.Float):
        return Act.ACTIVE if mode.reverse else Act.DUP
    if returns_float_array(ret):
        if mode.reverse and not mode.split:
            raise TypeError(array_result_in_reverse(dispatcher.py_func.__name__, ret))
        return Act.DUP
    return Act.CONST


def _arg_key(a):
    """A cheap key with everything the plan depends on (no numba.typeof on the hot path)."""
    cls = type(a)
    if cls is Duplicated or cls is DuplicatedNoNeed:
        v, dv = a.val, a.dval
        if type(v) is np.ndarray and type(dv) is np.ndarray:
            # flags.num bits: 1 C-contiguous, 2 F-contiguous, 0x400 writeable (a read-only shadow or one
            # of another dtype gets its own key, so the slow path raises the full message)
            return (cls, v.dtype.char, v.ndim, v.flags.num & 0x403, dv.flags.num & 0x403, dv.dtype.char)
        return None
    if cls is BatchDuplicated:
        v, dvs = a.val, a.dvals
        if type(v) is np.ndarray and type(dvs) is tuple and all(type(d) is np.ndarray for d in dvs):
            return (cls, v.dtype.char, v.ndim, v.flags.num & 0x403, _interleaves(v, len(dvs)),
                    tuple((d.flags.num & 0x403, d.dtype.char) for d in dvs))
        return None
    if cls is Active:
        return (Active, type(a.val))
    if cls is Const:                       # Const(v) and a bare v unpack differently: distinct keys
        inner = _arg_key(a.val)
        return None if inner is None else (Const, inner)
    t = type(a)
    if t is np.ndarray:
        return (t, a.dtype.char, a.ndim, a.flags.num & 0x403)
    if t is float or t is int or t is bool:
        return t
    return None


class _Prepared:
    """A cached derivative with what the hot path needs to call it."""

    __slots__ = ("plan", "derivative", "batch", "mode", "kinds", "entry", "shape", "alias_pairs", "unpack", "after",
                 "calls")

    def __init__(self, plan, derivative, batch, mode, args):
        self.plan, self.derivative, self.batch, self.mode = plan, derivative, batch, mode
        self.entry = derivative.entry
        # how each argument was written: its annotation class, None for a bare value
        self.kinds = tuple(type(a) if isinstance(a, Annotation) else None for a in args)
        self.shape = _result_shaper(mode, plan, derivative, batch)
        self.alias_pairs = derivative.alias_pairs
        inter = plan.interleave or (False,) * len(args)
        self.unpack = _unpacker(self.kinds, plan.width, inter, derivative.written)
        back = [i for i, x in enumerate(inter) if x and i in derivative.written]
        self.after = _copier(back) if any(inter) else None
        self.calls = 0                     # calls through the Python path (hotpath.TIER_UP_CALLS)


def _copier(back: list[int]):
    def after(params, fulls):
        for i, full in zip(back, fulls):
            for j, dv in enumerate(params[i].dvals):
                dv[...] = full[..., j]
    return after


_fast: dict = {}
_hot: dict = {}           # f -> its compiled call path (hotpath.py)
_hot_signatures: dict = {}


def forget_calls() -> None:
    """Drop every prepared call signature (a configuration change makes them stale)."""
    _fast.clear()
    _hot.clear()
    _hot_signatures.clear()


def autodiff(mode: Mode, f, *args):
    """Differentiate `f` at the annotated arguments.

    Returns, as Enzyme.jl: Reverse `(derivs,)`, ReverseWithPrimal `(derivs, primal)` (one entry per
    parameter: the derivative of an Active one, None otherwise); Forward `(tangent,)`, ForwardWithPrimal
    `(tangent, primal)` (a tuple of k tangents with BatchDuplicated)."""
    try:
        hot = _hot.get(f)
    except TypeError:                      # an unhashable f: the slow path says what is wrong
        hot = None
    if hot is not None:
        try:
            return hot(mode, args)
        except hotpath.Miss:
            pass
    return _autodiff_prepared(mode, f, args)


def _tier_up(f, hit, ret, params) -> None:
    """Give a signature called often its compiled path (hotpath.py); a parallel function keeps this one,
    which may take its parallel reverse sweep (parallel.py)."""
    if getattr(f, "targetoptions", {}).get("parallel"):
        return
    signatures = _hot_signatures.setdefault(f, [])
    signatures.append(hotpath.Signature(hit, ret, params))
    _hot[f] = hotpath.chain(signatures)


def _autodiff_prepared(mode: Mode, f, args):
    """The Python path: a signature prepared before (arguments checked in Python), else the slow path."""
    if isinstance(mode, Mode) and mode.reverse and getattr(f, "targetoptions", {}).get("parallel"):
        shape = parallel.applicable(mode, f, args)         # a parallel reverse sweep (parallel.py)
        result = parallel.reverse(mode, shape, args) if shape is not None else None
        if result is not None:
            return result
    ret = args[0] if args and isinstance(args[0], type) else None
    params = args[1:] if ret is not None else args
    try:
        key = (mode, f, ret, *map(_arg_key, params))
        hit = _fast.get(key)
    except TypeError:                      # an unhashable argument: take the slow path
        hit, key = None, None
    if hit is None or (hit.alias_pairs and _aliased(params, hit.alias_pairs)):
        return _autodiff_slow(mode, f, args, key)
    flat = hit.unpack(params)
    if flat is None:                       # a shadow with other strides, or one overlapping its array
        return _autodiff_slow(mode, f, args, None)
    if hit.after is not None:              # interleaved shadows: copy written ones back
        flat, fulls = flat
        result = hit.entry(*flat)
        hit.after(params, fulls)
        return hit.shape(result)
    hit.calls += 1
    if hit.calls == hotpath.TIER_UP_CALLS and hotpath.eligible(hit):
        _tier_up(f, hit, ret, params)
    return hit.shape(hit.entry(*flat))


def _unpacker(kinds: tuple, width: int, interleave: tuple, written: frozenset):
    """A function from the annotated arguments to the derivative's flat arguments, specialised to one
    call signature (no loop, no dispatch on annotation types): the per-call part of the hot path.
    With interleaved shadows it returns (flat arguments, the full views to copy back)."""
    lines, values, shadows, fulls = ["def unpack(p):"], [], [], []
    for i, kind in enumerate(kinds):
        lines.append(f"    a{i} = p[{i}]")
        if interleave[i]:
            lines += [f"    v{i} = a{i}.val",
                      f"    full{i} = inter(v{i}, a{i}.dvals)",
                      f"    if full{i} is None:",
                      "        return None"]
            values.append(f"v{i}")
            shadows.append(f"full{i}[..., 0]")
            if i in written:
                fulls.append(f"full{i}")
        elif kind in (Duplicated, DuplicatedNoNeed, BatchDuplicated):
            lines.append(f"    v{i} = a{i}.val")
            lanes = [f"a{i}.dvals[{j}]" for j in range(width)] if kind is BatchDuplicated else [f"a{i}.dval"]
            for j, lane in enumerate(lanes):
                sv = f"s{i}_{j}"
                lines += [f"    {sv} = {lane}",
                          f"    if {sv}.shape != v{i}.shape or {sv}.strides != v{i}.strides or "
                          f"(may({sv}, v{i}) and v{i}.size and shares({sv}, v{i})):",
                          "        return None"]
                shadows.append(sv)
            values.append(f"v{i}")
        else:
            values.append(f"a{i}" if kind is None else f"a{i}.val")
    flat = f"({', '.join(values + shadows)},)"
    copies = "".join(f + ", " for f in fulls)
    lines.append(f"    return ({flat}, ({copies}))" if any(interleave) else f"    return {flat}")
    namespace = {"may": np.may_share_memory, "shares": np.shares_memory, "inter": _interleave}
    exec(compile("\n".join(lines), "<llad hot path>", "exec"), namespace)
    return namespace["unpack"]


def _autodiff_slow(mode: Mode, f, args, key):
    if isinstance(mode, Mode) and mode.split:
        raise TypeError(f"llad.autodiff: {mode!r} is a split mode; call llad.autodiff_thunk({mode!r}, f, ...) for "
                        "its forward and reverse thunks")
    plan, dispatcher, classified, shadows, d = derivative_for(mode, f, args)
    params = args[1:] if args and isinstance(args[0], type) else args
    if d.alias_pairs and _aliased(params, d.alias_pairs):
        # a written array overlaps one the derivative re-reads: use the variant that keeps every load
        plan = dataclasses.replace(plan, assume_noalias=False)
        d, key = _get_derivative(dispatcher, plan), None
    batch = any(isinstance(a, BatchDuplicated) for a in args)
    if key is not None and None not in key[3:] and not plan.guard_memory:
        _fast[key] = _Prepared(plan, d, batch, mode, params)
    flat = [v for _, v, _ in classified]
    guarded = []
    for s in shadows:
        if plan.guard_memory:                # each shadow array inside a canary-filled buffer (guard.py)
            s = [_guarded(x, guarded) for x in s]
        flat.extend(s)
    result = d.entry(*flat)
    if plan.guard_memory:
        guard.check(d, guarded, getattr(dispatcher, "__name__", str(f)))
    _copy_back(classified, shadows, d.written)
    return _shape_result(mode, plan, d, result, batch)


def _guarded(x, guarded: list):
    if not isinstance(x, np.ndarray):
        return x
    guarded.append(guard.GuardedShadow(x))
    return guarded[-1].view


def tape_report(mode: Mode, f, *args) -> dict:
    """Run the reverse derivative once and report its tape: bytes written and bytes reserved.

    Shadows accumulate as in `autodiff`. This compiles a variant of the derivative that also counts."""
    plan, dispatcher, classified, shadows = prepare(mode, f, args)
    if not plan.reverse:
        raise ValueError("llad.tape_report: only reverse modes keep a tape")
    d = _get_derivative(dispatcher, dataclasses.replace(plan, report_tape=True))
    flat = [v for _, v, _ in classified] + [dv for s in shadows for dv in s]
    result = d.entry(*flat)
    _copy_back(classified, shadows, d.written)
    return {"used_bytes": int(result[-2]), "reserved_bytes": int(result[-1])}


def _value(a):
    return a.val if isinstance(a, Annotation) else a


def _array(args, slot):
    i, k = slot
    a = args[i]
    if k < 0:
        return _value(a)
    return a.dvals[k] if isinstance(a, BatchDuplicated) else a.dval


_pair_index: dict = {}


def _aliased(args, pairs) -> bool:
    """Whether any required pair of arrays overlaps in memory."""
    if len(pairs) <= 16:
        return any(np.may_share_memory(_array(args, p), _array(args, q)) for p, q in pairs)
    # many arrays (wide BatchDuplicated): sort byte ranges instead of testing every pair
    index = _pair_index.get(id(pairs))
    if index is None or index[0] is not pairs:
        index = _pair_index[id(pairs)] = (pairs, {frozenset(pq) for pq in pairs},
                                          sorted({s for pq in pairs for s in pq}))
    _, required, slots = index
    spans = sorted((*byte_bounds(_array(args, s)), s) for s in slots)
    for n, (_, hi, s) in enumerate(spans):
        for lo2, _, s2 in spans[n + 1:]:
            if lo2 >= hi:
                break
            if frozenset((s, s2)) in required:
                return True
    return False


def _result_shaper(mode: Mode, plan: Plan, d, batch: bool):
    """A function from the derivative's output tuple to autodiff's result, for the hot path."""
    p = 1 if d.has_primal_output else 0
    if mode.reverse or plan.ret_activity != Act.DUP or batch:
        return lambda result: _shape_result(mode, plan, d, result, batch)
    if mode.with_primal:
        return lambda result: (result[p], result[0])
    return lambda result: (result[p],)


def _shape_result(mode: Mode, plan: Plan, d, result, batch: bool):
    pos = 0
    primal = None
    if d.has_primal_output:
        primal, pos = result[0], 1
    if mode.reverse:
        derivs, k = [], pos + (1 if plan.split and plan.ret_activity is Act.DUP else 0)
        for tag in plan.activities:
            if tag == Act.ACTIVE:
                derivs.append(result[k])
                k += 1
            else:
                derivs.append(None)
        return (tuple(derivs), primal) if mode.with_primal else (tuple(derivs),)
    if plan.ret_activity == Act.DUP:
        tangents = tuple(result[pos:pos + plan.width])
        tangent = tangents if batch else tangents[0]
    else:
        tangent = None
    return (tangent, primal) if mode.with_primal else (tangent,)
