"""llad's own vector math functions, called where the loop vectoriser widened a math intrinsic.

`vecmath.rewrite` points a widened call such as `@llvm.sin.v4f64` at a function defined here,
`@"llad.sin.v4f64"`, which it appends to the optimised module (internal linkage: every module that calls
one has its own copy).  They exist because glibc's libmvec variants are fast but up to 3.5 ulp off for
sin/cos/tan/atan2, 2.6 for asin, 2.3 for exp, 2.1 for tanh and 1.5 for log, against llad's targets of 1
for exp, log, sin and cos and 2 for the rest (docs/vector-math-accuracy.md measures both):

* **log** (float64): x = 2^k (1 + f) with 1 + f in [sqrt(2)/2, sqrt(2)), log(1 + f) = f - hf^2 + s (hf^2 + R(s^2)),
  s = f / (2 + f), R a degree-7 polynomial in s^2; k ln 2 added in two parts (high part exact).  The
  reduction and the polynomial are the classic ones of Sun's fdlibm `e_log.c` (error below 1 ulp), written
  as straight-line vector code.
* **sin, cos, tan** (float64): n = rint(x 2/pi) and r = x - n pi/2 as a double-double (hi, lo): pi/2 in three
  parts, the first product subtracted exactly by an FMA (x - n P1 is a multiple of 2^-53 below 1 in
  magnitude: exact), the second by an exact product (FMA) and an exact sum (Fast2Sum with the larger
  operand first, both orders computed and one selected: a shorter dependency chain than TwoSum), the third
  rounded in the low part; exact to far below an ulp of r for |x| <= 2^20 pi/2 (n < 2^20).  sin(hi + lo) and
  cos(hi + lo) on [-pi/4, pi/4] by fdlibm's kernel polynomials (`k_sin.c`, `k_cos.c`, in their
  branch-free form, evaluated by Estrin's scheme), the quadrant n mod 4 choosing and negating with selects;
  tan = sin / cos of the reduced argument (or -cos / sin), both kept as double-doubles and divided with an
  FMA residual (one rounding of a quotient accurate to far below an ulp).
* **atan** (float64): fdlibm's `s_atan.c`: atan(x) = atan(c) + atan((x - c)/(1 + c x)) with c = 0, 1/2, 1,
  3/2 or infinity by the interval of |x| (chosen by selects), a degree-11 odd polynomial, atan(c) in two
  parts; every finite and non-finite argument in the fast path.  **atan2**: atan(|y/x|) with the quotient's
  rounding error (an FMA residual) added to the low part, then the quadrant from the signs (fdlibm's
  `e_atan2.c`); zero, infinite and NaN arguments, and quotients outside the normal range, to libm.
* **exp** (float64; also the scalar `llad.exp.f64` runtime.py puts in derivative code before optimisation,
  which the vectoriser inlines): Cody-Waite reduction by ln 2, a degree-13 Taylor polynomial, exact
  scaling by 2^k in two steps; overflow, underflow and NaN by selects.  **tanh**: Cephes' rational
  x + x^3 P(x^2)/Q(x^2) below 0.625, 1 - 2/(exp(2|x|) + 1) above with the quotient's FMA residual.
* **asin, acos** (float64): fdlibm's `e_asin.c` / `e_acos.c`, their three ranges computed with one
  rational function R(t), t = x^2 below 1/2 and (1 - |x|)/2 above, and the square root split in an exact
  high part and a remainder; |x| >= 1 and NaN to libm.
* **float32** functions whose libmvec variant is more than 2 ulp off (`F32_THROUGH_F64`): the float64
  function (llad's or libmvec's) of the widened argument, rounded once to float32: error at most 0.5 ulp
  plus the float64 error scaled by 2^-29.

A lane these fast paths do not cover (log: x not a positive normal finite number; sin/cos/tan:
|x| > 2^20 pi/2, inf or NaN) sends the whole vector to libm, lane by lane, in a branch that is never taken
on ordinary data: special values and huge arguments give libm's results exactly.  Tiny arguments are
handled in the fast path (sin x = x, tan x = x below 2^-27, where that is the correctly rounded value or
one ulp from it; cos 0 = 1).
"""
from __future__ import annotations

from functools import cache

import llvmlite.binding as llvm

from .ir.builder import fconst

