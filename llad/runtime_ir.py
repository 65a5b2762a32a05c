"""Functions llad defines in every derivative module that needs them (written in LLVM IR).

digamma(x) (the derivative of lgamma): reflection for x < 0.5, the recurrence
psi(x) = psi(x + 1) - 1/x up to x >= 10, then the asymptotic series to x^-12 (error < 1e-14).
"""
from __future__ import annotations

_DIGAMMA = """
define internal {T} @"llad.digamma.{S}"({T} %x) alwaysinline {{
entry:
  %neg = fcmp olt {T} %x, 5.000000e-01
  br i1 %neg, label %reflect, label %loop
reflect:
  %omx = fsub {T} 1.000000e+00, %x
  %psi1 = call {T} @"llad.digamma.{S}"({T} %omx)
  %pix = fmul {T} %x, {PI}
  %s = call {T} @llvm.sin.{S}({T} %pix)
  %c = call {T} @llvm.cos.{S}({T} %pix)
  %cot = fdiv {T} %c, %s
  %picot = fmul {T} %cot, {PI}
  %r1 = fsub {T} %psi1, %picot
  ret {T} %r1
loop:
  %xi = phi {T} [ %x, %entry ], [ %xn, %step ]
  %acc = phi {T} [ 0.000000e+00, %entry ], [ %accn, %step ]
  %small = fcmp olt {T} %xi, 1.000000e+01
  br i1 %small, label %step, label %tail
step:
  %inv = fdiv {T} 1.000000e+00, %xi
  %accn = fsub {T} %acc, %inv
  %xn = fadd {T} %xi, 1.000000e+00
  br label %loop
tail:
  %lg = call {T} @llvm.log.{S}({T} %xi)
  %ix = fdiv {T} 1.000000e+00, %xi
  %half = fmul {T} %ix, 5.000000e-01
  %ix2 = fmul {T} %ix, %ix
  %p0 = fmul {T} %ix2, {C6}
  %p1 = fadd {T} %p0, {C5}
  %p2 = fmul {T} %p1, %ix2
  %p3 = fadd {T} %p2, {C4}
  %p4 = fmul {T} %p3, %ix2
  %p5 = fadd {T} %p4, {C3}
  %p6 = fmul {T} %p5, %ix2
  %p7 = fadd {T} %p6, {C2}
  %p8 = fmul {T} %p7, %ix2
  %p9 = fadd {T} %p8, {C1}
  %series = fmul {T} %p9, %ix2
  %a = fsub {T} %lg, %half
  %b = fsub {T} %a, %series
  %r = fadd {T} %b, %acc
  ret {T} %r
}}
"""


def _digamma(ty: str) -> str:
    from .ir.builder import fconst
    s = "f64" if ty == "double" else "f32"
    # psi(x) ~ ln x - 1/2x - sum B_2n / (2n x^2n)
    coef = [1 / 12, -1 / 120, 1 / 252, -1 / 240, 1 / 132, -691 / 32760]
    c = {f"C{i + 1}": fconst(ty, v) for i, v in enumerate(coef)}
    text = _DIGAMMA.format(T=ty, S=s, PI=fconst(ty, 3.141592653589793), **c)
    for k in ("1.000000e+00", "5.000000e-01", "1.000000e+01", "0.000000e+00"):
        text = text.replace(k, fconst(ty, float(k)))
    return text + "".join(f"declare {ty} @llvm.{fn}.{s}({ty})\n" for fn in ("sin", "cos", "log"))


_ADDZERO = """
define internal void @"llad.addzero.{S}"(ptr %dst, ptr %src, i64 %bytes) {{
entry:
  %n = udiv i64 %bytes, {W}
  %any = icmp ne i64 %n, 0
  br i1 %any, label %loop, label %done
loop:
  %i = phi i64 [ 0, %entry ], [ %i1, %loop ]
  %pd = getelementptr {T}, ptr %dst, i64 %i
  %ps = getelementptr {T}, ptr %src, i64 %i
  %d = load {T}, ptr %pd
  %s = load {T}, ptr %ps
  %sum = fadd {T} %s, %d
  store {T} %sum, ptr %ps
  store {T} 0.0, ptr %pd
  %i1 = add i64 %i, 1
  %more = icmp ult i64 %i1, %n
  br i1 %more, label %loop, label %done
done:
  ret void
}}
"""


def _addzero(ty: str) -> str:
    """Reverse of memcpy(dst, src): the source's shadow takes the destination's, which is zeroed."""
    return _ADDZERO.format(T=ty, S="f64" if ty == "double" else "f32", W=8 if ty == "double" else 4)


_SHADOW_STACK = """
define internal void @llad.shadows.push(ptr %state, ptr %mi) {
entry:
  %n = load i64, ptr %state
  %capp = getelementptr i8, ptr %state, i64 8
  %cap = load i64, ptr %capp
  %basep = getelementptr i8, ptr %state, i64 16
  %full = icmp eq i64 %n, %cap
  br i1 %full, label %grow, label %put
grow:
  %c2 = shl i64 %cap, 1
  %c3 = call i64 @llvm.umax.i64(i64 %c2, i64 16)
  %bytes = mul i64 %c3, 8
  %old = load ptr, ptr %basep
  %new = call ptr @realloc(ptr %old, i64 %bytes)
  store ptr %new, ptr %basep
  store i64 %c3, ptr %capp
  br label %put
put:
  %base = load ptr, ptr %basep
  %slot = getelementptr ptr, ptr %base, i64 %n
  store ptr %mi, ptr %slot
  %n1 = add i64 %n, 1
  store i64 %n1, ptr %state
  ret void
}
define internal void @llad.shadows.release(ptr %state) {
entry:
  %n = load i64, ptr %state
  %basep = getelementptr i8, ptr %state, i64 16
  %base = load ptr, ptr %basep
  %any = icmp ne i64 %n, 0
  br i1 %any, label %loop, label %done
loop:
  %i = phi i64 [ 0, %entry ], [ %i1, %loop ]
  %slot = getelementptr ptr, ptr %base, i64 %i
  %mi = load ptr, ptr %slot
  call void @NRT_decref(ptr %mi)
  %i1 = add i64 %i, 1
  %more = icmp ult i64 %i1, %n
  br i1 %more, label %loop, label %done
done:
  call void @free(ptr %base)
  ret void
}
declare i64 @llvm.umax.i64(i64, i64)
"""

DEFINITIONS = {"llad.shadows.push": lambda: _SHADOW_STACK,
               "llad.addzero.f64": lambda: _addzero("double"), "llad.addzero.f32": lambda: _addzero("float"),
"llad.digamma.f64": lambda: _digamma("double"), "llad.digamma.f32": lambda: _digamma("float")}


def definitions_used(body: list[str]) -> tuple[list[str], dict[str, str]]:
    """The definitions `body` calls, and the declarations those need."""
    text = "\n".join(body)
    defs, decls = [], {}
    for name, make in DEFINITIONS.items():
        if f'@"{name}"' in text or f"@{name}(" in text:
            for ln in make().splitlines():
                if ln.startswith("declare"):
                    decls[ln.split("@")[1].split("(")[0].strip('"')] = ln
                else:
                    defs.append(ln)
    return defs, decls
