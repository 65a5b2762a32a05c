"""`llad.config`: `verbose` logs every stage of a compilation with its time; LLAD_VERBOSE sets it at
import; `cache_dir` (LLAD_CACHE_DIR) places or turns off the disk cache; settings llad does not have
cannot be set; LLAD_VECTOR_WIDTH chooses the vector width of derivative code (llad.jit.vector_width)."""
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


def test_cache_dir_setting(tmp_path):
    old = llad.config.cache_dir
    try:
        llad.config.cache_dir = tmp_path / "sub"
        assert llad.config.cache_dir == str(tmp_path / "sub")
        assert f"cache_dir={str(tmp_path / 'sub')!r}" in repr(llad.config)
        llad.config.cache_dir = None
        assert llad.config.cache_dir is None and "cache_dir=None" in repr(llad.config)
        with pytest.raises(TypeError):
            llad.config.cache_dir = 3
        with pytest.raises(ValueError):
            llad.config.cache_dir = ""
    finally:
        llad.config.cache_dir = old


@pytest.mark.parametrize("value, expected", [
    ("/some/where", "'/some/where'"), ("", "None"), ("none", "None"), ("NONE", "None"), (None, "DEFAULT")])
def test_cache_dir_environment_mirror(tmp_path, value, expected):
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path))
    env.pop("LLAD_CACHE_DIR", None)
    if value is not None:
        env["LLAD_CACHE_DIR"] = value
    out = subprocess.run([sys.executable, "-c", "import llad; print(repr(llad.config.cache_dir))"],
                         capture_output=True, text=True, check=True, env=env)
    if expected == "DEFAULT":            # the per-user cache directory
        expected = repr(str(tmp_path / "llad")) if sys.platform.startswith("linux") else out.stdout.strip()
    assert out.stdout.strip() == expected


_WIDTH_CODE = ("import numba, numpy as np, llad\n"
               "from llad import jit\n"
               "f = numba.njit(lambda x: np.sum(np.sin(x)))\n"
               "x = np.ones(64)\n"
               "text = llad.dump(llad.Reverse, f, llad.Active, llad.Duplicated(x, np.zeros(64)), depth='deriv-opt')\n"
               "attr = '\"prefer-vector-width\"='\n"
               "print(jit.vector_width(), attr in text, attr + '\"256\"' in text)\n")


@pytest.mark.parametrize("value, expected", [("256", "256 True True"), ("128", "128 True False")])
def test_vector_width_environment(value, expected):
    """LLAD_VECTOR_WIDTH chooses the vector width llad's derivative functions ask LLVM for."""
    out = subprocess.run([sys.executable, "-c", _WIDTH_CODE], capture_output=True, text=True, check=True,
                         env=dict(os.environ, LLAD_VECTOR_WIDTH=value, LLAD_CACHE_DIR="none"))
    assert out.stdout.split("\n")[-2] == expected


def test_vector_width_auto_matches_the_cpu():
    """auto: 512 bits on AVX-512 CPUs that do not slow down for them, else LLVM's own choice."""
    from numba.core.registry import cpu_target

    from llad import jit
    codegen = cpu_target.target_context.codegen()
    avx512 = "+avx512f" in codegen._get_host_cpu_features().split(",")
    throttles = codegen._get_host_cpu_name() in jit._AVX512_THROTTLES
    if os.environ.get("LLAD_VECTOR_WIDTH", "auto") in ("", "auto"):
        assert jit.vector_width() == (512 if avx512 and not throttles else None)


def test_vector_width_refuses_nonsense():
    out = subprocess.run([sys.executable, "-c", "import llad"], capture_output=True, text=True,
                         env=dict(os.environ, LLAD_VECTOR_WIDTH="300"))
    assert out.returncode != 0 and "LLAD_VECTOR_WIDTH must be auto, 128, 256 or 512, got '300'" in out.stderr
