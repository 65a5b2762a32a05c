"""`@numba.njit(cache=True)` functions differentiate in every process, also when Numba loads them (and
their cached callees) from its disk cache, which keeps object code but no IR."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

KERNEL = textwrap.dedent("""
    import numba, numpy as np

    @numba.njit(cache=True)
    def helper(x):
        return x * x * x

    @numba.njit(cache=True)
    def loss(x):
        s = 0.0
        for i in range(x.size):
            s += helper(x[i]) + np.sin(x[i])
        return s
""")

RUN = textwrap.dedent("""
    import numpy as np, llad, kern
    x = np.linspace(0.1, 1.0, 4)
    dx = np.zeros(4)
    llad.autodiff(llad.Reverse, kern.loss, llad.Duplicated(x, dx))
    (t,) = llad.autodiff(llad.Forward, kern.loss, llad.Duplicated(x, np.ones(4)))
    assert np.allclose(dx, 3 * x * x + np.cos(x), rtol=1e-14), dx
    assert np.isclose(t, dx.sum(), rtol=1e-14), t
    print(sorted(kern.loss.stats.cache_hits.values()))
""")


def test_cache_true_functions_differentiate_in_a_second_process(tmp_path):
    (tmp_path / "kern.py").write_text(KERNEL)
    (tmp_path / "run.py").write_text(RUN)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), *sys.path]))
    first = subprocess.run([sys.executable, "run.py"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    assert first.stdout.split() == ["[]"]                    # compiled, and written to the cache
    second = subprocess.run([sys.executable, "run.py"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert second.returncode == 0, second.stderr
    assert second.stdout.split() == ["[1]"]                  # loaded from the disk cache (helper inside it)
