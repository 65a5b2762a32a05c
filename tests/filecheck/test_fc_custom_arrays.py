"""Custom rules with array arguments: the rule replaces the call in each sweep (llad/custom_arrays.py)."""
from __future__ import annotations

import numpy as np

import llad
from tests.test_custom_arrays import _system, map_loss, solve_loss


def test_reverse_calls_fwd_then_bwd_and_releases_the_residuals(filecheck):
    A, b = _system()
    text = llad.dump(llad.Reverse, solve_loss, llad.Active, llad.Duplicated(A, np.zeros_like(A)),
                     llad.Duplicated(b, np.zeros(4)), llad.Duplicated(np.zeros(4), np.zeros(4)), depth="deriv")
    # the forward sweep calls fwd instead of the function (no call of it is left), keeps the box of
    # residuals on the shadow stack and the tape; the reverse sweep hands it to bwd with the shadows of
    # A, b and out (arguments 0, 1, 2; no float argument), then releases it
    filecheck(text, """
        CHECK-LABEL: define i32 @"llad.rev.{{[0-9a-f]+}}"(
        CHECK-NOT: @llad.custom.call.
        CHECK: call {i32, ptr} @llad.custom.fwd.solve.{{[0-9a-f]+}}(
        CHECK: %[[BOX:[^ ]+]] = extractvalue {i32, ptr} %{{[^,]+}}, 1
        CHECK-NEXT: call void @llad.shadows.push(ptr %llad.shadows, ptr %[[BOX]])
        CHECK-LABEL: rev.entry:
        CHECK: %{{[^ ]+}} = call {double} @llad.custom.bwd.solve.{{[0-9a-f]+}}.s0_1_2.f(ptr %[[R:[^,]+]], double 0.0,
        CHECK-SAME: ptr %s0.arg.A.4
        CHECK-SAME: ptr %s0.arg.b.4
        CHECK-SAME: ptr %s0.arg.out.4
        CHECK-NEXT: call void @NRT_decref(ptr %[[R]])
        CHECK-NOT: @llad.custom.call.
        CHECK: {{^}}}
    """)


def test_forward_calls_the_jvp_rule_instead_of_the_function(filecheck):
    text = llad.dump(llad.Forward, map_loss, llad.Duplicated(np.ones(3), np.ones(3)), llad.Const(0.5),
                     llad.Duplicated(np.zeros(3), np.zeros(3)), depth="deriv")
    # x (argument 0) and out (argument 2) carry tangents, c does not; the rule's first float is the
    # result's tangent
    filecheck(text, """
        CHECK-LABEL: define i32 @"llad.fwd.{{[0-9a-f]+}}"(
        CHECK-NOT: @llad.custom.call.
        CHECK: %[[W:[^ ]+]] = call {i32, double} @llad.custom.jvp.scaled_squares.{{[0-9a-f]+}}.k1.t0_2(
        CHECK-SAME: ptr null, ptr null, i64 %arg.x.2, i64 %arg.x.3, ptr %s0.arg.x.4,
        CHECK: extractvalue {i32, double} %[[W]], 1
        CHECK-NOT: @llad.custom.call.
        CHECK: {{^}}}
    """)