# the functions llad has its own float64 vector code for (exp is llad's too: runtime.py, inlined before O3)
OWN = ("sin", "cos", "tan", "log", "atan", "atan2", "asin", "acos", "tanh")
# float32 functions whose libmvec variant is more than 2 ulp off (docs/vector-math-accuracy.md): computed in
# float64 (llad's function or libmvec's) and rounded once
F32_THROUGH_F64 = ("log", "log10", "tan", "asin", "acos", "atan", "atan2", "cosh")

_PIO2_1 = float.fromhex("0x1.921fb54442d18p+0")      # pi/2 = P1 + P2 + P3 to ~160 bits
_PIO2_2 = float.fromhex("0x1.1a62633145c07p-54")
_PIO2_3 = float.fromhex("-0x1.f1976b7ed8fbcp-110")
_TWO_OVER_PI = float.fromhex("0x1.45f306dc9c883p-1")
_REDUCE_MAX = 1647099.0                               # < 2^20 pi/2: n fits 20 bits, x - n P1 is exact
_TINY = 2.0 ** -27

# fdlibm k_sin.c / k_cos.c: sin(x) ~ x + S1 x^3 + ... + S6 x^13, cos(x) ~ 1 - x^2/2 + C1 x^4 + ... + C6 x^14
_S = (-1.66666666666666324348e-01, 8.33333333332248946124e-03, -1.98412698298579493134e-04,
      2.75573137070700676789e-06, -2.50507602534068634195e-08, 1.58969099521155010221e-10)
_C = (4.16666666666666019037e-02, -1.38888888888741095749e-03, 2.48015872894767294178e-05,
      -2.75573143513906633035e-07, 2.08757232129817482790e-09, -1.13596475577881948265e-11)
# fdlibm e_log.c: R(z) = Lg1 z + Lg2 z^2 + ... + Lg7 z^7 ~ log((1+s)/(1-s)) / s - 2 - ..., z = s^2
_LG = (6.666666666666735130e-01, 3.999999999940941908e-01, 2.857142874366239149e-01, 2.222219843214978396e-01,
       1.818357216161805012e-01, 1.531383769920937332e-01, 1.479819860511658591e-01)
_LN2_HI = 6.93147180369123816490e-01                  # trailing zero bits: k LN2_HI is exact for |k| < 2^11
_LN2_LO = 1.90821492927058770002e-10
_INV_LN2 = 1.44269504088896338700e+00
_EXP_OVERFLOW = 709.782712893384                      # above: +inf
_EXP_UNDERFLOW = -745.1332191019412                   # below: 0 (the smallest subnormal is exp(-744.44))
_EXP_TAYLOR = tuple(1.0 / __import__("math").factorial(n) for n in range(14))
# Cephes tanh.c: tanh(x) = x + x^3 P(x^2)/Q(x^2) on |x| < 0.625 (coefficients lowest power first)
_TANH_P = (-1.61468768441708447952e3, -9.92877231001918586564e1, -9.64399179425052238628e-1)
_TANH_Q = (4.84406305325125486048e3, 2.23548839060100448583e3, 1.12811678491632931402e2, 1.0)
# fdlibm s_atan.c: atan(x) = atan(c) + atan((x - c) / (1 + c x)) for c = 0, 1/2, 1, 3/2, inf by |x|'s range;
# atan(t) = t - t (t^2 T(t^4) + t^4 U(t^4)); atan(c) as a high and a low part
_ATAN_BOUNDS = (0.4375, 0.6875, 1.1875, 2.4375)
_ATAN_HI = (4.63647609000806093515e-01, 7.85398163397448278999e-01, 9.82793723247329054082e-01,
            1.57079632679489655800e+00)
_ATAN_LO = (2.26987774529616870924e-17, 3.06161699786838301793e-17, 1.39033110312309984516e-17,
            6.12323399573676603587e-17)
_AT = (3.33333333333329318027e-01, -1.99999999998764832476e-01, 1.42857142725034663711e-01,
       -1.11111104054623557880e-01, 9.09088713343650656196e-02, -7.69187620504482999495e-02,
       6.66107313738753120669e-02, -5.83357013379057348645e-02, 4.97687799461593236017e-02,
       -3.65315727442169155270e-02, 1.62858201153657823623e-02)
