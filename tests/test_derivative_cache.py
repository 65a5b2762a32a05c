"""The disk cache of derivatives (llad/diskcache.py, docs/cache.md).

Each test runs its scripts in subprocesses with a cache directory of its own: the first process compiles
and writes, a second one loads with llad's pipeline and the primal's compilation patched to raise (so a
pass proves nothing was compiled), and both check the gradient against the hand-derived one the kernel
file carries (`expected`).  Editing the kernel's source (the function, a callee, a global it reads) must
compile again, a damaged file must be ignored and rewritten, `cache_dir = None` must write nothing, and
two processes writing one entry at once must both succeed.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numba
import numpy as np
import pytest

import llad
from llad import diskcache

KERNEL = textwrap.dedent("""
    import math, numba, numpy as np

    SCALE = 2.0

    @numba.njit
    def helper(v):
        return math.sin(v) * v

    @numba.njit
    def loss(x):
        s = 0.0
        for i in range(x.size):
            s += SCALE * helper(x[i])
        return s

    def expected(x):                      # d loss / dx, by hand
        return SCALE * (np.sin(x) + x * np.cos(x))

    def hessian_diagonal(x):              # the Hessian is diagonal
        return SCALE * (2.0 * np.cos(x) - x * np.sin(x))
""")

RUN = textwrap.dedent("""
    import json, os
    import numpy as np, numba, llad, kern
    from llad import api, diskcache, frontend

    if os.environ.get("NO_CACHE_IN_SCRIPT"):
        llad.config.cache_dir = None
    if os.environ.get("FORBID_COMPILE"):
        def refuse(*args, **kwargs):
            raise AssertionError("compiled in a process that should load everything from the disk cache")
        api.build_derivative = refuse          # llad's pipeline
        frontend.compile_primal = refuse       # Numba's compilation of the primal (its return type)

    x = np.linspace(0.1, 1.0, 7)
    want = kern.expected(x)
    dx = np.zeros(7)
    (derivs,) = llad.autodiff(llad.Reverse, kern.loss, llad.Duplicated(x, dx))       # default return activity
    assert np.allclose(dx, want, rtol=1e-13, atol=0), (dx, want)
    (t,) = llad.autodiff(llad.Forward, kern.loss, llad.Duplicated(x, np.ones(7)))
    assert np.isclose(t, want.sum(), rtol=1e-13, atol=0), (t, want.sum())
    if os.environ.get("MORE"):
        # split mode, and autodiff inside @njit (Numba compiles `grad` itself; llad loads the derivative)
        gx = np.zeros(7)
        fwd, rev = llad.autodiff_thunk(llad.ReverseSplitWithPrimal, kern.loss, llad.Active, llad.Duplicated(x, gx))
        tape, primal, _ = fwd(llad.Duplicated(x, gx))
        rev(llad.Duplicated(x, gx), 1.0, tape)
        assert np.allclose(gx, want, rtol=1e-13, atol=0), gx

        @numba.njit
        def grad(x, g):
            llad.autodiff(llad.Reverse, kern.loss, llad.Active, llad.Duplicated(x, g))

        g = np.zeros(7)
        grad(x, g)
        assert np.allclose(g, want, rtol=1e-13, atol=0), g
        g[:], hv = 0.0, np.zeros(7)      # forward over the reverse derivative grad links: H @ ones
        llad.autodiff(llad.Forward, grad, llad.Duplicated(x, np.ones(7)), llad.Duplicated(g, hv))
        assert np.allclose(hv, kern.hessian_diagonal(x), rtol=1e-12, atol=0), hv
    print(json.dumps(dict(vars(diskcache.stats), compiled=api.compile_count["n"])))
