"""Property-based fuzzing of llad (quick profile, for CI).

`fuzz.grammar.kernels()` generates random Numba kernels; `fuzz.check.check_kernel` checks llad's reverse
gradient against its forward mode (dot-product test) and both against central finite differences.  The
quick profile checks LLAD_FUZZ_N kernels (default 200), small ones, derandomized so that CI sees the same
kernels every run; `python tools/fuzz.py --n 2000` is the long profile (random, bigger kernels).

Every file in tests/fuzz/regressions/ is a kernel a fuzz run found failing; it is checked here too
(strict xfail while its module sets XFAIL).  A quick-profile kernel that runs into an open bug listed in
fuzz.check.KNOWN_BUGS (each pinned by a regression file) counts as "known-bug", not as a failure.
"""
from __future__ import annotations

import collections
import glob
import os
import subprocess
import sys

import fuzz.check
import numba
import pytest
from fuzz.check import FAIL, KNOWN_BUG, REGRESSION_DIR, check_kernel, load_regression
from fuzz.grammar import kernels
from hypothesis import HealthCheck, Phase, given, settings

QUICK_N = int(os.environ.get("LLAD_FUZZ_N", "200"))
QUICK = dict(max_statements=3, max_depth=2, linalg=0.0)   # linalg=0: the same kernels as before it existed
# kernels with np.dot / @ / np.linalg.* take 5-15 s each to check (against about 0.6 s for the others), so
# the quick profile checks a few of them in a test of their own instead of mixing them into the 200
QUICK_LINALG_N = int(os.environ.get("LLAD_FUZZ_LINALG_N", "3"))
QUICK_LINALG = dict(max_statements=2, max_depth=2, linalg=0.3, force_linalg=True)
fuzz.check.EXTRA_MODES_EVERY = 4      # split mode and @njit on a quarter of the quick profile's kernels

_seen = collections.Counter()


@settings(max_examples=QUICK_N, deadline=None, derandomize=True, database=None, phases=[Phase.generate],
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
                                 HealthCheck.large_base_example])
@given(kernels(**QUICK))
def _quick_profile(kernel):
    outcome = check_kernel(kernel)
    _seen[outcome.status] += 1
    assert outcome.status != FAIL, outcome.report()


def test_fuzz_quick():
    _seen.clear()
    _quick_profile()
    total = sum(_seen.values())
    print(f"quick profile: {total} kernels: {dict(_seen)}")
    assert total >= QUICK_N
    assert _seen["ok"] >= 0.8 * total, f"too few kernels fully checked: {dict(_seen)}"


_seen_linalg = collections.Counter()


@settings(max_examples=QUICK_LINALG_N, deadline=None, derandomize=True, database=None, phases=[Phase.generate],
          suppress_health_check=list(HealthCheck))
@given(kernels(**QUICK_LINALG))
def _quick_linalg(kernel):
    outcome = check_kernel(kernel)
    _seen_linalg[outcome.status] += 1
    assert outcome.status != FAIL, outcome.report()


def test_fuzz_quick_linalg():
    """A few kernels with linear algebra (np.dot, @, np.linalg.solve/inv/det/slogdet/cholesky/norm)."""
    _seen_linalg.clear()
    _quick_linalg()
    print(f"quick linear-algebra profile: {dict(_seen_linalg)}")
    assert sum(_seen_linalg.values()) >= QUICK_LINALG_N


QUICK_CUSTOM_N = int(os.environ.get("LLAD_FUZZ_CUSTOM_N", "12"))
_seen_custom = collections.Counter()


@settings(max_examples=QUICK_CUSTOM_N, deadline=None, derandomize=True, database=None, phases=[Phase.generate],
          suppress_health_check=list(HealthCheck))
@given(kernels(**QUICK, custom=True))
def _quick_custom(kernel):
    outcome = check_kernel(kernel)
    _seen_custom[outcome.status] += 1
    _seen_custom.update(f for f in kernel.features if f.startswith("custom"))
    assert outcome.status != FAIL, outcome.report()


def test_fuzz_quick_custom():
    """Kernels calling functions with user derivative rules (fuzz.helpers: a jvp rule and two vjp rules)."""
    _seen_custom.clear()
    _quick_custom()
    print(f"quick custom-rule profile: {dict(_seen_custom)}")
    assert _seen_custom["custom-jvp"] >= 1 and _seen_custom["custom-vjp"] >= 1
    assert _seen_custom["ok"] >= QUICK_CUSTOM_N // 2


QUICK_PARALLEL_N = int(os.environ.get("LLAD_FUZZ_PARALLEL_N", "8"))
_seen_parallel = collections.Counter()


@settings(max_examples=QUICK_PARALLEL_N, deadline=None, derandomize=True, database=None, phases=[Phase.generate],
          suppress_health_check=list(HealthCheck))
@given(kernels(**QUICK, parallel=True))
def _quick_parallel(kernel):
    import llad.parallel
    before = llad.parallel.taken["calls"]
    outcome = check_kernel(kernel)
    _seen_parallel[outcome.status] += 1
    if llad.parallel.taken["calls"] > before:
        _seen_parallel["parallel sweep"] += 1
    assert outcome.status != FAIL, outcome.report()


