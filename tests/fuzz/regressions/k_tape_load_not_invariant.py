# llad fuzz regression (seed 4242): the reverse sweep read its tape with !invariant.load; the forward sweep of the same function had written it, so LLVM could fold the load to the malloc'd memory's undef and, with the loop unrolled, made the whole derivative `unreachable` (a segfault from Python, a zero gradient inside @njit)
# ruff: noqa  (generated code)
import math

import numba
import numpy as np



@numba.njit
def h0(p, q):
    return p


@numba.njit
def kern(x, w, A, out, a):
    s = 0.0
    t0 = math.log(1.0 + -0.5 * -0.5)
    t1 = t0
    for i0 in range(2):
        if x[1] > 0.7:
            t0 = out[1]
        else:
            s += w[1]
    s += (3.0 * out[0])
    return s + t0


FUZZ_SPEC = {'n': 4, 'w_dup': False, 'A_dup': True, 'a_active': False, 'seed': 3, 'x_strided': True, 'A_fortran': False, 'f32': False}
