# llad fuzz regression nested_undef_gep_index: found by the c10k campaign (chunk 100004, llad 0a53e30): nested mode raised ValueError: invalid literal for int() with base 10: 'undef' (a getelementptr with an undef index in the inner reverse derivative, ir/forwarding.py)
# ruff: noqa  (generated code)
import math

import numba
import numpy as np

from fuzz.helpers import hw, cj0


@numba.njit
def h0(p, q):
    return p * (math.log(1.0 + 0.25 * 0.25) + 0.25)


@numba.njit
def h1(p, q):
    return p * math.log(1.0 + 0.25 * 0.25)


@numba.njit
def kern(x, w, A, out, a):
    s = 0.0
    t0 = a
    t1 = math.cos(w[0])
    t2 = out[3]
    if w[4] > 0.3:
        s += h0(np.max(out), out[2])
    else:
        s += x[0]
        for i0 in range(3):
            for i1 in range(4):
                hw(x, 1, s)
                s += w[i0]
                t0 = x[i0]
    M0 = A @ A.T
    for d1 in range(5):
        M0[d1, d1] += 6.0
    s += np.linalg.slogdet(M0)[1]
    s += cj0(x[0], x[2])
    return s + t0


FUZZ_SPEC = {'n': 5, 'w_dup': False, 'A_dup': True, 'a_active': True, 'seed': 0, 'x_strided': False, 'A_fortran': True, 'f32': False}
