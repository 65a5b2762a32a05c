# llad fuzz regression (minimised by hand from 8dcb446c38fc31d5 / d36d48deadd7afd8, BLAS grammar): np.linalg.solve and a whole-slice assignment in one kernel
# (fixed: both emit Numba's __excinfo_unwrap_args<hash>, which the frontend now links once: frontend._mergeable)
# ruff: noqa  (generated code)
import math

import numba
import numpy as np


@numba.njit
def kern(x, w, A, out, a):
    s = 0.0
    M0 = A + (5.0 * np.eye(3)).astype(A.dtype)
    z1 = np.linalg.solve(M0, x)
    out[:] = z1
    return s


FUZZ_SPEC = {'n': 3, 'w_dup': False, 'A_dup': True, 'a_active': False, 'seed': 0, 'x_strided': False, 'A_fortran': False, 'f32': False}
