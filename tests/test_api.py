"""The public API: return shapes, caching, accumulation, shadows with other layouts, vector mode."""
from __future__ import annotations

import math

import numba
import numpy as np
import pytest

import llad
from llad import api


@numba.njit
def weighted(a, x, n, c):
    s = 0.0
    for i in range(n):
        s += a * math.sin(x[i]) * c[i]
    return s


@numba.njit
def scale_into(x, y, k):
    for i in range(x.shape[0]):
        y[i] = k * x[i] * x[i]


def grad_weighted(a, x, n, c):
    return (np.sum(np.sin(x[:n]) * c[:n]), np.concatenate([a * np.cos(x[:n]) * c[:n], np.zeros(len(x) - n)]))


@pytest.fixture
def data():
    rng = np.random.default_rng(3)
    return rng.random(6), rng.random(6)


def test_reverse_shapes_and_values(data):
    x, c = data
    dx = np.zeros_like(x)
    res = llad.autodiff(llad.Reverse, weighted, llad.Active, llad.Active(1.5), llad.Duplicated(x, dx), 5,
                        llad.Const(c))
    assert len(res) == 1 and len(res[0]) == 4
    da, ddx, dn, dc = res[0]
    ga, gx = grad_weighted(1.5, x, 5, c)
    assert da == pytest.approx(ga, rel=1e-12)
    assert ddx is None and dn is None and dc is None
    np.testing.assert_allclose(dx, gx, rtol=1e-12)


def test_reverse_with_primal_returns_f(data):
    x, c = data
    derivs, primal = llad.autodiff(llad.ReverseWithPrimal, weighted, llad.Active(1.5),
                                   llad.Duplicated(x, np.zeros(6)), 6, c)
    assert primal == pytest.approx(weighted(1.5, x, 6, c), rel=1e-14)
    assert derivs[0] == pytest.approx(grad_weighted(1.5, x, 6, c)[0])


def test_shadows_accumulate(data):
    x, c = data
    dx = np.zeros_like(x)
    for _ in range(2):
        llad.autodiff(llad.Reverse, weighted, 1.5, llad.Duplicated(x, dx), 6, c)
    np.testing.assert_allclose(dx, 2 * grad_weighted(1.5, x, 6, c)[1], rtol=1e-12)


def test_forward_shapes(data):
    x, c = data
    v = np.linspace(0, 1, 6)
    (t,) = llad.autodiff(llad.Forward, weighted, 1.5, llad.Duplicated(x, v), 6, c)
    t2, p = llad.autodiff(llad.ForwardWithPrimal, weighted, 1.5, llad.Duplicated(x, v), 6, c)
    assert t == pytest.approx(float(grad_weighted(1.5, x, 6, c)[1] @ v), rel=1e-12) and t2 == t
    assert p == pytest.approx(weighted(1.5, x, 6, c))
    (none,) = llad.autodiff(llad.Forward, weighted, llad.Const, 1.5, llad.Duplicated(x, v), 6, c)
    assert none is None


def test_batch_equals_single_directions(data):
    x, c = data
    dirs = tuple(np.random.default_rng(i).random(6) for i in range(4))
    (ts,) = llad.autodiff(llad.Forward, weighted, 1.5, llad.BatchDuplicated(x, dirs), 6, c)
    assert isinstance(ts, tuple) and len(ts) == 4
    for t, v in zip(ts, dirs):
        (single,) = llad.autodiff(llad.Forward, weighted, 1.5, llad.Duplicated(x, v), 6, c)
        assert t == pytest.approx(single, rel=1e-14)


def test_output_array_forward_and_reverse(data):
    x, _ = data
    y, dy = np.zeros(6), np.zeros(6)
    v = np.ones(6)
    (t,) = llad.autodiff(llad.Forward, scale_into, llad.Duplicated(x, v), llad.Duplicated(y, dy), 3.0)
    assert t is None
    np.testing.assert_allclose(dy, 6.0 * x, rtol=1e-14)
    # reverse: seed the output's shadow with a cotangent; afterwards it is consumed (zeroed)
    gx, dy = np.zeros(6), np.arange(6.0)
    llad.autodiff(llad.Reverse, scale_into, llad.Duplicated(x, gx), llad.Duplicated(y, dy), 3.0)
    np.testing.assert_allclose(gx, 6.0 * x * np.arange(6.0), rtol=1e-14)
    assert not dy.any()


