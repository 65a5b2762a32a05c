# llad fuzz regression (minimised from k_e50064cd02feb6e4, found by tools/fuzz.py): an @njit helper called
# ruff: noqa  (generated code)
# on the argument x in one branch and on an allocated array with a derivative in the other; LLVM sinks the
# two NRT_decref calls into one, on a phi of the two meminfo pointers
import math

import numba
import numpy as np

from fuzz.helpers import hr, hw


@numba.njit
def kern(x, w, A, out, a):
    s = w[0]
    tmp = np.ones(3)
    if w[1] > 0.0:
        hw(x, 2, 1.0)
    else:
        hw(tmp, 2, s)
    return s + tmp[2]


FUZZ_SPEC = {'n': 3, 'w_dup': True, 'A_dup': False, 'a_active': False, 'seed': 1, 'x_strided': False, 'A_fortran': False, 'f32': False}
# fixed by 7cb9461 (null shadows for a meminfo phi); was: "llad bug: UnsupportedInstructionError 'phi ptr [ %<alloc meminfo>, ... ], [ %arg.x.0, ... ] mixes memory with a derivative and memory without one': the phi only feeds NRT_decref; the meminfo of an argument has no shadow pointer, so shadow.shadow_of should give it null (NRT_decref(null) is a no-op) instead of raising"
