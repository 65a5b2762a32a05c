"""Derivative rules: the one table that forward and reverse mode both read.

Each entry gives, for one operation, the partial derivative of its result with respect to each
operand, as a small IR-building expression over the primal operands (`p.x`, `p.y`, `p.z`) and the
primal result (`p.r`).  Forward mode emits  tangent(r) = sum_i partial_i * tangent(operand_i);
reverse mode emits  adjoint(operand_i) += partial_i * adjoint(r)  ("forward from summed reverse",
as Enzyme's InstructionDerivatives.td).  A partial of `None` means the operand does not carry a
derivative (an integer exponent), `ONE`/`NEG_ONE` let the generators skip a multiplication.

Primal values are fetched lazily: in reverse mode `p.x` may load a value from the tape, so a rule
only pays for what its partials read, and a partial is only built for an active operand.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from . import runtime, vecmath
from .ir.builder import Builder, fconst

# Derivative arithmetic may be reassociated and contracted (as Enzyme does by default): that lets LLVM
# vectorise tangent and adjoint reductions. No nnan/ninf: NaN and Inf still propagate exactly.
DERIVATIVE_FMF = ("reassoc", "nsz", "contract")

ONE = "ONE"
NEG_ONE = "NEG_ONE"

Partial = Callable[["MathBuilder", str, "PrimalValues"], str | None]


class PrimalValues:
    """Lazy access to the primal operands and result of the instruction being differentiated."""

    def __init__(self, operand: Callable[[int], str], result: Callable[[], str]):
        self._operand, self._result, self._cache = operand, result, {}

    def arg(self, i: int) -> str:
        if i not in self._cache:
            self._cache[i] = self._operand(i)
        return self._cache[i]

    x = property(lambda self: self.arg(0))
    y = property(lambda self: self.arg(1))
    z = property(lambda self: self.arg(2))

    @property
    def r(self) -> str:
        if "r" not in self._cache:
            self._cache["r"] = self._result()
        return self._cache["r"]


_FLOAT_WIDTH = {"half": 16, "float": 32, "double": 64}


def convert_float(b: Builder, v: str, src: str, dst: str) -> str:
    """`v` of float type `src` (or a vector of it) as `dst`: for a rule whose operand and result types
    differ (a custom rule taking float32 and returning float64); the identity when they are the same."""
    if src == dst:
        return v
    elem = lambda t: t.rsplit(" x ", 1)[-1].rstrip(">")   # noqa: E731 - "<8 x float>" -> "float"
    widen = _FLOAT_WIDTH[elem(src)] < _FLOAT_WIDTH[elem(dst)]
    return b.cast("fpext" if widen else "fptrunc", src, v, dst)


class MathBuilder(Builder):
    """A Builder that also calls math functions by name (declaring, or defining, what it uses).
    `vector_math`: call llad's vectorisable versions where it has them (llad.config.vector_math)."""

    vector_math = False

    def c(self, ty: str, value: float) -> str:
        return fconst(ty, value)

    def math(self, fn: str, ty: str, *args: str) -> str:
        """Call an LLVM intrinsic (`sin`, `pow`, ...), a libm function (`sinh`, `erf`, ...) or one of
        llad's own (`digamma`, see runtime.py)."""
        suffix = "f64" if ty == "double" else "f32"
        argtypes = [ty] * len(args)
        if fn == "powi":
            argtypes, name = [ty, "i32"], f"llvm.powi.{suffix}.i32"
        elif fn in _INTRINSICS:
            name = f"llvm.{fn}.{suffix}"
            if self.vector_math and vecmath.replacement(name) is not None:
                name = vecmath.replacement(name)
                runtime.ensure(self.module, name)
        elif fn in _LLAD_FUNCTIONS:
            name = f"llad.{fn}.{suffix}"
            runtime.ensure(self.module, name)
        else:
            name = fn if ty == "double" else fn + "f"
            if self.vector_math and vecmath.replacement(name) is not None:
                name = vecmath.replacement(name)
        return self.call(ty, name, list(zip(argtypes, args)))

    def sq(self, ty, a):
        return self.fmul(ty, a, a)

    def recip(self, ty, a):
        return self.fdiv(ty, self.c(ty, 1.0), a)