def test_shadow_with_other_layout():
    @numba.njit
    def frob(A):
        s = 0.0
        for i in range(A.shape[0]):
            for j in range(A.shape[1]):
                s += A[i, j] * A[i, j] * (i + 1)
        return s

    base = np.random.default_rng(0).random((4, 5))
    view = base.T                                   # F-ordered view
    shadow = np.zeros((5, 4))                       # C-ordered shadow
    llad.autodiff(llad.Reverse, frob, llad.Duplicated(view, shadow))
    expected = 2 * view * (np.arange(5) + 1)[:, None]
    np.testing.assert_allclose(shadow, expected, rtol=1e-14)
    strided = np.random.default_rng(1).random(10)[::2]
    gs = np.zeros(5)
    llad.autodiff(llad.Reverse, frob, llad.Duplicated(strided.reshape(5, 1)[:, :], gs.reshape(5, 1)))
    np.testing.assert_allclose(gs, 2 * strided * (np.arange(5) + 1), rtol=1e-14)


def test_second_call_reuses_the_compiled_derivative(data):
    x, c = data
    llad.autodiff(llad.Reverse, weighted, 1.5, llad.Duplicated(x, np.zeros(6)), 6, c)
    before = api.compile_count["n"]
    for _ in range(3):
        llad.autodiff(llad.Reverse, weighted, 1.5, llad.Duplicated(x, np.zeros(6)), 6, c)
    assert api.compile_count["n"] == before


def test_plain_python_function_is_jitted():
    def plain(x):
        return x[0] * x[1]
    x = np.array([2.0, 3.0])
    g = np.zeros(2)
    llad.autodiff(llad.Reverse, plain, llad.Duplicated(x, g))
    np.testing.assert_allclose(g, [3.0, 2.0])


def test_tuple_of_scalars_as_const():
    @numba.njit
    def f(x, t):
        return x[0] * t[0] + x[1] * t[1]
    x = np.array([1.0, 2.0])
    g = np.zeros(2)
    llad.autodiff(llad.Reverse, f, llad.Duplicated(x, g), (3.0, 4.0))
    np.testing.assert_allclose(g, [3.0, 4.0])


def test_aliasing_a_written_array_falls_back_to_keeping_loads():
    @numba.njit
    def f(x, y):
        s = 0.0
        for i in range(x.shape[0]):
            y[i] = 2.0 * y[i]
            s += x[i] * x[i]
        return s
    buf = np.array([1.0, 2.0, 3.0])
    g = np.zeros(3)
    # x and y are the same memory: x[i] is read after y[i] doubled it
    llad.autodiff(llad.Reverse, f, llad.Duplicated(buf, g), llad.Const(buf))
    np.testing.assert_allclose(g, 2 * np.array([2.0, 4.0, 6.0]))


def test_select_between_duplicated_and_const_arrays():
    """LLVM merges `x[i] if c else w[i]` into one load through a select of pointers: the Const array's
    side has a null shadow (tangent 0, adjoint dropped)."""
    @numba.njit
    def pick(x, w, c):
        s = 0.0
        for i in range(x.shape[0]):
            t = x[i] if c[i] > 0.5 else w[i]
            s += t * t
        return s

    rng = np.random.default_rng(5)
    x, w, c = rng.random(8), rng.random(8), rng.random(8)
    g = np.zeros(8)
    llad.autodiff(llad.Reverse, pick, llad.Duplicated(x, g), w, c)
    np.testing.assert_allclose(g, np.where(c > 0.5, 2 * x, 0.0), rtol=1e-14)
    v = rng.random(8)
    (t,) = llad.autodiff(llad.Forward, pick, llad.Duplicated(x, v), w, c)
    assert t == pytest.approx(float(g @ v), rel=1e-12)


@numba.njit
def _copy_of_either(x, c, flag):
    y = x if flag > 0 else c
    z = y.copy()
    return np.sum(z * z) + x[0]


