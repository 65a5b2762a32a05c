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


def test_newton_cg_converges_with_llad_gradient_and_hvp(capsys):
    assert _example("newton_cg.py")["main"](["--n", "10"]) < 1e-8
    assert "Hessian-vector evaluations" in capsys.readouterr().out


def test_ode_sensitivities_match_differences(capsys):
    assert _example("ode_sensitivity.py")["main"](["--steps", "100"]) < 1e-6
    assert "Jacobian (100, 5)" in capsys.readouterr().out


def test_custom_rule_gradient_is_the_closed_form(capsys):
    assert _example("custom_rule.py")["main"](["--n", "200", "--d", "4"]) < 1e-13
    assert "closed form" in capsys.readouterr().out


def test_implicit_solve_rule_matches_lapack_rules_and_differences(capsys):
    assert _example("implicit_solve.py")["main"](["--n", "40"]) < 1e-5
    assert "custom rule vs llad's LAPACK rules" in capsys.readouterr().out


def test_gp_newton_converges_with_hessians_through_lapack(capsys):
    assert _example("gp_newton.py")["main"]() < 1e-8
    out = capsys.readouterr().out
    assert "Hessian at the start" in out and "fitted:" in out


def test_optimizer_in_njit_matches_the_python_loop(capsys):
    assert _example("optimizer_in_njit.py")["main"](["--steps", "50"]) == 0.0
    assert "per step" in capsys.readouterr().out


def test_check_gradients_example(capsys):
    assert _example("check_gradients.py")["main"](["--atoms", "4"]) >= 7
    assert "agree with central differences" in capsys.readouterr().out


def test_dask_sharded_gradient_equals_the_serial_one(capsys):
    """Two worker processes on a local cluster, each differentiating its shards; the sum is the gradient."""
    err = _example("dask_sharded_gradient.py")["main"](["--points", "4000", "--shards", "4", "--workers", "2"])
    assert err < 1e-12
    out = capsys.readouterr().out
    assert "on 2 worker processes" in out and "largest relative difference" in out
