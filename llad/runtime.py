"""Functions llad defines in a derivative module that calls them, built with the IR builder.

* `llad.digamma.f64/f32` (the derivative of lgamma): reflection for x < 0.5, the recurrence
  psi(x) = psi(x + 1) - 1/x up to x >= 10, then the asymptotic series to x^-12 (error < 1e-14).
* `llad.addzero.f64/f32(dst, src, bytes)`: the reverse of memcpy(dst, src): the source's shadow takes
  the destination's, which is zeroed.
* `llad.shadows.push/release`: the stack of shadow allocations a reverse derivative made, released if
  the primal raises before the reverse sweep frees them.
* `llad.tape.reserve`: make room for n records in a loop's growable tape (`reserve` emits its use).

`ensure(module, name)` adds a function (and what it calls) to the module the first time it is used.
"""
from __future__ import annotations

from collections.abc import Callable

from . import ownmath
from .ir.builder import Builder, fconst, new_function
from .ir.model import Module


def _suffix(ty: str) -> str:
    return "f64" if ty == "double" else "f32"


def _exp(module: Module, ty: str) -> None:
    """llad's exp (ownmath.py writes the float64 one: branch-free, within 1 ulp, which the loop vectoriser
    inlines into SIMD code); float32 through it, rounded once."""
    if ty == "double":
        text, declared = ownmath.scalar_exp()
        module.carried["llad.exp.f64"] = text
        for line in declared:
            name = line.split("@", 1)[1].split("(", 1)[0]
            module.declarations.setdefault(name, line)
        return
    b = new_function("llad.exp.f32", ty, [(ty, "x")], module, attributes="alwaysinline", linkage="internal")
    wide = b.call("double", "llad.exp.f64", [("double", b.cast("fpext", "float", "%x", "double"))])
    b.ret("float", b.cast("fptrunc", "double", wide, "float"))
    ensure(module, "llad.exp.f64")


def _digamma(module: Module, ty: str) -> None:
    s = _suffix(ty)
    name = f"llad.digamma.{s}"
    b = new_function(name, ty, [(ty, "x")], module, attributes="alwaysinline", linkage="internal")
    c = lambda v: fconst(ty, v)
    b.cbr(b.fcmp("olt", ty, "%x", c(0.5)), "reflect", "loop")
    # psi(x) = psi(1 - x) - pi cot(pi x)
    b.new_block("reflect")
    psi1 = b.call(ty, name, [(ty, b.fsub(ty, c(1.0), "%x"))])
    pix = b.fmul(ty, "%x", c(3.141592653589793))
    cot = b.fdiv(ty, b.call(ty, f"llvm.cos.{s}", [(ty, pix)]), b.call(ty, f"llvm.sin.{s}", [(ty, pix)]))
    b.ret(ty, b.fsub(ty, psi1, b.fmul(ty, cot, c(3.141592653589793))))
    # psi(x) = psi(x + 1) - 1/x until x >= 10
    b.new_block("loop")
    b.phi(ty, [("%x", "entry"), ("%xn", "step")], name="%xi")
    b.phi(ty, [(c(0.0), "entry"), ("%accn", "step")], name="%acc")
    b.cbr(b.fcmp("olt", ty, "%xi", c(10.0)), "step", "tail")
    b.new_block("step")
    b.op("fsub", ty, "%acc", b.fdiv(ty, c(1.0), "%xi"), name="%accn")
    b.op("fadd", ty, "%xi", c(1.0), name="%xn")
    b.br("loop")
    # psi(x) ~ ln x - 1/2x - sum B_2n / (2n x^2n)
    b.new_block("tail")
    ix = b.fdiv(ty, c(1.0), "%xi")
    ix2 = b.fmul(ty, ix, ix)
    series = c(-691 / 32760)
    for coef in (1 / 132, -1 / 240, 1 / 252, -1 / 120, 1 / 12):
        series = b.fadd(ty, b.fmul(ty, series, ix2), c(coef))
    series = b.fmul(ty, series, ix2)
    log = b.call(ty, f"llvm.log.{s}", [(ty, "%xi")])
    r = b.fsub(ty, b.fsub(ty, log, b.fmul(ty, ix, c(0.5))), series)
    b.ret(ty, b.fadd(ty, r, "%acc"))


def _addzero(module: Module, ty: str) -> None:
    width = 8 if ty == "double" else 4
    b = new_function(f"llad.addzero.{_suffix(ty)}", "void", [("ptr", "dst"), ("ptr", "src"), ("i64", "bytes")],
                     module, linkage="internal")
    n = b.op("udiv", "i64", "%bytes", str(width))
    b.cbr(b.icmp("ne", "i64", n, "0"), "loop", "done")
    b.new_block("loop")
    i = b.phi("i64", [("0", "entry"), ("%i1", "loop")], name="%i")
    pd, ps = b.gep(ty, "%dst", [("i64", i)]), b.gep(ty, "%src", [("i64", i)])
    b.store(ty, b.op("fadd", ty, b.load(ty, ps), b.load(ty, pd)), ps)
    b.store(ty, "0.0", pd)
    b.op("add", "i64", i, "1", name="%i1")
    b.cbr(b.icmp("ult", "i64", "%i1", n), "loop", "done")
    b.new_block("done")
    b.ret()