_INTRINSICS = {"sin", "cos", "exp", "exp2", "log", "log2", "log10", "sqrt", "fabs", "pow", "copysign",
               "floor", "ceil", "trunc", "fma", "minnum", "maxnum", "powi"}
_LLAD_FUNCTIONS = {"digamma"}       # defined by llad in a derivative module that calls it (runtime.py)


@dataclass(frozen=True)
class Rule:
    """Partials of one operation, one per operand."""

    partials: tuple[Partial | None, ...]


RULES: dict[str, Rule] = {}


def defrule(names: str, *partials: Partial | None) -> None:
    for name in names.split():
        RULES[name] = Rule(tuple(partials))


def scaled(b, ty: str, partial, value: str) -> str:
    """partial * value, where a partial of ONE / NEG_ONE costs no multiplication."""
    if partial == ONE:
        return value
    if partial == NEG_ONE:
        return b.fneg(ty, value)
    return b.fmul(ty, partial, value)


def _one(b, t, p):
    return ONE


def _neg_one(b, t, p):
    return NEG_ONE


SQRT_PI_2 = 2.0 / math.sqrt(math.pi)

# --- float arithmetic --------------------------------------------------------------------------
defrule("fadd", _one, _one)
defrule("fsub", _one, _neg_one)
defrule("fneg", _neg_one)
defrule("fmul", lambda b, t, p: p.y, lambda b, t, p: p.x)
defrule("fdiv", lambda b, t, p: b.recip(t, p.y),
        lambda b, t, p: b.fneg(t, b.fdiv(t, p.r, p.y)))
# frem(x, y) = x - trunc(x / y) * y
defrule("frem", _one, lambda b, t, p: b.fneg(t, b.math("trunc", t, b.fdiv(t, p.x, p.y))))

# --- intrinsics and libm (names without llvm. prefix, type suffix or float32 `f`) ---------------
defrule("sin", lambda b, t, p: b.math("cos", t, p.x))
defrule("cos", lambda b, t, p: b.fneg(t, b.math("sin", t, p.x)))
defrule("tan", lambda b, t, p: b.fadd(t, b.c(t, 1.0), b.sq(t, p.r)))
defrule("exp", lambda b, t, p: p.r)
defrule("exp2", lambda b, t, p: b.fmul(t, p.r, b.c(t, math.log(2.0))))
defrule("expm1", lambda b, t, p: b.fadd(t, p.r, b.c(t, 1.0)))
defrule("log", lambda b, t, p: b.recip(t, p.x))
defrule("log2", lambda b, t, p: b.recip(t, b.fmul(t, p.x, b.c(t, math.log(2.0)))))
defrule("log10", lambda b, t, p: b.recip(t, b.fmul(t, p.x, b.c(t, math.log(10.0)))))
defrule("log1p", lambda b, t, p: b.recip(t, b.fadd(t, p.x, b.c(t, 1.0))))
defrule("sqrt", lambda b, t, p: b.fdiv(t, b.c(t, 0.5), p.r))
defrule("cbrt", lambda b, t, p: b.fdiv(t, p.r, b.fmul(t, b.c(t, 3.0), p.x)))
# d/dx x^y = y * x^(y-1) (exact at x = 0);  d/dy x^y = x^y * log(x)
defrule("pow", lambda b, t, p: b.fmul(t, p.y, b.math("pow", t, p.x, b.fsub(t, p.y, b.c(t, 1.0)))),
        lambda b, t, p: _pow_exponent_partial(b, t, p))
defrule("powi", lambda b, t, p: _powi_partial(b, t, p), None)
defrule("fabs", lambda b, t, p: b.math("copysign", t, b.c(t, 1.0), p.x))
defrule("floor ceil trunc round rint nearbyint roundeven", lambda b, t, p: None)
# copysign(x, y) = |x| * sign(y)
defrule("copysign", lambda b, t, p: b.fmul(t, b.math("copysign", t, b.c(t, 1.0), p.x),
                                           b.math("copysign", t, b.c(t, 1.0), p.y)), None)
