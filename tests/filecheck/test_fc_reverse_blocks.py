"""The reverse sweep's blocks `rev.<block>`: in reverse mode, one per primal block; none in forward mode."""
from __future__ import annotations

import math

import numba
import numpy as np

import llad


@numba.njit
def sumsin(x):
    s = 0.0
    for i in range(x.shape[0]):
        s += math.sin(x[i])
    return s


def dump(mode, shadow):
    x = np.linspace(0.1, 0.9, 8)
    return llad.dump(mode, sumsin, llad.Duplicated(x, shadow), depth="deriv")


def test_reverse_mode_has_a_reverse_block_per_primal_block(filecheck):
    filecheck(dump(llad.Reverse, np.zeros(8)), """
        CHECK-LABEL: define i32 @"llad.rev.{{[0-9a-f]+}}"(
        CHECK-DAG: {{^}}entry:
        CHECK-DAG: {{^}}[[LOOP:B[0-9]+[.]if]]:
        CHECK-DAG: {{^}}rev.entry:
        CHECK-DAG: {{^}}rev.[[LOOP]]:
        CHECK-DAG: br {{.*}}label {{%"?}}rev.
        CHECK: {{^}}}
    """)


def test_forward_mode_has_no_reverse_blocks(filecheck):
    filecheck(dump(llad.Forward, np.ones(8)), """
        CHECK-LABEL: define i32 @"llad.fwd.{{[0-9a-f]+}}"(
        CHECK-NOT: {{^}}rev.
        CHECK-NOT: label {{%"?}}rev.
        CHECK: {{^}}entry:
        CHECK-NOT: {{^}}rev.
        CHECK-NOT: label {{%"?}}rev.
        CHECK: {{^}}}
    """)
