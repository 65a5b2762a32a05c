"""DuplicatedNoNeed (forward): the primal store nobody reads is not in the derivative (analysis/deadprimal.py)."""
from __future__ import annotations

import numba
import numpy as np

import llad


@numba.njit
def doubled_then_weighted(x, c):
    for i in range(x.shape[0]):
        x[i] = 2.0 * x[i]
    s = 0.0
    for i in range(x.shape[0]):
        s += c[i] * x[i]
    return s


X = np.array([0.5, 1.5, 2.5, -1.0])
V = np.array([1.0, -2.0, 0.5, 3.0])


def test_the_primal_store_is_dropped(filecheck):
    """The doubled x is stored for no one when x is DuplicatedNoNeed (c is another array), kept otherwise."""
    fmul = "CHECK: [[P:%[-a-zA-Z$._0-9]+]] = fmul double {{.*}}, 2.000000e+00\n"
    for cls, check in ((llad.DuplicatedNoNeed, "CHECK-NOT: store double [[P]],\nCHECK: {{^}}}\n"),
                       (llad.Duplicated, "CHECK: store double [[P]],\n")):
        text = llad.dump(llad.Forward, doubled_then_weighted, cls(X.copy(), V.copy()), llad.Const(X.copy()),
                         depth="deriv")
        filecheck(text, 'CHECK-LABEL: define i32 @"llad.fwd.{{[0-9a-f]+}}"(\n' + fmul + check)
