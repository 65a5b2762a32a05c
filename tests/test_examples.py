"""Every example runs (small sizes) and says what it should."""
import runpy
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _example(name):
    return runpy.run_path(str(ROOT / "examples" / name))


def test_checkpointed_adjoint_matches_the_whole_loop_gradient(capsys):
    err = _example("checkpointed_adjoint.py")["main"](["--steps", "120", "--every", "25"])
    assert err < 1e-10
    assert "largest relative difference" in capsys.readouterr().out


def test_sumsin_example_prints_the_gradient(capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["sumsin.py"])
    runpy.run_path(str(ROOT / "examples" / "sumsin.py"), run_name="__main__")
    assert "gradient:" in capsys.readouterr().out