def _shadow_stack(module: Module) -> None:
    """state = [count, capacity, base]: a growable array of the meminfos of shadows allocated so far."""
    b = new_function("llad.shadows.push", "void", [("ptr", "state"), ("ptr", "mi")], module, linkage="internal")
    n = b.load("i64", "%state")
    capp, basep = b.gep("i8", "%state", [("i64", "8")]), b.gep("i8", "%state", [("i64", "16")])
    cap = b.load("i64", capp)
    b.cbr(b.icmp("eq", "i64", n, cap), "grow", "put")
    b.new_block("grow")
    c3 = b.call("i64", "llvm.umax.i64", [("i64", b.op("shl", "i64", cap, "1")), ("i64", "16")])
    new = b.call("ptr", "realloc", [("ptr", b.load("ptr", basep)), ("i64", b.op("mul", "i64", c3, "8"))])
    b.store("ptr", new, basep)
    b.store("i64", c3, capp)
    b.br("put")
    b.new_block("put")
    b.store("ptr", "%mi", b.gep("ptr", b.load("ptr", basep), [("i64", n)]))
    b.store("i64", b.op("add", "i64", n, "1"), "%state")
    b.ret()

    b = new_function("llad.shadows.release", "void", [("ptr", "state")], module, linkage="internal")
    n = b.load("i64", "%state")
    base = b.load("ptr", b.gep("i8", "%state", [("i64", "16")]))
    b.cbr(b.icmp("ne", "i64", n, "0"), "loop", "done")
    b.new_block("loop")
    i = b.phi("i64", [("0", "entry"), ("%i1", "loop")], name="%i")
    b.call("void", "NRT_decref", [("ptr", b.load("ptr", b.gep("ptr", base, [("i64", i)])))])
    b.op("add", "i64", i, "1", name="%i1")
    b.cbr(b.icmp("ult", "i64", "%i1", n), "loop", "done")
    b.new_block("done")
    b.call("void", "free", [("ptr", base)])
    b.ret()


def _tape_reserve(module: Module) -> None:
    """reserve(base, cap, newcap, recsize): the tape's buffer, grown to newcap records when that is more
    than cap.  The buffer comes back as a value, so SROA keeps it in registers through the forward
    sweep's loops; a plain `realloc` in it, so that a derivative differentiated again (nesting) sees an
    allocation it can give a shadow."""
    params = [("ptr", "base"), ("i64", "cap"), ("i64", "newcap"), ("i64", "recsize")]
    b = new_function("llad.tape.reserve", "ptr", params, module, attributes="alwaysinline", linkage="internal")
    b.cbr(b.icmp("ugt", "i64", "%newcap", "%cap"), "grow", "done")
    b.block.instructions[-1].metadata = (("prof", '!{!"branch_weights", i32 1, i32 1000}'),)
    b.new_block("grow")
    b.ret("ptr", b.call("ptr", "realloc", [("ptr", "%base"), ("i64", b.op("mul", "i64", "%newcap", "%recsize"))]))
    b.new_block("done")
    b.ret("ptr", "%base")


# Tape buffers kept between calls (Plan.keep_tapes): KEEP_SLOTS places per loop of a derivative called from
# Python, in a global array of {lock, buffer, capacity}.  Without it every call mallocs its tapes and frees
# them, and glibc gives large buffers back to the OS at once, so the next call page-faults through fresh
# zeroed memory (6 ms of 17 on a 10^6-element logsumexp).  A buffer is taken and given back under try-locks
# that never wait: a call takes the buffer of the first place it can lock that holds one (else mallocs),
# and gives its buffer to the first place it can lock that is empty (else frees).  One thread at a time
# uses the first place only; threads running one derivative at once (parallel.py's chunks) each find one.
# Buffers of more than KEEP_MAX_BYTES are freed.
KEEP_MAX_BYTES = 1 << 28
KEEP_SLOTS = 8
KEEP_TYPE = f"[{KEEP_SLOTS} x {{ i64, ptr, i64 }}]"
_SLOT_BYTES = 24


