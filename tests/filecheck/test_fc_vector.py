"""Forward vector mode: BatchDuplicated tangents of a small array are interleaved, one <k x T> access each."""
from __future__ import annotations

import numba
import numpy as np

import llad


@numba.njit
def scale(x, y):
    for i in range(x.shape[0]):
        y[i] = 2.0 * x[i]


def batch(n, k=4, depth="deriv"):
    x, y = np.linspace(0.0, 1.0, n), np.zeros(n)
    return llad.dump(llad.Forward, scale, llad.BatchDuplicated(x, [np.ones(n)] * k),
                     llad.BatchDuplicated(y, [np.zeros(n)] * k), depth=depth)


def test_small_batch_is_interleaved(filecheck):
    filecheck(batch(8), """
        CHECK-LABEL: define i32 @"llad.fwd.{{[0-9a-f]+}}"(
        CHECK: {{%"?}}dv.{{[-a-zA-Z$._0-9]+}}{{"?}} = load <4 x double>, ptr {{%"?}}s0.
        CHECK: store <4 x double> {{%"?}}dv.{{[^,]+}}, ptr {{%"?}}s0.
        CHECK: {{^}}}
    """)


def test_interleaved_tangents_stay_vectors_after_o3(filecheck):
    filecheck(batch(8, depth="deriv-opt"), """
        CHECK-LABEL: define {{.*}}i32 @{{"?}}llad.fwd.{{[0-9a-f]+}}{{"?}}(
        CHECK: load <4 x double>, ptr
        CHECK: store <4 x double>
        CHECK: {{^}}}
    """)


def test_large_batch_is_split(filecheck):
    """k shadows of an array too large to transpose cheaply stay k separate arrays: scalar tangent
    accesses through s0 .. s3 (the companion of the vector checks above)."""
    filecheck(batch(200_000), """
        CHECK-LABEL: define i32 @"llad.fwd.{{[0-9a-f]+}}"(
        CHECK-NOT: load <4 x double>
        CHECK-NOT: store <4 x double>
        CHECK: load double, ptr {{%"?}}s3.
        CHECK-NOT: load <4 x double>
        CHECK-NOT: store <4 x double>
        CHECK: store double %{{[-a-zA-Z$._0-9"]+}}, ptr {{%"?}}s3.
        CHECK-NOT: load <4 x double>
        CHECK-NOT: store <4 x double>
        CHECK: {{^}}}
    """)