_PI = 3.14159265358979311600e+00
_PI_LO = 1.2246467991473531772e-16
_PIO2_HI, _PIO2_LO = 1.57079632679489655800e+00, 6.12323399573676603587e-17
_PIO4_HI = 7.85398163397448278999e-01
# fdlibm e_asin.c / e_acos.c: asin(x) = x + x R(x^2) on |x| < 1/2, R = P/Q rational;
# asin(x) = pi/2 - 2 asin(sqrt((1 - x)/2)) above
_PS = (1.66666666666666657415e-01, -3.25565818622400915405e-01, 2.01212532134862925881e-01,
       -4.00555345006794114027e-02, 7.91534994289814532176e-04, 3.47933107596021167570e-05)
_QS = (1.0, -2.40339491173441421878e+00, 2.02094576023350569471e+00, -6.88283971605453293030e-01,
       7.70381505559019352791e-02)


@cache
def available() -> bool:
    """llad's own functions rely on fused multiply-add in hardware (the exact reduction)."""
    return bool(llvm.get_host_cpu_features().get("fma"))


def name(fn: str, lanes: int, bits: int) -> str:
    return f"llad.{fn}.v{lanes}f{bits}"


class _Vec:
    """Straight-line IR text over <n x double> / <n x i64> values (SSA names %v0, %v1, ...); with 0
    lanes, over double / i64 (llad's scalar exp, which LLVM's vectoriser widens itself)."""

    def __init__(self, lanes: int):
        self.n = lanes
        if lanes:
            self.D, self.I, self.B = f"<{lanes} x double>", f"<{lanes} x i64>", f"<{lanes} x i1>"
        else:
            self.D, self.I, self.B = "double", "i64", "i1"
        self.lines: list[str] = []
        self.declared: set[str] = set()
        self._k = 0

    def emit(self, rhs: str) -> str:
        v = f"%v{self._k}"
        self._k += 1
        self.lines.append(f"  {v} = {rhs}")
        return v

    def c(self, x: float) -> str:
        return f"splat (double {fconst('double', x)})" if self.n else fconst("double", x)

    def ci(self, x: int) -> str:
        return f"splat (i64 {x})" if self.n else str(x)

    def f(self, op: str, a: str, b: str, flags: str = "") -> str:     # fadd fsub fmul fdiv
        return self.emit(f"{op} {flags + ' ' if flags else ''}{self.D} {a}, {b}")

    def i(self, op: str, a: str, b: str) -> str:                 # integer ops on <n x i64>
        return self.emit(f"{op} {self.I} {a}, {b}")

    def fcmp(self, pred: str, a: str, b: str) -> str:
        return self.emit(f"fcmp {pred} {self.D} {a}, {b}")

    def icmp(self, pred: str, a: str, b: str) -> str:
        return self.emit(f"icmp {pred} {self.I} {a}, {b}")

    def sel(self, cond: str, a: str, b: str, ty: str | None = None) -> str:
        ty = ty or self.D
        return self.emit(f"select {self.B} {cond}, {ty} {a}, {ty} {b}")

    def bits(self, x: str) -> str:
        return self.emit(f"bitcast {self.D} {x} to {self.I}")

    def double(self, x: str) -> str:
        return self.emit(f"bitcast {self.I} {x} to {self.D}")

    def intrinsic(self, fn: str, *args: str) -> str:
        callee = f"llvm.{fn}.v{self.n}f64" if self.n else f"llvm.{fn}.f64"
        self.declared.add(f"declare {self.D} @{callee}({', '.join([self.D] * len(args))})")
        return self.emit(f"call {self.D} @{callee}({', '.join(f'{self.D} {a}' for a in args)})")

    def fma(self, a: str, b: str, c: str) -> str:
        return self.intrinsic("fma", a, b, c)

    def neg(self, x: str) -> str:
        return self.emit(f"fneg {self.D} {x}")

    def estrin(self, z: str, z2: str, coefs) -> str:
        """coefs[0] + coefs[1] z + coefs[2] z^2 + ... by Estrin's scheme (pairs c_2i + c_2i+1 z, then in z^2,
        recursively): a shorter chain of dependent operations than Horner's, for the out-of-order core."""
        def val(c):                                          # a float constant or an SSA value
            return self.c(c) if isinstance(c, float) else c
        pairs = [self.f("fadd", val(coefs[i]), self.f("fmul", z, val(coefs[i + 1]), "contract"), "contract")
                 if i + 1 < len(coefs) else val(coefs[i]) for i in range(0, len(coefs), 2)]
        return pairs[0] if len(pairs) == 1 else self.estrin(z2, self.f("fmul", z2, z2), pairs)

    def horner(self, z: str, coefs) -> str:
        """coefs[0] + z (coefs[1] + z (...)); each step may fuse into one FMA (one rounding instead of two)."""
        acc = self.c(coefs[-1])
        for cf in reversed(coefs[:-1]):
            acc = self.f("fadd", self.c(cf), self.f("fmul", z, acc, "contract"), "contract")
        return acc


