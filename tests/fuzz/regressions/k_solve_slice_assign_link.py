# llad fuzz regression (minimised by hand from 8dcb446c38fc31d5 / d36d48deadd7afd8, BLAS grammar): np.linalg.solve and a whole-slice assignment in one kernel
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
XFAIL = "llad bug: np.linalg.solve plus a slice assignment `out[:] = ...` in one function: RuntimeError 'Linking globals named __excinfo_unwrap_args<hash>: symbol multiply defined!' from llad/frontend.py build_primal (module.link_in); standalone repro /tmp/blas_bugs/link_excinfo.py"
