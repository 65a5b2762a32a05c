"""Forward mode: each primal store of an active value has exactly one shadow store of its tangent."""
from __future__ import annotations

import numba
import numpy as np

import llad


@numba.njit
def scale(x, y):
    for i in range(x.shape[0]):
        y[i] = 2.0 * x[i]


@numba.njit
def two_outputs(x, y, z):
    for i in range(x.shape[0]):
        y[i] = 2.0 * x[i]
        z[i] = x[i] * x[i]


def dup(n, seed):
    return llad.Duplicated(np.random.default_rng(seed).random(n), np.zeros(n))


def test_one_shadow_store_per_primal_store(filecheck):
    text = llad.dump(llad.Forward, scale, dup(4, 0), dup(4, 1), depth="deriv")
    # the store of %v through %p and the store of %"d0.v" through %"s0.p", and no other float store
    filecheck(text, """
        CHECK-LABEL: define i32 @"llad.fwd.{{[0-9a-f]+}}"(
        CHECK-NOT: store double
        CHECK-DAG: store double %[[V:[-a-zA-Z$._0-9]+]], ptr %[[P:[-a-zA-Z$._0-9]+]],
        CHECK-DAG: store double {{%"?}}d0.[[V]]{{"?}}, ptr {{%"?}}s0.[[P]]{{"?}},
        CHECK-NOT: store double
        CHECK: {{^}}}
    """)


def test_each_of_two_primal_stores_has_its_shadow_store(filecheck):
    text = llad.dump(llad.Forward, two_outputs, dup(4, 0), dup(4, 1), dup(4, 2), depth="deriv")
    filecheck(text, """
        CHECK-LABEL: define i32 @"llad.fwd.{{[0-9a-f]+}}"(
        CHECK-NOT: store double
        CHECK-DAG: store double %[[V1:[-a-zA-Z$._0-9]+]], ptr %[[P1:[-a-zA-Z$._0-9]+]],
        CHECK-DAG: store double {{%"?}}d0.[[V1]]{{"?}}, ptr {{%"?}}s0.[[P1]]{{"?}},
        CHECK-DAG: store double %[[V2:[-a-zA-Z$._0-9]+]], ptr %[[P2:[-a-zA-Z$._0-9]+]],
        CHECK-DAG: store double {{%"?}}d0.[[V2]]{{"?}}, ptr {{%"?}}s0.[[P2]]{{"?}},
        CHECK-NOT: store double
        CHECK: {{^}}}
    """)

