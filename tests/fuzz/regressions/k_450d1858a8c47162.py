# llad fuzz regression 450d1858a8c47162: finite differences disagree with both modes
# ruff: noqa  (generated code)
import math

import numba
import numpy as np



@numba.njit
def h0(p, q):
    return (-min(p, p))


@numba.njit
def h1(p, q):
    return p * q


@numba.njit
def kern(x, w, A, out, a):
    s = 0.0
    tmp = np.zeros(3)
    t0 = 0.5
    x[0] = w[0]
    out[0] += np.median(out)
    return s + t0


FUZZ_SPEC = {'n': 3, 'w_dup': True, 'A_dup': False, 'a_active': True, 'seed': 34270453, 'x_strided': True, 'A_fortran': True, 'f32': False}

# fixed in 11f312f; was: "llad bug: np.median: the copy it sorts is reached through a pointer reloaded from a stack slot, which has no shadow: the derivative is silently wrong (see tests/test_bad_inputs.py::test_no_silently_wrong_derivative)"
