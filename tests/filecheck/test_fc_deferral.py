"""Reverse mode: a stencil's adjoints are deferred to a gather loop after the reverse loop."""
from __future__ import annotations

import numba
import numpy as np

import llad


@numba.njit
def heat(u, out):
    for i in range(1, u.shape[0] - 1):
        out[i] = u[i - 1] - 2.0 * u[i] + u[i + 1]


@numba.njit
def scale(u, out):
    for i in range(u.shape[0]):
        out[i] = 2.0 * u[i]


def rev(f, n=16):
    u = np.linspace(0.0, 1.0, n)
    return llad.dump(llad.Reverse, f, llad.Duplicated(u, np.zeros(n)), llad.Duplicated(np.zeros(n), np.ones(n)),
                     depth="deriv")


def test_stencil_reverse_has_a_gather_loop_into_the_shadow(filecheck):
    """The gather loop `dfl.<loop>.g0` loads the deferred adjoints and adds them to u's shadow."""
    filecheck(rev(heat), """
        CHECK-LABEL: define i32 @"llad.rev.{{[0-9a-f]+}}"(
        CHECK: {{^}}rev.{{.*}}:
        CHECK: {{^}}[[GATHER:dfl[.][0-9]+[.]g0]]:
        CHECK: load double
        CHECK: fadd {{.*}}double
        CHECK: [[SU:%[-a-zA-Z$._0-9"]+]] = getelementptr double, ptr {{%"?}}s0.arg.u.4{{"?}}, i64
        CHECK-NEXT: load double, ptr [[SU]]
        CHECK: store double %{{[-a-zA-Z$._0-9"]+}}, ptr [[SU]]
        CHECK: br i1 %{{.*}}, label %[[GATHER]], label
        CHECK: {{^}}}
    """)


def test_map_loop_reverse_accumulates_directly(filecheck):
    """out[i] = 2 u[i]: one load per array, nothing carried between iterations: no gather loop (the
    companion of the positive check above)."""
    filecheck(rev(scale), """
        CHECK-LABEL: define i32 @"llad.rev.{{[0-9a-f]+}}"(
        CHECK-NOT: {{^}}dfl.
        CHECK: {{^}}rev.{{.*}}:
        CHECK-NOT: {{^}}dfl.
        CHECK: getelementptr double, ptr {{%"?}}s0.arg.u.4
        CHECK-NOT: {{^}}dfl.
        CHECK: {{^}}}
    """)
