# llad fuzz regression (minimised by hand from b7f20fc9e531d698, BLAS grammar): float32 gemv of a temporary matrix, x @ A.copy()
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
XFAIL = "llad bug: float32 only: reverse mode through x @ A.copy() (a gemv of a temporary matrix) drops the derivative for A's last element; here <grad, v> = -1.7e37 against 2.319 from forward mode; repro /tmp/blas_bugs/f32_gemv_temporary_matrix.py"
