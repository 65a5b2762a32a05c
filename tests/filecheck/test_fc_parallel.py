"""parallel=True: llad differentiates the function's serial copy, without Numba's parallel runtime."""
from __future__ import annotations

import numba
import numpy as np

import llad


@numba.njit(parallel=True)
def prange_reduction(x, w):
    s = 0.0
    for i in numba.prange(x.shape[0]):
        s += np.sin(x[i] * w[0]) * x[i]
    return s


def test_the_derivative_is_the_serial_loop(filecheck):
    """Numba's parallel runtime (its scheduler and gufunc launch) is in the function's own code and not in
    llad's derivative of it."""
    x, w = np.linspace(0.1, 1.0, 8), np.array([0.7])
    prange_reduction(x, w)
    own = next(iter(prange_reduction.inspect_llvm().values()))
    checks = """
        CHECK-ABSENT: do_scheduling
        CHECK: {{^}}}
    """
    filecheck(own, checks.replace("CHECK-ABSENT", "CHECK"))
    text = llad.dump(llad.Reverse, prange_reduction, llad.Active, llad.Duplicated(x, np.zeros(8)), llad.Const(w),
                     depth="deriv")
    label = 'CHECK-LABEL: define i32 @"llad.rev.{{[0-9a-f]+}}"(\n'
    filecheck(text, label + checks.replace("CHECK-ABSENT", "CHECK-NOT"))