def test_fuzz_quick_parallel(monkeypatch):
    """Kernels compiled with parallel=True and a prange reduction (llad differentiates their serial copy;
    central differences are of the parallel function itself); half of them the loop alone, whose reverse
    calls take llad's parallel reverse sweep (llad/parallel.py; on these small kernels from one iteration
    per thread on)."""
    import llad.parallel
    monkeypatch.setattr(llad.parallel, "_MIN_ITERATIONS_PER_THREAD", 1)
    _seen_parallel.clear()
    _quick_parallel()
    print(f"quick parallel profile: {dict(_seen_parallel)}")
    assert _seen_parallel["ok"] >= QUICK_PARALLEL_N // 2
    assert _seen_parallel["parallel sweep"] >= 1 or numba.get_num_threads() < 2


QUICK_NESTED_N = int(os.environ.get("LLAD_FUZZ_NESTED_N", "6"))
_seen_nested = collections.Counter()


@settings(max_examples=QUICK_NESTED_N, deadline=None, derandomize=True, database=None, phases=[Phase.generate],
          suppress_health_check=list(HealthCheck))
@given(kernels(**QUICK))
def _quick_nested(kernel):
    saved = fuzz.check.NESTED_EVERY, fuzz.check.EXTRA_MODES_EVERY
    fuzz.check.NESTED_EVERY, fuzz.check.EXTRA_MODES_EVERY = 1, 10**9
    try:
        outcome = check_kernel(kernel)
    finally:
        fuzz.check.NESTED_EVERY, fuzz.check.EXTRA_MODES_EVERY = saved
    _seen_nested[outcome.numbers.get("nested", outcome.status)] += 1
    assert outcome.status != FAIL, outcome.report()


def test_fuzz_quick_nested():
    """A few kernels also checked in forward over reverse (an HVP) against differences of the gradient."""
    _seen_nested.clear()
    _quick_nested()
    print(f"quick nested profile: {dict(_seen_nested)}")
    assert sum(_seen_nested.values()) >= QUICK_NESTED_N
    assert _seen_nested["ok"] >= 1


def test_grammar_covers_every_feature():
    """The strategy reaches every construct it is meant to (generation only, no compilation)."""
    from hypothesis import strategies as st
    seen = set()

    @settings(max_examples=1500, deadline=None, derandomize=True, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(st.data())
    def draw(data):
        seen.update(data.draw(kernels(**QUICK)).features)
        seen.update(data.draw(kernels(**{**QUICK_LINALG, "max_statements": 3})).features)

    draw()
    expected = {"A", "scalar-a", "int-to-float", "div", "div-raw", "sin", "cos", "tanh", "atan", "exp", "log",
                "sqrt", "powi", "abs", "minmax", "helper", "array-helper", "product", "write", "write-x",
                "branch", "loop", "nested-loop", "while", "early-return", "w-dup", "w-const", "A-dup",
                "a-active", "alloc", "x-strided", "A-fortran", "break", "continue", "return-in-block",
                "linalg", "linalg-in-loop", "blas-dot", "blas-matvec", "blas-vecmat", "blas-matmul", "blas-norm",
                "blas-rect", "blas-strided", "blas-cast", "blas-input-modified", "blas-result-written",
                "lapack-solve", "lapack-solve-matrix", "lapack-inv", "lapack-det", "lapack-slogdet",
                "lapack-cholesky", "float32"}
    assert expected <= seen, f"never generated: {sorted(expected - seen)}"


_SELF_TEST_SOURCE = """import math

import numba


@numba.njit
def kern(x, w, A, out, a):
    s = 0.0
    for i0 in range(3):
        out[i0] = math.sin(x[i0]) * w[i0] + a * A[i0, i0]
        s += x[i0] * out[i0]
    return s{extra}
"""


def test_checker_catches_wrong_derivatives(monkeypatch):
    """The checker itself: it passes a correct kernel, and flags a wrong reverse gradient (dot-product
    test), derivatives that agree with each other but not with the function (finite differences), and a
    wrong primal."""
    import numpy as np
    from fuzz.check import load, make_inputs
    from fuzz.grammar import Kernel

    import llad

    kernel = Kernel(_SELF_TEST_SOURCE.format(extra=""), 3, True, True, True, seed=5)
    assert check_kernel(kernel).status == "ok"
    real = llad.autodiff

    def wrong_gradient(mode, f, *args):
        res = real(mode, f, *args)
        if mode.reverse:
            args[0].dval[1] += 1e-6
        return res

    monkeypatch.setattr(llad, "autodiff", wrong_gradient)
    outcome = check_kernel(kernel)
    assert outcome.status == FAIL and "dot-product" in outcome.message, outcome.report()

    # both modes differentiate g = f + 1e-4 * (x[0] - x0[0]): same value at x0, another slope
    x0 = float(make_inputs(kernel)[0]["x"][0])
    g = load(_SELF_TEST_SOURCE.format(extra=f" + 1e-4 * (x[0] - {x0!r})"))
    monkeypatch.setattr(llad, "autodiff", lambda mode, f, *args: real(mode, g, *args))
    outcome = check_kernel(kernel)
    assert outcome.status == FAIL and "finite differences" in outcome.message, outcome.report()

    def wrong_primal(mode, f, *args):
        res = real(mode, f, *args)
        return res[:-1] + (res[-1] * (1 + 1e-9),)

    monkeypatch.setattr(llad, "autodiff", wrong_primal)
    outcome = check_kernel(kernel)
    assert outcome.status == FAIL and "primal differs" in outcome.message, outcome.report()
    assert np.isfinite(x0)


_OVERFLOW_THEN_SOLVE = """import numba
import numpy as np


@numba.njit
def kern(x, w, A, out, a):
    for i in range(40):
        out[0] = out[0] * out[0] + 10.0
    M = A.copy()
    M[0, 0] += out[0]
    z = np.linalg.solve(M, w)
    return z[0] + x[0]
"""


def test_a_primal_that_raises_linalgerror_is_the_functions_not_a_grammar_failure():
    """Values that overflow to inf before a solve: Numba raises LinAlgError, and so must llad, in both modes
    (the outcome `raises`); c10k chunk 100025 counted two such kernels as failures."""
    from fuzz.check import RAISES
    from fuzz.grammar import Kernel
    outcome = check_kernel(Kernel(_OVERFLOW_THEN_SOLVE, 3, True, True, False, seed=1))
    assert outcome.status == RAISES and outcome.message == "LinAlgError", outcome.report()


def _regressions():
    out = []
    for path in sorted(glob.glob(os.path.join(REGRESSION_DIR, "*.py"))):
        kernel, xfail = load_regression(path)
        marks = [pytest.mark.xfail(strict=True, reason=xfail)] if xfail else []
        out.append(pytest.param(kernel, id=os.path.basename(path)[:-3], marks=marks))
    return out


@pytest.mark.parametrize("kernel", _regressions())
def test_fuzz_regression(kernel):
    outcome = check_kernel(kernel)
    assert outcome.status not in (FAIL, KNOWN_BUG), outcome.report()


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(REGRESSION_DIR, "k_nested_*.py"))),
                         ids=lambda p: os.path.basename(p)[:-3])
