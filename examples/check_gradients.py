"""Checking a kernel's derivatives before trusting them: `llad.testing.check_grads` runs every mode
(forward, batch, reverse, split) and every Const/Active/Duplicated combination of the arguments against
central differences, and forward against reverse. Here: the Lennard-Jones energy of a small cluster
with a cutoff, positions updated in place by one velocity-Verlet step.

    python examples/check_gradients.py [--atoms 6]
"""
import argparse

import numba
import numpy as np

import llad


@numba.njit
def verlet_energy(pos, vel, dt, cutoff):
    """One velocity-Verlet position update (in place), then the Lennard-Jones energy with a cutoff."""
    n = pos.shape[0]
    for i in range(n):
        for k in range(3):
            pos[i, k] += dt * vel[i, k]
    e = 0.0
    for i in range(n):
        for j in range(i + 1, n):
            r2 = 0.0
            for k in range(3):
                d = pos[i, k] - pos[j, k]
                r2 += d * d
            if r2 < cutoff * cutoff:
                s6 = 1.0 / (r2 * r2 * r2)
                e += 4.0 * (s6 * s6 - s6)
    return e


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--atoms", type=int, default=6)
    n = ap.parse_args(argv).atoms
    rng = np.random.default_rng(2)
    pos = np.array([[i * 1.12, (i % 2) * 0.9, (i % 3) * 0.8] for i in range(n)]) + 0.05 * rng.standard_normal((n, 3))
    vel = 0.1 * rng.standard_normal((n, 3))
    checked = llad.testing.check_grads(verlet_energy, pos, vel, 0.01, 2.5)
    print(f"check_grads: {checked} (mode, annotations) pairs agree with central differences and each other")
    return checked


if __name__ == "__main__":
    main()
