"""The compiled call path (llad/hotpath.py): a signature called often is served by an @njit wrapper.
Every call it serves must give what the Python path gives, and every call it does not cover (other
types, strides, overlaps, return annotations) must fall back to the Python path, before anything runs."""
import numba
import numpy as np
import pytest

import llad
from llad import Active, Const, Duplicated, DuplicatedNoNeed, Forward, Reverse, ReverseWithPrimal, api, hotpath


@numba.njit
def f(x, y):
    s = 0.0
    for i in range(x.shape[0]):
        s += np.sin(x[i]) * y[i]
    return s


@numba.njit
def scale(x, c):
    s = 0.0
    for i in range(x.shape[0]):
        s += c * x[i] * x[i]
    return s


@numba.njit
def inplace(x, y):
    for i in range(x.shape[0]):
        y[i] = y[i] * x[i]
    return y.sum()


@pytest.fixture(autouse=True)
def fresh():
    api.forget_calls()
    yield
    api.forget_calls()


def warm(call):
    """Call `call` until its signature has its compiled path."""
    for _ in range(hotpath.TIER_UP_CALLS + 1):     # the first call prepares the signature
        call()


def test_a_signature_called_often_gets_a_compiled_path_with_the_same_gradient():
    x, y = np.linspace(0.1, 1.0, 5), np.linspace(2.0, 3.0, 5)
    dx = np.zeros(5)
    warm(lambda: llad.autodiff(Reverse, f, Active, Duplicated(x, dx), Const(y)))
    assert f in api._hot
    dx[:] = 0
    out = llad.autodiff(Reverse, f, Active, Duplicated(x, dx), Const(y))
    assert out == ((None, None),)
    np.testing.assert_allclose(dx, np.cos(x) * y, rtol=1e-14)
    dx[:] = 1.0                                      # accumulates, as the Python path does
    llad.autodiff(Reverse, f, Active, Duplicated(x, dx), Const(y))
    np.testing.assert_allclose(dx, 1.0 + np.cos(x) * y, rtol=1e-14)


def test_active_scalars_primals_and_forward_tangents_come_back_shaped():
    x = np.linspace(0.1, 1.0, 4)
    dx = np.zeros(4)
    warm(lambda: llad.autodiff(ReverseWithPrimal, scale, Active, Duplicated(x, dx), Active(3.0)))
    dx[:] = 0
    (derivs, primal) = llad.autodiff(ReverseWithPrimal, scale, Active, Duplicated(x, dx), Active(2.0))
    assert derivs[0] is None and derivs[1] == pytest.approx((x * x).sum(), rel=1e-14)
    assert primal == pytest.approx(2.0 * (x * x).sum(), rel=1e-14)
    np.testing.assert_allclose(dx, 4.0 * x, rtol=1e-14)
    v = np.ones(4)
    warm(lambda: llad.autodiff(Forward, scale, Duplicated(x, v), Const(3.0)))
    (t,) = llad.autodiff(Forward, scale, Duplicated(x, v), Const(2.0))
    assert t == pytest.approx(4.0 * x.sum(), rel=1e-14)
    assert len(api._hot_signatures[scale]) == 2


def test_an_int_where_the_signature_had_a_float_is_not_converted():
    x, dx = np.linspace(0.1, 1.0, 4), np.zeros(4)
    warm(lambda: llad.autodiff(Reverse, scale, Active, Duplicated(x, dx), Active(3.0)))
    with pytest.raises(TypeError, match="Active"):          # what the Python path says for Active(int)
        llad.autodiff(Reverse, scale, Active, Duplicated(x, dx), Active(3))


def _outcome(call):
    try:
        return ("ok", call())
    except Exception as e:          # noqa: BLE001 - the outcome compared is the exception's type and text
        return (type(e), str(e))


def _same_as_the_python_path(warm_call, odd_call, arrays):
    """`odd_call` after `warm_call` has its compiled path gives what it gives on a fresh Python path:
    the same result, exception and array contents."""
    snapshot = [a.copy() for a in arrays]
    expected = _outcome(odd_call)
    after = [a.copy() for a in arrays]
    api.forget_calls()
    for a, s in zip(arrays, snapshot):
        a[...] = s
    warm(warm_call)
    assert api._hot, "the signature did not get its compiled path"
    for a, s in zip(arrays, snapshot):
        a[...] = s
    got = _outcome(odd_call)
    assert got[0] == expected[0]
    if got[0] == "ok":
        assert repr(got[1]) == repr(expected[1])
    else:
        assert got[1] == expected[1]
    for a, e in zip(arrays, after):
        np.testing.assert_array_equal(a, e)