def test_fuzz_regression_nested(path):
    """Regressions found in nested mode: checked with forward over reverse too."""
    kernel, _ = load_regression(path)
    saved = fuzz.check.NESTED_EVERY
    fuzz.check.NESTED_EVERY = 1
    try:
        outcome = check_kernel(kernel)
    finally:
        fuzz.check.NESTED_EVERY = saved
    assert outcome.status not in (FAIL, KNOWN_BUG), outcome.report()
    assert outcome.numbers.get("nested", "").startswith(("ok", "skip-fd", "refused")), outcome.numbers


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(REGRESSION_DIR, "k_*guard*.py"))),
                         ids=lambda p: os.path.basename(p)[:-3])
def test_fuzz_regression_guarded(path):
    """Regressions found with guarded memory (a campaign's setting): checked with it on."""
    import llad
    kernel, _ = load_regression(path)
    llad.config.guard_memory = True
    try:
        outcome = check_kernel(kernel)
    finally:
        llad.config.guard_memory = False
    assert outcome.status not in (FAIL, KNOWN_BUG), outcome.report()


@pytest.mark.slow
def test_fuzz_long_profile():
    """The long profile (deselected by default: `pytest -m slow tests/test_fuzz.py`), with guarded memory."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    r = subprocess.run([sys.executable, os.path.join(root, "tools", "fuzz.py"), "--n", "2000", "--no-save",
                        "--guard-memory"], capture_output=True, text=True)
    print(r.stdout)
    assert r.returncode == 0, r.stdout[-5000:] + r.stderr[-5000:]


def test_campaign_resumes_where_it_stopped(tmp_path):
    """tools/fuzz.py --campaign: complete chunks are kept and not run again; a missing chunk runs on the next
    start; the report counts what the chunk files hold."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, LLAD_FUZZ_CAMPAIGNS=str(tmp_path))
    cmd = [sys.executable, os.path.join(root, "tools", "fuzz.py"), "--campaign", "t"]

    def run(*extra):
        out = subprocess.run(cmd + list(extra), env=env, capture_output=True, text=True, timeout=600, cwd=root)
        assert out.returncode == 0, out.stderr
        return out.stdout

    first = run("--n", "2", "--chunk", "1", "--seed", "11", "--max-statements", "2", "--jobs", "2")
    assert "chunk 11:" in first and "chunk 12:" in first
    os.unlink(tmp_path / "t" / "chunk-12.jsonl")
    second = run()                                     # the settings come from the campaign, not the command
    assert "chunk 11:" not in second and "chunk 12:" in second
    run("--report", str(tmp_path / "report.md"))
    text = (tmp_path / "report.md").read_text()
    assert "**2 of 2 kernels** checked" in text and "| fail | 0 |" in text and "| crash | 0 |" in text
