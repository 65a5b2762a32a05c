"""The `llad` command: dump every depth for both modes; one clear line for user errors."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = str(ROOT / "examples" / "sumsin.py")


def llad(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "llad", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)


@pytest.mark.parametrize("mode", ["forward", "reverse"])
def test_dump_all_depths(mode):
    r = llad("dump", f"{EXAMPLE}:sumsin", "--mode", mode, "--args", "float64[::1]", "--activity", "dup",
             "--depth", "all")
    assert r.returncode == 0, r.stderr
    for depth in ("python", "numba", "llvm", "deriv", "deriv-opt", "asm"):
        assert f";; ===== {depth} =====" in r.stdout
    assert 'define i32 @"llad.' in r.stdout


def test_dump_cfg_to_dot_file(tmp_path):
    out = tmp_path / "cfg.dot"
    r = llad("dump", f"{EXAMPLE}:sumsin", "--args", "float64[::1]", "--depth", "cfg", "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert out.read_text().startswith("digraph")


def test_help_explains_options():
    r = llad("dump", "--help")
    assert r.returncode == 0
    for word in ("--mode", "--args", "--activity", "--depth", "examples:"):
        assert word in r.stdout


@pytest.mark.parametrize("target,args,expect", [
    ("{tmp}/broken.py:f", "float64", "syntax error"),
    (EXAMPLE + ":nope", "float64[::1]", "has no function"),
    (EXAMPLE + ":sumsin", "float64[::1", "cannot read the type"),
    (EXAMPLE + ":sumsin", "float64[::1], int64", "--activity"),
    ("missing.py:f", "float64", "no such file"),
])
def test_user_errors_are_one_line(tmp_path, target, args, expect):
    (tmp_path / "broken.py").write_text("def f(x:\n    return x\n")
    extra = ["--activity", "dup"] if "int64" in args else []
    r = llad("dump", target.format(tmp=tmp_path), "--args", args, *extra)
    assert r.returncode != 0
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and expect in lines[0] and "Traceback" not in r.stderr
