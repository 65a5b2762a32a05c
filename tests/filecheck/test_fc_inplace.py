"""In-place updates (analysis/inplace.py): `y[i] += e` reads its adjoint and leaves the shadow as it is;
with a store in between the load and the store, the reverse zeroes the shadow and adds the adjoint back."""
from __future__ import annotations

import numpy as np

import llad
from tests.test_inplace import axpy_inplace, written_between

Y, X = np.linspace(0.5, 2.0, 4), np.linspace(-1.0, 1.0, 4)

_HEAD = ('CHECK-LABEL: define i32 @"llad.rev.{{[0-9a-f]+}}"(\n'
         "CHECK: {{^}}rev.B{{[0-9]+}}.if:\n"
         'CHECK: [[A:%[-a-zA-Z$._0-9]+]] = getelementptr double, ptr {{%"?}}s0.arg.y.4\n'
         "CHECK-NEXT: load double, ptr [[A]],\n")


def test_in_place_update_keeps_the_shadow(filecheck):
    text = llad.dump(llad.Reverse, axpy_inplace, llad.Active, llad.Duplicated(Y.copy(), np.zeros(4)),
                     llad.Duplicated(X.copy(), np.zeros(4)), depth="deriv")
    filecheck(text, _HEAD + "CHECK-NOT: store double {{.*}}, ptr [[A]],\nCHECK: {{^}}rev.B{{[0-9]+}}.if.from\n")


def test_a_store_in_between_zeroes_and_adds_back(filecheck):
    text = llad.dump(llad.Reverse, written_between, llad.Active, llad.Duplicated(Y.copy(), np.zeros(4)),
                     llad.Duplicated(X.copy(), np.zeros(4)), llad.Duplicated(np.zeros(4), np.zeros(4)), depth="deriv")
    filecheck(text, _HEAD + "CHECK-NEXT: store double 0.0, ptr [[A]],\n"
                            "CHECK: store double {{%[-a-zA-Z$._0-9]+}}, ptr [[A]],\n"
                            "CHECK: {{^}}rev.B{{[0-9]+}}.if.from\n")
