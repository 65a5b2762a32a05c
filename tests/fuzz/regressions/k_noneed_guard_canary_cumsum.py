# llad fuzz regression bce4f2897df220b8: the checker raised MemoryGuardError: llad.config.guard_memory: the derivative of kern (llad.fwd) wrote past the end of a shadow llad allocated (DuplicatedNoNeed dropped the canary of np.cumsum's shadow)
# ruff: noqa  (generated code)
import math

import numba
import numpy as np

from fuzz.helpers import hw, cv0


@numba.njit
def h0(p, q):
    return p * 1.5


@numba.njit
def h1(p, q):
    return p


@numba.njit
def kern(x, w, A, out, a):
    s = 0.0
    t0 = s
    t1 = np.argmax(out) + 0.0
    if (0.5 * (s) ** 2) < math.log(1.0 + 0.75 * 0.75):
        s += A[0, 0]
    if A[1, 0] > -0.8:
        w[3] = math.cos(w[2])
        if w[2] < np.cumsum(w)[2]:
            return s
    else:
        s += (out[2] / 0.5)
        for i0 in range(3):
            t1 = (float(i0) - 0.1)
            t1 = s
        for i0 in range(1):
            if float(i0) > 0.0:
                hw(x, i0, t0)
                hw(x, 4, max(x[2], float(i0)))
            else:
                hw(x, 1, w[3])
            s += np.cumsum(out)[3]
            if max(x[5 - 1 - i0], w[4]) < 0.75:
                return s
    s += 2.0
    s = s * np.max(out)
    s += cv0(0.5, (--0.5))
    return s + t0


FUZZ_SPEC = {'n': 5, 'w_dup': True, 'A_dup': True, 'a_active': False, 'seed': 602349, 'x_strided': True, 'A_fortran': False, 'f32': False}
# XFAIL = "llad bug: ..."   (set while the bug is open)
