"""Reverse mode: a loop that stores nothing is skipped in the reverse sweep when the adjoints leaving it are
zero (analysis/zeroskip.py); the test reads each adjoint through `llvm.arithmetic.fence`."""
from __future__ import annotations

import numba
import numpy as np

import llad
from tests.realworld.kernels import kmeans_energy

# k-means: each point's distance loop over the centres; only the nearest one gets an adjoint
nearest = kmeans_energy


@numba.njit
def writes(x, out):
    """The inner loop stores into `out`: its reverse reads out's shadow, never skipped."""
    s = 0.0
    for i in range(x.shape[0]):
        t = 0.0
        for m in range(x.shape[0]):
            out[m] = x[m] * x[i]
            t += out[m]
        s += t * t
    return s


def _rev(f, *args):
    return llad.dump(llad.Reverse, f, llad.Active, *args, depth="deriv")


def test_the_distance_loop_reverse_is_skipped_when_its_adjoint_is_zero(filecheck):
    p, c = np.ones((5, 3)), np.zeros((4, 3))
    filecheck(_rev(nearest, llad.Const(p), llad.Duplicated(c, np.zeros_like(c))), """
        CHECK-LABEL: define i32 @"llad.rev.{{[0-9a-f]+}}"(
        CHECK: [[F:%[-a-zA-Z$._0-9"]+]] = call double @llvm.arithmetic.fence.f64(double
        CHECK-NEXT: [[Z:%[-a-zA-Z$._0-9"]+]] = fcmp oeq double [[F]], 0.0
        CHECK-NEXT: br i1 [[Z]], label %[[SKIP:[-a-zA-Z$._0-9]+[.]zeroskip]], label %rev.
        CHECK: {{^}}[[SKIP]]:
        CHECK-NEXT: load i64, ptr %g0r.
        CHECK-NEXT: store i64 %{{.*}}, ptr %ctr.
        CHECK-NEXT: br label %rev.
        CHECK: {{^}}}
    """)


def test_a_loop_that_stores_is_never_skipped(filecheck):
    x = np.linspace(0.1, 1.0, 4)
    filecheck(_rev(writes, llad.Duplicated(x, np.zeros(4)), llad.Duplicated(np.zeros(4), np.zeros(4))), """
        CHECK-LABEL: define i32 @"llad.rev.{{[0-9a-f]+}}"(
        CHECK-NOT: zeroskip
        CHECK-NOT: llvm.arithmetic.fence
        CHECK: {{^}}}
    """)
