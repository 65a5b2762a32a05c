"""BLAS calls (`np.dot`, `@`): their derivatives, as calls of BLAS (Enzyme's BLAS rules, in llad's table).

Numba lowers `np.dot` / `@` on float arrays to three helpers of its own (numba/_lapack.c), thin wrappers
of the Fortran routines SciPy carries, column-major (a C-order matrix is its transpose to BLAS):

    numba_xxdot(kind, conj, n, x, y, out)                                 *out = x . y
    numba_xxgemv(kind, trans, m, n, *alpha, a, lda, x, *beta, y)          y = alpha op(A) x + beta y
    numba_xxgemm(kind, ta, tb, m, n, k, *alpha, a, lda, b, ldb, *beta, c, ldc)   C = alpha op(A) op(B) + beta C

`route` rewrites each call (before activity analysis) into llad's form, which passes the scalars by
value and names the float type, so that the rules below read them like any operand:

    i32 @llad.blas.gemm.f64(i8 ta, i8 tb, i64 m, i64 n, i64 k, double alpha, ptr a, i64 lda, ptr b,
                            i64 ldb, double beta, ptr c, i64 ldc)
    i32 @llad.blas.gemv.f64(i8 trans, i64 m, i64 n, double alpha, ptr a, i64 lda, ptr x, double beta, ptr y)
    double @llad.blas.dot.f64(i64 n, ptr x, ptr y)      (its result stored where Numba's `out` pointed)

(`.f32` for float32).  `BLAS_RULES` holds, per routine, which operands it reads and writes (for the
analyses) and its forward and reverse rule; both generators read the table through a small context
(`ForwardContext`, `ReverseContext`), as they read llad.rules for scalar math.  The derivatives are BLAS
calls again: the tangent of a gemm is two gemms, its adjoint two gemms and a scaling, never a scalar loop.

In the reverse sweep a rule needs the inputs' values as they were at the call.  Memory the function never
writes (a read-only argument) is read in place; anything else is copied at the call into a buffer kept
on the tape (`copies`), which the reverse sweep frees after use.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .errors import NoRuleError
from .ir.builder import Builder, fconst, new_function
from .ir.model import Function, Instruction, Module, Operand, ref

_NUMBA = {"numba_xxdot": "dot", "numba_xxgemv": "gemv", "numba_xxgemm": "gemm", "numba_xgesv": "gesv",
          "numba_xxnrm2": "nrm2", "numba_xxgetrf": "getrf", "numba_xxpotrf": "potrf", "numba_ez_xxgetri": "getri"}
_KINDS = {"100": "double", "115": "float"}                        # 'd', 's' (complex: 'z', 'c' are refused)
_TRANS = {"110": False, "78": False, "116": True, "84": True}     # 'n', 'N', 't', 'T'
_ELEMENT_BYTES = {"double": 8, "float": 4}


def _suffix(ty: str) -> str:
    return "f64" if ty == "double" else "f32"


def _char(transposed: bool) -> str:
    return "116" if transposed else "110"


# --- the table -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BlasRule:
    """One routine in llad's form: operand positions of the matrices/vectors it reads (`inputs`), the
    float one whose new values carry a derivative (`output`, None for dot, which returns its value), the
    ones it overwrites with values that carry none (`clobbers`: gesv's LU factors and pivots, which
    np.linalg.solve discards), its scale factors, the operands whose memory the reverse rule reads
    (`saved`: as the call left them; an input's is as it found it) and which of them hold integers, and
    its rules."""

    name: str
    inputs: tuple[int, ...]
    output: int | None
    scalars: tuple[int, ...]
    forward: Callable[[ForwardContext, Instruction], None]
    reverse: Callable[[ReverseContext, Instruction], None]
    extent: Callable[[Instruction, int], tuple[str, str, str]]    # operand -> (rows, cols, leading dim)
    clobbers: tuple[int, ...] = ()
    saved: tuple[int, ...] | None = None
    integers: tuple[int, ...] = ()
    saved_before: tuple[int, ...] = ()     # operands whose memory the rules read as it was before the call

    @property
    def pointers(self) -> list[int]:
        return [*self.inputs, *self.written]

    @property
    def written(self) -> list[int]:
        return [*([] if self.output is None else [self.output]), *self.clobbers]

    @property
    def kept(self) -> tuple[int, ...]:
        return self.inputs if self.saved is None else self.saved

    def element_bytes(self, callee: str, i: int) -> int:
        return 4 if i in self.integers else _ELEMENT_BYTES[float_type(callee)]


def float_type(callee: str) -> str:
    return "double" if callee.endswith(".f64") else "float"


def blas_rule(callee: str) -> BlasRule:
    """The rule of `llad.blas.<routine>.<f64|f32>`."""
    return BLAS_RULES[callee.split(".")[2]]


def _transposed(ins: Instruction, i: int) -> bool:
    return _TRANS[ins.operands[i].text]


# gemm: operands ta0 tb1 m2 n3 k4 alpha5 a6 lda7 b8 ldb9 beta10 c11 ldc12
def _gemm_extent(ins: Instruction, i: int) -> tuple[str, str, str]:
    o = [x.text for x in ins.operands]
    m, n, k = o[2], o[3], o[4]
    if i == 6:
        return (k, m, o[7]) if _transposed(ins, 0) else (m, k, o[7])
    if i == 8:
        return (n, k, o[9]) if _transposed(ins, 1) else (k, n, o[9])
    return m, n, o[12]


# gemv: operands trans0 m1 n2 alpha3 a4 lda5 x6 beta7 y8 (A is m x n; x has n elements, m when transposed)
def _gemv_extent(ins: Instruction, i: int) -> tuple[str, str, str]:
    o = [x.text for x in ins.operands]
    m, n = o[1], o[2]
    if i == 4:
        return m, n, o[5]
    t = _transposed(ins, 0)
    length = (m if t else n) if i == 6 else (n if t else m)
    return length, "1", length


def _dot_extent(ins: Instruction, i: int) -> tuple[str, str, str]:
    n = ins.operands[0].text
    return n, "1", n


def _gemm_forward(c: ForwardContext, ins: Instruction) -> None:
    """dC = beta dC + alpha op(dA) op(B) + alpha op(A) op(dB)."""
    o, ty = [x.text for x in ins.operands], float_type(ins.callee)
    a, b, out = ins.operands[6], ins.operands[8], ins.operands[11]
    one = fconst(ty, 1.0)
    for j in c.lanes(out):
        c.scale(ty, o[2], o[3], c.shadow(out, j), o[12], o[10])
        if c.active(a):
            c.gemm(ty, o[0], o[1], o[2], o[3], o[4], o[5], c.shadow(a, j), o[7], o[8], o[9], one,
                   c.shadow(out, j), o[12])
        if c.active(b):
            c.gemm(ty, o[0], o[1], o[2], o[3], o[4], o[5], o[6], o[7], c.shadow(b, j), o[9], one,
                   c.shadow(out, j), o[12])


def _gemm_reverse(c: ReverseContext, ins: Instruction) -> None:
    """With C̄ the output's adjoint: Ā += alpha C̄ op(B)ᵀ, B̄ += alpha op(A)ᵀ C̄ (in the layout of each
    stored matrix), then C̄ = beta C̄."""
    ty, ops = float_type(ins.callee), ins.operands
    if not c.active(ops[11]):
        return
    ta, tb = _transposed(ins, 0), _transposed(ins, 1)
    m, n, k, alpha, lda, ldb, beta, ldc = (c.value(ops[i]) for i in (2, 3, 4, 5, 7, 9, 10, 12))
    cbar = c.shadow(ops[11])
    one = fconst(ty, 1.0)
    if c.active(ops[6]):
        abar, bval = c.shadow(ops[6]), c.memory(ins, 8)
        if not ta:   # A is m x k: Ā += alpha C̄ (m x n) op(B)ᵀ (n x k)
            c.gemm(ty, "110", _char(not tb), m, k, n, alpha, cbar, ldc, bval, ldb, one, abar, lda)
        else:        # A is k x m: Ā += alpha op(B) (k x n) C̄ᵀ (n x m)
            c.gemm(ty, _char(tb), "116", k, m, n, alpha, bval, ldb, cbar, ldc, one, abar, lda)
    if c.active(ops[8]):
        bbar, aval = c.shadow(ops[8]), c.memory(ins, 6)
        if not tb:   # B is k x n: B̄ += alpha op(A)ᵀ (k x m) C̄ (m x n)
            c.gemm(ty, _char(not ta), "110", k, n, m, alpha, aval, lda, cbar, ldc, one, bbar, ldb)
        else:        # B is n x k: B̄ += alpha C̄ᵀ (n x m) op(A) (m x k)
            c.gemm(ty, "116", _char(ta), n, k, m, alpha, cbar, ldc, aval, lda, one, bbar, ldb)
    c.scale(ty, m, n, cbar, ldc, beta)


def _gemv_forward(c: ForwardContext, ins: Instruction) -> None:
    """dy = beta dy + alpha op(dA) x + alpha op(A) dx."""
    o, ty = [x.text for x in ins.operands], float_type(ins.callee)
    a, x, out = ins.operands[4], ins.operands[6], ins.operands[8]
    length = _gemv_extent(ins, 8)[0]
    one = fconst(ty, 1.0)
    for j in c.lanes(out):
        c.scale(ty, length, "1", c.shadow(out, j), length, o[7])
        if c.active(a):
            c.gemv(ty, o[0], o[1], o[2], o[3], c.shadow(a, j), o[5], o[6], one, c.shadow(out, j))
        if c.active(x):
            c.gemv(ty, o[0], o[1], o[2], o[3], o[4], o[5], c.shadow(x, j), one, c.shadow(out, j))


def _gemv_reverse(c: ReverseContext, ins: Instruction) -> None:
    """With ȳ the output's adjoint: Ā += alpha ȳ xᵀ (x ȳᵀ when transposed, a rank-1 gemm), x̄ += alpha
    op(A)ᵀ ȳ, then ȳ = beta ȳ."""
    ty, ops = float_type(ins.callee), ins.operands
    if not c.active(ops[8]):
        return
    t = _transposed(ins, 0)
    m, n, alpha, lda, beta = (c.value(ops[i]) for i in (1, 2, 3, 5, 7))
    ybar = c.shadow(ops[8])
    one = fconst(ty, 1.0)
    if c.active(ops[4]):
        xval = c.memory(ins, 6)
        left, right = (xval, ybar) if t else (ybar, xval)      # m-vector, n-vector
        c.gemm(ty, "110", "116", m, n, "1", alpha, left, c.at_least_one(m), right, c.at_least_one(n), one,
               c.shadow(ops[4]), lda)
    if c.active(ops[6]):
        c.gemv(ty, _char(not t), m, n, alpha, c.memory(ins, 4), lda, ybar, one, c.shadow(ops[6]))
    length = n if t else m
    c.scale(ty, length, "1", ybar, length, beta)


def _dot_forward(c: ForwardContext, ins: Instruction) -> None:
    """d(x . y) = dx . y + x . dy."""
    ty = ins.type
    n, x, y = ins.operands
    if not c.active(Operand(ty, ref(ins.result))):
        return
    lanes = []
    for j in c.lanes(None):
        total = fconst(ty, 0.0)
        if c.active(x):
            total = c.b.fadd(ty, total, c.dot(ty, n.text, c.shadow(x, j), y.text))
        if c.active(y):
            total = c.b.fadd(ty, total, c.dot(ty, n.text, x.text, c.shadow(y, j)))
        lanes.append(total)
    c.set_tangent(ins, lanes)


def _dot_reverse(c: ReverseContext, ins: Instruction) -> None:
    """x̄ += r̄ y, ȳ += r̄ x."""
    ty = ins.type
    if not c.active(Operand(ty, ref(ins.result))):
        return
    rbar = c.take(ins)
    n, x, y = ins.operands
    for mine, other in ((x, 2), (y, 1)):
        if c.active(mine):
            c.axpy(ty, c.value(n), rbar, c.memory(ins, other), "1", c.shadow(mine), "1")


# nrm2: operands n0 x1 incx2 (a strided vector; llad's form returns the norm)
def _nrm2_extent(ins: Instruction, i: int) -> tuple[str, str, str]:
    return "1", ins.operands[0].text, ins.operands[2].text       # (n - 1) incx + 1 elements


def _nrm2_scale(c, ty: str, r: str, incx: str) -> str:
    """1 / r, 0 where r = 0 (the minimum-norm subgradient at the origin); NaN for a non-positive
    increment (a reversed view, where Numba's own norm reads outside the array)."""
    b = c.b
    inv = b.select(b.fcmp("oeq", ty, r, fconst(ty, 0.0)), ty, fconst(ty, 0.0), b.fdiv(ty, fconst(ty, 1.0), r))
    return b.select(b.icmp("sgt", "i64", incx, "0"), ty, inv, fconst(ty, float("nan")))


def _nrm2_forward(c: ForwardContext, ins: Instruction) -> None:
    """d||x|| = (x . dx) / ||x||."""
    ty = ins.type
    n, x, incx = ins.operands
    if not c.active(Operand(ty, ref(ins.result))):
        return
    scale = _nrm2_scale(c, ty, ref(ins.result), incx.text)
    lanes = [c.b.fmul(ty, scale, c.sdot(ty, n.text, x.text, incx.text, c.shadow(x, j), incx.text))
             for j in c.lanes(None)]
    c.set_tangent(ins, lanes)


def _nrm2_reverse(c: ReverseContext, ins: Instruction) -> None:
    """x̄ += r̄ x / ||x||."""
    ty = ins.type
    if not c.active(Operand(ty, ref(ins.result))):
        return
    rbar = c.take(ins)
    n, x, incx = ins.operands
    inc = c.value(incx)
    a = c.b.fmul(ty, rbar, _nrm2_scale(c, ty, c.value(Operand(ty, ref(ins.result))), inc))
    c.axpy(ty, c.value(n), a, c.memory(ins, 1), inc, c.shadow(x), inc)


# gesv: operands n0 nrhs1 a2 lda3 ipiv4 b5 ldb6: solves A X = B in place (a <- LU, ipiv <- pivots, b <- X)
def _gesv_extent(ins: Instruction, i: int) -> tuple[str, str, str]:
    return _solve_extent([x.text for x in ins.operands], i)


def _solve_extent(o: list[str], i: int) -> tuple[str, str, str]:
    """gesv's operands n0 nrhs1 a2 lda3 ipiv4 b5 ldb6 (getrs's, after its trans flag): A, the pivots, B."""
    if i == 2:
        return o[0], o[0], o[3]
    if i == 4:
        return o[0], "1", o[0]
    return o[0], o[1], o[6]


def _gesv_forward(c: ForwardContext, ins: Instruction) -> None:
    """dX = A⁻¹ (dB - dA X), from the LU factors the call left in a.  np.linalg.solve discards the factors:
    their tangent (as getrf's) is computed only where something else reads them (a derivative's tape that
    keeps them, differentiated again), else a's shadow is zeroed."""
    o, ty = [x.text for x in ins.operands], float_type(ins.callee)
    a, b = ins.operands[2], ins.operands[5]
    factors_read = c.active(a) and read_elsewhere(c.sweep.fn, c.sweep.act, ins, a)
    for j in c.lanes(b):
        rhs = c.shadow(b, j)              # dB: the call wrote b, not its shadow
        if c.active(a):
            c.gemm(ty, "110", "110", o[0], o[1], o[0], fconst(ty, -1.0), c.shadow(a, j), o[3], o[5], o[6],
                   fconst(ty, 1.0), rhs, o[6])
            if factors_read:
                _call(c.b, "void", f"llad.blasrt.getrf_tangent.{_suffix(ty)}",
                      [("i64", o[0]), ("i64", o[0]), ("ptr", o[2]), ("i64", o[3]), ("ptr", o[4]),
                       ("ptr", c.shadow(a, j))])
            else:
                c.scale(ty, o[0], o[0], c.shadow(a, j), o[3], fconst(ty, 0.0))
        c.getrs(ty, "78", o[0], o[1], o[2], o[3], o[4], rhs, o[6])


def _gesv_reverse(c: ReverseContext, ins: Instruction) -> None:
    """B̄ = A⁻ᵀ X̄ (one triangular solve pair with the kept LU factors), Ā = -B̄ Xᵀ; both overwrite the
    shadows, as the call overwrote a and b."""
    ty, ops = float_type(ins.callee), ins.operands
    if not c.active(ops[5]):
        return
    n, nrhs, lda, ldb = (c.value(ops[i]) for i in (0, 1, 3, 6))
    bbar = c.shadow(ops[5])
    c.getrs(ty, "84", n, nrhs, c.memory(ins, 2), lda, c.memory(ins, 4), bbar, ldb)
    if c.active(ops[2]):
        # the factors' own adjoint, where something else read them (see _gesv_forward), goes back through
        # the factorisation first; else a's shadow is overwritten
        factors_read = read_elsewhere(c.lookup.fn, c.lookup.act, ins, ops[2])
        if factors_read:
            _call(c.b, "void", f"llad.blasrt.getrf_adjoint.{_suffix(ty)}",
                  [("i64", n), ("i64", n), ("ptr", c.memory(ins, 2)), ("i64", lda), ("ptr", c.memory(ins, 4)),
                   ("ptr", c.shadow(ops[2]))])
        c.gemm(ty, "110", "116", n, n, nrhs, fconst(ty, -1.0), bbar, ldb, c.memory(ins, 5), ldb,
               fconst(ty, 1.0 if factors_read else 0.0), c.shadow(ops[2]), lda)


# getrf: operands m0 n1 a2 lda3 ipiv4: P A = L U in place (a <- L below the diagonal, U on and above it)
def _getrf_extent(ins: Instruction, i: int) -> tuple[str, str, str]:
    o = [x.text for x in ins.operands]
    return (o[0], o[1], o[3]) if i == 2 else (o[0], "1", o[0])


def _getrf_forward(c: ForwardContext, ins: Instruction) -> None:
    """With F = L⁻¹ P dA U⁻¹: dL = L tril₋(F), dU = triu(F) U, packed like the factors (square only:
    NaN for m != n, which np.linalg never passes)."""
    o, ty = [x.text for x in ins.operands], float_type(ins.callee)
    for j in c.lanes(ins.operands[2]):
        _call(c.b, "void", f"llad.blasrt.getrf_tangent.{_suffix(ty)}",
              [("i64", o[0]), ("i64", o[1]), ("ptr", o[2]), ("i64", o[3]), ("ptr", o[4]),
               ("ptr", c.shadow(ins.operands[2], j))])


def _getrf_reverse(c: ReverseContext, ins: Instruction) -> None:
    """Ā = Pᵀ L⁻ᵀ (tril₋(Lᵀ L̄) + triu(Ū Uᵀ)) U⁻ᵀ, from the packed adjoint of the factors, overwriting it."""
    ty, ops = float_type(ins.callee), ins.operands
    if not c.active(ops[2]):
        return
    m, n, lda = (c.value(ops[i]) for i in (0, 1, 3))
    _call(c.b, "void", f"llad.blasrt.getrf_adjoint.{_suffix(ty)}",
          [("i64", m), ("i64", n), ("ptr", c.memory(ins, 2)), ("i64", lda), ("ptr", c.memory(ins, 4)),
           ("ptr", c.shadow(ops[2]))])


# potrf: operands uplo0 n1 a2 lda3: A = L Lᵀ ('L': from and into a's lower triangle) or Uᵀ U ('U': upper);
# the other triangle is left as it was (its derivative passes through)
def _potrf_extent(ins: Instruction, i: int) -> tuple[str, str, str]:
    o = [x.text for x in ins.operands]
    return o[1], o[1], o[3]


def _upper(ins: Instruction) -> bool:
    return ins.operands[0].text in ("85", "117")


def _potrf_forward(c: ForwardContext, ins: Instruction) -> None:
    """dL = L Φ(L⁻¹ dA L⁻ᵀ), dA the symmetric matrix of the triangle's tangents, Φ the strict lower triangle
    plus half the diagonal ('U': the mirror image, dU = Φ(U⁻ᵀ dA U⁻¹) U)."""
    o, ty = [x.text for x in ins.operands], float_type(ins.callee)
    which = "U" if _upper(ins) else "L"
    for j in c.lanes(ins.operands[2]):
        _call(c.b, "void", f"llad.blasrt.potrf_tangent_{which}.{_suffix(ty)}",
              [("i64", o[1]), ("ptr", o[2]), ("i64", o[3]), ("ptr", c.shadow(ins.operands[2], j))])


def _potrf_reverse(c: ReverseContext, ins: Instruction) -> None:
    """G = L⁻ᵀ Φ(Lᵀ L̄) L⁻¹; the triangle's adjoint is G + Gᵀ off the diagonal, G on it ('U': mirrored)."""
    ty, ops = float_type(ins.callee), ins.operands
    if not c.active(ops[2]):
        return
    which = "U" if _upper(ins) else "L"
    _call(c.b, "void", f"llad.blasrt.potrf_adjoint_{which}.{_suffix(ty)}",
          [("i64", c.value(ops[1])), ("ptr", c.memory(ins, 2)), ("i64", c.value(ops[3])), ("ptr", c.shadow(ops[2]))])


# getri: operands n0 a1 lda2 ipiv3: A⁻¹ in place of A's packed LU factors (np.linalg.inv after getrf)
def _getri_extent(ins: Instruction, i: int) -> tuple[str, str, str]:
    o = [x.text for x in ins.operands]
    return (o[0], o[0], o[2]) if i == 1 else (o[0], "1", o[0])


def _getri_forward(c: ForwardContext, ins: Instruction) -> None:
    """With A = Pᵀ L U and X = A⁻¹: dX = -X Pᵀ (dL U + L dU) X, the factors from before the call."""
    o, ty = [x.text for x in ins.operands], float_type(ins.callee)
    if not c.active(ins.operands[1]):
        return
    lu = c.before[1]
    for j in c.lanes(ins.operands[1]):
        _call(c.b, "void", f"llad.blasrt.getri_tangent.{_suffix(ty)}",
              [("i64", o[0]), ("ptr", lu), ("i64", o[2]), ("ptr", o[3]), ("ptr", o[1]),
               ("ptr", c.shadow(ins.operands[1], j))])
    c.b.call("void", "free", [("ptr", lu)])


def _getri_reverse(c: ReverseContext, ins: Instruction) -> None:
    """With G = -Xᵀ X̄ Xᵀ (the adjoint of A): L̄ = tril₋(P G Uᵀ), Ū = triu(Lᵀ P G), overwriting X̄."""
    ty, ops = float_type(ins.callee), ins.operands
    if not c.active(ops[1]):
        return
    _call(c.b, "void", f"llad.blasrt.getri_adjoint.{_suffix(ty)}",
          [("i64", c.value(ops[0])), ("ptr", c.memory(ins, 1, before=True)), ("i64", c.value(ops[2])),
           ("ptr", c.memory(ins, 3)), ("ptr", c.memory(ins, 1)), ("ptr", c.shadow(ops[1]))])


# --- the BLAS/LAPACK calls of llad's own derivative code (a derivative differentiated again) ---------------
# The rules above call SciPy's Fortran trmm, trsm, laswp and getrs (`llad_<d|s><routine>`, every argument by
# address).  When a derivative is differentiated again (forward over reverse: Hessian-vector products), `route`
# reads those calls' arguments from the stack slots they were spilled to and gives them llad's form:
#   llad.blas.trmm|trsm(i8 side, i8 uplo, i8 trans, i8 diag, i64 m, i64 n, T alpha, ptr a, i64 lda, ptr b, i64 ldb)
#   llad.blas.laswp(i64 n, ptr a, i64 lda, i64 k1, i64 k2, ptr ipiv, i64 incx)
#   llad.blas.getrs(i8 trans, i64 n, i64 nrhs, ptr a, i64 lda, ptr ipiv, ptr b, i64 ldb)
_UNIT_DIAG, _NON_UNIT_DIAG = ("85", "117"), ("78", "110")
_SIDES, _UPLOS = {"76": "L", "108": "L", "82": "R", "114": "R"}, {"76": "L", "108": "L", "85": "U", "117": "U"}


def _tr_extent(ins: Instruction, i: int) -> tuple[str, str, str]:
    """trmm/trsm: a is m x m (side 'L') or n x n ('R'); b is m x n."""
    o = [x.text for x in ins.operands]
    if i == 7:
        k = o[4] if _SIDES[o[0]] == "L" else o[5]
        return k, k, o[8]
    return o[4], o[5], o[10]


def _triangle_forward(c: ForwardContext, ins: Instruction, solve: bool) -> None:
    """trmm, B <- alpha op(A) B: dB <- alpha op(A) dB + alpha op(dA) B0.  trsm, X = alpha op(A)^-1 B0:
    dX = op(A)^-1 (alpha dB - op(dA) X).  (Side 'R' multiplies from the right.)  dA is the triangle the
    routine reads, without the diagonal when it is unit: trmm with the unit flag adds I op(...) = B, which is
    subtracted again.  B0 is the copy `before` made of b."""
    o, ty = [x.text for x in ins.operands], float_type(ins.callee)
    side, uplo, trans, diag, m, n, alpha, a, lda, bmat, ldb = o
    unit = diag in _UNIT_DIAG
    one, minus = fconst(ty, 1.0), fconst(ty, -1.0)
    b0 = c.before.get(9)
    nbytes = _nbytes(c.b, blas_rule(ins.callee), ins, 9)
    for j in c.lanes(ins.operands[9]):
        db = c.shadow(ins.operands[9], j)
        if not solve:
            c.triangular("trmm", ty, side, uplo, trans, diag, m, n, alpha, a, lda, db, ldb)
        if c.active(ins.operands[7]):
            # t = op(dA) B0 (trmm), or op(dA) X (trsm: X is b after the call)
            src = bmat if solve else b0
            t = _call(c.b, "ptr", "llad.blasrt.rawcopy", [("ptr", src), ("i64", nbytes)])
            c.triangular("trmm", ty, side, uplo, trans, diag, m, n, one if solve else alpha,
                         c.shadow(ins.operands[7], j), lda, t, ldb)
            if unit:
                c.axpym(ty, m, n, minus if solve else c.b.fmul(ty, alpha, minus), src, t, ldb)
            if solve:
                c.scale(ty, m, n, db, ldb, alpha)
            c.axpym(ty, m, n, minus if solve else one, t, db, ldb)
            c.b.call("void", "free", [("ptr", t)])
        elif solve:
            c.scale(ty, m, n, db, ldb, alpha)
        if solve:
            c.triangular("trsm", ty, side, uplo, trans, diag, m, n, one, a, lda, db, ldb)
    if b0 is not None:
        c.b.call("void", "free", [("ptr", b0)])


def _trmm_forward(c: ForwardContext, ins: Instruction) -> None:
    _triangle_forward(c, ins, solve=False)


def _trsm_forward(c: ForwardContext, ins: Instruction) -> None:
    _triangle_forward(c, ins, solve=True)


def _flip(trans: str) -> str:
    return _N if _TRANS[trans] else _T


def _triangle_reverse(c: ReverseContext, ins: Instruction, solve: bool) -> None:
    """trmm, B1 = alpha op(A) B0: Ā += alpha tri(B̄ B0ᵀ) (op 'T': tri(B0 B̄ᵀ)), then B̄ <- alpha op(A)ᵀ B̄.
    trsm, X = alpha op(A)^-1 B0: G = op(A)^-ᵀ X̄, Ā += -tri(G Xᵀ) (op 'T': -tri(X Gᵀ)), then B̄ = alpha G.
    Side 'R' mirrors both; tri keeps the triangle the routine reads, without a unit diagonal."""
    ty, ops = float_type(ins.callee), ins.operands
    if not c.active(ops[9]):
        return
    o = [x.text for x in ops]
    side, uplo, trans, diag = o[0], o[1], o[2], o[3]
    m, n, alpha, lda, ldb = (c.value(ops[i]) for i in (4, 5, 6, 8, 10))
    bbar, a = c.shadow(ops[9]), c.memory(ins, 7)
    left, transposed = _SIDES[side] == "L", _TRANS[trans]
    one, minus, zero = fconst(ty, 1.0), fconst(ty, -1.0), fconst(ty, 0.0)
    if solve:
        c.triangular("trsm", ty, side, uplo, _flip(trans), diag, m, n, one, a, lda, bbar, ldb)     # G
    if c.active(ops[7]):
        other = c.memory(ins, 9) if solve else c.memory(ins, 9, before=True)        # X, or B0
        k, inner = (m, n) if left else (n, m)
        first, second = (bbar, other) if left != transposed else (other, bbar)
        tmp = c.b.call("ptr", "malloc", [("i64", c.b.op("mul", "i64", c.b.op("mul", "i64", lda, k),
                                                               str(_ELEMENT_BYTES[ty])))])
        if left:
            c.gemm(ty, _N, _T, k, k, inner, minus if solve else alpha, first, ldb, second, ldb, zero, tmp, lda)
        else:
            c.gemm(ty, _T, _N, k, k, inner, minus if solve else alpha, first, ldb, second, ldb, zero, tmp, lda)
        _call(c.b, "void", f"llad.blasrt.triadd.{_suffix(ty)}",
              [("i64", k), ("ptr", tmp), ("ptr", c.shadow(ops[7])), ("i64", lda),
               ("i1", "true" if _UPLOS[uplo] == "U" else "false"), ("i1", "true" if diag in _UNIT_DIAG else "false")])
        c.b.call("void", "free", [("ptr", tmp)])
    if solve:
        c.scale(ty, m, n, bbar, ldb, alpha)
    else:
        c.triangular("trmm", ty, side, uplo, _flip(trans), diag, m, n, alpha, a, lda, bbar, ldb)


def _trmm_reverse(c: ReverseContext, ins: Instruction) -> None:
    _triangle_reverse(c, ins, solve=False)


def _trsm_reverse(c: ReverseContext, ins: Instruction) -> None:
    _triangle_reverse(c, ins, solve=True)


def _laswp_extent(ins: Instruction, i: int) -> tuple[str, str, str]:
    """laswp: a is lda x n (the rows it swaps are below k2 <= lda); ipiv has k2 entries."""
    o = [x.text for x in ins.operands]
    return (o[2], o[0], o[2]) if i == 1 else (o[4], "1", o[4])


def _laswp_forward(c: ForwardContext, ins: Instruction) -> None:
    """The same row interchanges on dA (laswp is linear in A)."""
    o, ty = [x.text for x in ins.operands], float_type(ins.callee)
    for j in c.lanes(ins.operands[1]):
        c.laswp(ty, o[0], c.shadow(ins.operands[1], j), o[2], o[3], o[4], o[5], o[6])


def _laswp_reverse(c: ReverseContext, ins: Instruction) -> None:
    """The interchanges undone on the adjoint: the same pivots in the opposite order."""
    ty, ops = float_type(ins.callee), ins.operands
    if not c.active(ops[1]):
        return
    n, lda, k1, k2, incx = (c.value(ops[i]) for i in (0, 2, 3, 4, 6))
    c.laswp(ty, n, c.shadow(ops[1]), lda, k1, k2, c.memory(ins, 5), c.b.op("sub", "i64", "0", incx))


def _getrs_extent(ins: Instruction, i: int) -> tuple[str, str, str]:
    """getrs: gesv's operands after the trans flag."""
    return _solve_extent([x.text for x in ins.operands[1:]], i - 1)


def _getrs_forward(c: ForwardContext, ins: Instruction) -> None:
    """X = op(M)^-1 B with M = P L U from the packed factors: dX = op(M)^-1 (dB - op(dM) X), dM = P (dL U + L dU)
    with dL, dU read from the factors' tangent (llad.blasrt.getrs_dm)."""
    o, ty = [x.text for x in ins.operands], float_type(ins.callee)
    trans, n, nrhs, lu, lda, ipiv, x, ldb = o
    a = ins.operands[3]
    for j in c.lanes(ins.operands[6]):
        db = c.shadow(ins.operands[6], j)
        if c.active(a):
            _call(c.b, "void", f"llad.blasrt.getrs_dm.{_suffix(ty)}",
                  [("i8", trans), ("i64", n), ("i64", nrhs), ("ptr", lu), ("i64", lda), ("ptr", ipiv),
                   ("ptr", c.shadow(a, j)), ("ptr", x), ("i64", ldb), ("ptr", db)])
        c.getrs(ty, trans, n, nrhs, lu, lda, ipiv, db, ldb)


def _getrs_reverse(c: ReverseContext, ins: Instruction) -> None:
    """X = op(M)^-1 B0: B̄ = G = op(M)^-ᵀ X̄ (getrs with the other op, in place); M̄ = -G Xᵀ ('T': -X Gᵀ),
    and from it the packed factors' adjoint (llad.blasrt.lu_adjoint, as getri's rule)."""
    ty, ops = float_type(ins.callee), ins.operands
    if not c.active(ops[6]):
        return
    trans = ops[0].text
    n, nrhs, lda, ldb = (c.value(ops[i]) for i in (1, 2, 4, 7))
    lu, ipiv, bbar = c.memory(ins, 3), c.memory(ins, 5), c.shadow(ops[6])
    c.getrs(ty, _flip(trans), n, nrhs, lu, lda, ipiv, bbar, ldb)
    if c.active(ops[3]):
        x = c.memory(ins, 6)
        first, second = (x, bbar) if _TRANS[trans] else (bbar, x)
        tmp = c.b.call("ptr", "malloc", [("i64", c.b.op("mul", "i64", c.b.op("mul", "i64", lda, n),
                                                               str(_ELEMENT_BYTES[ty])))])
        c.gemm(ty, _N, _T, n, n, nrhs, fconst(ty, -1.0), first, ldb, second, ldb, fconst(ty, 0.0), tmp, lda)
        _call(c.b, "void", f"llad.blasrt.lu_adjoint.{_suffix(ty)}",
              [("i64", n), ("ptr", lu), ("i64", lda), ("ptr", ipiv), ("ptr", tmp), ("ptr", c.shadow(ops[3]))])
        c.b.call("void", "free", [("ptr", tmp)])


BLAS_RULES: dict[str, BlasRule] = {
    "gemm": BlasRule("gemm", (6, 8), 11, (5, 10), _gemm_forward, _gemm_reverse, _gemm_extent),
    "gemv": BlasRule("gemv", (4, 6), 8, (3, 7), _gemv_forward, _gemv_reverse, _gemv_extent),
    "dot": BlasRule("dot", (1, 2), None, (), _dot_forward, _dot_reverse, _dot_extent),
    "nrm2": BlasRule("nrm2", (1,), None, (), _nrm2_forward, _nrm2_reverse, _nrm2_extent),
    "getrf": BlasRule("getrf", (2,), 2, (), _getrf_forward, _getrf_reverse, _getrf_extent, clobbers=(4,),
                      saved=(2, 4), integers=(4,)),
    "getri": BlasRule("getri", (1, 3), 1, (), _getri_forward, _getri_reverse, _getri_extent, saved=(1, 3),
                      integers=(3,), saved_before=(1,)),
    "potrf": BlasRule("potrf", (2,), 2, (), _potrf_forward, _potrf_reverse, _potrf_extent),
    "gesv": BlasRule("gesv", (2, 5), 5, (), _gesv_forward, _gesv_reverse, _gesv_extent, clobbers=(2, 4),
                     saved=(2, 4, 5), integers=(4,)),
    "trmm": BlasRule("trmm", (7, 9), 9, (6,), _trmm_forward, _trmm_reverse, _tr_extent, saved=(7,),
                     saved_before=(9,)),
    "trsm": BlasRule("trsm", (7, 9), 9, (6,), _trsm_forward, _trsm_reverse, _tr_extent, saved=(7, 9)),
    "laswp": BlasRule("laswp", (1, 5), 1, (), _laswp_forward, _laswp_reverse, _laswp_extent, saved=(5,),
                      integers=(5,)),
    "getrs": BlasRule("getrs", (3, 5, 6), 6, (), _getrs_forward, _getrs_reverse, _getrs_extent, saved=(3, 5, 6),
                      integers=(5,)),
}


# --- what the rules build with ---------------------------------------------------------------------------
class _Calls:
    """BLAS and helper calls, shared by both contexts.  Each is llad's null-checking version (`llad.blasrt.*`):
    a shadow may be null where an array is sometimes one with a derivative and sometimes not (a loop
    that starts from a Const array), and a missing shadow stands for zeros."""

    b: Builder

    def gemm(self, ty, ta, tb, m, n, k, alpha, a, lda, b_, ldb, beta, c, ldc) -> None:
        args = [("i8", ta), ("i8", tb), ("i64", m), ("i64", n), ("i64", k), (ty, alpha), ("ptr", a), ("i64", lda),
                ("ptr", b_), ("i64", ldb), (ty, beta), ("ptr", c), ("i64", ldc)]
        _call(self.b, "void", f"llad.blasrt.gemm.{_suffix(ty)}", args)

    def gemv(self, ty, trans, m, n, alpha, a, lda, x, beta, y) -> None:
        args = [("i8", trans), ("i64", m), ("i64", n), (ty, alpha), ("ptr", a), ("i64", lda), ("ptr", x),
                (ty, beta), ("ptr", y)]
        _call(self.b, "void", f"llad.blasrt.gemv.{_suffix(ty)}", args)

    def dot(self, ty, n, x, y) -> str:
        return _call(self.b, ty, f"llad.blasrt.dot.{_suffix(ty)}", [("i64", n), ("ptr", x), ("ptr", y)])

    def getrs(self, ty, trans, n, nrhs, lu, lda, ipiv, b, ldb) -> None:
        """b <- op(A)⁻¹ b from A's LU factors and pivots (LAPACK getrs; trans 'N' or 'T')."""
        _call(self.b, "void", f"llad.blasrt.getrs.{_suffix(ty)}",
              [("i8", trans), ("i64", n), ("i64", nrhs), ("ptr", lu), ("i64", lda), ("ptr", ipiv), ("ptr", b),
               ("i64", ldb)])

    def triangular(self, routine, ty, side, uplo, trans, diag, m, n, alpha, a, lda, b_, ldb) -> None:
        """b <- alpha op(A) b (trmm) or alpha op(A)^-1 b (trsm), b on the right for side 'R'."""
        _call(self.b, "void", f"llad.blasrt.{routine}.{_suffix(ty)}",
              [("i8", side), ("i8", uplo), ("i8", trans), ("i8", diag), ("i64", m), ("i64", n), (ty, alpha), ("ptr", a),
               ("i64", lda), ("ptr", b_), ("i64", ldb)])

    def laswp(self, ty, n, a, lda, k1, k2, ipiv, incx) -> None:
        _call(self.b, "void", f"llad.blasrt.laswp.{_suffix(ty)}",
              [("i64", n), ("ptr", a), ("i64", lda), ("i64", k1), ("i64", k2), ("ptr", ipiv), ("i64", incx)])

    def axpym(self, ty, rows, cols, alpha, x, y, ld) -> None:
        """y[:rows, :cols] += alpha x[:rows, :cols], both with leading dimension ld (nothing when y is null)."""
        _call(self.b, "void", f"llad.blasrt.axpym.{_suffix(ty)}",
              [("i64", rows), ("i64", cols), (ty, alpha), ("ptr", x), ("ptr", y), ("i64", ld)])

    def scale(self, ty, rows, cols, c, ldc, beta) -> None:
        """c[:rows, :cols] *= beta (set to zero when beta is 0, whatever c held), skipped when beta is 1."""
        if beta == fconst(ty, 1.0):
            return
        _call(self.b, "void", f"llad.blasrt.scale.{_suffix(ty)}",
              [("i64", rows), ("i64", cols), ("ptr", c), ("i64", ldc), (ty, beta)])

    def axpy(self, ty, n, a, x, incx, y, incy) -> None:
        """y[i incy] += a x[i incx] for i < n (nothing when y is null)."""
        _call(self.b, "void", f"llad.blasrt.axpy.{_suffix(ty)}",
              [("i64", n), (ty, a), ("ptr", x), ("i64", incx), ("ptr", y), ("i64", incy)])

    def sdot(self, ty, n, x, incx, y, incy) -> str:
        """sum x[i incx] y[i incy] for i < n (0 when y is null)."""
        return _call(self.b, ty, f"llad.blasrt.sdot.{_suffix(ty)}",
                     [("i64", n), ("ptr", x), ("i64", incx), ("ptr", y), ("i64", incy)])

    def at_least_one(self, n: str) -> str:
        """BLAS wants leading dimensions >= 1, also for empty matrices."""
        return self.b.call("i64", "llvm.smax.i64", [("i64", n), ("i64", "1")])


class ForwardContext(_Calls):
    """What a forward rule sees: primal values are the operands themselves, shadows per lane."""

    def __init__(self, sweep, ins: Instruction, before: dict | None = None):
        self.sweep, self.b, self.ins = sweep, sweep.b, ins
        self.before = before or {}         # operand -> a malloc'ed copy of its memory from before the call

    def active(self, op: Operand) -> bool:
        return op.is_local and (op.name in self.sweep.act.pointers or op.name in self.sweep.act.values)

    def lanes(self, out: Operand | None) -> range:
        return range(self.sweep.k) if out is None or self.active(out) else range(0)


    def shadow(self, op: Operand, j: int) -> str | None:
        return self.sweep.shadow(op, j, self.ins) if self.active(op) else None

    def set_tangent(self, ins: Instruction, lanes: list[str]) -> None:
        sweep = self.sweep
        ty = ins.type
        name = sweep.lanes.name(ins.result)
        if not sweep.lanes.vector:
            self.b.op("fadd", ty, lanes[0], fconst(ty, -0.0), name=name)
        else:
            sweep.lanes.combine(ty, lanes, name)


class ReverseContext(_Calls):
    """What a reverse rule sees: primal values looked up (recomputed or from the tape), the shadows, the
    inputs' memory as it was at the call (`memory`), adjoints of a value result (`take`)."""

    def __init__(self, visitor, ins: Instruction):
        self.visitor, self.lookup, self.b, self.ins = visitor, visitor.lookup, visitor.b, ins
        self.copies: list[str] = []
        self.memories: dict[tuple[int, bool], str] = {}

    def active(self, op: Operand) -> bool:
        act = self.lookup.act
        return op.is_local and (op.name in act.pointers or op.name in act.values)

    def value(self, op: Operand) -> str:
        return self.lookup.need(op)

    def shadow(self, op: Operand) -> str:
        return self.lookup.need_shadow(op)

    def take(self, ins: Instruction) -> str:
        return self.visitor.take(ins)

    def memory(self, ins: Instruction, i: int, before: bool = False) -> str:
        """Operand i's memory as the call left it (`before`: as the call found it): in place when the function
        never writes it, else the copy the forward sweep kept on the tape."""
        op = ins.operands[i]
        if unchanged(self.lookup.facts, op):
            return self.value(op)
        if (i, before) not in self.memories:      # each kept copy loaded (and released) once per rule
            mi = self.lookup.tape.load(self.b, copy_name(ins, i, before), "ptr", ins.block.name, self.lookup.block.name)
            self.copies.append(mi)
            self.memories[i, before] = self.b.call("ptr", "NRT_MemInfo_data_fast", [("ptr", mi)])
        return self.memories[i, before]

    def release(self) -> None:
        for mi in self.copies:
            self.b.call("void", "NRT_decref", [("ptr", mi)])


def read_elsewhere(fn: Function, act, call: Instruction, op: Operand) -> bool:
    """Whether any instruction but `call` may read the memory of `op` (a load, or a call touching it other
    than a reference count or a free)."""
    from .ir.callees import CallKind, classify, touched_operands
    mine = act.roots.get(op.name, frozenset()) if op.is_local else frozenset()
    if not mine:
        return True

    def reaches(p: Operand) -> bool:
        return p.is_local and bool(act.roots.get(p.name, frozenset()) & mine)
    for block in fn.blocks:
        for ins in block.instructions:
            if ins is call:
                continue
            if ins.opcode == "load" and reaches(ins.operands[0]):
                return True
            if ins.opcode == "call" and classify(ins.callee) not in (CallKind.REFCOUNT, CallKind.FREE) and \
                    any(reaches(p) for p in touched_operands(ins)):
                return True
    return False


def unchanged(facts, op: Operand) -> bool:
    """Memory the function never writes, reached only from array arguments the API checked for aliasing."""
    from .analysis.recompute import readonly_pointer
    return readonly_pointer(op, facts.act.roots, facts.written, facts.data_params)


def copy_name(ins: Instruction, i: int, before: bool = False) -> str:
    return f"blas.{ins.result}.{i}{'.before' if before else ''}"


def before(sweep, ins: Instruction) -> dict:
    """Forward mode, before the primal call: malloc'ed copies of the memory the rule reads as it was (the
    rule frees them)."""
    rule = blas_rule(ins.callee)
    out = {}
    for i in rule.saved_before:
        if ForwardContext(sweep, ins).active(ins.operands[rule.output]):
            out[i] = _copy_memory(sweep.b, rule, ins, i, "llad.blasrt.rawcopy")
    return out


def forward(sweep, ins: Instruction, copies: dict | None = None) -> None:
    _check_layout(sweep, ins)
    blas_rule(ins.callee).forward(ForwardContext(sweep, ins, copies), ins)


def _nbytes(b: Builder, rule: BlasRule, ins: Instruction, i: int) -> str:
    """The bytes operand i's matrix spans."""
    rows, cols, ld = rule.extent(ins, i)
    elements = _call(b, "i64", "llad.blasrt.extent", [("i64", rows), ("i64", cols), ("i64", ld)])
    return b.op("mul", "i64", elements, str(rule.element_bytes(ins.callee, i)))


def _copy_memory(b: Builder, rule: BlasRule, ins: Instruction, i: int, helper: str, name: str | None = None) -> str:
    nbytes = _nbytes(b, rule, ins, i)
    _ensure(b.module, helper)
    return b.call("ptr", helper, [("ptr", ins.operands[i].text), ("i64", nbytes)], name=name)


def reverse(visitor, ins: Instruction) -> None:
    c = ReverseContext(visitor, ins)
    blas_rule(ins.callee).reverse(c, ins)
    c.release()


def keep_copies(sweep, ins: Instruction) -> None:
    """The augmented forward sweep, before a BLAS call (`keep_copies`) and after it (`keep_copies_after`):
    copy each operand the reverse sweep reads from the tape (a meminfo, so the shadow stack frees it if the
    reverse sweep never runs), and keep it there."""
    _keep(sweep, ins, [(i, True) for i in blas_rule(ins.callee).saved_before])


def keep_copies_after(sweep, ins: Instruction) -> None:
    _keep(sweep, ins, [(i, False) for i in blas_rule(ins.callee).kept])


def _keep(sweep, ins: Instruction, which: list[tuple[int, bool]]) -> None:
    rule, b = blas_rule(ins.callee), sweep.b
    for i, before_call in which:
        name = copy_name(ins, i, before_call)
        if not sweep.tape.is_cached(name):
            continue
        _copy_memory(b, rule, ins, i, "llad.blasrt.copy", name=ref(name))
        b.call("void", "llad.shadows.push", [("ptr", "%llad.shadows"), ("ptr", ref(name))])
        sweep.tape.store(b, name, ins.block.name)


def has_copies(tape) -> bool:
    return any(name.startswith("blas.") for name in tape.entries)


def _check_layout(sweep, ins: Instruction) -> None:
    for i in blas_rule(ins.callee).pointers:
        op = ins.operands[i]
        if op.is_local and op.name in sweep.interleaved:
            raise AssertionError(f"interleaved shadow reached BLAS call {ins.callee}")   # analysis.layout splits them


# --- routing: Numba's calls into llad's form -------------------------------------------------------------
def route(fn: Function, location) -> None:
    """Rewrite Numba's BLAS helper calls into llad's form (see the module docstring); calls llad has no
    rule for (complex kinds, a transpose flag or scale factor it cannot read) are left as they are, and
    activity analysis refuses them if a derivative reaches them."""
    changed, slots = False, set()
    for block in fn.blocks:
        for ins in list(block.instructions):
            if ins.opcode == "call" and ins.callee in _FORTRAN_CALLEES:
                new = _route_fortran(ins, *_FORTRAN_CALLEES[ins.callee])
            else:
                routine = _NUMBA.get(ins.callee) if ins.opcode == "call" else None
                if routine is None or ins.operands[0].text not in _KINDS:
                    continue
                new = _ROUTERS[routine](ins, _KINDS[ins.operands[0].text])
            if new is None:
                continue
            at = block.instructions.index(ins)
            block.instructions[at:at + 1] = new
            for x in new:
                x.block = block
            slots |= {o.name for o in ins.operands if o.is_local and o.type == "ptr"}
            changed = True
    if changed:
        _forward_dot_results(fn)
        _drop_write_only_slots(fn, slots)
        fn.reindex()


def _scalar(call: Instruction, op: Operand, ty: str) -> Operand | None:
    """The value Numba stored in the stack slot it passes a scale factor through: the last store to it
    before the call, in the call's block."""
    if not op.is_local:
        return None
    ins = call.block.instructions
    for prev in reversed(ins[:ins.index(call)]):
        if prev.opcode == "store" and prev.operands[1].text == op.text:
            return prev.operands[0] if prev.operands[0].type == ty else None
        if prev.opcode == "call" and any(o.text == op.text for o in prev.operands):
            return None
    return None


def _route_gemm(ins: Instruction, ty: str) -> list[Instruction] | None:
    o = ins.operands
    alpha, beta = _scalar(ins, o[6], ty), _scalar(ins, o[11], ty)
    if alpha is None or beta is None or o[1].text not in _TRANS or o[2].text not in _TRANS:
        return None
    ops = [o[1], o[2], o[3], o[4], o[5], alpha, o[7], o[8], o[9], o[10], beta, o[12], o[13]]
    return [Instruction("call", ins.result, "i32", [Operand(x.type, x.text) for x in ops],
                        callee=f"llad.blas.gemm.{_suffix(ty)}")]


def _route_gemv(ins: Instruction, ty: str) -> list[Instruction] | None:
    o = ins.operands
    alpha, beta = _scalar(ins, o[4], ty), _scalar(ins, o[8], ty)
    if alpha is None or beta is None or o[1].text not in _TRANS:
        return None
    ops = [o[1], o[2], o[3], alpha, o[5], o[6], o[7], beta, o[9]]
    return [Instruction("call", ins.result, "i32", [Operand(x.type, x.text) for x in ops],
                        callee=f"llad.blas.gemv.{_suffix(ty)}")]


def _route_dot(ins: Instruction, ty: str) -> list[Instruction] | None:
    """`%s = call i32 @numba_xxdot(kind, conj, n, x, y, out)` -> `%s.v = call T @llad.blas.dot(n, x, y)`,
    `store T %s.v, ptr out`; the status (always 0 once the primal compiled) becomes `add i32 0, 0`."""
    return _as_value(ins, ty, "dot", ins.operands[2:5], ins.operands[5])


def _route_nrm2(ins: Instruction, ty: str) -> list[Instruction] | None:
    """`numba_xxnrm2(kind, n, x, incx, out)`, as dot."""
    return _as_value(ins, ty, "nrm2", ins.operands[1:4], ins.operands[4])


def _as_value(ins: Instruction, ty: str, routine: str, args: list[Operand], out: Operand) -> list[Instruction]:
    value = f"{ins.result}.v"
    call = Instruction("call", value, ty, [Operand(x.type, x.text) for x in args],
                       callee=f"llad.blas.{routine}.{_suffix(ty)}")
    store = Instruction("store", None, ty, [Operand(ty, ref(value)), Operand("ptr", out.text)],
                        align=_ELEMENT_BYTES[ty])
    status = Instruction("add", ins.result, "i32", [Operand("i32", "0"), Operand("i32", "0")])
    return [call, store, status]


def _route_gesv(ins: Instruction, ty: str) -> list[Instruction] | None:
    """`numba_xgesv(kind, n, nrhs, a, lda, ipiv, b, ldb)`: the same operands, the kind in the name (so
    for getrf)."""
    return [Instruction("call", ins.result, "i32", [Operand(x.type, x.text) for x in ins.operands[1:]],
                        callee=f"llad.blas.{ins.callee[len('numba_x'):].lstrip('x')}.{_suffix(ty)}")]


def _route_potrf(ins: Instruction, ty: str) -> list[Instruction] | None:
    """`numba_xxpotrf(kind, uplo, n, a, lda)`, when uplo is a constant llad knows."""
    if ins.operands[1].text not in ("85", "117", "76", "108"):
        return None
    return _route_gesv(ins, ty)


def _route_getri(ins: Instruction, ty: str) -> list[Instruction] | None:
    """`numba_ez_xxgetri(kind, n, a, lda, ipiv)`: the same operands, the kind in the name."""
    return [Instruction("call", ins.result, "i32", [Operand(x.type, x.text) for x in ins.operands[1:]],
                        callee=f"llad.blas.getri.{_suffix(ty)}")]


_ROUTERS = {"gemm": _route_gemm, "gemv": _route_gemv, "dot": _route_dot, "nrm2": _route_nrm2, "gesv": _route_gesv,
            "getrf": _route_gesv, "potrf": _route_potrf, "getri": _route_getri}


# SciPy's Fortran routines as llad's own derivative code calls them (`_fortran`): each argument's kind
# (c a character, i an integer, f a float, p a pointer) in order; getrs's `info` is dropped from llad's form
_FORTRAN_ARGS = {
    "trmm": "cccciifpipi", "trsm": "cccciifpipi", "laswp": "ipiiipi", "getrs": "ciipippip",
}
_FORTRAN_CALLEES = {f"llad_{p}{r}": (r, ty) for r in _FORTRAN_ARGS for p, ty in (("d", "double"), ("s", "float"))}
_CHARS = {"trmm": (_SIDES, _UPLOS, _TRANS, {**dict.fromkeys(_UNIT_DIAG), **dict.fromkeys(_NON_UNIT_DIAG)})}
_CHARS["trsm"] = _CHARS["trmm"]
_CHARS["getrs"] = (_TRANS,)


def _route_fortran(ins: Instruction, routine: str, ty: str) -> list[Instruction] | None:
    """`call @llad_dtrmm(ptr side, ...)`, each argument but the arrays spilled to a stack slot just before:
    the stored values, integers widened to i64, as llad's form; None (refused where a derivative reaches
    it) when a value is not found or a character is not a constant llad knows."""
    new, args, chars = [], [], iter(_CHARS.get(routine, ()))
    for kind, op in zip(_FORTRAN_ARGS[routine], ins.operands):
        if kind == "p":
            args.append(Operand("ptr", op.text))
            continue
        want = {"c": "i8", "i": "i32", "f": ty}[kind]
        v = _scalar(ins, op, want)
        if v is None:
            return None
        if kind == "c" and v.text not in next(chars):
            return None
        if kind == "i":
            if v.is_local:
                new.append(Instruction("sext", f"{op.name}.i64", "i64", [Operand("i32", v.text)]))
                v = Operand("i64", ref(f"{op.name}.i64"))
            else:
                v = Operand("i64", v.text)
        args.append(Operand(v.type, v.text))
    if routine == "getrs":
        args = args[:8]                        # without info
    status = f"{ins.operands[0].name}.status"
    return new + [Instruction("call", status, "i32", args, callee=f"llad.blas.{routine}.{_suffix(ty)}")]


_VALUE_ROUTINES = ("llad.blas.dot.", "llad.blas.nrm2.")     # routines llad's form gives a value result


def _forward_dot_results(fn: Function) -> None:
    """A dot's result stored into a stack slot (Numba's `out` for a scalar result) and loaded right
    after: the loads take the value itself, and the slot's stores and loads go (llad gives no shadow to
    stack slots).  Only when every load of the slot reads that store: later in its block, or at the top
    of a successor block, with no other store to the slot in between."""
    from .ir.forwarding import _rewrite_uses, base_alloca
    fn.reindex()
    users = fn.users()
    for block in fn.blocks:
        for ins in list(block.instructions):
            if ins.opcode != "store" or not ins.operands[0].is_local or not ins.operands[1].is_local:
                continue
            src, slot = fn.defs.get(ins.operands[0].name), ins.operands[1].name
            if src is None or src.opcode != "call" or not src.callee.startswith(_VALUE_ROUTINES) or \
                    fn.defs.get(slot) is None or fn.defs[slot].opcode != "alloca" or base_alloca(fn, slot) != slot:
                continue
            touching = users.get(slot, [])
            loads = [u for u in touching if u.opcode == "load"]
            if any(u.opcode not in ("load", "store") and not u.callee.startswith("llvm.lifetime.") for u in touching) \
                    or any(u.opcode == "store" and u.operands[0].text == ref(slot) for u in touching) \
                    or not all(_reads_store(ld, ins, slot) for ld in loads):
                continue
            _rewrite_uses(fn, {ld.result: ins.operands[0] for ld in loads})
            for u in touching:
                if u.opcode in ("load", "store"):
                    u.block.instructions.remove(u)
            users = fn.users()


def _drop_write_only_slots(fn: Function, candidates: set[str]) -> None:
    """Stack slots that held a scale factor for Numba's helper, now only written: their stores and
    lifetime markers go (float stores to stack slots would otherwise look like untraceable memory)."""
    fn.reindex()
    users = fn.users()
    for slot in candidates:
        if slot not in fn.defs or fn.defs[slot].opcode != "alloca":
            continue
        touching = users.get(slot, [])
        if all((u.opcode == "store" and u.operands[1].text == ref(slot) and u.operands[0].text != ref(slot))
               or u.callee.startswith("llvm.lifetime.") for u in touching):
            for u in touching:
                u.block.instructions.remove(u)


def _reads_store(load: Instruction, store: Instruction, slot: str) -> bool:
    """Whether `load` reads what `store` wrote: it follows in the same block, or the store's block ends
    without another write and the load's block (a successor) has none before the load."""
    def writes(ins):
        return ins.opcode == "store" and ins.operands[1].text == ref(slot)
    sb = store.block.instructions
    after = sb[sb.index(store) + 1:]
    if load.block is store.block:
        return load in after and not any(writes(i) for i in after[:after.index(load)])
    lb = load.block.instructions
    return load.block.name in store.block.succs and len(load.block.preds) == 1 and \
        not any(writes(i) for i in after) and not any(writes(i) for i in lb[:lb.index(load)])


# --- definitions in the derivative module ------------------------------------------------------------------
def _params(routine: str, ty: str) -> list[tuple[str, str]]:
    """The parameters of llad's form of a routine (module docstring)."""
    return {
        "gemm": [("i8", "ta"), ("i8", "tb"), ("i64", "m"), ("i64", "n"), ("i64", "k"), (ty, "alpha"), ("ptr", "a"),
                 ("i64", "lda"), ("ptr", "b"), ("i64", "ldb"), (ty, "beta"), ("ptr", "c"), ("i64", "ldc")],
        "gemv": [("i8", "t"), ("i64", "m"), ("i64", "n"), (ty, "alpha"), ("ptr", "a"), ("i64", "lda"),
                 ("ptr", "x"), (ty, "beta"), ("ptr", "y")],
        "dot": [("i64", "n"), ("ptr", "x"), ("ptr", "y")],
        "nrm2": [("i64", "n"), ("ptr", "x"), ("i64", "incx")],
        "gesv": [("i64", "n"), ("i64", "nrhs"), ("ptr", "a"), ("i64", "lda"), ("ptr", "ipiv"), ("ptr", "b"),
                 ("i64", "ldb")],
        "getri": [("i64", "n"), ("ptr", "a"), ("i64", "lda"), ("ptr", "ipiv")],
        "potrf": [("i8", "uplo"), ("i64", "n"), ("ptr", "a"), ("i64", "lda")],
        "getrf": [("i64", "m"), ("i64", "n"), ("ptr", "a"), ("i64", "lda"), ("ptr", "ipiv")],
        "getrs": [("i8", "trans"), ("i64", "n"), ("i64", "nrhs"), ("ptr", "a"), ("i64", "lda"), ("ptr", "ipiv"),
                  ("ptr", "b"), ("i64", "ldb")],
        "trmm": _TRIANGULAR_PARAMS(ty),
        "trsm": _TRIANGULAR_PARAMS(ty),
        "laswp": [("i64", "n"), ("ptr", "a"), ("i64", "lda"), ("i64", "k1"), ("i64", "k2"), ("ptr", "ipiv"),
                  ("i64", "incx")],
    }[routine]


def _TRIANGULAR_PARAMS(ty: str) -> list[tuple[str, str]]:   # noqa: N802 - a table entry
    return [("i8", "side"), ("i8", "uplo"), ("i8", "trans"), ("i8", "diag"), ("i64", "m"), ("i64", "n"),
            (ty, "alpha"), ("ptr", "a"), ("i64", "lda"), ("ptr", "b"), ("i64", "ldb")]


def _define_routine(module: Module, routine: str, ty: str) -> None:
    """llad.blas.<routine>: Numba's helper, with the scale factors passed in stack slots and the result
    of dot returned."""
    params = _params(routine, ty)
    ret = ty if routine in ("dot", "nrm2") else "i32"
    b = new_function(f"llad.blas.{routine}.{_suffix(ty)}", ret, params, module, attributes="alwaysinline",
                     linkage="internal")
    if routine in _FORTRAN_ARGS:                 # SciPy's Fortran routine, every argument by address
        args = [(kind, f"%{name}") for kind, (_, name) in zip(_FORTRAN_ARGS[routine], params)]
        if routine == "getrs":
            args.append(("p", b.alloca("i32")))
        _fortran(b, routine, ty, args)
        b.ret("i32", "0")
        return
    kind = ("i8", "100" if ty == "double" else "115")
    args = [(t, f"%{n}") for t, n in params]
    if ret == ty:
        out = b.alloca(ty)
        conj = [("i8", "0")] if routine == "dot" else []
        b.call("i32", f"numba_xx{routine}", [kind, *conj, *args, ("ptr", out)])
        b.ret(ty, b.load(ty, out))
        return
    if routine in ("gesv", "getrf", "potrf", "getri"):
        name = {"gesv": "numba_xgesv", "getri": "numba_ez_xxgetri"}.get(routine, f"numba_xx{routine}")
        b.ret("i32", b.call("i32", name, [kind, *args]))
        return
    args = [("ptr", _spill(b, ty, v)) if t == ty else (t, v) for t, v in args]
    b.ret("i32", b.call("i32", f"numba_xx{routine}", [kind, *args]))


def _define_guarded(module: Module, routine: str, ty: str) -> None:
    """llad.blasrt.<routine>: llad.blas.<routine> unless one of its arrays is null (a missing shadow, which
    stands for zeros: nothing to add, or a zero dot product)."""
    params = _params(routine, ty)
    ret = ty if routine == "dot" else "void"
    b = new_function(f"llad.blasrt.{routine}.{_suffix(ty)}", ret, params, module, attributes="alwaysinline",
                     linkage="internal")
    present = "true"
    for t, n in params:
        if t == "ptr":
            present = b.op("and", "i1", present, b.icmp("ne", "ptr", f"%{n}", "null"))
    b.cbr(present, "call", "skip")
    b.new_block("call")
    r = _call(b, ret if routine == "dot" else "i32", f"llad.blas.{routine}.{_suffix(ty)}",
              [(t, f"%{n}") for t, n in params])
    if routine == "dot":
        b.ret(ty, r)
    else:
        b.ret()
    b.new_block("skip")
    if routine == "dot":
        b.ret(ty, fconst(ty, 0.0))
    else:
        b.ret()


def _fortran(b: Builder, routine: str, ty: str, args: list[tuple[str, str]]) -> None:
    """Call SciPy's BLAS/LAPACK `routine` (d or s by ty): Fortran takes every argument by address; `args`
    are (kind, value) with kind c (a character, i8), i (an integer, i64 here, 32-bit there), f (a float of
    type ty) or p (a pointer, passed as it is)."""
    addresses = []
    for kind, v in args:
        if kind == "p":
            addresses.append(("ptr", v))
        elif kind == "i":
            addresses.append(("ptr", _spill(b, "i32", b.cast("trunc", "i64", v, "i32"))))
        else:
            addresses.append(("ptr", _spill(b, "i8" if kind == "c" else ty, v)))
    b.call("void", _lapack_symbol(("d" if ty == "double" else "s") + routine), addresses)


def _define_getrs(module: Module, ty: str) -> None:
    """llad.blasrt.getrs: LAPACK's getrs, nothing when b is null (a missing shadow)."""
    b = new_function(f"llad.blasrt.getrs.{_suffix(ty)}", "void", _params("getrs", ty), module,
                     attributes="alwaysinline", linkage="internal")
    b.cbr(b.icmp("ne", "ptr", "%b", "null"), "call", "skip")
    b.new_block("call")
    info = b.alloca("i32")
    _fortran(b, "getrs", ty, [("c", "%trans"), ("i", "%n"), ("i", "%nrhs"), ("p", "%a"), ("i", "%lda"),
                              ("p", "%ipiv"), ("p", "%b"), ("i", "%ldb"), ("p", info)])
    b.ret()
    b.new_block("skip")
    b.ret()


_N, _T, _L, _U, _R, _UNIT = "78", "84", "76", "85", "82", "85"      # 'N' 'T' 'L' 'U' 'R' 'U'(nit diagonal)


def _tri(b: Builder, ty: str, side, uplo, trans, diag, routine, n, lu, lda, s) -> None:
    """s <- op(T) s or s op(T) (trmm), or the solve (trsm), T the triangle of the packed factors."""
    _fortran(b, routine, ty, [("c", side), ("c", uplo), ("c", trans), ("c", diag), ("i", n), ("i", n),
                              ("f", fconst(ty, 1.0)), ("p", lu), ("i", lda), ("p", s), ("i", lda)])


def _getrf_helper(module: Module, ty: str, adjoint: bool) -> None:
    """llad.blasrt.getrf_tangent / getrf_adjoint(m, n, lu, lda, ipiv, s): s (the packed tangent or adjoint
    of the factors, n x n with leading dimension lda) rewritten in place; see _getrf_forward/_reverse.
    Nothing when s is null; NaN in s when m != n."""
    which = "adjoint" if adjoint else "tangent"
    params = [("i64", "m"), ("i64", "n"), ("ptr", "lu"), ("i64", "lda"), ("ptr", "ipiv"), ("ptr", "s")]
    b = new_function(f"llad.blasrt.getrf_{which}.{_suffix(ty)}", "void", params, module, attributes="alwaysinline",
                     linkage="internal")
    size = _ELEMENT_BYTES[ty]
    b.cbr(b.icmp("ne", "ptr", "%s", "null"), "nonnull", "done")
    b.new_block("nonnull")
    b.cbr(b.icmp("eq", "i64", "%m", "%n"), "square", "nan")
    b.new_block("nan")
    _call(b, "void", f"llad.blasrt.fill.{_suffix(ty)}", [("i64", "%m"), ("i64", "%n"), ("ptr", "%s"), ("i64", "%lda"),
                                                           (ty, fconst(ty, float("nan")))])
    b.br("done")
    b.new_block("square")
    n, lu, lda, s = "%n", "%lu", "%lda", "%s"
    ok = b.icmp("sgt", "i64", n, "0")
    b.cbr(ok, "work", "done")
    b.new_block("work")
    bytes_ = b.op("mul", "i64", b.op("mul", "i64", lda, n), str(size))
    tmp = b.call("ptr", "malloc", [("i64", bytes_)])
    mask = f"llad.blasrt.mask.{_suffix(ty)}"
    if not adjoint:
        # s <- F = L⁻¹ P s U⁻¹
        _fortran(b, "laswp", ty, [("i", n), ("p", s), ("i", lda), ("i", "1"), ("i", n), ("p", "%ipiv"), ("i", "1")])
        _tri(b, ty, _L, _L, _N, _UNIT, "trsm", n, lu, lda, s)
        _tri(b, ty, _R, _U, _N, _N, "trsm", n, lu, lda, s)
        b.call("void", "llvm.memcpy.p0.p0.i64", [("ptr", tmp), ("ptr", s), ("i64", bytes_), ("i1", "false")])
        _call(b, "void", mask, [("i64", n), ("ptr", s), ("i64", lda), ("i1", "true")])        # tril₋(F)
        _tri(b, ty, _L, _L, _N, _UNIT, "trmm", n, lu, lda, s)                               # dL = L tril₋(F)
        _call(b, "void", mask, [("i64", n), ("ptr", tmp), ("i64", lda), ("i1", "false")])    # triu(F)
        _tri(b, ty, _R, _U, _N, _N, "trmm", n, lu, lda, tmp)                                # dU = triu(F) U
    else:
        b.call("void", "llvm.memcpy.p0.p0.i64", [("ptr", tmp), ("ptr", s), ("i64", bytes_), ("i1", "false")])
        _call(b, "void", mask, [("i64", n), ("ptr", s), ("i64", lda), ("i1", "true")])        # L̄
        _tri(b, ty, _L, _L, _T, _UNIT, "trmm", n, lu, lda, s)                               # Lᵀ L̄
        _call(b, "void", mask, [("i64", n), ("ptr", s), ("i64", lda), ("i1", "true")])        # tril₋(Lᵀ L̄)
        _call(b, "void", mask, [("i64", n), ("ptr", tmp), ("i64", lda), ("i1", "false")])     # Ū
        _tri(b, ty, _R, _U, _T, _N, "trmm", n, lu, lda, tmp)                                # Ū Uᵀ
        _call(b, "void", mask, [("i64", n), ("ptr", tmp), ("i64", lda), ("i1", "false")])     # triu(Ū Uᵀ)
    _call(b, "void", f"llad.blasrt.addto.{_suffix(ty)}", [("i64", n), ("ptr", tmp), ("ptr", s), ("i64", lda)])
    if adjoint:
        # s <- Pᵀ L⁻ᵀ s U⁻ᵀ
        _tri(b, ty, _L, _L, _T, _UNIT, "trsm", n, lu, lda, s)
        _tri(b, ty, _R, _U, _T, _N, "trsm", n, lu, lda, s)
        _fortran(b, "laswp", ty, [("i", n), ("p", s), ("i", lda), ("i", "1"), ("i", n), ("p", "%ipiv"), ("i", "-1")])
    b.call("void", "free", [("ptr", tmp)])
    b.br("done")
    b.new_block("done")
    b.ret()


def _getri_helper(module: Module, ty: str, adjoint: bool) -> None:
    """llad.blasrt.getri_<tangent|adjoint>(n, lu, lda, ipiv, x, s): s (the packed factors' tangent, or the
    inverse's adjoint) rewritten in place into the inverse's tangent (the factors' adjoint); see
    _getri_forward/_reverse.  Nothing when s is null."""
    which = "adjoint" if adjoint else "tangent"
    params = [("i64", "n"), ("ptr", "lu"), ("i64", "lda"), ("ptr", "ipiv"), ("ptr", "x"), ("ptr", "s")]
    b = new_function(f"llad.blasrt.getri_{which}.{_suffix(ty)}", "void", params, module, attributes="alwaysinline",
                     linkage="internal")
    n, lu, lda, x, s, sx = "%n", "%lu", "%lda", "%x", "%s", _suffix(ty)
    b.cbr(b.op("and", "i1", b.icmp("ne", "ptr", s, "null"), b.icmp("sgt", "i64", n, "0")), "work", "done")
    b.new_block("work")
    nbytes = b.op("mul", "i64", b.op("mul", "i64", lda, n), str(_ELEMENT_BYTES[ty]))
    t1, t2 = b.call("ptr", "malloc", [("i64", nbytes)]), b.call("ptr", "malloc", [("i64", nbytes)])
    one, zero, minus = fconst(ty, 1.0), fconst(ty, 0.0), fconst(ty, -1.0)
    mask = f"llad.blasrt.mask.{sx}"

    def copy(dst, src):
        b.call("void", "llvm.memcpy.p0.p0.i64", [("ptr", dst), ("ptr", src), ("i64", nbytes), ("i1", "false")])

    def gemm(ta, tb, alpha, a_, b_, c_):
        _call(b, "i32", f"llad.blas.gemm.{sx}", [("i8", ta), ("i8", tb), ("i64", n), ("i64", n), ("i64", n),
                                                (ty, alpha), ("ptr", a_), ("i64", lda), ("ptr", b_), ("i64", lda),
                                                (ty, zero), ("ptr", c_), ("i64", lda)])
    if not adjoint:
        copy(t1, s)
        _call(b, "void", mask, [("i64", n), ("ptr", t1), ("i64", lda), ("i1", "true")])      # dL
        _tri(b, ty, _R, _U, _N, _N, "trmm", n, lu, lda, t1)                                # dL U
        copy(t2, s)
        _call(b, "void", mask, [("i64", n), ("ptr", t2), ("i64", lda), ("i1", "false")])     # dU
        _tri(b, ty, _L, _L, _N, _UNIT, "trmm", n, lu, lda, t2)                             # L dU
        _call(b, "void", f"llad.blasrt.addto.{sx}", [("i64", n), ("ptr", t2), ("ptr", t1), ("i64", lda)])
        _fortran(b, "laswp", ty, [("i", n), ("p", t1), ("i", lda), ("i", "1"), ("i", n), ("p", "%ipiv"), ("i", "-1")])
        gemm(_N, _N, one, t1, x, t2)                                                        # Pᵀ W X
        gemm(_N, _N, minus, x, t2, s)                                                       # -X Pᵀ W X
    else:
        gemm(_N, _T, one, s, x, t1)                                                         # X̄ Xᵀ
        gemm(_T, _N, minus, x, t1, t2)                                                      # G = -Xᵀ X̄ Xᵀ
        _fortran(b, "laswp", ty, [("i", n), ("p", t2), ("i", lda), ("i", "1"), ("i", n), ("p", "%ipiv"), ("i", "1")])
        copy(t1, t2)                                                                        # P G
        _tri(b, ty, _R, _U, _T, _N, "trmm", n, lu, lda, t1)                                # P G Uᵀ
        _call(b, "void", mask, [("i64", n), ("ptr", t1), ("i64", lda), ("i1", "true")])      # L̄
        _tri(b, ty, _L, _L, _T, _UNIT, "trmm", n, lu, lda, t2)                             # Lᵀ P G
        _call(b, "void", mask, [("i64", n), ("ptr", t2), ("i64", lda), ("i1", "false")])     # Ū
        _call(b, "void", f"llad.blasrt.addto.{sx}", [("i64", n), ("ptr", t2), ("ptr", t1), ("i64", lda)])
        copy(s, t1)
    b.call("void", "free", [("ptr", t1)])
    b.call("void", "free", [("ptr", t2)])
    b.br("done")
    b.new_block("done")
    b.ret()


def _potrf_helper(module: Module, ty: str, upper: bool, adjoint: bool) -> None:
    """llad.blasrt.potrf_<tangent|adjoint>_<L|U>(n, f, lda, s): s's triangle (the factor's tangent or
    adjoint) rewritten in place, see _potrf_forward/_reverse; the 'U' case is the transpose of the 'L' one.
    Nothing when s is null."""
    which, tri = ("adjoint" if adjoint else "tangent"), ("U" if upper else "L")
    params = [("i64", "n"), ("ptr", "f"), ("i64", "lda"), ("ptr", "s")]
    b = new_function(f"llad.blasrt.potrf_{which}_{tri}.{_suffix(ty)}", "void", params, module,
                     attributes="alwaysinline", linkage="internal")
    n, f, lda, s = "%n", "%f", "%lda", "%s"
    b.cbr(b.op("and", "i1", b.icmp("ne", "ptr", s, "null"), b.icmp("sgt", "i64", n, "0")), "work", "done")
    b.new_block("work")
    t = b.call("ptr", "malloc", [("i64", b.op("mul", "i64", b.op("mul", "i64", lda, n), str(_ELEMENT_BYTES[ty])))])
    sx = _suffix(ty)
    flag = "true" if upper else "false"
    uplo = _U if upper else _L
    # with 'L': left = L, and op(L) products; 'U' swaps sides and transposes
    if not adjoint:
        _call(b, "void", f"llad.blasrt.symmetric.{sx}", [("i64", n), ("ptr", s), ("ptr", t), ("i64", lda),
                                                         ("i1", flag)])
        if upper:   # U⁻ᵀ T U⁻¹
            _tri(b, ty, _L, uplo, _T, _N, "trsm", n, f, lda, t)
            _tri(b, ty, _R, uplo, _N, _N, "trsm", n, f, lda, t)
        else:       # L⁻¹ T L⁻ᵀ
            _tri(b, ty, _L, uplo, _N, _N, "trsm", n, f, lda, t)
            _tri(b, ty, _R, uplo, _T, _N, "trsm", n, f, lda, t)
        _call(b, "void", f"llad.blasrt.phi.{sx}", [("i64", n), ("ptr", t), ("i64", lda), ("i1", flag)])
        _tri(b, ty, _R if upper else _L, uplo, _N, _N, "trmm", n, f, lda, t)      # Φ U, or L Φ
        _call(b, "void", f"llad.blasrt.put_triangle.{sx}", [("i64", n), ("ptr", t), ("ptr", s), ("i64", lda),
                                                            ("i1", flag)])
    else:
        _call(b, "void", f"llad.blasrt.get_triangle.{sx}", [("i64", n), ("ptr", s), ("ptr", t), ("i64", lda),
                                                            ("i1", flag)])
        _tri(b, ty, _R if upper else _L, uplo, _T, _N, "trmm", n, f, lda, t)      # Ū Uᵀ, or Lᵀ L̄
        _call(b, "void", f"llad.blasrt.phi.{sx}", [("i64", n), ("ptr", t), ("i64", lda), ("i1", flag)])
        if upper:   # U⁻¹ Φ U⁻ᵀ
            _tri(b, ty, _L, uplo, _N, _N, "trsm", n, f, lda, t)
            _tri(b, ty, _R, uplo, _T, _N, "trsm", n, f, lda, t)
        else:       # L⁻ᵀ Φ L⁻¹
            _tri(b, ty, _L, uplo, _T, _N, "trsm", n, f, lda, t)
            _tri(b, ty, _R, uplo, _N, _N, "trsm", n, f, lda, t)
        _call(b, "void", f"llad.blasrt.fold_triangle.{sx}", [("i64", n), ("ptr", t), ("ptr", s), ("i64", lda),
                                                             ("i1", flag)])
    b.call("void", "free", [("ptr", t)])
    b.br("done")
    b.new_block("done")
    b.ret()


def _in_triangle(b: Builder, i: str, j: str, upper: str, strict: bool) -> str:
    """Whether element (i, j) lies in the lower triangle (upper: the upper one), diagonal unless strict."""
    lower_test = b.icmp("sgt" if strict else "sge", "i64", i, j)
    upper_test = b.icmp("slt" if strict else "sle", "i64", i, j)
    return b.select(upper, "i1", upper_test, lower_test)


def _define_pair_op(module: Module, ty: str, name: str, body) -> None:
    """llad.blasrt.<name>(n, src, dst, lda, upper): for each (i, j), body(b, i, j, src, dst, at)."""
    params = [("i64", "n"), ("ptr", "src"), ("ptr", "dst"), ("i64", "lda"), ("i1", "upper")]
    b = new_function(f"llad.blasrt.{name}.{_suffix(ty)}", "void", params, module, attributes="alwaysinline",
                     linkage="internal")

    def at(p, i, j):
        return b.gep(ty, p, [("i64", b.op("add", "i64", i, b.op("mul", "i64", j, "%lda")))])
    _square_loop(b, ty, lambda i, j, _: body(b, i, j, at), target="%dst")


def _symmetric(b, i, j, at) -> None:
    """dst = the symmetric matrix whose lower (upper) triangle is src's."""
    ty = _ty_of(b)
    inside = _in_triangle(b, i, j, "%upper", strict=False)
    v = b.select(inside, ty, b.load(ty, at("%src", i, j)), b.load(ty, at("%src", j, i)))
    b.store(ty, v, at("%dst", i, j))


def _get_triangle(b, i, j, at) -> None:
    """dst = src's lower (upper) triangle with the diagonal, zeros elsewhere."""
    ty = _ty_of(b)
    inside = _in_triangle(b, i, j, "%upper", strict=False)
    b.store(ty, b.select(inside, ty, b.load(ty, at("%src", i, j)), fconst(ty, 0.0)), at("%dst", i, j))


def _put_triangle(b, i, j, at) -> None:
    """dst's lower (upper) triangle with the diagonal = src's; the rest of dst unchanged."""
    ty = _ty_of(b)
    inside = _in_triangle(b, i, j, "%upper", strict=False)
    p = at("%dst", i, j)
    b.store(ty, b.select(inside, ty, b.load(ty, at("%src", i, j)), b.load(ty, p)), p)


def _fold_triangle(b, i, j, at) -> None:
    """dst's lower (upper) triangle = src + srcᵀ off the diagonal, src on it; the rest of dst unchanged."""
    ty = _ty_of(b)
    inside = _in_triangle(b, i, j, "%upper", strict=False)
    p, g = at("%dst", i, j), b.load(ty, at("%src", i, j))
    folded = b.select(b.icmp("eq", "i64", i, j), ty, g, b.op("fadd", ty, g, b.load(ty, at("%src", j, i))))
    b.store(ty, b.select(inside, ty, folded, b.load(ty, p)), p)


def _ty_of(b: Builder) -> str:
    return "double" if b.function.name.endswith(".f64") else "float"


def _define_phi(module: Module, ty: str) -> None:
    """llad.blasrt.phi(n, s, lda, upper): the strict lower (upper) triangle, half the diagonal, zeros above
    (below)."""
    params = [("i64", "n"), ("ptr", "s"), ("i64", "lda"), ("i1", "upper")]
    b = new_function(f"llad.blasrt.phi.{_suffix(ty)}", "void", params, module, attributes="alwaysinline",
                     linkage="internal")

    def body(i, j, p):
        v = b.load(ty, p)
        strict = _in_triangle(b, i, j, "%upper", strict=True)
        half = b.op("fmul", ty, v, fconst(ty, 0.5))
        b.store(ty, b.select(strict, ty, v, b.select(b.icmp("eq", "i64", i, j), ty, half, fconst(ty, 0.0))), p)
    _square_loop(b, ty, body)


def _define_mask(module: Module, ty: str) -> None:
    """llad.blasrt.mask(n, s, lda, lower): zero s's upper triangle with its diagonal (lower: keep the strict
    lower triangle), or its strict lower triangle (keep the upper one with the diagonal)."""
    params = [("i64", "n"), ("ptr", "s"), ("i64", "lda"), ("i1", "lower")]
    b = new_function(f"llad.blasrt.mask.{_suffix(ty)}", "void", params, module, attributes="alwaysinline",
                     linkage="internal")
    _square_loop(b, ty, lambda i, j, p: b.store(ty, b.select(
        b.select(b.icmp("sgt", "i64", i, j), "i1", "%lower", b.op("xor", "i1", "%lower", "true")),
        ty, b.load(ty, p), fconst(ty, 0.0)), p))


def _define_addto(module: Module, ty: str) -> None:
    """llad.blasrt.addto(n, src, dst, lda): dst += src (n x n, leading dimension lda)."""
    params = [("i64", "n"), ("ptr", "src"), ("ptr", "dst"), ("i64", "lda")]
    b = new_function(f"llad.blasrt.addto.{_suffix(ty)}", "void", params, module, attributes="alwaysinline",
                     linkage="internal")

    def body(i, j, p):
        q = b.gep(ty, "%src", [("i64", b.op("add", "i64", i, b.op("mul", "i64", j, "%lda")))])
        b.store(ty, b.op("fadd", ty, b.load(ty, p), b.load(ty, q)), p)
    _square_loop(b, ty, body, target="%dst")


def _define_fill(module: Module, ty: str) -> None:
    """llad.blasrt.fill(m, n, s, lda, v): every element of the m x n matrix s set to v."""
    params = [("i64", "m"), ("i64", "n"), ("ptr", "s"), ("i64", "lda"), (ty, "v")]
    b = new_function(f"llad.blasrt.fill.{_suffix(ty)}", "void", params, module, attributes="alwaysinline",
                     linkage="internal")
    _square_loop(b, ty, lambda i, j, p: b.store(ty, "%v", p), rows="%m")


def _define_triadd(module: Module, ty: str) -> None:
    """llad.blasrt.triadd(n, x, s, lda, upper, strict): s += x on the lower (upper) triangle, without the
    diagonal when strict (n x n, leading dimension lda; nothing when s is null)."""
    params = [("i64", "n"), ("ptr", "x"), ("ptr", "s"), ("i64", "lda"), ("i1", "upper"), ("i1", "strict")]
    b = new_function(f"llad.blasrt.triadd.{_suffix(ty)}", "void", params, module, attributes="alwaysinline",
                     linkage="internal")
    b.cbr(b.icmp("ne", "ptr", "%s", "null"), "work", "skip")
    b.new_block("skip")
    b.ret()
    b.new_block("work")

    def body(i, j, p):
        inside = b.select("%strict", "i1", _in_triangle(b, i, j, "%upper", True),
                          _in_triangle(b, i, j, "%upper", False))
        q = b.gep(ty, "%x", [("i64", b.op("add", "i64", i, b.op("mul", "i64", j, "%lda")))])
        old = b.load(ty, p)
        b.store(ty, b.select(inside, ty, b.op("fadd", ty, old, b.load(ty, q)), old), p)
    _square_loop(b, ty, body, first="work")


def _define_lu_adjoint(module: Module, ty: str) -> None:
    """llad.blasrt.lu_adjoint(n, lu, lda, ipiv, g, s): s += the packed factors' adjoint from G, the adjoint of
    M = P L U: L̄ = tril₋(P G Uᵀ), Ū = triu(Lᵀ P G) (P G: the interchanges applied to G, which is overwritten);
    nothing when s is null."""
    params = [("i64", "n"), ("ptr", "lu"), ("i64", "lda"), ("ptr", "ipiv"), ("ptr", "g"), ("ptr", "s")]
    sx = _suffix(ty)
    b = new_function(f"llad.blasrt.lu_adjoint.{sx}", "void", params, module, attributes="alwaysinline",
                     linkage="internal")
    n, lu, lda, g = "%n", "%lu", "%lda", "%g"
    b.cbr(b.op("and", "i1", b.icmp("ne", "ptr", "%s", "null"), b.icmp("sgt", "i64", n, "0")), "work", "done")
    b.new_block("work")
    nbytes = b.op("mul", "i64", b.op("mul", "i64", lda, n), str(_ELEMENT_BYTES[ty]))
    t = _call(b, "ptr", "llad.blasrt.rawcopy", [("ptr", g), ("i64", nbytes)])
    mask = f"llad.blasrt.mask.{sx}"
    _fortran(b, "laswp", ty, [("i", n), ("p", t), ("i", lda), ("i", "1"), ("i", n), ("p", "%ipiv"), ("i", "1")])
    b.call("void", "llvm.memcpy.p0.p0.i64", [("ptr", g), ("ptr", t), ("i64", nbytes), ("i1", "false")])   # P G
    _tri(b, ty, _R, _U, _T, _N, "trmm", n, lu, lda, t)                                  # P G Uᵀ
    _call(b, "void", mask, [("i64", n), ("ptr", t), ("i64", lda), ("i1", "true")])        # L̄
    _tri(b, ty, _L, _L, _T, _UNIT, "trmm", n, lu, lda, g)                               # Lᵀ P G
    _call(b, "void", mask, [("i64", n), ("ptr", g), ("i64", lda), ("i1", "false")])       # Ū
    _call(b, "void", f"llad.blasrt.addto.{sx}", [("i64", n), ("ptr", t), ("ptr", "%s"), ("i64", lda)])
    _call(b, "void", f"llad.blasrt.addto.{sx}", [("i64", n), ("ptr", g), ("ptr", "%s"), ("i64", lda)])
    b.call("void", "free", [("ptr", t)])
    b.br("done")
    b.new_block("done")
    b.ret()


def _define_axpym(module: Module, ty: str) -> None:
    """llad.blasrt.axpym(m, n, a, x, s, lda): s += a x (m x n, leading dimension lda; nothing when s is null)."""
    params = [("i64", "m"), ("i64", "n"), (ty, "a"), ("ptr", "x"), ("ptr", "s"), ("i64", "lda")]
    b = new_function(f"llad.blasrt.axpym.{_suffix(ty)}", "void", params, module, attributes="alwaysinline",
                     linkage="internal")
    b.cbr(b.icmp("ne", "ptr", "%s", "null"), "work", "skip")
    b.new_block("skip")
    b.ret()
    b.new_block("work")

    def body(i, j, p):
        q = b.gep(ty, "%x", [("i64", b.op("add", "i64", i, b.op("mul", "i64", j, "%lda")))])
        b.store(ty, b.op("fadd", ty, b.load(ty, p), b.op("fmul", ty, "%a", b.load(ty, q))), p)
    _square_loop(b, ty, body, rows="%m", first="work")


def _define_getrs_dm(module: Module, ty: str) -> None:
    """llad.blasrt.getrs_dm(trans, n, nrhs, lu, lda, ipiv, dlu, x, ldb, out): out -= op(dM) X, where M = P L U
    is packed in lu and dM = P (dL U + L dU) with dL (strict lower, unit diagonal's tangent 0) and dU (upper)
    packed in dlu; X is n x nrhs.  'N': P (dL (U X) + L (dU X)); 'T': (Uᵀ dLᵀ + dUᵀ Lᵀ) Pᵀ X."""
    params = [("i8", "trans"), ("i64", "n"), ("i64", "nrhs"), ("ptr", "lu"), ("i64", "lda"), ("ptr", "ipiv"),
              ("ptr", "dlu"), ("ptr", "x"), ("i64", "ldb"), ("ptr", "out")]
    sx = _suffix(ty)
    b = new_function(f"llad.blasrt.getrs_dm.{sx}", "void", params, module, attributes="alwaysinline",
                     linkage="internal")
    n, nrhs, lu, lda, dlu, ldb = "%n", "%nrhs", "%lu", "%lda", "%dlu", "%ldb"
    ok = b.op("and", "i1", b.icmp("ne", "ptr", "%out", "null"), b.icmp("ne", "ptr", dlu, "null"))
    ok = b.op("and", "i1", ok, b.op("and", "i1", b.icmp("sgt", "i64", n, "0"), b.icmp("sgt", "i64", nrhs, "0")))
    b.cbr(ok, "work", "done")
    b.new_block("work")
    extent = _call(b, "i64", "llad.blasrt.extent", [("i64", n), ("i64", nrhs), ("i64", ldb)])
    nbytes = b.op("mul", "i64", extent, str(_ELEMENT_BYTES[ty]))
    one, minus = fconst(ty, 1.0), fconst(ty, -1.0)

    def copy(src):
        return _call(b, "ptr", "llad.blasrt.rawcopy", [("ptr", src), ("i64", nbytes)])

    def tr(uplo, trans, diag, a, t):
        _fortran(b, "trmm", ty, [("c", _L), ("c", uplo), ("c", trans), ("c", diag), ("i", n), ("i", nrhs),
                                 ("f", one), ("p", a), ("i", lda), ("p", t), ("i", ldb)])

    def swap(t, incx):
        _fortran(b, "laswp", ty, [("i", nrhs), ("p", t), ("i", ldb), ("i", "1"), ("i", n), ("p", "%ipiv"),
                                  ("i", incx)])

    def axpym(a, x, y):
        _call(b, "void", f"llad.blasrt.axpym.{sx}", [("i64", n), ("i64", nrhs), (ty, a), ("ptr", x), ("ptr", y),
                                                    ("i64", ldb)])
    transposed = b.icmp("eq", "i8", "%trans", _T)
    b.cbr(b.op("or", "i1", transposed, b.icmp("eq", "i8", "%trans", "116")), "op_t", "op_n")
    for which in ("op_n", "op_t"):
        b.new_block(which)
        if which == "op_n":
            y = copy("%x")
            tr(_U, _N, _N, lu, y)                       # y = U X
            z = copy(y)
            tr(_L, _N, _UNIT, dlu, z)                   # z = (dL + I) U X
            axpym(minus, y, z)                          # z = dL U X
            b.call("void", "llvm.memcpy.p0.p0.i64", [("ptr", y), ("ptr", "%x"), ("i64", nbytes), ("i1", "false")])
            tr(_U, _N, _N, dlu, y)                      # y = dU X
            tr(_L, _N, _UNIT, lu, y)                    # y = L dU X
            axpym(one, y, z)                            # z = (dL U + L dU) X
            swap(z, "-1")                               # z = P z
        else:
            w = copy("%x")
            swap(w, "1")                                # w = Pᵀ X
            z = copy(w)
            tr(_L, _T, _UNIT, dlu, z)                   # z = (dL + I)ᵀ w
            axpym(minus, w, z)                          # z = dLᵀ w
            tr(_U, _T, _N, lu, z)                       # z = Uᵀ dLᵀ w
            y = w
            tr(_L, _T, _UNIT, lu, y)                    # y = Lᵀ w
            tr(_U, _T, _N, dlu, y)                      # y = dUᵀ Lᵀ w
            axpym(one, y, z)
        axpym(minus, z, "%out")
        b.call("void", "free", [("ptr", y)])
        b.call("void", "free", [("ptr", z)])
        b.br("done")
    b.new_block("done")
    b.ret()


def _square_loop(b: Builder, ty: str, body, target: str = "%s", rows: str = "%n", first: str = "entry") -> None:
    """for j < n, i < rows: body(i, j, &target[i + j lda]); then return."""
    ok = b.op("and", "i1", b.icmp("sgt", "i64", rows, "0"), b.icmp("sgt", "i64", "%n", "0"))
    b.cbr(ok, "col", "done")
    b.new_block("col")
    j = b.phi("i64", [("0", first), ("%j1", "next")], name="%j")
    b.br("row")
    b.new_block("row")
    i = b.phi("i64", [("0", "col"), ("%i1", "row")], name="%i")
    body(i, j, b.gep(ty, target, [("i64", b.op("add", "i64", i, b.op("mul", "i64", j, "%lda")))]))
    b.op("add", "i64", i, "1", name="%i1")
    b.cbr(b.icmp("slt", "i64", "%i1", rows), "row", "next")
    b.new_block("next")
    b.op("add", "i64", j, "1", name="%j1")
    b.cbr(b.icmp("slt", "i64", "%j1", "%n"), "col", "done")
    b.new_block("done")
    b.ret()


_SYMBOLS: dict[str, str] = {}


def _lapack_symbol(name: str) -> str:
    """`llad_<name>`, bound to SciPy's LAPACK routine (the one Numba's own helpers call)."""
    if name not in _SYMBOLS:
        register_symbols()
    return _SYMBOLS[name]


def register_symbols() -> None:
    """Bind llad_<d|s><getrs|laswp|trsm|trmm> to SciPy's Cython BLAS and LAPACK, the libraries Numba's own
    helpers call (before JIT-compiling or loading code that calls them)."""
    if _SYMBOLS:
        return
    import ctypes

    import llvmlite.binding as llvm
    from scipy.linalg import cython_blas, cython_lapack
    get_name, get_pointer = ctypes.pythonapi.PyCapsule_GetName, ctypes.pythonapi.PyCapsule_GetPointer
    get_name.restype, get_name.argtypes = ctypes.c_char_p, [ctypes.py_object]
    get_pointer.restype, get_pointer.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    for lib, names in ((cython_lapack, ("getrs", "laswp")), (cython_blas, ("trsm", "trmm"))):
        for name in (p + r for r in names for p in "ds"):
            capsule = lib.__pyx_capi__[name]
            llvm.add_symbol(f"llad_{name}", get_pointer(capsule, get_name(capsule)))
            _SYMBOLS[name] = f"llad_{name}"


def _spill(b: Builder, ty: str, v: str) -> str:
    slot = b.alloca(ty)
    b.store(ty, v, slot)
    return slot


def _define_scale(module: Module, ty: str) -> None:
    """c[i + j ldc] = beta == 0 ? 0 : beta c[i + j ldc] for i < rows, j < cols (nothing when c is null)."""
    params = [("i64", "rows"), ("i64", "cols"), ("ptr", "c"), ("i64", "ldc"), (ty, "beta")]
    b = new_function(f"llad.blasrt.scale.{_suffix(ty)}", "void", params, module, attributes="alwaysinline",
                     linkage="internal")
    nonempty = b.op("and", "i1", b.icmp("sgt", "i64", "%rows", "0"), b.icmp("sgt", "i64", "%cols", "0"))
    nonempty = b.op("and", "i1", nonempty, b.icmp("ne", "ptr", "%c", "null"))
    zero = b.fcmp("oeq", ty, "%beta", fconst(ty, 0.0))
    b.cbr(nonempty, "col", "done")
    b.new_block("col")
    j = b.phi("i64", [("0", "entry"), ("%j1", "next")], name="%j")
    base = b.gep(ty, "%c", [("i64", b.op("mul", "i64", j, "%ldc"))])
    b.br("row")
    b.new_block("row")
    i = b.phi("i64", [("0", "col"), ("%i1", "row")], name="%i")
    p = b.gep(ty, base, [("i64", i)])
    scaled = b.op("fmul", ty, b.load(ty, p), "%beta")
    b.store(ty, b.select(zero, ty, fconst(ty, 0.0), scaled), p)
    b.op("add", "i64", i, "1", name="%i1")
    b.cbr(b.icmp("slt", "i64", "%i1", "%rows"), "row", "next")
    b.new_block("next")
    b.op("add", "i64", j, "1", name="%j1")
    b.cbr(b.icmp("slt", "i64", "%j1", "%cols"), "col", "done")
    b.new_block("done")
    b.ret()


def _define_axpy(module: Module, ty: str) -> None:
    """y[i incy] += a x[i incx] for i < n (nothing when y is null)."""
    params = [("i64", "n"), (ty, "a"), ("ptr", "x"), ("i64", "incx"), ("ptr", "y"), ("i64", "incy")]
    b = new_function(f"llad.blasrt.axpy.{_suffix(ty)}", "void", params, module, attributes="alwaysinline",
                     linkage="internal")
    b.cbr(b.op("and", "i1", b.icmp("sgt", "i64", "%n", "0"), b.icmp("ne", "ptr", "%y", "null")), "loop", "done")
    b.new_block("loop")
    i = b.phi("i64", [("0", "entry"), ("%i1", "loop")], name="%i")
    py = b.gep(ty, "%y", [("i64", b.op("mul", "i64", i, "%incy"))])
    px = b.gep(ty, "%x", [("i64", b.op("mul", "i64", i, "%incx"))])
    b.store(ty, b.op("fadd", ty, b.load(ty, py), b.op("fmul", ty, "%a", b.load(ty, px), ("contract",)),
                     ("contract",)), py)
    b.op("add", "i64", i, "1", name="%i1")
    b.cbr(b.icmp("slt", "i64", "%i1", "%n"), "loop", "done")
    b.new_block("done")
    b.ret()


def _define_sdot(module: Module, ty: str) -> None:
    """sum x[i incx] y[i incy] for i < n (0 when y is null)."""
    params = [("i64", "n"), ("ptr", "x"), ("i64", "incx"), ("ptr", "y"), ("i64", "incy")]
    b = new_function(f"llad.blasrt.sdot.{_suffix(ty)}", ty, params, module, attributes="alwaysinline",
                     linkage="internal")
    b.cbr(b.op("and", "i1", b.icmp("sgt", "i64", "%n", "0"), b.icmp("ne", "ptr", "%y", "null")), "loop", "done")
    b.new_block("loop")
    i = b.phi("i64", [("0", "entry"), ("%i1", "loop")], name="%i")
    acc = b.phi(ty, [(fconst(ty, 0.0), "entry"), ("%acc1", "loop")], name="%acc")
    px = b.gep(ty, "%x", [("i64", b.op("mul", "i64", i, "%incx"))])
    py = b.gep(ty, "%y", [("i64", b.op("mul", "i64", i, "%incy"))])
    b.op("fadd", ty, acc, b.op("fmul", ty, b.load(ty, px), b.load(ty, py)), name="%acc1")
    b.op("add", "i64", i, "1", name="%i1")
    b.cbr(b.icmp("slt", "i64", "%i1", "%n"), "loop", "done")
    b.new_block("done")
    b.ret(ty, b.phi(ty, [(fconst(ty, 0.0), "entry"), ("%acc1", "loop")]))


def _define_extent(module: Module) -> None:
    """Elements a column-major rows x cols matrix with leading dimension ld spans: ld (cols - 1) + rows,
    0 when it is empty."""
    params = [("i64", "rows"), ("i64", "cols"), ("i64", "ld")]
    b = new_function("llad.blasrt.extent", "i64", params, module, attributes="alwaysinline", linkage="internal")
    span = b.op("add", "i64", b.op("mul", "i64", "%ld", b.op("add", "i64", "%cols", "-1")), "%rows")
    empty = b.op("or", "i1", b.icmp("sle", "i64", "%rows", "0"), b.icmp("sle", "i64", "%cols", "0"))
    b.ret("i64", b.select(empty, "i64", "0", b.call("i64", "llvm.smax.i64", [("i64", span), ("i64", "0")])))


def _define_rawcopy(module: Module) -> None:
    """malloc'ed copy of `bytes` bytes at `src` (forward mode's copies, freed by the rule that made them)."""
    b = new_function("llad.blasrt.rawcopy", "ptr", [("ptr", "src"), ("i64", "bytes")], module,
                     attributes="alwaysinline", linkage="internal")
    data = b.call("ptr", "malloc", [("i64", b.call("i64", "llvm.umax.i64", [("i64", "%bytes"), ("i64", "8")]))])
    b.call("void", "llvm.memcpy.p0.p0.i64", [("ptr", data), ("ptr", "%src"), ("i64", "%bytes"), ("i1", "false")])
    b.ret("ptr", data)


def _define_copy(module: Module) -> None:
    """A meminfo holding a copy of `bytes` bytes at `src` (at least one byte: NRT wants a size)."""
    b = new_function("llad.blasrt.copy", "ptr", [("ptr", "src"), ("i64", "bytes")], module,
                     attributes="alwaysinline", linkage="internal")
    size = b.call("i64", "llvm.umax.i64", [("i64", "%bytes"), ("i64", "8")])
    mi = b.call("ptr", "NRT_MemInfo_alloc_aligned", [("i64", size), ("i32", "32")])
    data = b.call("ptr", "NRT_MemInfo_data_fast", [("ptr", mi)])
    b.call("void", "llvm.memcpy.p0.p0.i64", [("ptr", data), ("ptr", "%src"), ("i64", "%bytes"), ("i1", "false")])
    b.ret("ptr", mi)


_DEFINITIONS: dict[str, Callable[[Module], None]] = {
    **{f"llad.blas.{r}.{_suffix(t)}": (lambda m, r=r, t=t: _define_routine(m, r, t))
       for r in BLAS_RULES for t in ("double", "float")},
    **{f"llad.blasrt.{r}.{_suffix(t)}": (lambda m, r=r, t=t: _define_guarded(m, r, t))
       for r in ("gemm", "gemv", "dot", "trmm", "trsm", "laswp") for t in ("double", "float")},
    **{f"llad.blasrt.getrs_dm.{_suffix(t)}": (lambda m, t=t: _define_getrs_dm(m, t)) for t in ("double", "float")},
    **{f"llad.blasrt.axpym.{_suffix(t)}": (lambda m, t=t: _define_axpym(m, t)) for t in ("double", "float")},
    **{f"llad.blasrt.triadd.{_suffix(t)}": (lambda m, t=t: _define_triadd(m, t)) for t in ("double", "float")},
    **{f"llad.blasrt.lu_adjoint.{_suffix(t)}": (lambda m, t=t: _define_lu_adjoint(m, t)) for t in ("double", "float")},
    **{f"llad.blasrt.getrs.{_suffix(t)}": (lambda m, t=t: _define_getrs(m, t)) for t in ("double", "float")},
    **{f"llad.blasrt.getrf_{w}.{_suffix(t)}": (lambda m, t=t, a=(w == "adjoint"): _getrf_helper(m, t, a))
       for w in ("tangent", "adjoint") for t in ("double", "float")},
    **{f"llad.blasrt.{r}.{_suffix(t)}": (lambda m, f=f, t=t: f(m, t))
       for r, f in (("mask", _define_mask), ("addto", _define_addto), ("fill", _define_fill), ("phi", _define_phi))
       for t in ("double", "float")},
    **{f"llad.blasrt.potrf_{w}_{u}.{_suffix(t)}":
       (lambda m, t=t, up=(u == "U"), a=(w == "adjoint"): _potrf_helper(m, t, up, a))
       for w in ("tangent", "adjoint") for u in "LU" for t in ("double", "float")},
    **{f"llad.blasrt.{r}.{_suffix(t)}": (lambda m, r=r, f=f, t=t: _define_pair_op(m, t, r, f))
       for r, f in (("symmetric", _symmetric), ("get_triangle", _get_triangle), ("put_triangle", _put_triangle),
                    ("fold_triangle", _fold_triangle))
       for t in ("double", "float")},
    **{f"llad.blasrt.{r}.{_suffix(t)}": (lambda m, f=f, t=t: f(m, t))
       for r, f in (("scale", _define_scale), ("axpy", _define_axpy), ("sdot", _define_sdot))
       for t in ("double", "float")},
    "llad.blasrt.extent": _define_extent,
    "llad.blasrt.copy": _define_copy,
    "llad.blasrt.rawcopy": _define_rawcopy,
    **{f"llad.blasrt.getri_{w}.{_suffix(t)}": (lambda m, t=t, a=(w == "adjoint"): _getri_helper(m, t, a))
       for w in ("tangent", "adjoint") for t in ("double", "float")},
}


def _ensure(module: Module, name: str) -> None:
    if name in _DEFINITIONS and name not in module.carried and not any(f.name == name for f in module.functions):
        _DEFINITIONS[name](module)


def _call(b: Builder, ret: str, name: str, args: list[tuple[str, str]]) -> str:
    _ensure(b.module, name)
    return b.call(ret, name, args)


def define_called(module: Module, fn: Function) -> None:
    """Define the llad.blas functions the primal (as the derivative copies it) calls."""
    for block in fn.blocks:
        for ins in block.instructions:
            if ins.opcode == "call" and ins.callee in _DEFINITIONS:
                _ensure(module, ins.callee)


def refuse_active_scalars(ins: Instruction, act, location) -> None:
    rule = blas_rule(ins.callee)
    if any(ins.operands[i].is_local and ins.operands[i].name in act.values for i in rule.scalars):
        raise NoRuleError(f"a BLAS {rule.name} whose scale factor carries a derivative", location(ins),
                          "llad's BLAS rules take alpha and beta as constants (as np.dot and @ pass them)")
