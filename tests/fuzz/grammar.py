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
* Linear algebra (``linalg``: the probability that a statement is one; ``force_linalg``: at least one per
  kernel), on operands of the arguments' dtype (x, w, out, rows and columns of A, ``A.T``, reversed
  views, rectangular blocks ``A[:m]`` / ``A[:, k:]``, ``A * np.tanh(v)``, ``tmp.astype(x.dtype)``):
  ``np.dot(u, v)`` / ``u @ v``, matrix-vector and vector-matrix ``@`` / ``np.dot``, matrix-matrix ``@``,
  ``np.linalg.norm(v)``, and on matrices made well-conditioned in the kernel, ``M = X + (n + 2) I``
  (|X_ij| <= 1.5: ``np.linalg.solve`` with a vector or matrix right-hand side, ``inv``, ``det``) and
  ``S = X @ X.T + (n + 1) I`` (``np.linalg.cholesky``, ``slogdet(S)[1]``); the shift is a cast
  ``np.eye`` or an in-place loop over the diagonal of the product.  Each result feeds the loss (``s +=``
  an element, a sum, a dot product; ``s = s * tanh(...)``; written into x or out), often after an
  in-place update of an input of the call (``y = A @ x; x[i] = ...``); inside loops too.
* NumPy reductions and scans (``library``: ``LIBRARY_CALLS``) of an array, of ``arr[1:]``, of a temporary
  ``arr * arr``, or of one argument or another picked by a data-dependent test (``x if x[i] > t else w``:
  a select of pointers whose sides may be ``Duplicated`` and ``Const``).

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
# the default probability that a statement is a linear-algebra one (np.dot, @, np.linalg.*)
LINALG_WEIGHT = 0.06

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
                 max_depth: int, tmp: bool = False, library: bool = False, linalg: float = 0.0):
        self.draw, self.n = draw, n
        self.library = library
        self.linalg = linalg                  # probability that a statement is a BLAS/LAPACK one
        self.in_prange = False
        self.n_linalg = 0                     # names of their results: y0, P1, M2, ...
        self.A_dup = A_dup
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
        self.uses_custom: set[str] = set()

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
            return "0.5" if self.in_prange else "s"      # a prange body may not read its reduction variable
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
            h = self.choice(self.scalar_helpers)
            if h.startswith("r"):                   # a recursive helper: its depth, a constant
                self.features.add("recursion")
                return f"{h}({e()}, {e()}, {self.integer(0, 3)})"
            if h.startswith("c"):                   # a function with a user rule (fuzz.helpers)
                self.features.add("custom-jvp" if h.startswith("cj") else "custom-vjp")
                self.uses_custom.add(h)
            return f"{h}({e()}, {e()})"
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
        form = self.integer(0, 11)
        if form == 8:
            arr = f"{arr}[1:]"
        elif form == 9:
            arr = f"({arr} * {arr})"                 # an array expression: a temporary array
        elif form >= 10 and arr != "tmp":
            # one argument array or another by a data-dependent test: a select of pointers, where one side
            # may be Const and the other Duplicated (np.sort of such a pick segfaulted); not tmp, which
            # stays float64 when the arguments are float32
            self.features.add("select-array")
            other = self.choice([r for r in ("x", "w", "out") if r != arr])
            arr = f"({arr} if {arr}[{self.index()}] > {self.choice(THRESHOLDS)} else {other})"
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

    def statement(self, indent: int, depth: int, linalg: bool = True) -> list[str]:
        pad = "    " * indent
        if linalg and self.linalg and self.coin(self.linalg):   # no draw at all when linalg is off
            return self.linalg_statement(indent, depth)
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


    def prange_reduction(self, indent: int) -> list[str]:
        """`for p in numba.prange(n): s += e`: the body only reads arrays and adds to s once (the reduction
        Numba's parallel loop supports), so its iterations are independent."""
        self.features.add("prange")
        pad = "    " * indent
        var = "p0"
        self.loop_vars.append(var)
        self.loop_kinds.append("prange")
        self.in_prange = True
        lines = [f"{pad}for {var} in numba.prange({self.integer(1, self.n)}):", f"{pad}    s += {self.expr(2)}"]
        self.in_prange = False
        self.loop_kinds.pop()
        self.loop_vars.pop()
        return lines

    # --- linear algebra (linalg > 0) ---------------------------------------------------------------------
    # Every operand has the arguments' dtype (float64, or float32 in a float32 kernel): Numba's np.dot, @
    # and np.linalg.* want one dtype, so a float64 scalar never multiplies a matrix before the call, the
    # float64 scratch array is cast (tmp.astype(x.dtype)), and a diagonal shift is either a float64 np.eye
    # cast back or an in-place `M[d, d] += c` loop.  Shapes: n x n, or n x m / m x n with m < n.
    def _name(self, prefix: str) -> str:
        name = f"{prefix}{self.n_linalg}"
        self.n_linalg += 1
        return name

    def vec(self, length: int | None = None, norm: bool = False) -> tuple[str, int]:
        """A 1-D operand: an argument, a row or column of A, a cast scratch array, a slice, or a reversed
        view (not for norm: Numba's nrm2 of a negative stride is wrong, docs/blas.md)."""
        n = self.n
        form = self.integer(0, 9)
        if length is not None and length < n:
            arr = self.choice(["x", "w", "out"])
            if form <= 6:
                return f"{arr}[:{length}]", length
            self.features.add("A")
            return f"A[{self.integer(0, n - 1)}, {n - length}:]", length
        if form <= 4:
            return self.choice(["x", "w", "out"]), n
        if form <= 6:
            self.features.add("A")
            self.features.add("blas-strided")
            return (f"A[{self.index()}]" if form == 5 else f"A[:, {self.index()}]"), n
        if form == 7 and "tmp" in self.readable:
            self.features.add("blas-cast")
            return "tmp.astype(x.dtype)", n
        if form == 8 and not norm:
            self.features.add("blas-strided")
            return f"{self.choice(['x', 'w', 'out'])}[::-1]", n
        return self.choice(["x", "w", "out"]), n

    def mat(self, square: bool = False) -> tuple[str, int, int]:
        """A matrix operand with bounded entries: A, its transpose, A with columns scaled by tanh of a
        vector, a reversed or a rectangular block of A."""
        n = self.n
        self.features.add("A")
        form = self.integer(0, 7)
        if form <= 2:
            return "A", n, n
        if form == 3:
            return "A.T", n, n
        if form == 4:
            v, _ = self.vec(n)
            return f"(A * np.tanh({v}))", n, n
        if form == 5:
            return "A[::-1]", n, n
        if square or form == 7:
            return f"{self.choice(['A', 'A.T'])}.copy()", n, n
        self.features.add("blas-rect")
        m = self.integer(1, n - 1)
        return (f"A[:{m}]", m, n) if self.coin(0.5) else (f"A[:, {n - m}:]", n, m)

    def reduce_vec(self, name: str, length: int) -> str:
        """A scalar from a vector result (feeds the loss)."""
        form = self.integer(0, 4)
        if form == 0:
            return f"{name}[{self.integer(0, length - 1)}]"
        if form == 1:
            return f"np.sum({name})"
        u, _ = self.vec(length)
        if form == 2:
            return f"np.dot({name}, {u})"
        return f"np.sum({name} * {u})"

    def reduce_mat(self, name: str, rows: int, cols: int, lower: bool = False) -> str:
        form = self.integer(0, 3)
        if form == 0:
            i = self.integer(0, rows - 1)
            j = self.integer(0, i if lower else cols - 1)
            return f"{name}[{i}, {j}]"
        if form == 1:
            return f"np.sum({name})"
        u, _ = self.vec(cols)
        v, _ = self.vec(rows)
        return f"np.dot({name} @ {u}, {v})"

    def use_vec(self, pad: str, name: str, length: int) -> list[str]:
        """Feed a vector result to the loss: into s, or written into a writable argument."""
        form = self.integer(0, 5)
        if form <= 2:
            return [f"{pad}s += {self.reduce_vec(name, length)}"]
        if form == 3:
            return [f"{pad}s = s * math.tanh({self.reduce_vec(name, length)})"]
        arr = self.choice(self.writable)
        if arr == "tmp":
            arr = "out"
        self.features.add("write-x" if arr == "x" else "write")
        if form == 4 and length == self.n:
            self.features.add("blas-result-written")
            return [f"{pad}{arr}[:] = {name}"]
        return [f"{pad}{arr}[{self.integer(0, self.n - 1)}] += {name}[{self.integer(0, length - 1)}]"]

    def after(self, pad: str, indent: int, operand: str) -> list[str]:
        """Statements between a call and the use of its result; often an in-place update of an input of
        the call (the reverse rule must use the values as they were at the call)."""
        lines = []
        base = operand.split("[")[0].split(".")[0].strip("(")
        if base in self.writable and base != "tmp" and self.coin(0.5):
            self.features.add("blas-input-modified")
            self.features.add("write-x" if base == "x" else "write")
            op = self.choice(("=", "+="))
            lines.append(f"{pad}{base}[{self.index()}] {op} {self.expr(self.integer(1, 2))}")
        if self.coin(0.3):
            lines += self.statement(indent, self.max_depth, linalg=False)
        return lines

    def shifted(self, pad: str, spd: bool) -> tuple[list[str], str]:
        """A well-conditioned matrix built inside the kernel: X @ X.T + (n + 1) I (symmetric positive
        definite, for cholesky and slogdet), or M + (n + 2) I with |M_ij| <= 1.5 (for solve, inv, det)."""
        n = self.n
        name = self._name("M")
        if spd:
            x, rows, cols = self.mat()
            lines = [f"{pad}{name} = {x} @ {x}.T" if rows == n else f"{pad}{name} = {x}.T @ {x}"]
            shift = f"{n + 1}.0"
        else:
            x, _, _ = self.mat(square=True)
            lines = []
            shift = f"{n + 2}.0"
            if self.coin(0.5):
                return [f"{pad}{name} = {x} + ({shift} * np.eye({n})).astype(A.dtype)"], name
            lines = [f"{pad}{name} = {x}" + ("" if x.endswith(".copy()") else ".copy()")]
        d = self._name("d")
        lines += [f"{pad}for {d} in range({n}):", f"{pad}    {name}[{d}, {d}] += {shift}"]
        return lines, name

    def linalg_statement(self, indent: int, depth: int) -> list[str]:
        """np.dot / @ / np.linalg.* on the float arrays, its result fed to the loss."""
        pad = "    " * indent
        n = self.n
        self.features.add("linalg")
        if self.loop_vars:
            self.features.add("linalg-in-loop")
        kind = self.integer(0, 9)
        if kind == 0:                                     # dot of two vectors: a scalar
            self.features.add("blas-dot")
            m = n if self.coin(0.7) else self.integer(1, n - 1)
            u, _ = self.vec(m)
            v, _ = self.vec(m)
            call = f"np.dot({u}, {v})" if self.coin(0.6) else f"({u} @ {v})"
            if self.locals and self.coin(0.3):
                return [f"{pad}{self.choice(self.locals)} = {call}"]
            return [f"{pad}s += {call}"]
        if kind <= 2:                                     # matrix-vector, vector-matrix
            y = self._name("y")
            mat, rows, cols = self.mat()
            if kind == 1:
                self.features.add("blas-matvec")
                v, _ = self.vec(cols)
                call, length = f"{mat} @ {v}" if self.coin(0.7) else f"np.dot({mat}, {v})", rows
            else:
                self.features.add("blas-vecmat")
                v, _ = self.vec(rows)
                call, length = f"{v} @ {mat}", cols
            return [f"{pad}{y} = {call}"] + self.after(pad, indent, v) + self.use_vec(pad, y, length)
        if kind == 3:                                     # matrix-matrix
            self.features.add("blas-matmul")
            p = self._name("P")
            m1, r1, c1 = self.mat()
            m2, r2, c2 = self.mat()
            if r2 != c1:
                m2, r2, c2 = (f"{m1}.T", c1, r1)
            return [f"{pad}{p} = {m1} @ {m2}"] + self.after(pad, indent, "") + \
                [f"{pad}s += {self.reduce_mat(p, r1, c2)}"]
        if kind == 4:                                     # vector 2-norm
            self.features.add("blas-norm")
            v, _ = self.vec(n, norm=True)
            return [f"{pad}s += np.linalg.norm({v})"]
        if kind <= 6:                                     # solve with a vector or a matrix right-hand side
            self.features.add("lapack-solve")
            lines, mname = self.shifted(pad, spd=False)
            z = self._name("z")
            if kind == 5:
                v, _ = self.vec(n)
                lines += [f"{pad}{z} = np.linalg.solve({mname}, {v})"] + self.after(pad, indent, v)
                return lines + self.use_vec(pad, z, n)
            self.features.add("lapack-solve-matrix")
            b, _, _ = self.mat(square=True)
            return lines + [f"{pad}{z} = np.linalg.solve({mname}, {b})", f"{pad}s += {self.reduce_mat(z, n, n)}"]
        if kind == 7:                                     # inverse or determinant
            lines, mname = self.shifted(pad, spd=False)
            if self.coin(0.5):
                self.features.add("lapack-inv")
                q = self._name("Q")
                return lines + [f"{pad}{q} = np.linalg.inv({mname})"] + self.after(pad, indent, "") + \
                    [f"{pad}s += {self.reduce_mat(q, n, n)}"]
            self.features.add("lapack-det")
            return lines + [f"{pad}s += np.linalg.det({mname}) / {float((n + 2) ** n)!r}"]
        lines, mname = self.shifted(pad, spd=True)        # symmetric positive definite
        if kind == 8:
            self.features.add("lapack-slogdet")
            return lines + [f"{pad}s += np.linalg.slogdet({mname})[1]"]
        self.features.add("lapack-cholesky")
        lname = self._name("L")
        return lines + [f"{pad}{lname} = np.linalg.cholesky({mname})"] + self.after(pad, indent, "") + \
            [f"{pad}s += {self.reduce_mat(lname, n, n, lower=True)}"]


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