def _exp(v: _Vec, x: str) -> str:
    """exp(x) within 1 ulp, no branches: x = k ln2 + r with |r| <= ln2/2 (Cody-Waite: ln2 in a high part
    with trailing zero bits, so k LN2_HI is exact, and a low part), exp(r) by its Taylor polynomial to
    degree 13 (truncation below 2^-57 relative on that interval), times 2^k in two exact power-of-two
    steps (so a subnormal result rounds once); overflow, underflow and NaN by selects."""
    xc = v.intrinsic("maxnum", v.intrinsic("minnum", x, v.c(710.0)), v.c(-746.0))
    k = v.intrinsic("rint", v.f("fmul", xc, v.c(_INV_LN2)))
    r = v.f("fsub", v.f("fsub", xc, v.f("fmul", k, v.c(_LN2_HI))), v.f("fmul", k, v.c(_LN2_LO)))
    q = v.horner(r, _EXP_TAYLOR[2:])                              # 1/2! + r/3! + ... + r^11/13!
    p = v.f("fadd", v.c(1.0), v.f("fadd", r, v.f("fmul", v.f("fmul", r, r), q, "contract"), "contract"))
    ki = v.emit(f"fptosi {v.D} {k} to {v.I}")
    half = v.i("ashr", ki, v.ci(1))

    def power_of_two(e):
        return v.double(v.i("shl", v.i("add", e, v.ci(1023)), v.ci(52)))
    y = v.f("fmul", v.f("fmul", p, power_of_two(half)), power_of_two(v.i("sub", ki, half)))
    y = v.sel(v.fcmp("ogt", x, v.c(_EXP_OVERFLOW)), v.c(float("inf")), y)
    y = v.sel(v.fcmp("olt", x, v.c(_EXP_UNDERFLOW)), v.c(0.0), y)
    return v.sel(v.fcmp("uno", x, x), x, y)


def _tanh(v: _Vec, x: str) -> tuple[str, str]:
    """tanh: |x| < 0.625, x + x z P(z)/Q(z), z = x^2 (Cephes' rational, 0.05 ulp in exact arithmetic);
    above, 1 - 2/(exp(2|x|) + 1), the quotient corrected by its FMA residual; 1 above 22; the sign copied
    (NaN, inf and -0 come out of the same formulas)."""
    a = v.intrinsic("fabs", x)
    z = v.f("fmul", a, a)
    ratio = v.f("fdiv", v.horner(z, _TANH_P), v.horner(z, _TANH_Q))
    small = v.f("fadd", a, v.f("fmul", v.f("fmul", a, z), ratio))
    d = v.f("fadd", _exp(v, v.f("fmul", v.c(2.0), a)), v.c(1.0))
    q = v.f("fdiv", v.c(2.0), d)
    q_lo = v.f("fdiv", v.fma(v.neg(q), d, v.c(2.0)), d)           # 2/d = q + q_lo
    large = v.f("fsub", v.f("fsub", v.c(1.0), q), q_lo)
    y = v.sel(v.fcmp("olt", a, v.c(0.625)), small, large)
    y = v.sel(v.fcmp("ogt", a, v.c(22.0)), v.c(1.0), y)
    return _copysign(v, y, x), v.emit(f"fcmp false {v.D} {x}, {x}")


def scalar_exp() -> tuple[str, set[str]]:
    """The text of `llad.exp.f64` (double -> double, always inlined: the loop vectoriser widens it where
    it is called in a loop) and the declarations it needs."""
    v = _Vec(0)
    y = _exp(v, "%x")
    return ("define internal double @llad.exp.f64(double %x) nounwind willreturn memory(none) alwaysinline {\n"
            "entry:\n" + "\n".join(v.lines) + f"\n  ret double {y}\n}}"), v.declared


