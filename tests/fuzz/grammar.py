"""A Hypothesis grammar of random Numba-compilable kernels, generated as Python source.

Every kernel has the same signature, so that one checker (check.py) can drive all of them::

    @numba.njit
    def kern(x, w, A, out, a):      # x, w, out: float64[n]; A: float64[n, n]; a: float
        s = 0.0
        t0 = ...                      # float locals, all initialised here
        <statements>
        return s + t0 + ...

* the arrays are sometimes float32 (every float literal and ``tmp`` stay float64, so the kernel mixes
  precisions: fpext on every read, fptrunc on every write);
* ``x`` is sometimes a strided view and ``A`` sometimes Fortran-ordered (each shadow is a fresh
  C-contiguous array, which llad must map onto the primal's layout); some kernels allocate a scratch
  array ``tmp = np.zeros(n)`` and read and write it like the others.
* ``x`` and ``out`` are always ``Duplicated``; ``w`` and ``A`` are ``Duplicated`` or ``Const``; ``a`` is
  ``Active`` (reverse modes; ``Const`` in forward modes) or ``Const``.  A ``Const`` array is never
  written, and the kernel only writes ``x``, ``out`` and (when differentiated) ``w``.
* Statements: assignments to locals, ``s += e``, ``s = s * e``, element writes ``arr[i] = e`` /
  ``arr[i] += e`` (in place, to the input ``x`` or the scratch ``out``), ``if`` on data with an
  optional ``else``, counted ``for`` loops with small constant bounds (nested up to 3 deep),
  ``while`` loops whose trip count depends on data, ``break`` / ``continue`` in ``for`` loops, ``return``
  (also from inside loops and branches), calls of helper ``@njit``
  functions (scalar helpers with generated bodies, and the array helpers of helpers.py, which read or
  write in place; kernels import those from ``fuzz.helpers``, so ``tests/`` must be on sys.path).
* Expressions: ``+ - * /`` (division by a constant, by ``1.5 + e*e``, or, rarely, by any expression),
  ``sin cos tanh atan``, ``exp`` of a bounded argument, ``log(1 + e*e)``, ``sqrt(e*e + 1)``,
  ``e ** k`` for k in 2..4, ``abs``, ``min``/``max``, ``float(i)`` of a loop index.
* Indices are always in bounds: constants below n, loop variables (every bound is at most n),
  ``(i + k) % n`` and ``n - 1 - i``.

`kernels()` is the strategy; a drawn `Kernel` carries the module source and everything needed to
build its arguments (the input values come from `Kernel.seed`).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from hypothesis import strategies as st

KERNEL_NAME = "kern"
PARAMS = ("x", "w", "A", "out", "a")
CONSTANTS = ("0.5", "1.5", "2.0", "0.25", "3.0", "-1.0", "0.1", "0.75", "-0.5")
# library=True: NumPy functions of a whole array (ARR), K an index valid for every ARR form
LIBRARY_CALLS = ("sum(ARR)", "max(ARR)", "min(ARR)", "mean(ARR)", "cumsum(ARR)[K]", "sort(ARR)[K]",
                 "median(ARR)", "var(ARR)", "argmax(ARR) + 0.0", "prod(ARR)")
LIBRARY_CALLS = tuple("np." + c for c in LIBRARY_CALLS)
THRESHOLDS = ("0.0", "0.3", "-0.3", "0.7", "1.0", "-0.8")

@dataclass(frozen=True)
class Kernel:
    """A generated kernel: the module source and how to call it."""

    source: str
    n: int
    w_dup: bool            # w Duplicated (else Const)
    A_dup: bool            # A Duplicated (else Const)
    a_active: bool         # a Active in reverse modes (else Const)
    seed: int              # input values
    features: frozenset = field(default_factory=frozenset, compare=False)
    x_strided: bool = False    # x passed as a strided view (every other element of a buffer)
    A_fortran: bool = False    # A passed in Fortran order (a transposed C array)
    f32: bool = False          # the arrays are float32 (the kernel then mixes float32 and float64)

    @property
    def key(self) -> str:
        return hashlib.sha1(self.source.encode()).hexdigest()[:16]

    def spec_dict(self) -> dict:
        return {"n": self.n, "w_dup": self.w_dup, "A_dup": self.A_dup, "a_active": self.a_active,
                "seed": self.seed, "x_strided": self.x_strided, "A_fortran": self.A_fortran, "f32": self.f32}


class _Gen:
    """Draws one kernel's text; `draw` is Hypothesis's."""

    def __init__(self, draw, n: int, w_dup: bool, A_dup: bool, n_locals: int, scalar_helpers: list[str],
                 max_depth: int, tmp: bool = False, library: bool = False):
        self.draw, self.n = draw, n
        self.library = library
        self.readable = ["x", "w", "out"] + (["tmp"] if tmp else [])
        self.writable = ["x", "out"] + (["w"] if w_dup else []) + (["tmp"] if tmp else [])
        self.locals = [f"t{k}" for k in range(n_locals)]
        self.scalar_helpers = scalar_helpers
        self.loop_vars: list[str] = []        # index variables in scope (each bound <= n)
        self.loop_kinds: list[str] = []       # "for" / "while", innermost last
        self.n_loops = 0
        self.max_depth = max_depth
        self.features: set[str] = set()
        self.uses_hr = self.uses_hw = False

    # --- small choices ---------------------------------------------------------------------------
    def choice(self, options):
        return self.draw(st.sampled_from(options))

    def integer(self, lo, hi):
        return self.draw(st.integers(lo, hi))

    def coin(self, p_true: float) -> bool:
        # integers() shrink towards 0, so "False" is the simple side
        return self.draw(st.integers(0, 999)) < int(p_true * 1000)

    # --- indices -----------------------------------------------------------------------------------
    def index(self) -> str:
        n = self.n
        if not self.loop_vars or self.coin(0.3):
            return str(self.integer(0, n - 1))
        i = self.choice(self.loop_vars)
        form = self.integer(0, 3)
        if form == 0 or form == 3:
            return i
        if form == 1:
            return f"({i} + {self.integer(1, n - 1)}) % {n}"
        return f"{n} - 1 - {i}"

    # --- expressions -------------------------------------------------------------------------------
    def leaf(self) -> str:
        kind = self.integer(0, 9)
        if kind <= 3:
            arr = self.choice(self.readable)
            return f"{arr}[{self.index()}]"
        if kind == 4:
            self.features.add("A")
            return f"A[{self.index()}, {self.index()}]"
        if kind == 5 and self.locals:
            return self.choice(self.locals)
        if kind == 6:
            return "s"
        if kind == 7:
            self.features.add("scalar-a")
            return "a"
        if kind == 8 and self.loop_vars:
            self.features.add("int-to-float")
            return f"float({self.choice(self.loop_vars)})"
        return self.choice(CONSTANTS)

    def expr(self, depth: int) -> str:
        if depth <= 0 or self.coin(0.3):
            return self.leaf()
        kind = self.integer(0, 22 if self.library else 21)
        e = lambda: self.expr(depth - 1)   # noqa: E731
        if kind <= 2:
            return f"({e()} + {e()})"
        if kind == 3:
            return f"({e()} - {e()})"
        if kind <= 5:
            return f"({e()} * {e()})"
        if kind == 6:
            self.features.add("div")
            form = self.integer(0, 9)
            if form <= 3:
                return f"({e()} / {self.choice(('2.0', '3.0', '0.5', '-4.0'))})"
            if form <= 8:
                d = self.expr(depth - 2)
                return f"({e()} / (1.5 + {d} * {d}))"
            self.features.add("div-raw")
            return f"({e()} / {e()})"
        if kind == 7:
            return f"(-{e()})"
        if kind <= 9:
            fn = self.choice(("sin", "cos", "tanh", "atan"))
            self.features.add(fn)
            return f"math.{fn}({e()})"
        if kind == 10:
            self.features.add("exp")
            inner = self.choice(("tanh", "sin", "cos"))
            return f"math.exp(math.{inner}({e()}))"
        if kind == 11:
            self.features.add("log")
            d = self.expr(depth - 2)
            return f"math.log(1.0 + {d} * {d})"
        if kind == 12:
            self.features.add("sqrt")
            d = self.expr(depth - 2)
            return f"math.sqrt({d} * {d} + 1.0)"
        if kind == 13:
            self.features.add("powi")
            return f"({e()}) ** {self.integer(2, 4)}"
        if kind == 14:
            self.features.add("abs")
            return f"abs({e()})"
        if kind <= 16:
            fn = self.choice(("min", "max"))
            self.features.add("minmax")
            return f"{fn}({e()}, {e()})"
        if kind <= 18 and self.scalar_helpers:
            self.features.add("helper")
            return f"{self.choice(self.scalar_helpers)}({e()}, {e()})"
        if kind == 19 and self.readable:
            self.features.add("array-helper")
            self.uses_hr = True
            return f"hr({self.choice(self.readable)}, {self.index()})"
        if kind >= 20 and self.library and self.readable:
            return self.library_call()
        return self.leaf()

    def library_call(self) -> str:
        """A NumPy reduction or scan over an array (library=True only)."""
        arr = self.choice(self.readable)
        form = self.integer(0, 9)
        if form == 8:
            arr = f"{arr}[1:]"
        elif form == 9:
            arr = f"({arr} * {arr})"                 # an array expression: a temporary array
        fn = self.choice(LIBRARY_CALLS)
        self.features.add(fn.split("(")[0])
        return fn.replace("ARR", arr).replace("K", str(self.integer(0, self.n - 2)))

    def condition(self, depth: int) -> str:
        kind = self.integer(0, 3)
        if kind == 0:
            return f"{self.choice(self.readable)}[{self.index()}] > {self.choice(THRESHOLDS)}"
        if kind == 1:
            return f"{self.expr(depth)} < {self.expr(depth)}"
        return f"{self.expr(depth)} > {self.choice(THRESHOLDS)}"

    # --- statements -------------------------------------------------------------------------------
    def block(self, indent: int, depth: int, lo: int = 1, hi: int = 3) -> list[str]:
        out = []
        for _ in range(self.integer(lo, hi)):
            out += self.statement(indent, depth)
        return out

    def statement(self, indent: int, depth: int) -> list[str]:
        pad = "    " * indent
        edepth = self.integer(1, 3)
        kind = self.integer(0, 17)
        if depth >= self.max_depth:
            kind = min(kind, 6)            # no more nesting
        if kind <= 1 and self.locals:
            return [f"{pad}{self.choice(self.locals)} = {self.expr(edepth)}"]
        if kind <= 2:
            return [f"{pad}s += {self.expr(edepth)}"]
        if kind == 3:
            self.features.add("product")
            return [f"{pad}s = s * {self.expr(edepth)}"]
        if kind <= 5:
            arr = self.choice(self.writable)
            self.features.add("write-x" if arr == "x" else "write")
            op = self.choice(("=", "+="))
            return [f"{pad}{arr}[{self.index()}] {op} {self.expr(edepth)}"]
        if kind == 6:
            self.features.add("array-helper")
            self.uses_hw = True
            arr = self.choice(self.writable)
            return [f"{pad}hw({arr}, {self.index()}, {self.expr(edepth)})"]
        if kind <= 8:
            self.features.add("branch")
            lines = [f"{pad}if {self.condition(2)}:"] + self.block(indent + 1, depth + 1)
            if self.coin(0.5):
                lines += [f"{pad}else:"] + self.block(indent + 1, depth + 1)
            return lines
        if kind <= 12:
            self.features.add("loop")
            if self.loop_vars:
                self.features.add("nested-loop")
            var = f"i{len(self.loop_vars)}"
            bound = self.integer(1, self.n)
            self.loop_vars.append(var)
            self.loop_kinds.append("for")
            lines = [f"{pad}for {var} in range({bound}):"] + self.block(indent + 1, depth + 1)
            self.loop_kinds.pop()
            self.loop_vars.pop()
            return lines
        if kind == 13:
            self.features.add("while")
            cnt = f"c{self.n_loops}"
            self.n_loops += 1
            bound = self.integer(1, self.n)
            lines = [f"{pad}{cnt} = 0", f"{pad}while {cnt} < {bound} and {self.condition(1)}:"]
            self.loop_vars.append(cnt)
            self.loop_kinds.append("while")          # no break/continue directly in it: the counter
            lines += self.block(indent + 1, depth + 1, 1, 2)
            self.loop_kinds.pop()
            self.loop_vars.pop()
            lines.append(f"{pad}    {cnt} += 1")
            return lines
        if kind == 14 and (indent == 1 or self.coin(0.5)):
            self.features.add("early-return" if indent == 1 else "return-in-block")
            return [f"{pad}if {self.condition(1)}:", f"{pad}    return s"]
        if kind >= 15 and self.loop_kinds and self.loop_kinds[-1] == "for":
            jump = "break" if kind == 15 else "continue"
            self.features.add(jump)
            return [f"{pad}if {self.condition(1)}:", f"{pad}    {jump}"]
        return [f"{pad}s += {self.expr(edepth)}"]


def _helper_source(draw, name: str) -> str:
    g = _Gen(draw, 2, False, False, 0, [], 0)
    g.readable = []

    def leaf():
        return g.choice(("p", "q", "p", "q") + CONSTANTS[:4])
    g.leaf = leaf                       # the helper's expressions use only its parameters
    g.scalar_helpers = []
    body = g.expr(2)
    if "p" not in body:
        body = f"p * {body}"
    return f"@numba.njit\ndef {name}(p, q):\n    return {body}\n"


@st.composite
def kernels(draw, max_statements: int = 4, max_depth: int = 3, library: bool = False) -> Kernel:
    """A random kernel (see the module docstring); `library`: expressions may also call the NumPy
    functions of LIBRARY_CALLS on whole arrays (some of which llad gets wrong, see tests/test_bad_inputs.py)."""
    n = draw(st.integers(3, 5))
    w_dup = draw(st.booleans())
    A_dup = draw(st.booleans())
    a_active = draw(st.booleans())
    n_locals = draw(st.integers(0, 3))
    helpers = [f"h{k}" for k in range(draw(st.integers(0, 2)))]
    helper_src = [_helper_source(draw, h) for h in helpers]
    tmp = draw(st.integers(0, 3)) == 0
    g = _Gen(draw, n, w_dup, A_dup, 0, helpers, max_depth, tmp, library)
    body = []
    if tmp:                               # a scratch array allocated in the kernel
        g.features.add("alloc")
        body.append(f"    tmp = np.{draw(st.sampled_from(('zeros', 'ones')))}({n})")
    for k in range(n_locals):             # each initialiser sees only the locals before it
        body.append(f"    t{k} = {g.expr(1)}")
        g.locals.append(f"t{k}")
    body += g.block(1, 0, 1, max_statements)
    ret = " + ".join(["s"] + g.locals[:1])
    body.append(f"    return {ret}")
    parts = ["import math", "", "import numba", "import numpy as np", ""]
    used = [h for h, u in (("hr", g.uses_hr), ("hw", g.uses_hw)) if u]
    if used:
        parts.append(f"from fuzz.helpers import {', '.join(used)}")
    parts += ["", ""]
    for src in helper_src:
        parts.append(src + "\n")
    parts.append(f"@numba.njit\ndef {KERNEL_NAME}({', '.join(PARAMS)}):\n    s = 0.0\n" + "\n".join(body) + "\n")
    source = "\n".join(parts)
    seed = draw(st.integers(0, 2**31 - 1))
    x_strided = draw(st.integers(0, 4)) == 0
    A_fortran = draw(st.integers(0, 4)) == 0
    f32 = draw(st.integers(0, 5)) == 0
    features = set(g.features)
    if f32:
        features.add("float32")
    if x_strided:
        features.add("x-strided")
    if A_fortran:
        features.add("A-fortran")
    features.add("w-dup" if w_dup else "w-const")
    if A_dup:
        features.add("A-dup")
    if a_active:
        features.add("a-active")
    return Kernel(source, n, w_dup, A_dup, a_active, seed, frozenset(features), x_strided, A_fortran, f32)
