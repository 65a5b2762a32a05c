# llad fuzz regression 58b08aa3624337cd: llad.ReverseWithPrimal raised UnsupportedInstructionError: cannot differentiate pointer %.372 at /tmp/llad_fuzz_27086_z8f0ip2d/llad_fuzz_58b08aa3624337cd.py:8 (in kern): it mixes memory with and without a derivative
# ruff: noqa  (generated code)
import math

import numba
import numpy as np



@numba.njit
def kern(x, w, A, out, a):
    s = 0.0
    t0 = math.sqrt(w[2] * w[2] + 1.0)
    t0 = max(s, 0.75)
    c0 = 0
    while c0 < 2 and out[3] > -0.3:
        s += (x[4 - 1 - c0] + s)
        c0 += 1
    t0 = max(w[3], w[3])
    c1 = 0
    while c1 < 2 and w[0] > 0.0:
        t0 = x[4 - 1 - c1]
        c1 += 1
    return s + t0


FUZZ_SPEC = {'n': 4, 'w_dup': False, 'A_dup': False, 'a_active': False, 'seed': 9562, 'x_strided': False, 'A_fortran': False, 'f32': False}
# failed at 11f312f, fixed by 7cb9461 (null shadows for inactive memory meeting active memory); was: "llad.ReverseWithPrimal raised UnsupportedInstructionError: cannot differentiate pointer %.372 at /tmp/llad_fuzz_27086_z8f0ip2d/llad_fuzz_58b08aa3624337cd.py:8 (in kern): it mixes memory with and without a derivative"
