# llad fuzz regression b7f20fc9e531d698 (BLAS grammar, tools/fuzz.py --focus blas --seed 783): float32 reverse gradient ~1e29; the cause is y1 = x @ A.copy() (a temporary matrix in a float32 gemv)
# (fixed: the reverse of the copy into the temporary took float32 memory for doubles when only a BLAS call read it: reverse/adjoint.element_type)
# ruff: noqa  (generated code)
import math

import numba
import numpy as np

from fuzz.helpers import hw


@numba.njit
def kern(x, w, A, out, a):
    s = 0.0
    t0 = (3.0 * a)
    t1 = min(w[0], w[1])
    for i0 in range(3):
        y0 = A @ w[::-1]
        w[i0] += t1
        hw(x, 0, np.prod(w))
        w[0] += y0[0]
    y1 = x @ A.copy()
    x[2] = w[2]
    s += np.sum(y1 * x)
    s += math.log(1.0 + w[2] * w[2])
    return s + t0


FUZZ_SPEC = {'n': 3, 'w_dup': True, 'A_dup': True, 'a_active': True, 'seed': 2166523, 'x_strided': True, 'A_fortran': False, 'f32': True}
