"""Skipping a loop's reverse when the adjoints leaving it are zero (llad/analysis/zeroskip.py): gradients
unchanged, and derivatives of such derivatives still right — forward over reverse asks the tangents of
the tested adjoints to be zero too, reverse over it never skips."""
from __future__ import annotations

import numba
import numpy as np
import pytest

import llad
from llad.analysis.zeroskip import mark_zero_tests
from llad.ir.parser import parse_function
from tests.filecheck.test_fc_zeroskip import nearest


def _kmeans_gradient(points, centers):
    """d/dc sum_i min_j |p_i - c_j|^2 = sum over the points nearest c_j of 2 (c_j - p_i)."""
    d = ((points[:, None, :] - centers[None, :, :]) ** 2).sum(-1)
    near = d.argmin(1)
    g = np.zeros_like(centers)
    np.add.at(g, near, 2.0 * (centers[near] - points))
    return g, np.bincount(near, minlength=centers.shape[0])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kmeans_gradient_and_hessian_vector_product_exact(seed):
    rng = np.random.default_rng(seed)
    p, c = rng.standard_normal((200, 3)), rng.standard_normal((6, 3))
    g = np.zeros_like(c)
    llad.autodiff(llad.Reverse, nearest, llad.Active, llad.Const(p), llad.Duplicated(c, g))
    exact, counts = _kmeans_gradient(p, c)
    np.testing.assert_allclose(g, exact, rtol=1e-12, atol=1e-12)
    # the Hessian is 2 n_j I on center j's block: H v is exact too
    v = rng.standard_normal(c.shape)
    hv = _hvp_nearest(p, c, v)
    np.testing.assert_allclose(hv, 2.0 * counts[:, None] * v, rtol=1e-12, atol=1e-12)


@numba.njit
def _grad_nearest(p, c, gc):
    llad.autodiff(llad.Reverse, nearest, llad.Active, llad.Const(p), llad.Duplicated(c, gc))


def _hvp_nearest(p, c, v):
    hv = np.zeros_like(c)
    llad.autodiff(llad.Forward, _grad_nearest, llad.Const(p), llad.Duplicated(c, v.copy()),
                  llad.Duplicated(np.zeros_like(c), hv))
    return hv


@numba.njit
def scaled_square(x, w):
    q = 0.0
    for m in range(x.shape[0]):
        q += x[m] * x[m]
    return w[0] * q


@numba.njit
def _grad_scaled(x, gx, w, gw):
    llad.autodiff(llad.Reverse, scaled_square, llad.Active, llad.Duplicated(x, gx), llad.Duplicated(w, gw))


def test_forward_over_reverse_where_the_adjoint_is_zero_but_its_tangent_is_not():
    """At w[0] = 0 the adjoint of the loop's sum q is zero, so the inner reverse skips the loop; d/dw of
    the gradient in x is 2x all the same: the outer forward mode must not skip (its tangent is 1)."""
    x, w = np.array([0.5, -1.0, 2.0]), np.array([0.0])
    dgx, dgw = np.zeros(3), np.zeros(1)
    llad.autodiff(llad.Forward, _grad_scaled, llad.Duplicated(x, np.zeros(3)), llad.Duplicated(np.zeros(3), dgx),
                  llad.Duplicated(w, np.array([1.0])), llad.Duplicated(np.zeros(1), dgw))
    np.testing.assert_allclose(dgx, 2.0 * x, rtol=1e-14)
    np.testing.assert_allclose(dgw, [0.0], atol=0)            # d/dw (dq/dw = q) along dw is 0 (q has no w)
    # and along x: d/dx of gx = 2 w0 x is 0 at w0 = 0, d/dx of gw = q is 2 x . dx
    dx = np.array([1.0, 2.0, -1.0])
    dgx, dgw = np.zeros(3), np.zeros(1)                     # the gradient accumulates: fresh tangents
    llad.autodiff(llad.Forward, _grad_scaled, llad.Duplicated(x, dx), llad.Duplicated(np.zeros(3), dgx),
                  llad.Duplicated(w, np.array([0.0])), llad.Duplicated(np.zeros(1), dgw))
    np.testing.assert_allclose(dgx, np.zeros(3), atol=0)
    np.testing.assert_allclose(dgw, [2.0 * x @ dx], rtol=1e-14)


_MARKED = """
define double @f(double %a, double %b) {
entry:
  %f = call double @llvm.arithmetic.fence.f64(double %a)
  %z = fcmp oeq double %f, 0.0
  %n = fcmp une double %f, 0.0
  %m = fmul double %f, %b
  %r = select i1 %z, double %b, double %m
  ret double %r
}
"""


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_mark_zero_tests_records_the_tests_and_drops_the_fences(reverse):
    fn = parse_function(_MARKED, "f")
    mark_zero_tests(fn, reverse)
    assert fn.zero_tests == {"z": "oeq", "n": "une"}
    ins = {i.result: i for b in fn.blocks for i in b.instructions}
    assert "f" not in ins and ins["m"].operands[0].text == "%a"
    # before a reverse derivative, the tests say "not zero" always: its reverse sweep never skips
    assert (ins["z"].predicate, ins["n"].predicate) == (("false", "true") if reverse else ("oeq", "une"))
