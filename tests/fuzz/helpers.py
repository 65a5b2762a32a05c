"""Array helpers that generated kernels call (shared, so that Numba compiles them once per session)."""
import numba


@numba.njit
def hr(v, k):
    """Reads two elements of v."""
    return v[k] * v[(k + 1) % v.shape[0]] + 0.5 * v[k]


@numba.njit
def hw(v, k, val):
    """Writes v[k] in place from its old value."""
    v[k] = 0.5 * v[k] + val * val