@pytest.mark.parametrize("flag", [1, 0])
def test_copy_of_a_duplicated_or_const_array(flag):
    """`(x if flag else c).copy()` is a memcpy from a select of pointers: where the Const side is taken, its
    shadow is null and the copy's derivative touches nothing there (reverse mode dereferenced it)."""
    x, c = np.arange(1.0, 5.0), np.ones(4)
    expect = (2 * x if flag else np.zeros(4)) + np.eye(4)[0]
    g = np.zeros(4)
    llad.autodiff(llad.Reverse, _copy_of_either, llad.Active, llad.Duplicated(x.copy(), g), llad.Const(c),
                  llad.Const(flag))
    np.testing.assert_allclose(g, expect, rtol=1e-14)
    v = np.array([0.5, -1.0, 2.0, 0.25])
    (t,) = llad.autodiff(llad.Forward, _copy_of_either, llad.Duplicated(x.copy(), v), llad.Const(c), llad.Const(flag))
    assert t == pytest.approx(float(expect @ v), rel=1e-14)
    vs = (v, 2 * v)
    (ts,) = llad.autodiff(llad.Forward, _copy_of_either, llad.BatchDuplicated(x.copy(), vs), llad.Const(c),
                          llad.Const(flag))
    np.testing.assert_allclose(ts, [expect @ v, 2 * (expect @ v)], rtol=1e-14)


_COPYING = {                      # NumPy functions whose Numba lowering copies their argument (a memcpy)
    "sort": lambda y: np.sort(y)[1] * y[0],
    "reversed-copy": lambda y: np.sum(y[::-1].copy() * y),
    "concatenate": lambda y: np.sum(np.concatenate((y, y)) ** 3),
    "median": lambda y: np.median(y) ** 2,
}


@pytest.mark.parametrize("name", sorted(_COPYING))
def test_numpy_copies_of_a_duplicated_or_const_array(name):
    """np.sort(x if flag else c) segfaulted in reverse mode where the Const side was taken: every mode
    against central differences, on both sides."""
    inner = numba.njit(_COPYING[name])

    @numba.njit
    def f(x, c, flag):
        return inner(x if flag > 0 else c) + x[0] * x[1]

    rng = np.random.default_rng(3)
    x, c, v = rng.uniform(0.3, 1.2, 4), rng.uniform(0.3, 1.2, 4), rng.standard_normal(4)
    for flag in (1, 0):
        g = np.zeros(4)
        llad.autodiff(llad.Reverse, f, llad.Active, llad.Duplicated(x.copy(), g), llad.Const(c), llad.Const(flag))
        (t,) = llad.autodiff(llad.Forward, f, llad.Duplicated(x.copy(), v), llad.Const(c), llad.Const(flag))
        fd = (f(x + 1e-6 * v, c, flag) - f(x - 1e-6 * v, c, flag)) / 2e-6
        assert t == pytest.approx(float(g @ v), rel=1e-12)
        assert t == pytest.approx(fd, rel=1e-6, abs=1e-8)


@numba.njit(debug=True)
def _sum_sin_debug(x, a):
    s = 0.0
    for i in range(x.shape[0]):
        s += math.sin(a * x[i]) * x[i]
    return s


def test_function_compiled_with_debug_info():
    """`njit(debug=True)` leaves debug records (`#dbg_value`) in the IR: llad ignores them."""
    x = np.linspace(0.1, 1.0, 7)
    dx = np.zeros_like(x)
    (grads,) = llad.autodiff(llad.Reverse, _sum_sin_debug, llad.Active, llad.Duplicated(x, dx), llad.Active(1.3))
    np.testing.assert_allclose(dx, np.sin(1.3 * x) + 1.3 * x * np.cos(1.3 * x), rtol=1e-12)
    np.testing.assert_allclose(grads[1], np.sum(x * x * np.cos(1.3 * x)), rtol=1e-12)
    (t,) = llad.autodiff(llad.Forward, _sum_sin_debug, llad.Duplicated(x, np.ones_like(x)), llad.Const(1.3))
    assert t == pytest.approx(dx.sum(), rel=1e-12)


# --- vector mode: interleaved and split shadow layouts ------------------------------------------------
@numba.njit
def _smooth_into(x, y, w):
    """Reads x, writes y, and keeps a scratch array (an interleaved allocation)."""
    n = x.shape[0]
    t = np.empty(n)
    for i in range(n):
        t[i] = math.sin(x[i]) * w[i]
    s = 0.0
    for i in range(1, n - 1):
        y[i] = t[i - 1] + 2.0 * t[i] + t[i + 1]
        s += y[i] * x[i]
    return s


@numba.njit
def _pick_rows(a, b, flip):
    """One pointer that is either a's or b's data: their shadows must share a layout."""
    s = 0.0
    for i in range(a.shape[0]):
        src = a if (flip and i % 2 == 0) else b
        s += src[i] * src[i] * a[i]
    return s


