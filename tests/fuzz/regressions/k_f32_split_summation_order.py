# llad fuzz regression bf5951cc698b5fb9 (campaign c10k, chunk 100059): float32 split mode against ReverseWithPrimal, 1.3e-6 apart in one element (summation order), not a wrong derivative
# ruff: noqa  (generated code)
import math

import numba
import numpy as np
from fuzz.helpers import hr, cj0

@numba.njit
def h0(p, q):
    return p * 1.5

@numba.njit
def kern(x, w, A, out, a):
    s = 0.0
    for i0 in range(4):
        for i1 in range(3):
            for i2 in range(2):
                y0 = A @ out
                out[(i0 + 3) % 4] += (hr(out, 3) + math.log(1.0 + s * s))
                s += np.sum(y0 * out)
            if h0(1.5, s) > 1.0:
                continue
    s += cj0(min(0.25, a), 0.75)
    return s


FUZZ_SPEC = {'n': 4, 'w_dup': True, 'A_dup': True, 'a_active': True, 'seed': 2910, 'x_strided': False, 'A_fortran': False, 'f32': True}