""")


def _setup(tmp_path):
    (tmp_path / "kern.py").write_text(KERNEL)
    (tmp_path / "run.py").write_text(RUN)
    cache = tmp_path / "cache"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), *sys.path]), LLAD_CACHE_DIR=str(cache),
               PYTHONDONTWRITEBYTECODE="1")
    return cache, env


def _run(tmp_path, env, **extra) -> dict:
    out = subprocess.run([sys.executable, "run.py"], cwd=tmp_path, env=dict(env, **extra), capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def _entries(cache) -> list:
    return sorted(p for p in cache.rglob("*") if p.is_file()) if cache.exists() else []


def test_second_process_loads_without_compiling(tmp_path):
    cache, env = _setup(tmp_path)
    first = _run(tmp_path, env, MORE="1")
    # reverse, forward, split, the two reverse derivatives the @njit caller links (with and without
    # noalias; they keep no tapes between calls, unlike the one called from Python), and forward mode
    # over that caller
    assert first["compiled"] == 6 and first["writes"] == 6 and first["hits"] == 0, first
    assert len([p for p in _entries(cache) if p.suffix == ".llad"]) == 6
    assert [p.suffix for p in _entries(cache)].count(".ret") == 2        # loss's and grad's return types
    second = _run(tmp_path, env, MORE="1", FORBID_COMPILE="1")
    assert second["compiled"] == 0 and second["hits"] == 6 and second["errors"] == 0, second
    assert second["return_hits"] == 1 and second["writes"] == 0, second


@pytest.mark.parametrize("edit", [
    ("return math.sin(v) * v\n", "return math.sin(v) * v * v\n",                         # a callee's body
     "return SCALE * (np.sin(x) + x * np.cos(x))", "return SCALE * (2 * x * np.sin(x) + x * x * np.cos(x))"),
    ("SCALE = 2.0", "SCALE = 3.5", None, None),                                            # a global it reads
    ("s += SCALE * helper(x[i])", "s += SCALE * helper(x[i]) * x[i]",                      # the function itself
     "return SCALE * (np.sin(x) + x * np.cos(x))",
     "return SCALE * (2 * x * np.sin(x) + x * x * np.cos(x))"),
], ids=["callee", "global", "function"])
def test_editing_the_source_invalidates(tmp_path, edit):
    cache, env = _setup(tmp_path)
    assert _run(tmp_path, env)["writes"] == 2
    old, new, old_expected, new_expected = edit
    text = KERNEL.replace(old, new)
    if old_expected:
        text = text.replace(old_expected, new_expected)
    assert text != KERNEL
    (tmp_path / "kern.py").write_text(text)
    edited = _run(tmp_path, env)         # the script checks the new hand-derived gradient
    assert edited["hits"] == 0 and edited["compiled"] == 2 and edited["writes"] == 2, edited
    again = _run(tmp_path, env, FORBID_COMPILE="1")
    assert again["hits"] == 2 and again["compiled"] == 0, again
    (tmp_path / "kern.py").write_text(KERNEL)                                  # back: the first entries again
    back = _run(tmp_path, env, FORBID_COMPILE="1")
    assert back["hits"] == 2, back


def test_damaged_files_are_recompiled_and_rewritten(tmp_path):
    cache, env = _setup(tmp_path)
    _run(tmp_path, env)
    files = _entries(cache)
    assert len(files) == 3
    for n, path in enumerate(files):
        data = path.read_bytes()
        if n == 0:
            path.write_bytes(data[:len(data) // 2])                   # truncated
        elif n == 1:
            path.write_bytes(data[:-40] + bytes(b ^ 0xFF for b in data[-40:]))   # bytes flipped
        else:
            path.write_bytes(b"not a cache file")
    damaged = _run(tmp_path, env)
    assert damaged["errors"] == 3 and damaged["hits"] == 0 and damaged["compiled"] == 2, damaged
    assert damaged["writes"] == 2, damaged
    repaired = _run(tmp_path, env, FORBID_COMPILE="1")
    assert repaired["hits"] == 2 and repaired["errors"] == 0, repaired


def test_cache_dir_none_reads_and_writes_nothing(tmp_path):
    cache, env = _setup(tmp_path)
    for extra in ({"LLAD_CACHE_DIR": ""}, {"LLAD_CACHE_DIR": "none"}, {"NO_CACHE_IN_SCRIPT": "1"}):
        out = _run(tmp_path, env, **extra)
        assert out["compiled"] == 2 and out["writes"] == 0 and out["misses"] == 0, (extra, out)
        assert _entries(cache) == []
    _run(tmp_path, env)
    assert len(_entries(cache)) == 3
    out = _run(tmp_path, env, NO_CACHE_IN_SCRIPT="1")         # entries exist, but the cache is off: compiles
    assert out["compiled"] == 2 and out["hits"] == 0, out


def test_two_processes_writing_at_once_both_succeed(tmp_path):
    cache, env = _setup(tmp_path)
    procs = [subprocess.Popen([sys.executable, "run.py"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
        stats = json.loads(out.strip().splitlines()[-1])
        # each derivative compiled, or loaded when the other process had written it first: never half a file
        assert stats["compiled"] + stats["hits"] == 2 and stats["errors"] == 0, stats
    assert not [p for p in _entries(cache) if p.name.endswith(".tmp")]
    after = _run(tmp_path, env, FORBID_COMPILE="1")
    assert after["hits"] == 2 and after["errors"] == 0, after


WRITER = textwrap.dedent("""
    import sys, llad
    from llad import diskcache
    llad.config.cache_dir = sys.argv[1]
    for i in range(60):
        assert diskcache._write("ab" * 32, "llad", {"writer": sys.argv[2], "i": i, "blob": b"x" * 200_000})
