# llad fuzz regression 9246006ba753ad79 (minimised): a final-value load re-read in the reverse sweep was marked !invariant.load; GVN merged it with an earlier load of the same element (reverse and forward disagreed)
# ruff: noqa  (generated code)
import math

import numba
import numpy as np

from fuzz.helpers import hw


@numba.njit
def kern(x, w, A, out, a):
    s = 0.0
    t0 = x[1]
    t1 = out[2]
    for i0 in range(1):
        c0 = 0
        while c0 < 3 and 1.5 > 0.0:
            w[0] += (np.sum(out) + (t1 * a))
            c0 += 1
        w[i0] = (t0 / w[1])
    else:
        hw(x, 2, (w[0] + 0.1))
    return s + t0


FUZZ_SPEC = {'n': 3, 'w_dup': True, 'A_dup': False, 'a_active': True, 'seed': 27398, 'x_strided': False, 'A_fortran': False, 'f32': False}
# XFAIL = "llad bug: ..."   (set while the bug is open)
