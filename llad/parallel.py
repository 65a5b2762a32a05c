"""A parallel reverse sweep for `@njit(parallel=True)` functions of one shape (docs/parallel.md).

llad differentiates a parallel function through its serial copy (frontend.py), whose derivative runs on
one thread.  For the shape parallel numeric kernels mostly have,

    def f(a, b, ...):
        s = 0.0                           # optional: one sum reduction
        for i in prange(n):               # one prange loop, its trip count an expression of the arguments
            ...                           # the body: `s += ...` is its only use of s
        return s                          # or `return <expression of the arguments>`, or nothing

the reverse sweep runs in parallel too, on Numba's threading layer: the iteration range is cut into one
chunk per thread, and each thread runs llad's reverse derivative of the *chunk function* (the same source
with `prange(n)` replaced by `range(lo, hi)`, returning its partial sum) on its own range.  Adjoints are
privatised: every thread accumulates into its own copy of each shadow, and the copies are summed into
the caller's shadows afterwards (for an array the loop may write, the change each copy made is added,
so seeds the loop consumes are consumed once).  This is exact for the loops `prange` is defined for:
iterations that write disjoint elements and combine only through the reduction.

`return <expression>` (`out.sum()` after filling `out`): the chunks run forward first (the loop's
state after it), llad's reverse of the expression seeds the shadows, the arrays the loop may write get
their values from before the loop back, and the chunks' reverse derivatives run as above.

Anything else (another statement before or after the loop, two loops, a `return` inside it, a closure,
a strided array, a call from jitted code, split or forward modes, guarded memory, one thread) takes the
serial derivative, which gives the same results.
"""
from __future__ import annotations

import ast
import inspect
import textwrap
import threading
from dataclasses import dataclass

import numba
import numpy as np

from . import annotations as A

_METADATA = ("shape", "size", "ndim", "strides", "dtype", "itemsize")   # attributes that are no view
_MIN_ITERATIONS_PER_THREAD = 64      # below this, the serial derivative is faster than cutting the range


@dataclass
class Shape:
    """What the parallel reverse sweep needs of f."""

    chunk: object            # @njit chunk(*params, lo, hi): the partial sum (reduction) or None
    trip: object             # @njit trip(*params): the prange loop's trip count
    post: object | None      # @njit post(*params): f's result from the state after the loop
    reduction: bool          # f returns the loop's sum
    written: frozenset       # names of the parameters the loop may write (conservative)
    params: tuple            # parameter names
    owned: frozenset         # parameters each iteration touches only its own rows of (no private shadows)


_shapes: dict = {}
_lock = threading.Lock()
taken = {"calls": 0}                  # calls that ran the parallel sweep (for tests and benchmarks)


def shape_of(dispatcher) -> Shape | None:
    """f's Shape, or None when f is not of the shape (module docstring); cached per dispatcher."""
    with _lock:
        if dispatcher in _shapes:
            return _shapes[dispatcher]
    try:
        shape = _build(dispatcher)
    except Exception:                     # noqa: BLE001 - any surprise: the serial derivative
        shape = None
    with _lock:
        _shapes[dispatcher] = shape
    return shape