""")


def test_concurrent_writes_of_one_entry_are_atomic(tmp_path, cache_on):
    """Writers replacing one entry over and over while this process reads it: every read sees a whole
    file (one writer's), never a mix or a torn one."""
    (tmp_path / "writer.py").write_text(WRITER)
    procs = [subprocess.Popen([sys.executable, str(tmp_path / "writer.py"), str(cache_on), str(n)])
             for n in range(3)]
    seen, errors = set(), diskcache.stats.errors
    while any(p.poll() is None for p in procs):
        payload = diskcache._read("ab" * 32, "llad")
        if payload is not None:
            assert payload["blob"] == b"x" * 200_000
            seen.add(payload["writer"])
    assert all(p.wait() == 0 for p in procs)
    assert diskcache.stats.errors == errors                     # no torn file was ever read
    assert diskcache._read("ab" * 32, "llad")["i"] == 59
    assert seen and not list(cache_on.rglob("*.tmp"))


def test_functions_without_a_source_file_are_not_cached(tmp_path):
    cache, env = _setup(tmp_path)
    (tmp_path / "run.py").write_text(textwrap.dedent("""
        import json, numpy as np, numba, llad
        from llad import api, diskcache
        ns = {}
        exec("def f(x):\\n    return (x[0] * x[1]) ** 2\\n", ns)
        f = numba.njit(ns["f"])
        x, dx = np.array([2.0, 3.0]), np.zeros(2)
        llad.autodiff(llad.Reverse, f, llad.Duplicated(x, dx))
        assert np.allclose(dx, [2 * 36 / 2, 2 * 36 / 3]), dx
        print(json.dumps(dict(vars(diskcache.stats), compiled=api.compile_count["n"])))
    """))
    for _ in range(2):
        out = _run(tmp_path, env)
        assert out["compiled"] == 1 and out["hits"] == 0 and out["writes"] == 0 and out["uncacheable"] == 1, out
    assert not [p for p in _entries(cache) if p.suffix == ".llad"]


def test_dump_of_a_loaded_derivative_builds_the_primal_again(tmp_path):
    cache, env = _setup(tmp_path)
    _run(tmp_path, env)
    (tmp_path / "dump.py").write_text(textwrap.dedent("""
        import numpy as np, llad, kern
        from llad import api, diskcache
        x, dx = np.linspace(0.1, 1.0, 7), np.zeros(7)
        llad.autodiff(llad.Reverse, kern.loss, llad.Duplicated(x, dx))
        assert diskcache.stats.hits == 1 and api.compile_count["n"] == 0
        loaded = llad.dump(llad.Reverse, kern.loss, llad.Duplicated(x, dx), depth="deriv")
        assert api.compile_count["n"] == 1                 # the primal's IR is needed: built again
        llvm = llad.dump(llad.Reverse, kern.loss, llad.Duplicated(x, dx), depth="llvm")
        assert "define" in llvm
        dx[:] = 0
        llad.autodiff(llad.Reverse, kern.loss, llad.Duplicated(x, dx))
        assert np.allclose(dx, kern.expected(x), rtol=1e-13, atol=0)
        print(loaded.count("define"))
    """))
    out = subprocess.run([sys.executable, "dump.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.strip()) >= 1


def test_exceptions_raised_in_a_loaded_derivative_carry_their_message(tmp_path):
    """An exception with a run-time message reads its Numba environment: stored with the entry, set
    again on loading."""
    cache, env = _setup(tmp_path)
    (tmp_path / "fill.py").write_text(textwrap.dedent("""
        import numba, numpy as np

        @numba.njit
        def fill(x, n):
            t = np.empty(n)
            t[:] = x * 2.0
            return (t * t).sum()
    """))
    (tmp_path / "run.py").write_text(textwrap.dedent("""
        import json, os, numpy as np, llad, fill
        from llad import api, diskcache
        if os.environ.get("FORBID_COMPILE"):
            api.build_derivative = None
        x, dx = np.linspace(0.1, 1.0, 5), np.zeros(5)
        llad.autodiff(llad.Reverse, fill.fill, llad.Duplicated(x, dx), llad.Const(5))
        assert np.allclose(dx, 8 * x, rtol=1e-14, atol=0), dx
        try:
            llad.autodiff(llad.Reverse, fill.fill, llad.Duplicated(x, dx), llad.Const(4))
        except ValueError as e:
            message = str(e)
        print(json.dumps(dict(vars(diskcache.stats), compiled=api.compile_count["n"], message=message)))
    """))
    first = _run(tmp_path, env)
    assert first["writes"] == 1, first
    second = _run(tmp_path, env, FORBID_COMPILE="1")
    assert second["hits"] == 1 and second["compiled"] == 0, second
    assert second["message"] == first["message"] == "cannot assign slice of shape (4,) from input of shape (5,)"


def test_blas_and_lapack_calls_load(tmp_path):
    """Derivatives calling Numba's BLAS helpers and SciPy's LAPACK through llad's bound names
    (llad_dtrsm, ...): the names are bound before the object code is loaded."""
    cache, env = _setup(tmp_path)
    (tmp_path / "linalg.py").write_text(textwrap.dedent("""
        import numba, numpy as np

        @numba.njit
        def quad(A, x):
            y = A @ x
            return (y * y).sum()

        @numba.njit
        def det(A):
            return np.linalg.det(A)
    """))
    (tmp_path / "run.py").write_text(textwrap.dedent("""
        import json, os, numpy as np, llad, linalg
        from llad import api, diskcache
        if os.environ.get("FORBID_COMPILE"):
            api.build_derivative = None
        A = np.array([[2.0, 1.0, 0.5], [0.3, 3.0, 1.0], [0.2, 0.1, 4.0]])
        x, dx, dA = np.linspace(0.1, 1.0, 3), np.zeros(3), np.zeros((3, 3))
        llad.autodiff(llad.Reverse, linalg.quad, llad.Const(A), llad.Duplicated(x, dx))
        assert np.allclose(dx, 2 * A.T @ (A @ x), rtol=1e-13, atol=0), dx
        llad.autodiff(llad.Reverse, linalg.det, llad.Duplicated(A, dA))
        assert np.allclose(dA, np.linalg.det(A) * np.linalg.inv(A).T, rtol=1e-12, atol=0), dA   # Jacobi
        print(json.dumps(dict(vars(diskcache.stats), compiled=api.compile_count["n"])))
    """))
    assert _run(tmp_path, env)["writes"] == 2
    second = _run(tmp_path, env, FORBID_COMPILE="1")
    assert second["hits"] == 2 and second["compiled"] == 0, second


# --- the key, in this process (nothing is written: key() only hashes) ------------------------------------
G = 1.5


@numba.njit
def _scaled(x):
    return G * x[0]


@pytest.fixture
def cache_on(tmp_path):
    old = llad.config.cache_dir
    llad.config.cache_dir = tmp_path
    yield tmp_path
    llad.config.cache_dir = old


def _plan_of(f, *args):
    return llad.api.prepare(llad.Reverse, f, args)[0]


def test_key_follows_globals_and_plans(cache_on, monkeypatch):
    x, dx = np.ones(2), np.zeros(2)
    disp = llad.frontend.as_dispatcher(_scaled)
    plan = _plan_of(_scaled, llad.Duplicated(x, dx))
    k = diskcache.key(disp, plan)
    assert k is not None and k == diskcache.key(disp, plan)
    assert diskcache.key(disp, _plan_of(_scaled, llad.Const(x))) != k
    monkeypatch.setitem(globals(), "G", 2.5)
    assert diskcache.key(disp, plan) != k
    monkeypatch.setitem(globals(), "G", np.float32(1.5))            # same value, another type: another key
    assert diskcache.key(disp, plan) != k
    monkeypatch.setitem(globals(), "G", object())                   # nothing to hash: not cacheable
    assert diskcache.key(disp, plan) is None
    assert not list(cache_on.rglob("*.llad"))       # (choosing the plan wrote the return type's entry)


def test_no_key_when_the_cache_is_off():
    assert llad.config.cache_dir is None                            # tests/conftest.py
    disp = llad.frontend.as_dispatcher(_scaled)
    x, dx = np.ones(2), np.zeros(2)
    assert diskcache.key(disp, _plan_of(_scaled, llad.Duplicated(x, dx))) is None
