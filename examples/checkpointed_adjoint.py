"""Checkpointed adjoint of a 1,000-step time loop, built from split-mode thunks.

A whole-loop reverse derivative keeps every step's values on its tape. With split mode the caller owns
the tapes: the forward pass keeps only a checkpoint every `every` steps, and the reverse pass replays one
segment at a time, running each step's forward thunk (which returns that step's tape) and then the
reverse thunks backwards, so at most `every` tapes are alive at once.

    python examples/checkpointed_adjoint.py [--steps 1000] [--every 100]
"""
import argparse
import math

import numba
import numpy as np

import llad


@numba.njit
def step(y, dt):
    """One explicit step of a ring of nonlinear oscillators, in place."""
    n = y.shape[0]
    t = y.copy()
    for i in range(n):
        y[i] = t[i] + dt * (math.sin(t[(i + 1) % n]) - 0.1 * t[i] * t[i])


@numba.njit
def energy(y):
    s = 0.0
    for i in range(y.shape[0]):
        s += y[i] * y[i]
    return s


@numba.njit
def whole(y, dt, steps):
    for _ in range(steps):
        step(y, dt)
    return energy(y)


def checkpointed_gradient(y0, dt, steps, every):
    """d energy(y_steps) / d y0, keeping steps / every checkpoints and at most `every` tapes."""
    checkpoints, y = [], y0.copy()
    for k in range(steps):
        if k % every == 0:
            checkpoints.append(y.copy())
        step(y, dt)
    lam = np.zeros_like(y0)                         # the adjoint of the final state
    llad.autodiff(llad.Reverse, energy, llad.Active, llad.Duplicated(y, lam))
    fwd, rev = llad.autodiff_thunk(llad.ReverseSplitNoPrimal, step, llad.Const,
                                   llad.Duplicated(y0.copy(), lam), llad.Const(dt))
    for start, c in zip(range(len(checkpoints) - 1, -1, -1), reversed(checkpoints)):
        n = min(every, steps - start * every)
        tapes, ys = [], c.copy()
        for _ in range(n):                          # replay the segment, keeping its tapes
            tape, _, _ = fwd(llad.Duplicated(ys, lam), llad.Const(dt))
            tapes.append((ys, tape))
            ys = ys.copy()
        for ys, tape in reversed(tapes):            # lam <- (d step / d y)^T lam
            rev(llad.Duplicated(ys, lam), llad.Const(dt), None, tape)
    return lam


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--every", type=int, default=100)
    args = ap.parse_args(argv)
    y0 = np.random.default_rng(0).uniform(-1, 1, 16)
    g = checkpointed_gradient(y0, 0.01, args.steps, args.every)
    full = np.zeros_like(y0)
    llad.autodiff(llad.Reverse, whole, llad.Active, llad.Duplicated(y0.copy(), full), llad.Const(0.01),
                  llad.Const(args.steps))
    err = np.max(np.abs(g - full)) / np.max(np.abs(full))
    print(f"{args.steps} steps, a checkpoint every {args.every}: gradient[:4] = {g[:4]}")
    print(f"largest relative difference from the whole-loop reverse gradient: {err:.1e}")
    return err


if __name__ == "__main__":
    main()