def _recursive_helper_source(draw, name: str) -> str:
    """A helper that calls itself `k` times: `r(p, q, k) = base(p, q)` at k <= 0, else an expression of p,
    q and `r(e(p, q), q, k - 1)` (llad differentiates it as a call to its own derivative)."""
    g = _Gen(draw, 2, False, False, 0, [], 0)
    g.readable = []

    def leaf():
        return g.choice(("p", "q", "p", "q") + CONSTANTS[:4])
    g.leaf = leaf
    g.scalar_helpers = []
    base, arg, rest = g.expr(1), g.expr(1), g.expr(1)
    wrap = g.choice(("{}", "math.sin({})", "math.tanh({})", "0.5 * {}"))
    combine = g.choice(("{} + {}", "{} * {}", "{} - 0.5 * {}"))
    step = combine.format(rest, wrap.format(f"{name}({arg}, q, k - 1)"))
    return (f"@numba.njit\ndef {name}(p, q, k):\n    if k <= 0:\n        return p * ({base})\n"
            f"    return {step}\n")


@st.composite
def kernels(draw, max_statements: int = 4, max_depth: int = 3, library: bool = False,
            linalg: float = LINALG_WEIGHT, force_linalg: bool = False, recursion: bool = False,
            custom: bool = False, parallel: bool = False) -> Kernel:
    """A random kernel (see the module docstring); `library`: expressions may also call the NumPy
    functions of LIBRARY_CALLS on whole arrays (some of which llad gets wrong, see tests/test_bad_inputs.py);
    `linalg`: the probability that a statement is a BLAS/LAPACK one (0: the grammar without them, drawing
    exactly what it drew before they existed); `force_linalg`: every kernel has at least one; `recursion`:
    one or two of the scalar helpers call themselves (False: the draws of the grammar without them);
    `custom`: one or two of fuzz.helpers' functions with user derivative rules join the scalar helpers
    (False: the draws without them); `parallel`: the kernel is `@numba.njit(parallel=True)` with a
    `numba.prange` reduction loop into `s`, half the time alone (feature `prange-only`: the shape whose
    reverse sweep llad runs on Numba's threads) (False: the draws without it)."""
    n = draw(st.integers(3, 5))
    w_dup = draw(st.booleans())
    A_dup = draw(st.booleans())
    a_active = draw(st.booleans())
    n_locals = draw(st.integers(0, 3))
    helpers = [f"h{k}" for k in range(draw(st.integers(0, 2)))]
    helper_src = [_helper_source(draw, h) for h in helpers]
    if recursion:
        recursive = [f"r{k}" for k in range(draw(st.integers(1, 2)))]
        helper_src += [_recursive_helper_source(draw, r) for r in recursive]
        helpers += recursive
    if custom:
        from fuzz.helpers import CUSTOM
        helpers += draw(st.lists(st.sampled_from(CUSTOM), min_size=1, max_size=2, unique=True))
    # parallel: half the kernels are the prange loop alone (llad/parallel.py's shape, whose reverse sweep
    # runs on Numba's threads)
    only_loop = parallel and draw(st.booleans())
    tmp = draw(st.integers(0, 3)) == 0 and not only_loop
    g = _Gen(draw, n, w_dup, A_dup, 0, helpers, max_depth, tmp, library, linalg)
    if only_loop:
        g.features.add("prange-only")
        n_locals, force_linalg = 0, False
    body = []
    if tmp:                               # a scratch array allocated in the kernel
        g.features.add("alloc")
        body.append(f"    tmp = np.{draw(st.sampled_from(('zeros', 'ones')))}({n})")
    for k in range(n_locals):             # each initialiser sees only the locals before it
        body.append(f"    t{k} = {g.expr(1)}")
        g.locals.append(f"t{k}")
    if not only_loop:
        body += g.block(1, 0, 1, max_statements)
    if force_linalg and "linalg" not in g.features:
        body += g.linalg_statement(1, 0)
    if recursion and "recursion" not in g.features:       # at least one recursive call per kernel
        g.features.add("recursion")
        body.append(f"    s += {g.choice(recursive)}({g.expr(1)}, {g.expr(1)}, {g.integer(1, 3)})")
    if parallel:                                           # a prange reduction: race-free by construction
        body += g.prange_reduction(1)
    if custom and not g.uses_custom:                       # at least one call of a ruled function
        h = g.choice([c for c in helpers if c.startswith("c")])
        g.uses_custom.add(h)
        g.features.add("custom-jvp" if h.startswith("cj") else "custom-vjp")
        body.append(f"    s += {h}({g.expr(1)}, {g.expr(1)})")
    ret = " + ".join(["s"] + g.locals[:1])
    body.append(f"    return {ret}")
    parts = ["import math", "", "import numba", "import numpy as np", ""]
    used = [h for h, u in (("hr", g.uses_hr), ("hw", g.uses_hw)) if u] + sorted(g.uses_custom)
    if used:
        parts.append(f"from fuzz.helpers import {', '.join(used)}")
    parts += ["", ""]
    for src in helper_src:
        parts.append(src + "\n")
    decorator = "@numba.njit(parallel=True)" if parallel else "@numba.njit"
    parts.append(f"{decorator}\ndef {KERNEL_NAME}({', '.join(PARAMS)}):\n    s = 0.0\n" + "\n".join(body) + "\n")
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