def _build(dispatcher) -> Shape | None:
    py = dispatcher.py_func
    if py.__closure__ or not dispatcher.targetoptions.get("parallel"):
        return None
    tree = ast.parse(textwrap.dedent(inspect.getsource(py)))
    ast.increment_lineno(tree, py.__code__.co_firstlineno - 1)
    fdef = tree.body[0]
    if not isinstance(fdef, ast.FunctionDef):
        return None
    a = fdef.args
    if a.vararg or a.kwarg or a.kwonlyargs or a.posonlyargs:
        return None
    params = tuple(p.arg for p in a.args)
    body = list(fdef.body)
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]                   # the docstring
    red = None
    if body and isinstance(body[0], ast.Assign) and len(body[0].targets) == 1 and \
            isinstance(body[0].targets[0], ast.Name) and isinstance(body[0].value, ast.Constant) and \
            body[0].value.value == 0 and not isinstance(body[0].value.value, bool):
        red = body[0].targets[0].id
        init, body = body[0], body[1:]
    if not body or not _is_prange_loop(body[0]):
        return None
    loop, rest = body[0], body[1:]
    ret = rest[0] if rest else None
    if len(rest) > 1 or (ret is not None and not isinstance(ret, ast.Return)):
        return None
    ivar = loop.target.id
    if not _body_ok(loop, red, ivar, params) or not _plain_count(loop.iter.args[0]):
        return None
    post_expr = None
    if ret is None or ret.value is None:
        if red is not None:
            return None                   # a sum nobody returns: not worth a special case
    elif red is not None:
        if not (isinstance(ret.value, ast.Name) and ret.value.id == red):
            return None
    else:
        names = {n.id for n in ast.walk(ret.value) if isinstance(n, ast.Name)}
        if ivar in names:
            return None
        post_expr = ret.value
    namespace = dict(py.__globals__)
    options = {k: v for k, v in dispatcher.targetoptions.items() if k not in ("parallel", "cache", "nopython")}
    tag = py.__name__
    chunk_body = ([init] if red is not None else []) + [
        ast.copy_location(ast.For(target=loop.target,
                                  # unsigned bounds, as Numba's own gufunc has: i is known not negative,
                                  # so x[i] needs no wraparound select and the loop vectorises
                                  iter=ast.copy_location(ast.Call(func=ast.Name("range", ast.Load()),
                                                                  args=[ast.Name("__llad_lo", ast.Load()),
                                                                        ast.Name("__llad_hi", ast.Load())],
                                                                  keywords=[]), loop.iter),
                                  body=loop.body, orelse=[]), loop),
        ast.Return(ast.Name(red, ast.Load()) if red is not None else ast.Constant(None))]
    chunk = _function(f"__llad_chunk_{tag}", list(params) + ["__llad_lo", "__llad_hi"], chunk_body, py,
                      namespace, options)
    trip = _function(f"__llad_trip_{tag}", list(params), [ast.Return(loop.iter.args[0])], py, namespace, options)
    post = None if post_expr is None else \
        _function(f"__llad_post_{tag}", list(params), [ast.Return(post_expr)], py, namespace, options)
    return Shape(chunk, trip, post, red is not None, _written(loop, params), params, _owned(loop, params, ivar))


_COUNT_CALLS = ("len", "min", "max", "int")


def _plain_count(expr) -> bool:
    """The trip count is arithmetic on sizes and constants (no call that could write an array: the chunks
    never evaluate it, so its effects would be done once but not differentiated)."""
    for n in ast.walk(expr):
        if isinstance(n, ast.Call) and not (isinstance(n.func, ast.Name) and n.func.id in _COUNT_CALLS):
            return False
        if isinstance(n, (ast.NamedExpr, ast.Lambda, ast.Await, ast.Yield)):
            return False
    return True


def _is_prange_loop(node) -> bool:
    if not (isinstance(node, ast.For) and isinstance(node.target, ast.Name) and not node.orelse):
        return False
    it = node.iter
    if not (isinstance(it, ast.Call) and len(it.args) == 1 and not it.keywords):
        return False
    fn = it.func
    return (isinstance(fn, ast.Name) and fn.id == "prange") or (isinstance(fn, ast.Attribute) and fn.attr == "prange")


