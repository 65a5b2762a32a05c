"""GradBench's nested-AD evals (tools/gradbench/modules): particle and saddle in every (outer, inner)
mode pair, reverse over reverse included, give the published results; kmeans' Hessian diagonal from
llad.hvp is the closed form (2 x the number of points nearest each centroid)."""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tools.gradbench.modules import kmeans, particle, saddle  # noqa: E402


@pytest.mark.parametrize("variant", ["ff", "fr", "rf", "rr"])
def test_particle(variant):
    assert abs(particle.VARIANTS[variant](0.0) - 0.2071918746486116) < 1e-10


@pytest.mark.parametrize("variant", ["ff", "fr", "rf", "rr"])
def test_saddle(variant):
    r = saddle.VARIANTS[variant](np.array([1.0, 1.0]))
    np.testing.assert_allclose(r, 8.246324826140356e-06, rtol=1e-9)


def test_particle_outer_gradients_agree_with_differences():
    """The outer derivative of the path (through the inner derivative) against central differences."""
    path = particle.PATHS["r"]
    for w in (0.0, 0.3):
        fd = (path(w + 1e-6) - path(w - 1e-6)) / 2e-6
        for outer in "fr":
            for inner in "fr":
                g = particle._outer_gradient(outer, particle.PATHS[inner])(w)
                assert abs(g - fd) <= 1e-6 * max(1.0, abs(fd)), (outer, inner, g, fd)


def test_kmeans_hessian_diagonal_is_twice_the_cluster_sizes():
    rng = np.random.default_rng(3)
    p = rng.random((30, 3))
    c = p[-4:].copy()
    import llad
    diag = llad.hvp(kmeans.cost_of_centroids, c, np.ones_like(c), p)
    nearest = ((p[:, None] - c[None]) ** 2).sum(2).argmin(1)
    expected = np.repeat(2.0 * np.bincount(nearest, minlength=4)[:, None], 3, axis=1)
    np.testing.assert_allclose(diag, expected, rtol=1e-12)
