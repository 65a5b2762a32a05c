"""Sensitivities of an ODE trajectory: a damped, driven oscillator integrated with RK4 in a loop returns
its whole trajectory (an array); `llad.jacobian` gives d trajectory / d parameters, `llad.pushforward`
one directional sensitivity, both checked against central differences.

    python examples/ode_sensitivity.py [--steps 400]
"""
import argparse
import math

import numba
import numpy as np

import llad


@numba.njit
def trajectory(p, steps):
    """p = (stiffness, damping, forcing, x0, v0) -> x(t_k), k = 1..steps, by RK4 with dt = 0.01."""
    k, c, f, x, v = p[0], p[1], p[2], p[3], p[4]
    dt = 0.01
    out = np.empty(steps)
    for n in range(steps):
        t = n * dt
        a1x, a1v = v, f * math.cos(t) - k * x - c * v
        a2x, a2v = v + 0.5 * dt * a1v, f * math.cos(t + 0.5 * dt) - k * (x + 0.5 * dt * a1x) - c * (v + 0.5 * dt * a1v)
        a3x, a3v = v + 0.5 * dt * a2v, f * math.cos(t + 0.5 * dt) - k * (x + 0.5 * dt * a2x) - c * (v + 0.5 * dt * a2v)
        a4x, a4v = v + dt * a3v, f * math.cos(t + dt) - k * (x + dt * a3x) - c * (v + dt * a3v)
        x += dt / 6.0 * (a1x + 2 * a2x + 2 * a3x + a4x)
        v += dt / 6.0 * (a1v + 2 * a2v + 2 * a3v + a4v)
        out[n] = x
    return out


def main(argv=None) -> float:
    p_args = argparse.ArgumentParser(description=__doc__)
    p_args.add_argument("--steps", type=int, default=400)
    steps = p_args.parse_args(argv).steps
    p = np.array([4.0, 0.3, 0.8, 1.0, 0.0])
    J = llad.jacobian(trajectory, p, steps)                      # (steps, 5): forward mode, 5 columns
    h = 1e-6
    fd = np.stack([(trajectory(p + h * e, steps) - trajectory(p - h * e, steps)) / (2 * h) for e in np.eye(5)],
                  axis=1)
    err = float(np.max(np.abs(J - fd)) / np.max(np.abs(fd)))
    direction = np.array([1.0, 0.0, 0.0, 0.0, 0.0])
    dx = llad.pushforward(trajectory, p, direction, steps)       # the tangent of the returned array
    err = max(err, float(np.max(np.abs(dx - J[:, 0]))))
    print(f"d x(t_end) / d (stiffness, damping, forcing, x0, v0) = {np.array2string(J[-1], precision=4)}")
    print(f"Jacobian {J.shape} against central differences: largest relative difference {err:.2e}")
    return err


if __name__ == "__main__":
    main()