def _log(v: _Vec, x: str) -> tuple[str, str]:
    """(log x, lanes needing libm): the fast path for positive normal finite x."""
    u = v.bits(x)
    slow = v.icmp("uge", v.i("sub", u, v.ci(0x0010000000000000)), v.ci(0x7FF0000000000000 - 0x0010000000000000))
    hx = v.i("add", v.i("lshr", u, v.ci(32)), v.ci(0x3FF00000 - 0x3FE6A09E))
    k = v.i("sub", v.i("lshr", hx, v.ci(20)), v.ci(0x3FF))
    hm = v.i("add", v.i("and", hx, v.ci(0x000FFFFF)), v.ci(0x3FE6A09E))
    m = v.double(v.i("or", v.i("shl", hm, v.ci(32)), v.i("and", u, v.ci(0xFFFFFFFF))))
    f = v.f("fsub", m, v.c(1.0))
    hfsq = v.f("fmul", v.f("fmul", v.c(0.5), f), f)
    s = v.f("fdiv", f, v.f("fadd", v.c(2.0), f))
    z = v.f("fmul", s, s)
    w = v.f("fmul", z, z)
    t1 = v.f("fmul", w, v.horner(w, _LG[1::2]))
    t2 = v.f("fmul", z, v.horner(w, _LG[0::2]))
    r = v.f("fadd", t2, t1)
    dk = v.emit(f"sitofp {v.I} {k} to {v.D}")
    y = v.f("fadd", v.f("fmul", s, v.f("fadd", hfsq, r)), v.f("fmul", dk, v.c(_LN2_LO)))
    y = v.f("fadd", v.f("fadd", v.f("fsub", y, hfsq), f), v.f("fmul", dk, v.c(_LN2_HI)))
    return y, slow


def _reduce(v: _Vec, x: str) -> tuple[str, str, str, str]:
    """(hi, lo, n as i64, lanes needing libm): x - n pi/2 = hi + lo, |hi| <= pi/4 (a hair more)."""
    ax = v.intrinsic("fabs", x)
    slow = v.fcmp("ugt", ax, v.c(_REDUCE_MAX))                    # NaN too
    n = v.intrinsic("rint", v.f("fmul", x, v.c(_TWO_OVER_PI)))
    nn = v.neg(n)
    r1 = v.fma(nn, v.c(_PIO2_1), x)                               # exact
    th = v.f("fmul", n, v.c(_PIO2_2))
    tl = v.fma(n, v.c(_PIO2_2), v.neg(th))                        # n P2 = th + tl exactly
    hi = v.f("fsub", r1, th)                                      # r1 - th = hi + err exactly (Fast2Sum,
    err_r1 = v.f("fsub", v.neg(th), v.f("fsub", hi, r1))          # larger operand first: both orders, the
    err_th = v.f("fsub", r1, v.f("fadd", hi, th))                 # right one chosen; shorter than TwoSum)
    larger = v.fcmp("oge", v.intrinsic("fabs", r1), v.intrinsic("fabs", th))
    lo = v.fma(nn, v.c(_PIO2_3), v.f("fsub", v.sel(larger, err_r1, err_th), tl))
    ni = v.emit(f"fptosi {v.D} {n} to {v.I}")
    return hi, lo, ni, slow


def _kernels(v: _Vec, x: str, y: str, tails: bool = False) -> tuple[str, ...]:
    """(sin(x + y), cos(x + y)) for |x| <= pi/4, |y| <= ulp(x)/2 (fdlibm's kernels, branch-free); with
    `tails`, also the rounding errors of their last additions (sin = ks + ks_lo, cos = kc + kc_lo)."""
    z = v.f("fmul", x, x)
    w = v.f("fmul", z, z)
    r = v.estrin(z, w, _S[1:])                                    # S2 + S3 z + ... + S6 z^4
    vv = v.f("fmul", z, x)
    inner = v.f("fsub", v.f("fmul", v.c(0.5), y), v.f("fmul", vv, r))
    ts = v.f("fsub", v.f("fsub", v.f("fmul", z, inner), y), v.f("fmul", vv, v.c(_S[0])))
    ks = v.f("fsub", x, ts)                                       # sin = ks + ks_lo (Fast2Sum, |x| >= |ts|)
    rc = v.f("fmul", z, v.estrin(z, w, _C))                       # C1 z + C2 z^2 + ... + C6 z^6
    hz = v.f("fmul", v.c(0.5), z)
    wc = v.f("fsub", v.c(1.0), hz)
    corr = v.f("fadd", v.f("fsub", v.f("fsub", v.c(1.0), wc), hz), v.f("fsub", v.f("fmul", z, rc), v.f("fmul", x, y)))
    kc = v.f("fadd", wc, corr)                                    # cos = kc + kc_lo (Fast2Sum, wc >= 1/2)
    lows = (v.f("fsub", v.f("fsub", x, ks), ts), v.f("fsub", corr, v.f("fsub", kc, wc))) if tails else ()
    return (ks, kc, *lows)