def test_a_shadow_with_other_strides_falls_back():
    x, y = np.linspace(0.1, 1.0, 5), np.linspace(2.0, 3.0, 5)
    dx, wide = np.zeros(5), np.zeros(10)
    _same_as_the_python_path(lambda: llad.autodiff(Reverse, f, Active, Duplicated(x, dx), Const(y)),
                             lambda: llad.autodiff(Reverse, f, Active, Duplicated(x, wide[::2]), Const(y)),
                             [dx, wide])
    np.testing.assert_allclose(wide[::2], np.cos(x) * y, rtol=1e-14)


def test_a_shadow_of_another_shape_is_refused_as_before():
    x, y = np.linspace(0.1, 1.0, 5), np.linspace(2.0, 3.0, 5)
    dx, short = np.zeros(5), np.zeros(4)
    _same_as_the_python_path(lambda: llad.autodiff(Reverse, f, Active, Duplicated(x, dx), Const(y)),
                             lambda: llad.autodiff(Reverse, f, Active, Duplicated(x, short), Const(y)),
                             [dx, short])


def test_a_shadow_overlapping_its_array_falls_back():
    buf = np.linspace(0.1, 1.0, 8)
    y = np.ones(6)
    dx = np.zeros(6)
    _same_as_the_python_path(lambda: llad.autodiff(Reverse, f, Active, Duplicated(buf[:6], dx), Const(y)),
                             lambda: llad.autodiff(Reverse, f, Active, Duplicated(buf[:6], buf[2:]), Const(y)),
                             [buf, dx])


def test_aliased_arguments_take_the_variant_that_keeps_every_load():
    x, y = np.linspace(0.1, 1.0, 5), np.linspace(2.0, 3.0, 5)
    dy = np.zeros(5)
    z = np.linspace(0.5, 0.9, 5)
    dz = np.zeros(5)
    _same_as_the_python_path(lambda: llad.autodiff(Reverse, inplace, Active, Const(x), Duplicated(y, dy)),
                             lambda: llad.autodiff(Reverse, inplace, Active, Const(z), Duplicated(z, dz)),
                             [y, dy, z, dz])
    # y_i <- y_i * x_i with x and y the same array and x declared Const: d/dy = x, read before the write
    np.testing.assert_allclose(dz, np.linspace(0.5, 0.9, 5), rtol=1e-14)


@pytest.mark.parametrize("odd", ["float32", "non-contiguous", "return Const", "DuplicatedNoNeed", "read-only shadow"])
def test_calls_outside_the_signature_fall_back(odd):
    x, y = np.linspace(0.1, 1.0, 6), np.linspace(2.0, 3.0, 6)
    dx = np.zeros(6)
    x32, dx32 = x.astype(np.float32), np.zeros(6, np.float32)
    xs, dxs = np.linspace(0.1, 1.0, 12)[::2], np.zeros(12)[::2]
    ro = np.zeros(6)
    ro.setflags(write=False)
    calls = {
        "float32": lambda: llad.autodiff(Reverse, f, Active, Duplicated(x32, dx32), Const(y.astype(np.float32))),
        "non-contiguous": lambda: llad.autodiff(Reverse, f, Active, Duplicated(xs, dxs), Const(y)),
        "return Const": lambda: llad.autodiff(Reverse, f, Const, Duplicated(x, dx), Const(y)),
        "DuplicatedNoNeed": lambda: llad.autodiff(Reverse, f, Active, DuplicatedNoNeed(x, dx), Const(y)),
        "read-only shadow": lambda: llad.autodiff(Reverse, f, Active, Duplicated(x, ro), Const(y)),
    }
    _same_as_the_python_path(lambda: llad.autodiff(Reverse, f, Active, Duplicated(x, dx), Const(y)), calls[odd],
                             [dx, dx32, dxs])


def test_a_configuration_change_drops_the_compiled_paths():
    x, y, dx = np.linspace(0.1, 1.0, 5), np.ones(5), np.zeros(5)
    warm(lambda: llad.autodiff(Reverse, f, Active, Duplicated(x, dx), Const(y)))
    assert f in api._hot
    before = llad.config.vector_math
    try:
        llad.config.vector_math = not before
        assert f not in api._hot
    finally:
        llad.config.vector_math = before
