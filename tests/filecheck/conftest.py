"""FileCheck for llad's IR: run the `filecheck` CLI (a Python port of LLVM FileCheck) on a text.

Tests take the `filecheck` fixture and call `filecheck(text, checks)`: `checks` is the check file as a
Python string (`CHECK:`, `CHECK-NOT:`, `CHECK-LABEL:`, `CHECK-SAME:`, `CHECK-DAG:` lines, `{{regex}}` and
`[[VAR:regex]]` as in LLVM).  A mismatch fails the test with FileCheck's own message.

Conventions of the checks in this folder (names that are part of llad's contract, not its temporaries):
the derivative is `define i32 @"llad.fwd.<hash>"` / `@"llad.rev.<hash>"`; the shadow of primal value
`%p` is `%"s0.p"`, its scalar tangent `%"d0.p"`, its vector tangent `%"dv.p"` (LLVM prints the quotes
only when the name needs them, so patterns write `{{%"?}}s0.`); reverse-sweep blocks are `rev.<block>`.
Checks about the derivative's body start at its define line,
    CHECK-LABEL: define i32 @"llad.rev.{{[0-9a-f]+}}"(
and a CHECK-NOT about it is bounded by its closing brace,
    CHECK: {{^}}}
because the runtime functions llad appends to the module (`@llad.tape.reserve`'s definition, ...) follow it.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

_MAX_MESSAGE = 6000


class FileCheckFailure(AssertionError):
    """FileCheck rejected the input; the message is FileCheck's."""


def _command() -> list[str]:
    cli = Path(sys.executable).with_name("filecheck")
    if cli.exists():
        return [str(cli)]
    found = shutil.which("filecheck")
    if found:
        return [found]
    return [sys.executable, "-m", "filecheck"]


def run_filecheck(text: str, checks: str, tmp_dir: Path) -> None:
    """Raise FileCheckFailure unless `text` satisfies `checks`."""
    checks = textwrap.dedent(checks).strip() + "\n"
    if "CHECK" not in checks:
        raise ValueError("a check file without any CHECK line checks nothing")
    check_file = tmp_dir / "checks.txt"
    check_file.write_text(checks)
    proc = subprocess.run([*_command(), str(check_file)], input=text, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        message = (proc.stderr + proc.stdout).strip()
        if len(message) > _MAX_MESSAGE:
            message = message[:_MAX_MESSAGE] + "\n[... FileCheck's message truncated ...]"
        raise FileCheckFailure(f"FileCheck failed (exit {proc.returncode}):\n{message}\n\n--- checks ---\n{checks}")


@pytest.fixture
def filecheck(tmp_path):
    """`filecheck(text, checks)`: fail the test with FileCheck's message unless `text` satisfies `checks`."""
    def check(text: str, checks: str) -> None:
        try:
            run_filecheck(text, checks, tmp_path)
        except FileCheckFailure as e:
            pytest.fail(str(e), pytrace=False)
    return check


@pytest.fixture
def filecheck_raw(tmp_path):
    """Like `filecheck`, but raising FileCheckFailure (for the helper's own tests)."""
    return lambda text, checks: run_filecheck(text, checks, tmp_path)