def _trig(v: _Vec, x: str, fn: str) -> tuple[str, str]:
    hi, lo, n, slow = _reduce(v, x)
    ks, kc, *lows = _kernels(v, hi, lo, tails=fn == "tan")
    odd = v.icmp("ne", v.i("and", n, v.ci(1)), v.ci(0))
    if fn == "tan":                   # tan = sin/cos, or -cos/sin in odd quadrants, the quotient of the
        a_hi, a_lo = v.sel(odd, v.neg(kc), ks), v.sel(odd, v.neg(lows[1]), lows[0])   # double-doubles
        b_hi, b_lo = v.sel(odd, ks, kc), v.sel(odd, lows[0], lows[1])
        q = v.f("fdiv", a_hi, b_hi)                               # q + (a - q b) / b, a - q b by an FMA
        res = v.f("fsub", v.f("fadd", v.fma(v.neg(q), b_hi, a_hi), a_lo), v.f("fmul", q, b_lo))
        y = v.f("fadd", q, v.f("fdiv", res, b_hi))
    else:
        q = n if fn == "sin" else v.i("add", n, v.ci(1))          # cos x = sin(x + pi/2)
        y = v.sel(odd, kc, ks) if fn == "sin" else v.sel(odd, ks, kc)
        y = v.sel(v.icmp("ne", v.i("and", q, v.ci(2)), v.ci(0)), v.neg(y), y)
    if fn != "cos":                                               # sin x, tan x = x for tiny x (and keeps -0)
        tiny = v.fcmp("olt", v.intrinsic("fabs", x), v.c(_TINY))
        y = v.sel(tiny, x, y)
    return y, slow


def _atan_abs(v: _Vec, a: str, corr: str | None = None) -> str:
    """atan(a) for a >= 0 (NaN and inf too; no lane needs libm), plus `corr` (an absolute correction added
    to the low part: atan2 passes the rounding error of its quotient through)."""
    ge = [v.fcmp("oge", a, v.c(b)) for b in _ATAN_BOUNDS]        # which of the five intervals

    def pick(values):                                             # values[0] below 7/16, ... values[4] above
        out = values[0]
        for cond, val in zip(ge, values[1:]):
            out = v.sel(cond, val, out)
        return out
    num = pick([a, v.f("fsub", v.f("fmul", v.c(2.0), a), v.c(1.0)), v.f("fsub", a, v.c(1.0)),
                v.f("fsub", a, v.c(1.5)), v.c(-1.0)])
    den = pick([v.c(1.0), v.f("fadd", v.c(2.0), a), v.f("fadd", a, v.c(1.0)),
                v.fma(v.c(1.5), a, v.c(1.0)), a])
    t = v.f("fdiv", num, den)
    z = v.f("fmul", t, t)
    w = v.f("fmul", z, z)
    s1 = v.f("fmul", z, v.estrin(w, v.f("fmul", w, w), _AT[0::2]))
    s2 = v.f("fmul", w, v.estrin(w, v.f("fmul", w, w), _AT[1::2]))
    hi, lo = pick([v.c(0.0), *(v.c(h) for h in _ATAN_HI)]), pick([v.c(0.0), *(v.c(lw) for lw in _ATAN_LO)])
    low = v.f("fsub", v.f("fmul", t, v.f("fadd", s1, s2)), lo)
    if corr is not None:
        low = v.f("fsub", low, corr)
    return v.f("fsub", hi, v.f("fsub", low, t))


def _copysign(v: _Vec, mag: str, sign: str) -> str:
    return v.intrinsic("copysign", mag, sign)


def _atan(v: _Vec, x: str) -> tuple[str, str]:
    return _copysign(v, _atan_abs(v, v.intrinsic("fabs", x)), x), v.emit(f"fcmp false {v.D} {x}, {x}")


