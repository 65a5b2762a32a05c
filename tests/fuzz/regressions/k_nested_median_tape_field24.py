# llad fuzz regression nested_median_tape_field24: found by the c10k campaign (chunk 100017, llad 8d08ea9, minimised): forward over reverse segfaulted; the inner reverse derivative keeps np.median's shadow data pointer at byte 24 of a tape record, which activity analysis took for a meminfo's data field (ir/callees.py), so the shadow array got no tangent
# ruff: noqa  (generated code)
import numba
import numpy as np


@numba.njit
def kern(x, w, A, out, a):
    s = 0.0
    for i0 in range(2):
        out[0] = np.median(out)
        s += out[0] * x[i0] * x[i0]
    return s * a


FUZZ_SPEC = {'n': 5, 'w_dup': False, 'A_dup': False, 'a_active': True, 'seed': 18684, 'x_strided': False, 'A_fortran': False, 'f32': False}
