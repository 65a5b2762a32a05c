# llad fuzz regression (minimised by hand from b7f20fc9e531d698, BLAS grammar): float32 gemv of a temporary matrix, x @ A.copy()
# (fixed: the reverse of the copy into the temporary took float32 memory for doubles when only a BLAS call read it: reverse/adjoint.element_type)
# ruff: noqa  (generated code)
import math

import numba
import numpy as np

from fuzz.helpers import hw


@numba.njit
def kern(x, w, A, out, a):
    s = 0.0
    y1 = x @ A.copy()
    x[2] = w[2]
    s += np.sum(y1 * x)
    return s


FUZZ_SPEC = {'n': 3, 'w_dup': True, 'A_dup': True, 'a_active': True, 'seed': 2166523, 'x_strided': False, 'A_fortran': False, 'f32': True}