def _keep_text() -> str:
    take = ['define internal ptr @"llad.tape.take"(ptr %keep, ptr %cap) alwaysinline {', "entry:",
            "  br label %try0"]
    give = ['define internal void @"llad.tape.give"(ptr %keep, ptr %buf, i64 %bytes, i64 %cap) alwaysinline {',
            "entry:", f"  %small = icmp ule i64 %bytes, {KEEP_MAX_BYTES}",
            "  br i1 %small, label %try0, label %release"]
    for k in range(KEEP_SLOTS):
        nxt = f"try{k + 1}" if k + 1 < KEEP_SLOTS else "none"
        lock = [f"try{k}:", f"  %s{k} = getelementptr i8, ptr %keep, i64 {k * _SLOT_BYTES}",
                f"  %pair{k} = cmpxchg ptr %s{k}, i64 0, i64 1 acquire monotonic, align 8",
                f"  %ok{k} = extractvalue {{ i64, i1 }} %pair{k}, 1",
                f"  br i1 %ok{k}, label %locked{k}, label %{nxt}",
                f"locked{k}:", f"  %pp{k} = getelementptr i8, ptr %s{k}, i64 8",
                f"  %cp{k} = getelementptr i8, ptr %s{k}, i64 16", f"  %p{k} = load ptr, ptr %pp{k}, align 8",
                f"  %empty{k} = icmp eq ptr %p{k}, null"]
        take += lock + [f"  br i1 %empty{k}, label %unlock{k}, label %took{k}",
                        f"took{k}:", f"  %c{k} = load i64, ptr %cp{k}, align 8",
                        f"  store ptr null, ptr %pp{k}, align 8", f"  store i64 0, ptr %cp{k}, align 8",
                        f"  store atomic i64 0, ptr %s{k} release, align 8",
                        f"  store i64 %c{k}, ptr %cap, align 8", f"  ret ptr %p{k}",
                        f"unlock{k}:", f"  store atomic i64 0, ptr %s{k} release, align 8",
                        f"  br label %{nxt}"]
        give += [ln.replace("none", "release") if ln.startswith("  br i1 %ok") else ln for ln in lock] + [
            f"  br i1 %empty{k}, label %keepit{k}, label %unlock{k}",
            f"keepit{k}:", f"  store ptr %buf, ptr %pp{k}, align 8", f"  store i64 %cap, ptr %cp{k}, align 8",
            f"  store atomic i64 0, ptr %s{k} release, align 8", "  ret void",
            f"unlock{k}:", f"  store atomic i64 0, ptr %s{k} release, align 8",
            f"  br label %{nxt if nxt != 'none' else 'release'}"]
    take += ["none:", "  store i64 0, ptr %cap, align 8", "  ret ptr null", "}"]
    give += ["release:", "  call void @free(ptr %buf)", "  ret void", "}"]
    return "\n".join(take), "\n".join(give)


def _tape_keep(module: Module) -> None:
    """llad.tape.take(keep, capslot) -> buffer (null when none is kept), llad.tape.give(keep, buffer, bytes,
    capacity): see KEEP_MAX_BYTES."""
    take, give = _keep_text()
    module.carried["llad.tape.take"] = take
    module.carried["llad.tape.give"] = give
    module.declare("free", "void", ["ptr"])


def reserve(b: Builder, base_slot: str, cap_slot: str, n: str, recsize: int) -> None:
    """Room for n records of `recsize` bytes in the growable buffer whose pointer and capacity (in
    records) live in two slots: doubling, and at least 64 records, when it grows."""
    base, cap = b.load("ptr", base_slot), b.load("i64", cap_slot)
    grown = b.call("i64", "llvm.umax.i64", [("i64", b.call("i64", "llvm.umax.i64", [
        ("i64", b.op("shl", "i64", cap, "1")), ("i64", n)])), ("i64", "64")])
    newcap = b.select(b.icmp("ugt", "i64", n, cap), "i64", grown, cap)
    b.store("ptr", call(b, "ptr", "llad.tape.reserve", [("ptr", base), ("i64", cap), ("i64", newcap),
                                                         ("i64", str(recsize))]), base_slot)
    b.store("i64", newcap, cap_slot)


_DEFINITIONS: dict[str, Callable[[Module], None]] = {
    "llad.exp.f64": lambda m: _exp(m, "double"),
    "llad.exp.f32": lambda m: _exp(m, "float"),
    "llad.digamma.f64": lambda m: _digamma(m, "double"),
    "llad.digamma.f32": lambda m: _digamma(m, "float"),
    "llad.addzero.f64": lambda m: _addzero(m, "double"),
    "llad.addzero.f32": lambda m: _addzero(m, "float"),
    "llad.shadows.push": _shadow_stack,
    "llad.shadows.release": _shadow_stack,
    "llad.tape.reserve": _tape_reserve,
    "llad.tape.take": _tape_keep,
    "llad.tape.give": _tape_keep,
}


def define_called(module: Module, fn) -> None:
    """Define in `module` the runtime functions `fn` (the primal, as the derivative copies it) calls."""
    for block in fn.blocks:
        for ins in block.instructions:
            if ins.opcode == "call" and ins.callee in _DEFINITIONS:
                ensure(module, ins.callee)


def ensure(module: Module, name: str) -> None:
    """Define runtime function `name` in `module` unless it is there already (built here, or carried from
    a primal that calls a derivative: the same function)."""
    if name in _DEFINITIONS and name not in module.carried and not any(f.name == name for f in module.functions):
        _DEFINITIONS[name](module)


def call(b: Builder, ret: str, name: str, args: list[tuple[str, str]]) -> str:
    """Call runtime function `name`, defining it in the builder's module on first use."""
    ensure(b.module, name)
    return b.call(ret, name, args)
