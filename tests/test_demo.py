"""The demo's kernels (ODE, GMM with `.max()`, stencil), small, in both modes, against finite differences."""
from __future__ import annotations

import numpy as np
import pytest

import llad
from llad.demo import gmm_loglik, heat_stencil, rk4_decay


def cases():
    rng = np.random.default_rng(1)
    return [
        ("rk4", rk4_decay, [rng.random(6), 0.5 + rng.random(6), 20, 0.05], 0),
        ("gmm", gmm_loglik, [rng.standard_normal((9, 3)), rng.standard_normal((4, 3)),
                             0.1 * rng.standard_normal((4, 3)), rng.standard_normal(4)], 1),
        ("heat", heat_stencil, [rng.random(12), 7, 0.2], 0),
    ]


@pytest.mark.parametrize("name,f,args,wrt", cases(), ids=[c[0] for c in cases()])
def test_demo_kernel(name, f, args, wrt):
    x = args[wrt]
    v = np.random.default_rng(2).standard_normal(x.shape)

    def at(xx):
        a = list(args)
        a[wrt] = xx.copy()
        return f(*a)

    fd = (at(x + 1e-6 * v) - at(x - 1e-6 * v)) / 2e-6
    fwd_args = list(args)
    fwd_args[wrt] = llad.Duplicated(x.copy(), v.copy())
    (t,) = llad.autodiff(llad.Forward, f, *fwd_args)
    g = np.zeros_like(x)
    rev_args = list(args)
    rev_args[wrt] = llad.Duplicated(x.copy(), g)
    llad.autodiff(llad.Reverse, f, *rev_args)
    assert t == pytest.approx(fd, rel=1e-6, abs=1e-9)
    assert float(np.sum(g * v)) == pytest.approx(t, rel=1e-10, abs=1e-12)


def test_progress_line_on_a_terminal(monkeypatch):
    """While a derivative compiles, a terminal shows what the demo is doing (one line, overwritten)."""
    import io

    from llad import demo

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    term = Terminal()
    monkeypatch.setattr(demo.sys, "stderr", term)
    demo._progress("rk4, reverse: compiling the derivative and checking it ...")
    demo._progress("")
    assert "rk4, reverse: compiling" in term.getvalue() and term.getvalue().endswith("\r")
    monkeypatch.setattr(demo.sys, "stderr", io.StringIO())            # not a terminal: nothing
    demo._progress("x")
    assert demo.sys.stderr.getvalue() == ""