def _body_ok(loop, red, ivar, params) -> bool:
    """No return, yield, global or nested function in the body; the sum is only added to; the loop
    variable and the parameters are not rebound."""
    sum_updates = set()
    for node in ast.walk(loop):
        if isinstance(node, (ast.Return, ast.Yield, ast.YieldFrom, ast.Global, ast.Nonlocal, ast.FunctionDef,
                             ast.Lambda, ast.ClassDef, ast.AsyncFunctionDef)):
            return False
        if isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name) and node.target.id == red:
            if not isinstance(node.op, ast.Add):
                return False
            sum_updates.add(id(node.target))
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.For, ast.With)):
            targets = node.targets if isinstance(node, ast.Assign) else \
                [node.optional_vars] if isinstance(node, ast.With) else [node.target]
            for n in _bound_names(targets):
                if n in params or (n == ivar and node is not loop):
                    return False
    uses = [n for n in ast.walk(loop) if isinstance(n, ast.Name) and n.id == red]
    return all(id(n) in sum_updates for n in uses)


def _owned(loop, params, ivar) -> frozenset:
    """Parameters every use of which in the body is `p[i]` or `p[i, ...]` (i the prange variable) or a
    metadata attribute: an iteration touches only its own rows of them, so the chunks' adjoints of them
    never meet, and they need no private copies."""
    parents = {}
    for node in ast.walk(loop):
        for child in ast.iter_child_nodes(node):
            parents[id(child)] = node
    out = set(params)
    for stmt in loop.body:
        for n in ast.walk(stmt):
            if not (isinstance(n, ast.Name) and n.id in out):
                continue
            up = parents.get(id(n))
            if isinstance(up, ast.Attribute) and up.attr in _METADATA:
                continue
            if isinstance(up, ast.Subscript) and up.value is n:
                index = up.slice.elts[0] if isinstance(up.slice, ast.Tuple) and up.slice.elts else up.slice
                if isinstance(index, ast.Name) and index.id == ivar:
                    continue
            out.discard(n.id)
    return frozenset(out)


def _bound_names(targets) -> list[str]:
    """The names an assignment rebinds (not the arrays it writes through a subscript)."""
    out = []
    for t in targets:
        if isinstance(t, ast.Name):
            out.append(t.id)
        elif isinstance(t, (ast.Tuple, ast.List)):
            out += _bound_names(t.elts)
        elif isinstance(t, ast.Starred):
            out += _bound_names([t.value])
    return out


def _written(loop, params) -> frozenset:
    """Parameters the loop may write: assigned through a subscript, handed to a call (itself, an element or a
    view of it: a callee may write it) or called a method of; every parameter when a local name is assigned
    through (it may be a view of one)."""
    out = set()
    for node in (n for stmt in loop.body for n in ast.walk(stmt)):
        if isinstance(node, (ast.Assign, ast.AugAssign)):
            for t in (node.targets if isinstance(node, ast.Assign) else [node.target]):
                if isinstance(t, ast.Subscript):
                    base = t.value
                    while isinstance(base, (ast.Subscript, ast.Attribute)):
                        base = base.value
                    if isinstance(base, ast.Name):
                        if base.id not in params:
                            return frozenset(params)
                        out.add(base.id)
        if isinstance(node, ast.Call):        # an argument that is a parameter or a view of it; a method
            for arg in list(node.args) + [k.value for k in node.keywords] + [node.func]:
                if isinstance(arg, ast.Starred):
                    arg = arg.value
                metadata = False
                while isinstance(arg, (ast.Subscript, ast.Attribute)):
                    metadata |= isinstance(arg, ast.Attribute) and arg.attr in _METADATA
                    arg = arg.value
                if isinstance(arg, ast.Name) and arg.id in params and not metadata:
                    out.add(arg.id)
    return frozenset(out)


def _function(name, params, body, py, namespace, options):
    first = next((n for n in body if hasattr(n, "lineno")), None)
    fdef = ast.FunctionDef(name=name, args=ast.arguments(posonlyargs=[], args=[ast.arg(p) for p in params],
                                                         vararg=None, kwonlyargs=[], kw_defaults=[], kwarg=None,
                                                         defaults=[]),
                           body=body, decorator_list=[], returns=None)
    if "type_params" in ast.FunctionDef._fields:      # Python 3.12+
        fdef.type_params = []
    if first is not None:
        ast.copy_location(fdef, first)
    module = ast.fix_missing_locations(ast.Module(body=[fdef], type_ignores=[]))
    for node in ast.walk(module):         # nodes llad made carry their neighbours' lines
        if hasattr(node, "lineno"):
            node.end_lineno = max(node.end_lineno or node.lineno, node.lineno)
    # the user's file and line numbers: a message about the chunk points at f's own lines
    code = compile(module, py.__code__.co_filename, "exec")
    local = dict(namespace)
    exec(code, local)                    # noqa: S102 - f's own source, rearranged
    return numba.njit(**options)(local[name])


