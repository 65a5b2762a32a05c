"""`llad.config`: `verbose` logs every stage of a compilation with its time; LLAD_VERBOSE sets it at
import; settings llad does not have cannot be set."""
from __future__ import annotations

import logging
import os
import subprocess
import sys

import numba
import numpy as np
import pytest

import llad


@numba.njit
def cube_sum(x):
    return np.sum(x ** 3)


def test_verbose_logs_each_stage(caplog):
    old = llad.config.verbose
    try:
        llad.config.verbose = True
        with caplog.at_level(logging.INFO, logger="llad"):
            llad.autodiff(llad.Forward, cube_sum, llad.Duplicated(np.ones(3), np.ones(3)))
    finally:
        llad.config.verbose = old
    stages = [r.getMessage().split(": ")[1].split()[0] for r in caplog.records if ": " in r.getMessage()]
    assert stages == ["frontend", "parse", "analyse", "generate", "print", "jit", "compiled"]
    assert all(r.getMessage().startswith("cube_sum(") for r in caplog.records)


def test_quiet_by_default(caplog):
    with caplog.at_level(logging.INFO, logger="llad"):
        llad.autodiff(llad.Reverse, cube_sum, llad.Duplicated(np.ones(4), np.zeros(4)))
    assert not llad.config.verbose and not caplog.records


def test_environment_mirror():
    code = ("import numba, numpy as np, llad\n"
            "f = numba.njit(lambda x: x[0] * x[0])\n"
            "print(llad.config.verbose)\n"
            "llad.autodiff(llad.Reverse, f, llad.Duplicated(np.ones(2), np.zeros(2)))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=dict(os.environ, LLAD_VERBOSE="1"))
    assert out.stdout.strip() == "True"
    assert "rev: compiled in" in out.stderr and "rev: jit" in out.stderr


def test_unknown_settings_are_refused():
    with pytest.raises(AttributeError):
        llad.config.vector_mathh = False
