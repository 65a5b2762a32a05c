# llad fuzz regression ac187aef51589d76: finite differences disagree with both modes
# ruff: noqa  (generated code)
import math

import numba
import numpy as np

from fuzz.helpers import hr, hw


@numba.njit
def kern(x, w, A, out, a):
    s = 0.0
    t0 = s
    t1 = out[1]
    for i0 in range(1):
        for i1 in range(1):
            s += x[(i1 + 1) % 3]
        for i1 in range(1):
            t0 = np.min(w)
            out[i0] = w[0]
        if a > 1.0:
            break
    s += math.atan(hr(x, 0))
    if out[1] > 1.0:
        s += (A[1, 1] * s)
    else:
        for i0 in range(3):
            w[(i0 + 1) % 3] += math.tanh(x[1])
            s += (out[i0] + 0.5)
            if out[i0] < math.tanh(x[3 - 1 - i0]):
                hw(w, 1, s)
            else:
                hw(out, i0, float(i0))
    return s + t0


FUZZ_SPEC = {'n': 3, 'w_dup': True, 'A_dup': True, 'a_active': True, 'seed': 456340, 'x_strided': True, 'A_fortran': False, 'f32': False}
# fixed in 11f312f; was: "llad bug: the kernel calls np.min(w) with w[0] the minimum: the derivative for w[0] is silently dropped (same bug as k_np_min_first_element)"