def _atan2(v: _Vec, y: str, x: str) -> tuple[str, str]:
    """atan2 for finite nonzero x, y whose quotient is a normal number; the quotient t = |y/x| as t + t_lo
    (t_lo by an FMA), atan(t + t_lo) = atan(t) + t_lo / (1 + t^2); the quadrant by the signs."""
    ax, ay = v.intrinsic("fabs", x), v.intrinsic("fabs", y)
    t = v.f("fdiv", ay, ax)
    normal = v.emit(f"fcmp oge {v.D} {t}, {v.c(2.0 ** -1022)}")
    finite = v.fcmp("olt", t, v.c(float("inf")))
    inputs = v.emit(f"and {v.B} {v.fcmp('olt', ax, v.c(float('inf')))}, {v.fcmp('olt', ay, v.c(float('inf')))}")
    nonzero = v.emit(f"and {v.B} {v.fcmp('one', ax, v.c(0.0))}, {v.fcmp('one', ay, v.c(0.0))}")
    fast = v.emit(f"and {v.B} {v.emit(f'and {v.B} {normal}, {finite}')}, {v.emit(f'and {v.B} {inputs}, {nonzero}')}")
    slow = v.emit(f"xor {v.B} {fast}, splat (i1 true)")
    corr = v.f("fdiv", v.fma(v.neg(t), ax, ay), v.fma(t, ay, ax))  # (|y| - t|x|) / (|x| (1 + t^2))
    z = _atan_abs(v, t, corr)
    negx = v.emit(f"fcmp olt {v.D} {x}, {v.c(0.0)}")
    left = v.f("fsub", v.c(_PI), v.f("fsub", z, v.c(_PI_LO)))     # x < 0: pi - z
    return _copysign(v, v.sel(negx, left, z), y), slow


def _asin_acos(v: _Vec, x: str, fn: str) -> tuple[str, str]:
    """asin / acos for |x| < 1 (fdlibm's three ranges, one rational R(t) = P(t)/Q(t) for all: t = x^2 below
    1/2, (1 - |x|)/2 above); |x| >= 1 and NaN to libm."""
    a = v.intrinsic("fabs", x)
    slow = v.fcmp("uge", a, v.c(1.0))
    small = v.fcmp("olt", a, v.c(0.5))
    t = v.sel(small, v.f("fmul", x, x), v.f("fmul", v.f("fsub", v.c(1.0), a), v.c(0.5)))
    p = v.f("fmul", t, v.estrin(t, v.f("fmul", t, t), _PS))
    q = v.estrin(t, v.f("fmul", t, t), _QS)
    r = v.f("fdiv", p, q)
    s = v.intrinsic("sqrt", t)
    # s split: df = s with its low 32 bits cleared (exact square), c = (t - df^2) / (s + df) its remainder
    df = v.double(v.i("and", v.bits(s), v.ci(0xFFFFFFFF00000000)))
    c = v.f("fdiv", v.f("fsub", t, v.f("fmul", df, df)), v.f("fadd", s, df))
    if fn == "asin":
        y_small = v.f("fadd", x, v.f("fmul", x, r))
        near1 = v.f("fsub", v.c(_PIO2_HI), v.f("fsub", v.f("fmul", v.c(2.0), v.f("fadd", s, v.f("fmul", s, r))),
                                                   v.c(_PIO2_LO)))
        pp = v.f("fsub", v.f("fmul", v.f("fmul", v.c(2.0), s), r), v.f("fsub", v.c(_PIO2_LO), v.f("fmul", v.c(2.0), c)))
        qq = v.f("fsub", v.c(_PIO4_HI), v.f("fmul", v.c(2.0), df))
        mid = v.f("fsub", v.c(_PIO4_HI), v.f("fsub", pp, qq))
        big = _copysign(v, v.sel(v.fcmp("oge", a, v.c(0.975)), near1, mid), x)
        return v.sel(small, y_small, big), slow
    y_small = v.f("fsub", v.c(_PIO2_HI), v.f("fsub", x, v.f("fsub", v.c(_PIO2_LO), v.f("fmul", x, r))))
    neg = v.f("fsub", v.c(_PI), v.f("fmul", v.c(2.0), v.f("fadd", s, v.f("fsub", v.f("fmul", r, s), v.c(_PIO2_LO)))))
    pos = v.f("fmul", v.c(2.0), v.f("fadd", df, v.f("fadd", v.f("fmul", r, s), c)))
    big = v.sel(v.fcmp("olt", x, v.c(0.0)), neg, pos)
    return v.sel(small, y_small, big), slow


