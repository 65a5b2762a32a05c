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


@numba.njit
def ring(u, out):
    n = u.shape[0]
    for i in range(n):
        prev = u[i - 1] if i > 0 else u[n - 1]
        out[i] = 0.5 * u[i] + prev * prev


@numba.njit
def ring_by_index(u, idx, out):
    """The neighbour's index is loaded from memory: the flush loop could not recompute the address."""
    n = u.shape[0]
    for i in range(n):
        prev = u[idx[i]] if i > 0 else u[n - 1]
        out[i] = 0.5 * u[i] + prev * prev


def test_a_load_through_a_select_of_addresses_is_deferred(filecheck):
    """`u[i - 1] if i > 0 else u[n - 1]` is one load through a select of two addresses: its adjoints go to a
    scratch array and a flush loop `dfl.<loop>.<slot>` recomputes the select and adds them to u's shadow."""
    filecheck(rev(ring), """
        CHECK-LABEL: define i32 @"llad.rev.{{[0-9a-f]+}}"(
        CHECK: {{^}}rev.{{.*}}:
        CHECK: {{^}}[[FLUSH:dfl[.][0-9]+[.][0-9]+]]:
        CHECK: select i1 %{{.*}}, ptr %{{.*}}, ptr
        CHECK: br i1 %{{.*}}, label %[[FLUSH]], label
        CHECK: {{^}}}
    """)


def test_a_select_of_a_loaded_address_is_not_deferred(filecheck):
    """The companion: with the index loaded from an array, no flush loop is made."""
    u = np.linspace(0.0, 1.0, 16)
    idx = np.arange(-1, 15)
    text = llad.dump(llad.Reverse, ring_by_index, llad.Duplicated(u, np.zeros(16)), llad.Const(idx),
                     llad.Duplicated(np.zeros(16), np.ones(16)), depth="deriv")
    filecheck(text, """
        CHECK-LABEL: define i32 @"llad.rev.{{[0-9a-f]+}}"(
        CHECK-NOT: {{^}}dfl.{{[0-9]+}}.{{[0-9]+}}:
        CHECK: {{^}}}
    """)
