"""A returned array: forward mode writes its shadow's struct into the shadow return slot (the tangent
array), or releases the shadow when the return is Const."""
from __future__ import annotations

import numba
import numpy as np

import llad


@numba.njit
def fresh(x):
    return np.sin(x) * x


def args():
    return (llad.Duplicated(np.linspace(0.1, 1, 4), np.ones(4)),)


def test_tangent_array_has_the_shadow_meminfo_and_data(filecheck):
    text = llad.dump(llad.Forward, fresh, *args(), depth="deriv")
    filecheck(text, """
        CHECK-LABEL: define i32 @"llad.fwd.{{[0-9a-f]+}}"(
        CHECK: store ptr %[[MI:[-a-zA-Z$._0-9]+]], ptr %retptr,
        CHECK-NEXT: store ptr {{%"?}}s0.[[MI]]{{"?}}, ptr {{%"?}}s0.retptr{{"?}},
        CHECK-NOT: NRT_decref(ptr {{%"?}}s0.[[MI]]
        CHECK: store ptr %[[DATA:[-a-zA-Z$._0-9]+]], ptr %[[F4:[-a-zA-Z$._0-9]+]],
        CHECK-NEXT: store ptr {{%"?}}s0.[[DATA]]{{"?}}, ptr {{%"?}}s0.[[F4]]{{"?}},
        CHECK: {{^}}}
    """)


def test_const_return_releases_the_shadow(filecheck):
    text = llad.dump(llad.Forward, fresh, llad.Const, *args(), depth="deriv")
    filecheck(text, """
        CHECK-LABEL: define i32 @"llad.fwd.{{[0-9a-f]+}}"(
        CHECK-NOT: s0.retptr
        CHECK: store ptr %[[MI:[-a-zA-Z$._0-9]+]], ptr %retptr,
        CHECK-NEXT: call void @NRT_decref(ptr {{%"?}}s0.[[MI]]{{"?}})
        CHECK: {{^}}}
    """)
