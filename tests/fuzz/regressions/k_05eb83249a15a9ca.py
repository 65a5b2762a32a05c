# llad fuzz regression 05eb83249a15a9ca: float32 adjoints overflow (the gradient is beyond float32 range): skip, not a failure
# ruff: noqa  (generated code)
import math

import numba
import numpy as np

from fuzz.helpers import hr, hw


@numba.njit
def h0(p, q):
    return ((q + p) / -4.0)


@numba.njit
def kern(x, w, A, out, a):
    s = 0.0
    t0 = A[1, 3]
    t0 = max((0.75 / (1.5 + w[4] * w[4])), hr(w, 1))
    s += hr(out, 2)
    for i0 in range(5):
        for i1 in range(3):
            if max(A[i1, 3], (x[5 - 1 - i0] * s)) < float(i0):
                s += A[1, 4]
            for i2 in range(4):
                out[5 - 1 - i0] += (out[1] / 0.5)
                s = s * out[5 - 1 - i0]
                hw(w, 3, abs((x[2] + x[(i0 + 2) % 5])))
            if np.cumsum(x)[0] > 0.3:
                hw(x, i1, np.median(x))
            else:
                hw(out, 4, x[4])
        t0 = w[4]
    return s + t0


FUZZ_SPEC = {'n': 5, 'w_dup': True, 'A_dup': True, 'a_active': True, 'seed': 721573, 'x_strided': False, 'A_fortran': False, 'f32': True}