# --- the call ------------------------------------------------------------------------------------------------
def applicable(mode, dispatcher, args) -> Shape | None:
    """The Shape when this reverse call of f can take the parallel sweep (module docstring), else None."""
    from .config import config
    if not mode.reverse or mode.split or config.guard_memory or numba.get_num_threads() < 2:
        return None
    if not dispatcher.targetoptions.get("parallel"):
        return None
    params = args[1:] if args and isinstance(args[0], type) else args
    ret = args[0] if args and isinstance(args[0], type) else None
    if ret not in (None, A.Active, A.Const):
        return None
    for a in params:
        if isinstance(a, (A.Duplicated, A.DuplicatedNoNeed)):
            if not (isinstance(a.val, np.ndarray) and isinstance(a.dval, np.ndarray) and a.val.flags.c_contiguous
                    and a.dval.flags.c_contiguous and a.dval.flags.writeable and a.val.dtype == a.dval.dtype
                    and a.val.shape == a.dval.shape and not np.may_share_memory(a.val, a.dval)):
                return None
        elif isinstance(a, A.Active):
            if not isinstance(a.val, float):
                return None
        elif isinstance(a, A.Annotation) and not isinstance(a, A.Const):
            return None
    shadows = [a.dval for a in params if isinstance(a, (A.Duplicated, A.DuplicatedNoNeed))]
    if any(np.may_share_memory(p, q) for k, p in enumerate(shadows) for q in shadows[k + 1:]):
        return None                       # overlapping shadows: the chunks' adjoints could meet in them
    shape = shape_of(dispatcher)
    if shape is None or len(params) != len(shape.params):
        return None
    # the sum: Active (the default); an expression: Active, said; nothing returned: Const (the default)
    wanted = (None, A.Active) if shape.reduction else (A.Active,) if shape.post is not None else (None, A.Const)
    return shape if ret in wanted else None