def _define_f64(fn: str, lanes: int) -> tuple[str, set[str]]:
    v = _Vec(lanes)
    if fn == "log":
        y, slow = _log(v, "%x")
    elif fn == "atan":
        y, slow = _atan(v, "%x")
    elif fn == "atan2":
        y, slow = _atan2(v, "%x", "%x1")
    elif fn in ("asin", "acos"):
        y, slow = _asin_acos(v, "%x", fn)
    elif fn == "tanh":
        y, slow = _tanh(v, "%x")
    else:
        y, slow = _trig(v, "%x", fn)
    any_slow = v.emit(f"call i1 @llvm.vector.reduce.or.v{lanes}i1({v.B} {slow})")
    v.declared.add(f"declare i1 @llvm.vector.reduce.or.v{lanes}i1({v.B})")
    body = ["entry:", *v.lines, f"  br i1 {any_slow}, label %libm, label %done", "libm:"]
    acc = "poison"
    scalar = f"llvm.{fn}.f64"
    params = ["%x", "%x1"][:2 if fn == "atan2" else 1]
    v.declared.add(f"declare double @{scalar}({', '.join(['double'] * len(params))})")
    for lane in range(lanes):                                     # libm for every lane: rare, exact
        for prm in params:
            body.append(f"  {prm}.{lane} = extractelement {v.D} {prm}, i32 {lane}")
        args = ", ".join(f"double {prm}.{lane}" for prm in params)
        body += [f"  %y{lane} = call double @{scalar}({args})",
                 f"  %a{lane} = insertelement {v.D} {acc}, double %y{lane}, i32 {lane}"]
        acc = f"%a{lane}"
    body += ["  br label %done", "done:", f"  %r = phi {v.D} [ {y}, %entry ], [ {acc}, %libm ]", f"  ret {v.D} %r"]
    signature = ", ".join(f"{v.D} {prm}" for prm in params)
    text = (f"define internal {v.D} @{name(fn, lanes, 64)}({signature}) nounwind willreturn memory(none) "
            "alwaysinline {\n" + "\n".join(body) + "\n}")
    return text, v.declared


def _define_f32(fn: str, lanes: int, arity: int, chunk: int) -> tuple[str, set[str]]:
    """float32 through float64: widen, the float64 intrinsic in pieces of at most `chunk` lanes (pointed at
    llad's or libmvec's function by the same rewrite), round once."""
    f, d = f"<{lanes} x float>", f"<{lanes} x double>"
    part = min(lanes, chunk)
    p = f"<{part} x double>"
    params = ", ".join(f"{f} %x{i}" for i in range(arity))
    lines = [f"  %w{i} = fpext {f} %x{i} to {d}" for i in range(arity)]
    callee = f"llvm.{fn}.v{part}f64"
    pieces = []
    for j in range(0, lanes, part):
        mask = ", ".join(f"i32 {k}" for k in range(j, j + part))
        for i in range(arity):
            lines.append(f"  %w{i}.{j} = shufflevector {d} %w{i}, {d} poison, <{part} x i32> <{mask}>")
        lines.append(f"  %y.{j} = call {p} @{callee}({', '.join(f'{p} %w{i}.{j}' for i in range(arity))})")
        pieces.append(f"%y.{j}")
    width = part
    while len(pieces) > 1:                                        # concatenate pairwise back to <lanes x double>
        merged = []
        for a, b in zip(pieces[0::2], pieces[1::2]):
            c = f"{a}.{b[1:]}"
            mask = ", ".join(f"i32 {k}" for k in range(2 * width))
            halves = f"<{width} x double> {a}, <{width} x double> {b}"
            lines.append(f"  {c} = shufflevector {halves}, <{2 * width} x i32> <{mask}>")
            merged.append(c)
        pieces, width = merged, 2 * width
    lines += [f"  %r = fptrunc {d} {pieces[0]} to {f}", f"  ret {f} %r"]
    text = (f"define internal {f} @{name(fn, lanes, 32)}({params}) nounwind willreturn memory(none) "
            "alwaysinline {\nentry:\n" + "\n".join(lines) + "\n}")
    return text, {f"declare {p} @{callee}({', '.join([p] * arity)})"}


def definition(fn: str, lanes: int, bits: int, arity: int, chunk: int = 8) -> tuple[str, set[str]]:
    """The text of `llad.<fn>.v<lanes>f<bits>` and the declarations it needs."""
    return _define_f64(fn, lanes) if bits == 64 else _define_f32(fn, lanes, arity, chunk)
