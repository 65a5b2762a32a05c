"""The native runtime both ends of the pipeline need: Numba's NRT, initialised, and the compiler-rt
helpers LLVM calls for `llvm.powi` with a run-time exponent (the frontend only rewrites `x ** n` to
`llvm.powi` when they can be linked)."""
from __future__ import annotations

import ctypes
import ctypes.util

import llvmlite.binding as llvm
from numba.core.registry import cpu_target
from numba.core.runtime.nrt import rtsys

_symbols_added = False
powi_available = False       # whether `llvm.powi` with a run-time exponent can be linked


def ensure_runtime() -> None:
    global _symbols_added, powi_available
    rtsys.initialize(cpu_target.target_context)
    if not _symbols_added:
        try:
            libgcc = ctypes.CDLL(ctypes.util.find_library("gcc_s") or "libgcc_s.so.1")
            for name in ("__powidf2", "__powisf2"):
                if not llvm.address_of_symbol(name):
                    llvm.add_symbol(name, ctypes.cast(getattr(libgcc, name), ctypes.c_void_p).value)
            powi_available = True
        except (OSError, AttributeError):
            pass
        _symbols_added = True
