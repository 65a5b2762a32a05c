# llad fuzz regression (minimised by hand from k_ac187aef51589d76): np.min(w) where w[0] is the minimum
# ruff: noqa  (generated code)
import math

import numba
import numpy as np


@numba.njit
def kern(x, w, A, out, a):
    s = 0.0
    t0 = np.min(w)
    s += x[0] * t0
    return s + t0


FUZZ_SPEC = {'n': 3, 'w_dup': True, 'A_dup': False, 'a_active': False, 'seed': 0, 'x_strided': False, 'A_fortran': False, 'f32': False}
# fixed in 11f312f; was: "llad bug: np.min/np.max read the first element through a pointer spilled to a stack slot (a 0-d reshape view); the reloaded pointer has no shadow, so that element's derivative is silently dropped (see tests/test_bad_inputs.py::test_no_silently_wrong_derivative)"
