"""Reverse mode: an array allocated in the function that carries derivatives gets a shadow allocation,
registered with `@llad.shadows.push` so that a failure frees it."""
from __future__ import annotations

import math

import numba
import numpy as np

import llad


@numba.njit
def scratch(x):
    a = np.empty(x.shape[0])
    s = 0.0
    for i in range(x.shape[0]):
        a[i] = math.sin(x[i])
    for i in range(x.shape[0]):
        s += a[i] * a[i]
    return s


@numba.njit
def sumsin(x):
    s = 0.0
    for i in range(x.shape[0]):
        s += math.sin(x[i])
    return s


def rev(f):
    x = np.linspace(0.1, 0.9, 8)
    return llad.dump(llad.Reverse, f, llad.Duplicated(x, np.zeros(8)), depth="deriv")


def test_active_allocation_gets_a_registered_shadow(filecheck):
    filecheck(rev(scratch), """
        CHECK-LABEL: define i32 @"llad.rev.{{[0-9a-f]+}}"(
        CHECK: %[[MI:[-a-zA-Z$._0-9]+]] = {{.*}}call ptr @NRT_MemInfo_alloc_aligned(
        CHECK: {{%"?}}s0.[[MI]]{{"?}} = {{.*}}call ptr @NRT_MemInfo_alloc_aligned(
        CHECK: call void @llad.shadows.push(ptr {{[^,]+}}, ptr {{%"?}}s0.[[MI]]{{"?}})
        CHECK: {{^}}}
    """)


def test_no_shadow_allocation_without_an_allocation(filecheck):
    filecheck(rev(sumsin), """
        CHECK-LABEL: define i32 @"llad.rev.{{[0-9a-f]+}}"(
        CHECK-NOT: @llad.shadows.push(
        CHECK-NOT: @NRT_MemInfo_alloc
        CHECK: {{^}}}
    """)