def reverse(mode, shape: Shape, args):
    """autodiff(Reverse or ReverseWithPrimal, f, ...) through the chunks (module docstring); None when the
    trip count is too small to share (the caller then takes the serial derivative)."""
    params = args[1:] if args and isinstance(args[0], type) else args
    values = [a.val if isinstance(a, A.Annotation) else a for a in params]
    try:
        n = int(shape.trip(*values))
    except Exception:                     # noqa: BLE001 - arguments f does not take: the serial path says why
        return None
    threads = numba.get_num_threads()
    if n < threads * _MIN_ITERATIONS_PER_THREAD:
        return None
    bounds = np.array([(c * n // threads, (c + 1) * n // threads) for c in range(threads)], dtype=np.uint64)
    kinds = tuple("dup" if isinstance(a, (A.Duplicated, A.DuplicatedNoNeed)) else
                  "active" if isinstance(a, A.Active) else "const" for a in params)
    shadows = {i: a.dval for i, a in enumerate(params) if kinds[i] == "dup"}
    shared = tuple("shared" if k == "dup" and shape.params[i] in shape.owned else k for i, k in enumerate(kinds))
    from . import api
    try:
        # the chunk's derivative as called from Python (tape buffers kept between calls, one place per
        # thread), planned on chunk 0's annotations: a private shadow is a fresh array like the real ones
        first = [A.Duplicated(values[i], shadows[i] if s == "shared" else np.empty_like(shadows[i])) if k == "dup"
                 else A.Active(values[i]) if k == "active" else A.Const(values[i])
                 for i, (k, s) in enumerate(zip(kinds, shared))]
        first += [A.Const(bounds[0, 0]), A.Const(bounds[0, 1])]
        chunk_mode = A.ReverseWithPrimal if shape.reduction else A.Reverse      # the partial sum, or nothing
        plan, _, _, used, d = api.derivative_for(chunk_mode, shape.chunk,
                                                 (A.Active if shape.reduction else A.Const, *first))
        if any(u and u[0] is not a.dval for a, u in zip(first, used) if isinstance(a, A.Duplicated)) or \
                (d.alias_pairs and api._aliased(first, d.alias_pairs)):
            return None                   # shadows the derivative would copy, or arrays that overlap
        drive = _chunk_driver(shape, shared, d, plan)
        forward = _primal_driver(shape, values, bounds) if shape.post is not None else None
    except Exception:                     # noqa: BLE001 - the chunk does not type with unsigned bounds (`x[i - 1]`),
        _give_up(shape)                   # or llad refuses it: the serial derivative says why, at f's own lines
        return None
    post_derivs, primal = {}, None
    if forward is not None:
        written = [i for i, p in enumerate(shape.params) if p in shape.written and isinstance(values[i], np.ndarray)]
        before = {i: values[i].copy() for i in written}
        done = np.zeros(len(bounds), dtype=np.int8)
        forward(*values, bounds, done)                            # the state after the loop
        _check_done(shape, values, bounds, done, written=True)
        res = _post_reverse(shape, kinds, values, shadows)
        post_derivs = {i: d for i, d in enumerate(res[0]) if d is not None}
        primal = res[1] if mode.with_primal else None
        for i, v in before.items():
            values[i][...] = v
    privates, deltas = {}, set()
    for i in shadows:
        if shared[i] == "shared":         # one shadow for all: the chunks touch disjoint rows of it
            privates[i] = shadows[i]
        elif shape.params[i] in shape.written:
            privates[i] = np.broadcast_to(shadows[i], (len(bounds),) + shadows[i].shape).copy()
            deltas.add(i)
        else:
            privates[i] = np.zeros((len(bounds),) + shadows[i].shape, dtype=shadows[i].dtype)
    active = [i for i, k in enumerate(kinds) if k == "active"]
    acc = np.zeros((len(bounds), len(active) + 1))
    done = np.zeros(len(bounds), dtype=np.int8)
    drive(*values, *(privates[i] for i in sorted(privates)), bounds, acc, done)
    taken["calls"] += 1
    _check_done(shape, values, bounds, done, written=bool(shape.written) or shape.post is not None)
    for i, p in privates.items():
        if shared[i] == "shared":
            continue
        if i in deltas:
            shadows[i][...] = shadows[i] + (p - shadows[i]).sum(axis=0)
        else:
            shadows[i][...] += p.sum(axis=0)
    derivs = tuple(float(acc[:, active.index(i)].sum()) + post_derivs.get(i, 0.0) if kinds[i] == "active"
                   else None for i in range(len(kinds)))
    if shape.reduction:
        primal = float(acc[:, -1].sum())
    return (derivs, primal) if mode.with_primal else (derivs,)


def _check_done(shape: Shape, values, bounds, done, written: bool) -> None:
    """Numba's parallel region drops an exception a chunk raises (the chunk just stops): raise it here.
    When the loop writes no array, f's chunk itself (Numba's, with f's error model) runs again on that
    range from the same values and raises what it raised; else the arrays are no longer those the chunk
    started from, and a RuntimeError says what happened."""
    failed = [c for c in range(len(bounds)) if not done[c]]
    if not failed:
        return
    c = failed[0]
    lo, hi = int(bounds[c, 0]), int(bounds[c, 1])
    if not written:
        shape.chunk(*values, bounds[c, 0], bounds[c, 1])          # raises the chunk's exception
    name = shape.chunk.py_func.__name__.replace("__llad_chunk_", "")
    raise RuntimeError(f"llad.autodiff: {name} raised an exception in the parallel reverse sweep, in the chunk "
                       f"of iterations {lo}..{hi - 1}; Numba's parallel region does not carry it out. Call it with "
                       "numba.set_num_threads(1) (the serial derivative) to see the exception; the arrays and "
                       "shadows are left as the sweep left them")


def _give_up(shape: Shape) -> None:
    """f takes the serial derivative from now on."""
    with _lock:
        for k, v in list(_shapes.items()):
            if v is shape:
                _shapes[k] = None


def _post_reverse(shape, kinds, values, shadows):
    """llad's reverse of the expression f returns, at the state after the loop: seeds into the shadows."""
    from .api import autodiff
    ann = [A.Duplicated(values[i], shadows[i]) if k == "dup" else A.Active(values[i]) if k == "active" else
           A.Const(values[i]) for i, k in enumerate(kinds)]
    return autodiff(A.ReverseWithPrimal, shape.post, A.Active, *ann)


_drivers: dict = {}


def _primal_driver(shape: Shape, values, bounds):
    """@njit(parallel=True): every chunk's primal, through llad's copy of it (every argument Const: its
    vectorised math, as the reverse derivatives have it), leaving the state after the loop."""
    from . import api
    first = [A.Const(v) for v in values] + [A.Const(bounds[0, 0]), A.Const(bounds[0, 1])]
    plan, _, _, _, d = api.derivative_for(A.ReverseWithPrimal, shape.chunk, (A.Const, *first))
    key = (id(shape), "primal", d.name)
    with _lock:
        hit = _drivers.get(key)
    if hit is not None:
        return hit
    vals = [f"v{i}" for i in range(len(values))]
    src = (f"def drive({', '.join(vals)}, bounds, done):\n"
           f"    for c in prange(bounds.shape[0]):\n"
           f"        call({', '.join(vals)}, bounds[c, 0], bounds[c, 1])\n"
           f"        done[c] = 1\n")
    from .jitted import _caller
    return _compiled(key, src, {"call": _caller(d, plan)})


def _chunk_driver(shape: Shape, kinds: tuple, d, plan):
    """@njit(parallel=True): each chunk's reverse derivative `d` on its range, into its private shadows (or
    the shared one of an owned array), its Active derivatives and its partial sum into acc[c]."""
    key = (id(shape), kinds, d.name)
    with _lock:
        hit = _drivers.get(key)
    if hit is not None:
        return hit
    from .jitted import _caller
    vals = [f"v{i}" for i in range(len(kinds))]
    privs = [f"p{i}" for i, k in enumerate(kinds) if k in ("dup", "shared")]
    shadows = [f"p{i}[c]" if k == "dup" else f"p{i}" for i, k in enumerate(kinds) if k in ("dup", "shared")]
    pos = 1 if d.has_primal_output else 0
    lines = [f"def drive({', '.join(vals + privs)}, bounds, acc, done):",
             "    for c in prange(bounds.shape[0]):",
             f"        r = call({', '.join(vals)}, bounds[c, 0], bounds[c, 1], {', '.join(shadows)})",
             "        done[c] = 1"]
    for k, _ in enumerate(i for i, kind in enumerate(kinds) if kind == "active"):
        lines.append(f"        acc[c, {k}] = r[{pos + k}]")
    if shape.reduction:
        lines.append("        acc[c, acc.shape[1] - 1] = r[0]")
    return _compiled(key, "\n".join(lines) + "\n", {"call": _caller(d, plan)})


def _compiled(key, src: str, namespace: dict):
    namespace = dict(namespace, prange=numba.prange)
    exec(compile(src, "<llad parallel reverse>", "exec"), namespace)      # noqa: S102
    fn = numba.njit(parallel=True)(namespace["drive"])
    with _lock:
        _drivers[key] = fn
    return fn
