# llad fuzz regression nested_cumsum_memset_mixed: found by the c10k campaign (chunk 100020, llad 8d08ea9, minimised): forward over reverse segfaulted in memset; the inner reverse derivative zeroes the shadow of a cumsum temporary read back from its tape, whose tangent may be null (mixed memory), and forward mode memset it unguarded (forward/tangent.py)
# ruff: noqa  (generated code)
import numba
import numpy as np


@numba.njit
def kern(x, w, A, out, a):
    s = 0.0
    for i0 in range(2):
        s += x[0] * x[0] * out[1]
        if np.cumsum(x[1:])[1] < A[(i0 + 1) % 3, 0]:
            break
    return s


FUZZ_SPEC = {'n': 3, 'w_dup': False, 'A_dup': True, 'a_active': False, 'seed': 2147483647, 'x_strided': False, 'A_fortran': False, 'f32': False}
