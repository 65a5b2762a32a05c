"""BLAS rules: the reverse of a matrix product is BLAS calls reading the inputs in place, and an input
the function overwrites later is copied at the call for the reverse sweep (then released)."""
from __future__ import annotations

import numba
import numpy as np

import llad


@numba.njit
def weighted_product(A, B, W):
    return np.sum(W * (A @ B))


@numba.njit
def written_after(A, x):
    y = A @ x
    A[0, 0] = 5.0 * A[0, 0]
    return np.sum(y * y) + A[0, 0]


def _rng(seed):
    return np.random.default_rng(seed)


def test_reverse_of_a_matrix_product_is_two_gemms_and_no_loop(filecheck):
    r = _rng(4)
    A, B, W = r.random((3, 4)), r.random((4, 2)), r.random((3, 2))
    text = llad.dump(llad.Reverse, weighted_product, llad.Active, llad.Duplicated(A, np.zeros_like(A)),
                     llad.Duplicated(B, np.zeros_like(B)), llad.Const(W), depth="deriv")
    # the reverse of the gemm: Ā += C̄ Bᵀ and B̄ += Aᵀ C̄, read in place (A and B are never written), then
    # C̄ zeroed (beta = 0).  Numba computes a C-order product as Cᵀ = Bᵀ Aᵀ: B is gemm's first matrix.
    filecheck(text, """
        CHECK-LABEL: define i32 @"llad.rev.{{[0-9a-f]+}}"(
        CHECK: call i32 @llad.blas.gemm.f64(
        CHECK-NOT: llad.blasrt.copy
        CHECK: call void @llad.blasrt.gemm.f64(i8 110, i8 116, {{.*}}, ptr %arg.A.4, {{.*}}, ptr %s0.arg.B.4,
        CHECK-NEXT: call void @llad.blasrt.gemm.f64(i8 116, i8 110, {{.*}}, ptr %arg.B.4, {{.*}}, ptr %s0.arg.A.4,
        CHECK-NEXT: call void @llad.blasrt.scale.f64(
        CHECK: {{^}}}
    """)


def test_an_input_written_later_is_copied_for_the_reverse_sweep(filecheck):
    r = _rng(5)
    A, x = r.random((3, 3)), r.random(3)
    text = llad.dump(llad.Reverse, written_after, llad.Active, llad.Duplicated(A, np.zeros_like(A)),
                     llad.Duplicated(x, np.zeros_like(x)), depth="deriv")
    filecheck(text, """
        CHECK-LABEL: define i32 @"llad.rev.{{[0-9a-f]+}}"(
        CHECK: call i32 @llad.blas.gemv.f64(
        CHECK: call ptr @llad.blasrt.copy(ptr %arg.A.4,
        CHECK: call void @NRT_decref(
        CHECK: {{^}}}
    """)


@numba.njit
def solve_cubed(A, b):
    return np.sum(np.linalg.solve(A, b) ** 3)


@numba.njit
def solve_gradient(A, gA, b):
    llad.autodiff(llad.Reverse, solve_cubed, llad.Active, llad.Duplicated(A, gA), llad.Const(b))


def test_the_factors_of_a_solve_get_a_tangent_only_where_something_reads_them(filecheck):
    """np.linalg.solve discards gesv's LU factors: plain forward mode leaves their tangent alone; forward
    over reverse, where the gradient's tape keeps the factors for its getrs, differentiates them (getrf's
    tangent) and routes the gradient's own LAPACK calls (getrs) into llad's form."""
    r = _rng(6)
    A, b = r.random((3, 3)) + 3 * np.eye(3), r.random(3)
    plain = llad.dump(llad.Forward, solve_cubed, llad.Duplicated(A, np.ones_like(A)), llad.Const(b), depth="deriv")
    checks = """
        CHECK-LABEL: define i32 @"llad.fwd.{{[0-9a-f]+}}"(
        CHECK: call i32 @llad.blas.gesv.f64(
        CHECK-ABSENT: call void @llad.blasrt.getrf_tangent.f64(
        CHECK: call void @llad.blasrt.getrs.f64(i8 78,
        NESTED
        CHECK: {{^}}}
    """
    filecheck(plain, checks.replace("ABSENT", "NOT").replace("NESTED", ""))
    nested = llad.dump(llad.Forward, solve_gradient, llad.Duplicated(A, np.ones_like(A)),
                       llad.Duplicated(np.zeros_like(A), np.zeros_like(A)), llad.Const(b), depth="deriv")
    routed = "CHECK: call i32 @llad.blas.getrs.f64(i8 84,"
    filecheck(nested, checks.replace("CHECK-ABSENT", "CHECK").replace("NESTED", routed))

