"""Alias scopes: the derivative tells LLVM which of its memory is disjoint (`!alias.scope` / `!noalias`)."""
from __future__ import annotations

import math

import numba
import numpy as np

import llad


@numba.njit
def scale(x, y):
    for i in range(x.shape[0]):
        y[i] = 2.0 * x[i]


@numba.njit
def sumsin(x):
    s = 0.0
    for i in range(x.shape[0]):
        s += math.sin(x[i])
    return s


def fwd_scale(depth="deriv"):
    x, y = np.linspace(0.1, 0.9, 8), np.zeros(8)
    return llad.dump(llad.Forward, scale, llad.Duplicated(x, np.ones(8)), llad.Duplicated(y, np.zeros(8)),
                     depth=depth)


# a float load or store without metadata after it
UNSCOPED = "{{(load double, ptr|store double [^,]+, ptr) [^!]*$}}"


def checks(text: str) -> str:
    return text.replace("UNSCOPED", UNSCOPED)


def test_forward_scopes_every_float_load_and_store(filecheck):
    filecheck(fwd_scale(), checks("""
        CHECK-LABEL: define i32 @"llad.fwd.{{[0-9a-f]+}}"(
        CHECK-NOT: UNSCOPED
        CHECK: load double, ptr {{.*}}!alias.scope !{{[0-9]+}}, !noalias !{{[0-9]+}}
        CHECK: load double, ptr {{%"?}}s0.{{.*}}!alias.scope !{{[0-9]+}}, !noalias !{{[0-9]+}}
        CHECK-NOT: UNSCOPED
        CHECK: store double {{.*}}!alias.scope !{{[0-9]+}}, !noalias !{{[0-9]+}}
        CHECK-NOT: UNSCOPED
        CHECK: {{^}}}
    """))


def test_primal_ir_has_no_scopes(filecheck):
    """Numba's IR, before llad: the same loads and stores without metadata (the companion of the CHECK-NOT
    above: the pattern does match an unscoped access)."""
    filecheck(fwd_scale(depth="llvm"), checks("""
        CHECK-NOT: !alias.scope
        CHECK: UNSCOPED
        CHECK-NOT: !alias.scope
    """))


def test_forward_tangent_and_primal_stores_are_in_disjoint_scopes(filecheck):
    """The primal store's !noalias list names the tangent store's scope, and the other way round."""
    filecheck(fwd_scale(), r"""
        CHECK-LABEL: define i32 @"llad.fwd.{{[0-9a-f]+}}"(
        CHECK-DAG: store double %[[V:[-.$\w]+]], ptr %{{[^,]+}},{{.*}} !alias.scope ![[P:\d+]], !noalias ![[PN:\d+]]
        CHECK-DAG: store double {{%"?}}d0.[[V]]{{"?}}, ptr {{%"?}}s0.{{.*}}!alias.scope ![[S:\d+]], !noalias ![[SN:\d+]]
        CHECK: {{^}}}
        CHECK-DAG: ![[P]] = !{![[PSCOPE:[0-9]+]]}
        CHECK-DAG: ![[S]] = !{![[SSCOPE:[0-9]+]]}
        CHECK-DAG: ![[PN]] = !{{[{].*}}![[SSCOPE]]{{[,}]}}
        CHECK-DAG: ![[SN]] = !{{[{].*}}![[PSCOPE]]{{[,}]}}
    """)


def test_reverse_scopes_the_forward_sweep_and_the_shadow_accumulation(filecheck):
    x = np.linspace(0.1, 0.9, 8)
    text = llad.dump(llad.Reverse, sumsin, llad.Duplicated(x, np.zeros(8)), depth="deriv")
    filecheck(text, """
        CHECK-LABEL: define i32 @"llad.rev.{{[0-9a-f]+}}"(
        CHECK: load double, ptr %{{[^,]+}},{{.*}} !alias.scope !{{[0-9]+}}, !noalias !{{[0-9]+}}
        CHECK: {{^}}rev.{{.*}}:
        CHECK: [[SX:%[-a-zA-Z$._0-9"]+]] = getelementptr double, ptr {{%"?}}s0.arg.x.4{{"?}}, i64
        CHECK: load double, ptr [[SX]],{{.*}} !alias.scope ![[S:[0-9]+]], !noalias ![[N:[0-9]+]]
        CHECK: store double %{{[^,]+}}, ptr [[SX]],{{.*}} !alias.scope ![[S]], !noalias ![[N]]
        CHECK: {{^}}}
    """)