defrule("tanh", lambda b, t, p: b.fsub(t, b.c(t, 1.0), b.sq(t, p.r)))
defrule("sinh", lambda b, t, p: b.math("cosh", t, p.x))
defrule("cosh", lambda b, t, p: b.math("sinh", t, p.x))
defrule("asin", lambda b, t, p: b.recip(t, b.math("sqrt", t, b.fsub(t, b.c(t, 1.0), b.sq(t, p.x)))))
defrule("acos", lambda b, t, p: b.fneg(t, b.recip(t, b.math("sqrt", t, b.fsub(t, b.c(t, 1.0), b.sq(t, p.x))))))
defrule("atan", lambda b, t, p: b.recip(t, b.fadd(t, b.c(t, 1.0), b.sq(t, p.x))))
defrule("asinh", lambda b, t, p: b.recip(t, b.math("sqrt", t, b.fadd(t, b.sq(t, p.x), b.c(t, 1.0)))))
defrule("acosh", lambda b, t, p: b.recip(t, b.math("sqrt", t, b.fsub(t, b.sq(t, p.x), b.c(t, 1.0)))))
defrule("atanh", lambda b, t, p: b.recip(t, b.fsub(t, b.c(t, 1.0), b.sq(t, p.x))))
defrule("erf", lambda b, t, p: b.fmul(t, b.c(t, SQRT_PI_2), b.math("exp", t, b.fneg(t, b.sq(t, p.x)))))
defrule("erfc", lambda b, t, p: b.fmul(t, b.c(t, -SQRT_PI_2), b.math("exp", t, b.fneg(t, b.sq(t, p.x)))))
defrule("lgamma", lambda b, t, p: b.math("digamma", t, p.x))
defrule("tgamma numba_gamma", lambda b, t, p: b.fmul(t, p.r, b.math("digamma", t, p.x)))
# atan2(y, x): d/dy = x / (x^2 + y^2), d/dx = -y / (x^2 + y^2)
defrule("atan2", lambda b, t, p: b.fdiv(t, p.y, _sumsq(b, t, p)),
        lambda b, t, p: b.fneg(t, b.fdiv(t, p.x, _sumsq(b, t, p))))
defrule("hypot", lambda b, t, p: b.fdiv(t, p.x, p.r), lambda b, t, p: b.fdiv(t, p.y, p.r))
defrule("fma fmuladd", lambda b, t, p: p.y, lambda b, t, p: p.x, _one)
# minnum/maxnum: the derivative follows the operand chosen (ties go to the first)
defrule("minnum minimum fmin", lambda b, t, p: _pick(b, t, p, "ole", True),
        lambda b, t, p: _pick(b, t, p, "ole", False))
defrule("maxnum maximum fmax", lambda b, t, p: _pick(b, t, p, "oge", True),
        lambda b, t, p: _pick(b, t, p, "oge", False))


def _sumsq(b, t, p):
    return b.fadd(t, b.sq(t, p.x), b.sq(t, p.y))


def _pow_exponent_partial(b, t, p):
    # x^y * log(x); 0 where x^y == 0 so that 0^y (y > 0) does not give 0 * -inf = NaN
    prod = b.fmul(t, p.r, b.math("log", t, p.x))
    is_zero = b.fcmp("oeq", t, p.r, b.c(t, 0.0))
    return b.select(is_zero, t, b.c(t, 0.0), prod)


def _powi_partial(b, t, p):
    n_minus_1 = b.op("add", "i32", p.y, "-1")
    n = b.cast("sitofp", "i32", p.y, t)
    return b.fmul(t, n, b.math("powi", t, p.x, n_minus_1))


def _pick(b, t, p, pred, first):
    c = b.fcmp(pred, t, p.x, p.y)
    one, zero = b.c(t, 1.0), b.c(t, 0.0)
    return b.select(c, t, one, zero) if first else b.select(c, t, zero, one)


# Linear structural operations the generators treat directly: the tangent / adjoint of a cast is the
# same cast / the inverse cast.
FLOAT_CASTS = {"fptrunc": "fpext", "fpext": "fptrunc"}
