# llad fuzz regression 33f7b26ec4054f5f: llad.ReverseWithPrimal raised RuntimeError: LLVM IR parsing error
# ruff: noqa  (generated code)
import math

import numba
import numpy as np

from fuzz.helpers import hw


@numba.njit
def h0(p, q):
    return p * q


@numba.njit
def kern(x, w, A, out, a):
    s = 0.0
    t0 = math.sin(A[0, 2])
    t1 = 0.75
    t0 = h0(-1.0, A[2, 1])
    s += (np.max(w) + np.sort(out)[0])
    for i0 in range(3):
        if s > 1.0:
            continue
        for i1 in range(4):
            hw(out, (i0 + 2) % 4, s)
            s += s
            for i2 in range(1):
                t0 = (2.0 * out[1])
        t1 = t0
    x[1] = h0(x[0], 2.0)
    return s + t0


FUZZ_SPEC = {'n': 4, 'w_dup': False, 'A_dup': True, 'a_active': True, 'seed': 434553582, 'x_strided': False, 'A_fortran': False, 'f32': False}

# fixed in 11f312f; was: "llad bug: np.sort: pipeline._module_text leaves out the destructor function @.dtor.list.Partition that the body references: RuntimeError: LLVM IR parsing error (see tests/test_bad_inputs.py, case np-sort)"