def _batch_vs_singles(f, arrays, dup, k, rng, const=()):
    """Batch call (twice: slow then hot path) against k single-direction calls, outputs included."""
    dirs = [[rng.standard_normal(arrays[i].shape) if i in dup else None for i in range(len(arrays))]
            for _ in range(k)]
    for _ in range(2):
        shadows = {i: tuple(dirs[j][i].copy() for j in range(k)) for i in dup}
        args = [llad.BatchDuplicated(arrays[i], shadows[i]) if i in dup else llad.Const(arrays[i])
                for i in range(len(arrays))]
        (ts,) = llad.autodiff(llad.Forward, f, *args, *const)
        for j in range(k):
            single = {i: dirs[j][i].copy() for i in dup}
            a1 = [llad.Duplicated(arrays[i], single[i]) if i in dup else llad.Const(arrays[i])
                  for i in range(len(arrays))]
            (t1,) = llad.autodiff(llad.Forward, f, *a1, *const)
            assert ts[j] == pytest.approx(t1, rel=1e-12, abs=1e-14)
            for i in dup:
                np.testing.assert_allclose(shadows[i][j], single[i], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("n", [9, 300_000])      # interleaved; k * bytes over INTERLEAVE_MAX_BYTES: split
def test_batch_interleaved_and_split_outputs(n):
    rng = np.random.default_rng(21)
    x, w = rng.random(n), rng.random(n)
    y = np.zeros(n)
    assert api._interleaves(x, 4) == (n * 8 * 4 <= api.INTERLEAVE_MAX_BYTES)
    _batch_vs_singles(_smooth_into, [x, y, w], {0, 1}, 4, rng)


def test_batch_interleaved_strided_and_reversed_views():
    rng = np.random.default_rng(22)
    base = rng.random(40)
    x, w = base[::-3], rng.random(40)[::3]
    y = np.zeros(30)[::2]
    _batch_vs_singles(_smooth_into, [x, y, w], {0, 1, 2}, 3, rng)
    dirs = tuple(rng.standard_normal(x.shape) for _ in range(3))
    full = api._interleave(x, dirs)
    assert full.strides == (x.strides[0] * 3, 8)
    for j in range(3):
        np.testing.assert_array_equal(full[..., j], dirs[j])


def test_batch_layouts_meet_in_one_pointer():
    """a interleaved, b split (large): a pointer that is either one cannot have one layout, so the
    all-split variant runs; the tangents are still exact."""
    rng = np.random.default_rng(23)
    big = api.INTERLEAVE_MAX_BYTES // (8 * 2) + 1
    a, b = rng.random(big), rng.random(big)
    a_small = a[:50].copy()
    _batch_vs_singles(_pick_rows, [a, b], {0, 1}, 2, rng, const=(llad.Const(True),))
    _batch_vs_singles(_pick_rows, [a_small, b[:50].copy()], {0, 1}, 2, rng, const=(llad.Const(True),))
    big_b = b.copy()
    _batch_vs_singles(_pick_rows, [a_small, big_b], {0, 1}, 2, rng, const=(llad.Const(True),))


def test_batch_interleaved_ir_uses_vector_memory():
    x, w, y = np.random.default_rng(24).random((3, 16))
    args = (llad.BatchDuplicated(x, tuple(np.ones(16) for _ in range(4))),
            llad.BatchDuplicated(y, tuple(np.zeros(16) for _ in range(4))), llad.Const(w))
    text = llad.dump(llad.Forward, _smooth_into, *args, depth="deriv")
    assert "load <4 x double>" in text and "store <4 x double>" in text
    assert "[4 x double]" in text            # shadow addresses scaled by k


@pytest.mark.parametrize("seed", range(12))
def test_interleave_layout_mirrors_the_primal(seed):
    """For any view (negative, non-unit, transposed strides), element e of shadow j lives at k times
    e's byte offset in the primal, plus j elements: the layout the derivative addresses."""
    rng = np.random.default_rng(seed)
    base = rng.random((7, 9))
    views = [base, base.T, base[::-2, 1::3], base[2:, ::-1], base[:, 4], base[::3, ::-2].T]
    v = views[seed % len(views)]
    k = int(rng.integers(2, 6))
    dvs = tuple(rng.standard_normal(v.shape) for _ in range(k))
    full = api._interleave(v, dvs)
    for j in range(k):
        np.testing.assert_array_equal(full[..., j], dvs[j])
    origin = full[(0,) * v.ndim].__array_interface__["data"][0]
    for idx in np.ndindex(*v.shape):
        offset = sum(i * s for i, s in zip(idx, v.strides))
        assert full[idx].__array_interface__["data"][0] - origin == k * offset
        assert full[idx].strides == (v.itemsize,)
