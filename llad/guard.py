"""Guarded memory (`llad.config.guard_memory`): a derivative that writes outside its tape or a shadow is
reported right after the call that did it, naming the kernel, instead of corrupting the heap silently.

* **Loop tapes** (reverse mode): every record address is checked against the tape's capacity; an access
  outside goes to a scratch global instead (`@llad.guard.sink`) and sets a flag.
* **Shadows llad allocates**: CANARY bytes of PATTERN after the end of each; checked when the shadow is
  released (reverse mode: at its allocation's reverse; forward mode: at each release of the primal).
* **Shadows of array arguments** (calls from Python): passed to the derivative inside a buffer filled
  with PATTERN, checked after the call (every byte that is no element of the shadow must be unchanged),
  then copied back.

The derivative module gets a flag (`@llad.guard.flag`, or-ed codes) and a function `<name>.guard` that
returns and clears it; `check` calls it after each call from Python.
"""
from __future__ import annotations

import ctypes

import numpy as np

from .errors import MemoryGuardError
from .ir.builder import Builder, new_function
from .ir.model import Module

CANARY = 64              # bytes after each shadow llad allocates
PATTERN = 0xA5
FLAG = '@"llad.guard.flag"'
SINK = '@"llad.guard.sink"'
TAPE, SHADOW = 1, 2      # flag codes
_WHAT = {TAPE: "a loop tape outside its capacity", SHADOW: "past the end of a shadow llad allocated"}
_MEMINFO_DATA, _MEMINFO_SIZE = 24, 32


def declare(module: Module, fname: str) -> None:
    """The flag, the scratch word, the checker and `<fname>.guard` (read and clear the flag)."""
    module.globals["llad.guard.flag"] = f"{FLAG} = internal global i32 0"
    module.globals["llad.guard.sink"] = f"{SINK} = internal global [8 x i64] zeroinitializer"
    b = new_function(f"{fname}.guard", "i32", [], module)
    v = b.load("i32", FLAG)
    b.store("i32", "0", FLAG)
    b.ret("i32", v)
    _define_check(module)


def note(b: Builder, ok: str, code: int) -> None:
    """flag |= code unless ok."""
    bit = b.select(ok, "i32", "0", str(code))
    b.store("i32", b.op("or", "i32", b.load("i32", FLAG), bit), FLAG)


def tape_address(b: Builder, address: str, index: str, capacity: str) -> str:
    """`address` when index < capacity (unsigned: a negative index fails too), else the scratch word."""
    ok = b.icmp("ult", "i64", index, capacity)
    note(b, ok, TAPE)
    return b.select(ok, "ptr", address, SINK)


def padded_size(b: Builder, size_ty: str, size: str) -> str:
    return b.op("add", size_ty, size, str(CANARY))


def fill_canary(b: Builder, data: str, size_ty: str, size: str) -> None:
    """PATTERN in the CANARY bytes after data[size]."""
    end = b.gep("i8", data, [(size_ty, size)])
    b.call("void", "llvm.memset.p0.i64", [("ptr", end), ("i8", str(PATTERN - 256)), ("i64", str(CANARY)),
                                          ("i1", "false")])


def check_meminfo(b: Builder, meminfo: str) -> None:
    """The canary after a shadow's data (its meminfo records the padded size) still holds PATTERN."""
    b.call("void", "llad.guard.check", [("ptr", meminfo)])


def _define_check(module: Module) -> None:
    b = new_function("llad.guard.check", "void", [("ptr", "mi")], module, linkage="internal")
    b.cbr(b.icmp("ne", "ptr", "%mi", "null"), "live", "done")
    b.new_block("live")
    data = b.load("ptr", b.gep("i8", "%mi", [("i64", str(_MEMINFO_DATA))]))
    size = b.load("i64", b.gep("i8", "%mi", [("i64", str(_MEMINFO_SIZE))]))
    end = b.gep("i8", data, [("i64", b.op("sub", "i64", size, str(CANARY)))])
    ok = "true"
    for k in range(CANARY // 8):
        word = b.load("i64", b.gep("i64", end, [("i64", str(k))]), align=1)
        ok = b.op("and", "i1", ok, b.icmp("eq", "i64", word, str(int.from_bytes(bytes([PATTERN]) * 8, "little",
                                                                                   signed=True))))
    note(b, ok, SHADOW)
    b.br("done")
    b.new_block("done")
    b.ret()


# --- the Python side ---------------------------------------------------------------------------------------
class GuardedShadow:
    """A copy of a shadow array inside a PATTERN-filled buffer, with the same shape and strides."""

    def __init__(self, shadow: np.ndarray):
        self.shadow = shadow
        offsets = [0] + [(n - 1) * s for n, s in zip(shadow.shape, shadow.strides) if n > 0]
        lo = sum(o for o in offsets if o < 0)
        hi = sum(o for o in offsets if o > 0) + shadow.itemsize
        self.buffer = np.full(hi - lo + 2 * CANARY, PATTERN, dtype=np.uint8)
        start = CANARY - lo
        self.view = np.ndarray(shadow.shape, dtype=shadow.dtype, buffer=self.buffer, offset=start,
                               strides=shadow.strides)
        self.view[...] = shadow

    def intact(self) -> bool:
        """Every byte that is no element of the shadow still holds PATTERN."""
        elements = self.view.copy()
        self.view[...] = np.frombuffer(bytes([PATTERN]) * self.view.itemsize, dtype=self.view.dtype)[0]
        ok = bool(np.all(self.buffer == PATTERN))
        self.view[...] = elements
        return ok

    def copy_back(self) -> None:
        self.shadow[...] = self.view


def check(d, guarded: list[GuardedShadow], what: str) -> None:
    """After a call of derivative d: raise MemoryGuardError if its flag is set or a canary was hit."""
    flag = _reader(d)()
    broken = [g for g in guarded if not g.intact()]
    for g in guarded:
        g.copy_back()
    problems = [text for code, text in _WHAT.items() if flag & code]
    if broken:
        problems.append(f"outside the shadow of {len(broken)} array argument(s)")
    if problems:
        raise MemoryGuardError(f"llad.config.guard_memory: the derivative of {what} ({d.name}) wrote "
                               + " and ".join(problems) + f": either {what} itself indexes outside an array "
                               "(Numba does not check bounds: run it with NUMBA_BOUNDSCHECK=1 to find where), "
                               "or llad generated a wrong access (please report it with the kernel)")


def _reader(d):
    fn = getattr(d, "_guard_reader", None)
    if fn is None:
        address = d.library.get_pointer_to_function(f"{d.name}.guard")
        fn = d._guard_reader = ctypes.CFUNCTYPE(ctypes.c_int32)(address)
    return fn
