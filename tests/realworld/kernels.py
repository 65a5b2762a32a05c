"""Kernels as people write them with Numba: loops, in-place updates, scratch arrays allocated inside,
2-D arrays, `math` calls, early exits, helper `@njit` functions.  Each names where such code comes from
in the comment above it.  No BLAS (`np.dot`, `@`, `np.linalg`): products are loops.

`KERNELS` registers each with:
* `args(rng)`: the arguments of one check, small, away from the kernel's kinks (cutoffs, branches of
  `abs`/`max`, `rint` jumps);
* `freeze`: argument positions that `tests/test_realworld.py` binds as globals of an `@njit` wrapper, so
  that `check_grads` runs its activity combinations over the other arguments only: the data of a loss
  (training data, observations, a right-hand side) and a few step sizes and constants.  Every float
  argument costs `check_grads` twice the derivative compilations (Const / Duplicated), and at ~0.1-0.7 s
  each the whole product would not fit the file's time budget;
* `modes`: the modes `check_grads` runs (None: all seven), `order` (2: `llad.hvp` too), tolerances;
* `source`, `exercises`: for `docs/realworld.md`.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numba import njit

import llad  # noqa: F401  (before the kernels are compiled)
from llad.testing import BATCH

# The modes of the kernels too heavy for all seven in the test-time budget (0.5-1 s per derivative
# compilation here): the *WithPrimal variants are the same derivatives with the primal returned too, and
# every other kernel checks them.
FOUR_MODES = (llad.Forward, BATCH, llad.Reverse, llad.ReverseSplitNoPrimal)


@dataclass(frozen=True)
class Kernel:
    name: str
    func: object
    args: Callable[[np.random.Generator], tuple]
    source: str
    exercises: str
    freeze: tuple = ()
    modes: tuple | None = None
    order: int = 1
    rtol: float = 1e-5
    atol: float = 1e-6

    def __repr__(self) -> str:
        return f"Kernel({self.name})"


KERNELS: list[Kernel] = []


def kernel(args, source, exercises, **kw):
    def register(func):
        KERNELS.append(Kernel(func.py_func.__name__, func, args, source, exercises, **kw))
        return func
    return register


# =============================================================== optimisation test problems

# scipy.optimize.rosen (scipy/optimize/_optimize.py), its array expression written as a loop
@kernel(lambda rng: (rng.uniform(-1.5, 1.5, 6),), "scipy.optimize.rosen", "loop, `** 2.0` (float power) "
        "of negative values", order=2)
@njit
def rosen(x):
    s = 0.0
    for i in range(x.shape[0] - 1):
        s += 100.0 * (x[i + 1] - x[i] ** 2.0) ** 2.0 + (1.0 - x[i]) ** 2.0
    return s


# scipy.optimize.rosen, verbatim: slices and an array expression, np.sum
@kernel(lambda rng: (rng.uniform(-1.5, 1.5, 6),), "scipy.optimize.rosen (verbatim)",
        "slices, temporaries allocated by array expressions, np.sum")   # order=2: llad.hvp refuses np.sum, see
                                                                            # tests/test_realworld.py
@njit
def rosen_numpy(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2.0) ** 2.0 + (1 - x[:-1]) ** 2.0)


# Rosenbrock (1960), "An automatic method for finding the greatest or least value of a function",
# the original two-variable function
@kernel(lambda rng: (-1.2, 1.0), "Rosenbrock, Comput. J. 3 (1960)", "float scalars (Active / Duplicated floats)")
@njit
def rosenbrock_2d(x, y):
    return 100.0 * (y - x * x) ** 2 + (1.0 - x) ** 2


# The generalised Rosenbrock function with parameters a, b (Wikipedia "Rosenbrock function"; the
# multidimensional form of Shang & Qiu 2006)
@kernel(lambda rng: (rng.uniform(-1.5, 1.5, 5), 1.0, 100.0), "generalised Rosenbrock (Shang & Qiu 2006)",
        "float parameters passed as arguments", freeze=(1, 2))
@njit
def rosen_ab(x, a, b):
    s = 0.0
    for i in range(x.shape[0] - 1):
        s += (a - x[i]) ** 2 + b * (x[i + 1] - x[i] * x[i]) ** 2
    return s


# Ackley (1987), as in Surjanovic & Bingham, Virtual Library of Simulation Experiments (a=20, b=0.2, c=2 pi)
@kernel(lambda rng: (rng.uniform(-2.0, 2.0, 5),), "Ackley 1987 (VLSE, Surjanovic & Bingham)",
        "sqrt, exp, cos of sums, math.pi / math.e")
@njit
def ackley(x):
    d = x.shape[0]
    s1 = 0.0
    s2 = 0.0
    for i in range(d):
        s1 += x[i] * x[i]
        s2 += math.cos(2.0 * math.pi * x[i])
    return -20.0 * math.exp(-0.2 * math.sqrt(s1 / d)) - math.exp(s2 / d) + 20.0 + math.e


# Rastrigin (1974), as in Surjanovic & Bingham, VLSE
@kernel(lambda rng: (rng.uniform(-5.12, 5.12, 6),), "Rastrigin 1974 (VLSE)", "cos of a scaled argument")
@njit
def rastrigin(x):
    s = 10.0 * x.shape[0]
    for i in range(x.shape[0]):
        s += x[i] * x[i] - 10.0 * math.cos(2.0 * math.pi * x[i])
    return s


# Griewank (1981), as in Surjanovic & Bingham, VLSE
@kernel(lambda rng: (rng.uniform(-10.0, 10.0, 5),), "Griewank 1981 (VLSE)", "a running product, sqrt of the "
        "loop index", order=2)
@njit
def griewank(x):
    s = 0.0
    p = 1.0
    for i in range(x.shape[0]):
        s += x[i] * x[i] / 4000.0
        p *= math.cos(x[i] / math.sqrt(i + 1.0))
    return s - p + 1.0


# Styblinski & Tang (1990), as in Surjanovic & Bingham, VLSE
@kernel(lambda rng: (rng.uniform(-4.0, 4.0, 5),), "Styblinski-Tang 1990 (VLSE)", "integer powers x**4 "
        "(llvm.powi)")
@njit
def styblinski_tang(x):
    s = 0.0
    for i in range(x.shape[0]):
        s += x[i] ** 4 - 16.0 * x[i] ** 2 + 5.0 * x[i]
    return 0.5 * s


# Himmelblau (1972), Applied Nonlinear Programming
@kernel(lambda rng: (2.5, 1.5), "Himmelblau 1972", "float scalars", freeze=(1,))
@njit
def himmelblau(x, y):
    return (x * x + y - 11.0) ** 2 + (x + y * y - 7.0) ** 2


# =============================================================== molecular dynamics, N-body

def _lj_box_args(rng):
    """6 atoms in a periodic box of side 4 with every pair's minimum-image distance at least 0.05 from
    the cutoff 1.8, above 0.95, and every component of a pair separation at least 0.1 (in box units
    0.025) from the half-box jump of np.rint."""
    box, rc = 4.0, 1.8
    while True:
        r = rng.uniform(0.0, box, (6, 3))
        ok, inside = True, 0
        for i in range(6):
            for j in range(i + 1, 6):
                d = r[i] - r[j]
                if np.any(np.abs(np.abs(d / box - np.rint(d / box)) - 0.5) < 0.025):
                    ok = False
                d = d - box * np.rint(d / box)
                dist = np.sqrt(d @ d)
                if dist < 0.95 or abs(dist - rc) < 0.05:
                    ok = False
                inside += dist < rc
        if ok and inside >= 4:
            return r, box, rc


# Lennard-Jones energy, cut and shifted, minimum image convention with np.rint, as in Allen & Tildesley,
# Computer Simulation of Liquids (2nd ed.), examples/md_lj_module.py
@kernel(_lj_box_args, "Allen & Tildesley 2nd ed., md_lj_module (LJ, cut and shifted, minimum image)",
        "2-D positions, triple loop, np.rint (minimum image), cutoff branch", freeze=(1, 2))
@njit
def lj_energy_pbc(r, box, r_cut):
    n = r.shape[0]
    sr2_cut = 1.0 / (r_cut * r_cut)
    sr6_cut = sr2_cut ** 3
    pot_cut = 4.0 * (sr6_cut * sr6_cut - sr6_cut)
    e = 0.0
    for i in range(n - 1):
        for j in range(i + 1, n):
            r2 = 0.0
            for k in range(3):
                d = r[i, k] - r[j, k]
                d -= box * np.rint(d / box)
                r2 += d * d
            if r2 > r_cut * r_cut:
                continue
            sr2 = 1.0 / r2
            sr6 = sr2 * sr2 * sr2
            e += 4.0 * (sr6 * sr6 - sr6) - pot_cut
    return e


G_NEWTON = 1.0


# Gravitational potential energy with Plummer softening, as in Aarseth, Gravitational N-Body Simulations
# (2003)
@kernel(lambda rng: (rng.uniform(-1.0, 1.0, (5, 3)), rng.uniform(0.5, 2.0, 5), 0.1),
        "Plummer-softened N-body potential (Aarseth 2003)", "pairs loop over 2-D positions, masses, softening",
        freeze=(1, 2))
@njit
def nbody_potential(pos, m, eps):
    n = pos.shape[0]
    e = 0.0
    for i in range(n):
        for j in range(i + 1, n):
            dx = pos[j, 0] - pos[i, 0]
            dy = pos[j, 1] - pos[i, 1]
            dz = pos[j, 2] - pos[i, 2]
            e -= G_NEWTON * m[i] * m[j] / math.sqrt(dx * dx + dy * dy + dz * dz + eps * eps)
    return e


@njit
def lj_forces(r, f):
    """Lennard-Jones forces into f (overwritten), the potential returned (no cutoff: a small cluster)."""
    n = r.shape[0]
    f[:, :] = 0.0
    pot = 0.0
    for i in range(n - 1):
        for j in range(i + 1, n):
            dx = r[i, 0] - r[j, 0]
            dy = r[i, 1] - r[j, 1]
            dz = r[i, 2] - r[j, 2]
            sr2 = 1.0 / (dx * dx + dy * dy + dz * dz)
            sr6 = sr2 * sr2 * sr2
            pot += 4.0 * (sr6 * sr6 - sr6)
            w = 24.0 * (2.0 * sr6 * sr6 - sr6) * sr2
            f[i, 0] += w * dx
            f[i, 1] += w * dy
            f[i, 2] += w * dz
            f[j, 0] -= w * dx
            f[j, 1] -= w * dy
            f[j, 2] -= w * dz
    return pot


def _cluster(rng, n=4):
    base = np.array([[0.0, 0.0, 0.0], [1.12, 0.0, 0.0], [0.56, 0.97, 0.0], [0.56, 0.32, 0.91]])[:n]
    return base + 0.03 * rng.standard_normal((n, 3))


# Velocity Verlet, as in Allen & Tildesley, Computer Simulation of Liquids (2nd ed.), the MD integration
# chapter (kick, drift, force, kick), with a Lennard-Jones cluster
@kernel(lambda rng: (_cluster(rng), 0.1 * rng.standard_normal((4, 3)), 0.005, 3),
        "velocity Verlet (Allen & Tildesley 2nd ed.), LJ cluster",
        "positions and velocities updated in place, a force array allocated inside, helper @njit, "
        "f[:, :] = 0.0", freeze=(2,), modes=FOUR_MODES)
@njit
def verlet_lj(r, v, dt, nsteps):
    n = r.shape[0]
    f = np.empty_like(r)
    pot = lj_forces(r, f)
    for _ in range(nsteps):
        for i in range(n):
            for k in range(3):
                v[i, k] += 0.5 * dt * f[i, k]
                r[i, k] += dt * v[i, k]
        pot = lj_forces(r, f)
        for i in range(n):
            for k in range(3):
                v[i, k] += 0.5 * dt * f[i, k]
    kin = 0.0
    for i in range(n):
        for k in range(3):
            kin += 0.5 * v[i, k] * v[i, k]
    return pot + kin


GAS_K = 3.0
REST_RHO = 1.0


def _sph_args(rng):
    g = np.array([[i * 0.5, j * 0.5] for i in range(3) for j in range(3)])
    return g + 0.02 * rng.standard_normal(g.shape), rng.uniform(0.8, 1.2, 9), 0.8


# SPH density with the poly6 kernel and the ideal-gas pressure p = k (rho - rho0), as in Mueller,
# Charypar & Gross, "Particle-based fluid simulation for interactive applications" (SCA 2003)
@kernel(_sph_args, "SPH density/pressure, poly6 kernel (Mueller, Charypar & Gross 2003)",
        "smoothing-length cutoff, `h ** 9`, density scratch array, a returned pressure array", freeze=(1, 2))
@njit
def sph_pressure(pos, m, h):
    n = pos.shape[0]
    h2 = h * h
    coef = 315.0 / (64.0 * math.pi * h ** 9)
    rho = np.zeros(n)
    for i in range(n):
        for j in range(n):
            dx = pos[i, 0] - pos[j, 0]
            dy = pos[i, 1] - pos[j, 1]
            r2 = dx * dx + dy * dy
            if r2 < h2:
                w = h2 - r2
                rho[i] += m[j] * coef * w * w * w
    p = np.empty(n)
    for i in range(n):
        p[i] = GAS_K * (rho[i] - REST_RHO)
    return p


ALPHA_FPUT = 0.25


# The alpha Fermi-Pasta-Ulam-Tsingou chain (Fermi, Pasta, Ulam & Tsingou, Los Alamos LA-1940, 1955), fixed
# ends, integrated by velocity Verlet; returns the Hamiltonian at the end
@kernel(lambda rng: (0.3 * rng.standard_normal(6), 0.3 * rng.standard_normal(6), 0.05, 4),
        "alpha-FPUT spring chain (Fermi, Pasta, Ulam & Tsingou 1955), velocity Verlet",
        "spring-mass chain, neighbour accesses with fixed ends, in-place q and p", freeze=(2,),
        modes=FOUR_MODES)
@njit
def fput_chain(q, p, dt, nsteps):
    n = q.shape[0]
    f = np.empty(n)
    for step in range(nsteps + 1):
        for i in range(n):
            left = q[i - 1] if i > 0 else 0.0
            right = q[i + 1] if i < n - 1 else 0.0
            f[i] = (right - 2.0 * q[i] + left) + ALPHA_FPUT * ((right - q[i]) ** 2 - (q[i] - left) ** 2)
        if step == nsteps:
            break
        for i in range(n):
            p[i] += 0.5 * dt * f[i]
            q[i] += dt * p[i]
        for i in range(n):
            left = q[i - 1] if i > 0 else 0.0
            right = q[i + 1] if i < n - 1 else 0.0
            f[i] = (right - 2.0 * q[i] + left) + ALPHA_FPUT * ((right - q[i]) ** 2 - (q[i] - left) ** 2)
        for i in range(n):
            p[i] += 0.5 * dt * f[i]
    h = 0.0
    for i in range(n + 1):
        left = q[i - 1] if i > 0 else 0.0
        right = q[i] if i < n else 0.0
        d = right - left
        h += 0.5 * d * d + ALPHA_FPUT / 3.0 * d * d * d
    for i in range(n):
        h += 0.5 * p[i] * p[i]
    return h


G_OVER_L = 9.81


# The nonlinear pendulum by the Stoermer-Verlet method, as in Hairer, Lubich & Wanner, Geometric Numerical
# Integration (2nd ed., 2006), chapter I
@kernel(lambda rng: (0.8, -0.3, 0.01, 20), "Stoermer-Verlet pendulum (Hairer, Lubich & Wanner 2006)",
        "scalar state carried through a loop, sin", freeze=(1, 2))
@njit
def pendulum(theta, omega, dt, nsteps):
    for _ in range(nsteps):
        omega -= 0.5 * dt * G_OVER_L * math.sin(theta)
        theta += dt * omega
        omega -= 0.5 * dt * G_OVER_L * math.sin(theta)
    return theta + 0.1 * omega


KB_BOND, R0_BOND, KT_ANGLE, T0_ANGLE = 300.0, 1.0, 50.0, 1.91


def _bonded_args(rng):
    pos = np.array([[0.0, 0.0, 0.0], [1.05, 0.0, 0.0], [1.4, 0.95, 0.0], [2.4, 1.1, 0.3], [2.9, 2.0, 0.6]])
    pos += 0.02 * rng.standard_normal(pos.shape)
    bonds = np.array([[0, 1], [1, 2], [2, 3], [3, 4]])
    angles = np.array([[0, 1, 2], [1, 2, 3], [2, 3, 4]])
    return pos, bonds, angles


# Harmonic bond and angle terms of the AMBER force field (Cornell et al., J. Am. Chem. Soc. 117, 5179,
# 1995): k_b (r - r0)^2 + k_theta (theta - theta0)^2, theta from math.acos
@kernel(_bonded_args, "AMBER bonded terms (Cornell et al. 1995)", "integer index arrays (topology), acos, "
        "sqrt")
@njit
def bonded_energy(pos, bonds, angles):
    e = 0.0
    for b in range(bonds.shape[0]):
        i, j = bonds[b, 0], bonds[b, 1]
        r2 = 0.0
        for k in range(3):
            d = pos[i, k] - pos[j, k]
            r2 += d * d
        e += KB_BOND * (math.sqrt(r2) - R0_BOND) ** 2
    for a in range(angles.shape[0]):
        i, j, k = angles[a, 0], angles[a, 1], angles[a, 2]
        dot = 0.0
        n1 = 0.0
        n2 = 0.0
        for c in range(3):
            u = pos[i, c] - pos[j, c]
            w = pos[k, c] - pos[j, c]
            dot += u * w
            n1 += u * u
            n2 += w * w
        theta = math.acos(dot / math.sqrt(n1 * n2))
        e += KT_ANGLE * (theta - T0_ANGLE) ** 2
    return e


# =============================================================== PDEs and linear solvers

def _poisson_args(rng):
    return 0.1 * rng.standard_normal((5, 5)), rng.standard_normal((5, 5))


# Jacobi relaxation of the 2-D Poisson equation, as in Numerical Recipes (3rd ed.), "Relaxation methods for
# boundary value problems" (the model problem); returns the squared residual
@kernel(lambda rng: (*_poisson_args(rng), 3), "Jacobi sweeps, 2-D Poisson (Numerical Recipes)",
        "5-point stencil, u.copy() scratch, in-place copy back", freeze=(1,), modes=FOUR_MODES)
@njit
def jacobi_poisson(u, f, sweeps):
    n, m = u.shape
    h2 = (1.0 / (n - 1)) ** 2
    new = u.copy()
    for _ in range(sweeps):
        for i in range(1, n - 1):
            for j in range(1, m - 1):
                new[i, j] = 0.25 * (u[i - 1, j] + u[i + 1, j] + u[i, j - 1] + u[i, j + 1] - h2 * f[i, j])
        for i in range(1, n - 1):
            for j in range(1, m - 1):
                u[i, j] = new[i, j]
    r = 0.0
    for i in range(1, n - 1):
        for j in range(1, m - 1):
            res = (u[i - 1, j] + u[i + 1, j] + u[i, j - 1] + u[i, j + 1] - 4.0 * u[i, j]) / h2 - f[i, j]
            r += res * res
    return r


# Gauss-Seidel with successive over-relaxation (Young 1950), lexicographic order, in place, as in
# Numerical Recipes (3rd ed.), "Relaxation methods for boundary value problems"
@kernel(lambda rng: (*_poisson_args(rng), 1.5, 3), "Gauss-Seidel / SOR sweeps (Young 1950; Numerical Recipes)",
        "in-place stencil reading values written in the same sweep, relaxation factor", freeze=(1, 2))
@njit
def sor_poisson(u, f, omega, sweeps):
    n, m = u.shape
    h2 = (1.0 / (n - 1)) ** 2
    for _ in range(sweeps):
        for i in range(1, n - 1):
            for j in range(1, m - 1):
                gs = 0.25 * (u[i - 1, j] + u[i + 1, j] + u[i, j - 1] + u[i, j + 1] - h2 * f[i, j])
                u[i, j] += omega * (gs - u[i, j])


# The heat equation u_t = u_xx by forward Euler in time and central differences in space (FTCS), as in
# LeVeque, Finite Difference Methods for ODEs and PDEs (2007), chapter 9; two buffers swapped
@kernel(lambda rng: (rng.uniform(0.0, 1.0, 8), 0.4, 5), "FTCS heat equation (LeVeque 2007)",
        "two buffers swapped by name (u, un = un, u), Dirichlet boundaries, returned array", freeze=(1,))
@njit
def heat_ftcs(u0, r, nsteps):
    n = u0.shape[0]
    u = u0.copy()
    un = np.empty(n)
    for _ in range(nsteps):
        un[0] = 0.0
        un[n - 1] = 0.0
        for i in range(1, n - 1):
            un[i] = u[i] + r * (u[i + 1] - 2.0 * u[i] + u[i - 1])
        u, un = un, u
    return u


def _tridiag_args(rng, n=6):
    a = rng.uniform(-1.0, -0.5, n)
    c = rng.uniform(-1.0, -0.5, n)
    b = rng.uniform(2.5, 3.5, n)
    return a, b, c, rng.standard_normal(n)


# The Thomas algorithm, as Numerical Recipes' tridag (3rd ed., "Tridiagonal and band-diagonal systems");
# a[0] and c[n-1] are not used
@kernel(_tridiag_args, "Thomas algorithm, Numerical Recipes tridag", "forward elimination and back "
        "substitution (a reversed range), scratch arrays, returned solution", freeze=(0, 1, 2))
@njit
def thomas(a, b, c, d):
    n = d.shape[0]
    cp = np.empty(n)
    dp = np.empty(n)
    x = np.empty(n)
    cp[0] = c[0] / b[0]
    dp[0] = d[0] / b[0]
    for i in range(1, n):
        m = b[i] - a[i] * cp[i - 1]
        cp[i] = c[i] / m
        dp[i] = (d[i] - a[i] * dp[i - 1]) / m
    x[n - 1] = dp[n - 1]
    for i in range(n - 2, -1, -1):
        x[i] = dp[i] - cp[i] * x[i + 1]
    return x


def _spd(rng, n):
    m = rng.standard_normal((n, n))
    return m @ m.T / n + np.eye(n)


# Cholesky factorisation in loops, as Numerical Recipes' choldc (3rd ed., "Cholesky decomposition"), then
# log det A = 2 sum log L_ii; reads the lower triangle only
@kernel(lambda rng: (_spd(rng, 4),), "Cholesky in loops (Numerical Recipes choldc), log-determinant",
        "triangular loops, sqrt, a raise for non-positive pivots, L allocated by np.zeros_like", modes=FOUR_MODES)
@njit
def cholesky_logdet(A):
    n = A.shape[0]
    L = np.zeros_like(A)
    for i in range(n):
        for j in range(i + 1):
            s = A[i, j]
            for k in range(j):
                s -= L[i, k] * L[j, k]
            if i == j:
                if s <= 0.0:
                    raise ValueError("matrix is not positive definite")
                L[i, i] = math.sqrt(s)
            else:
                L[i, j] = s / L[j, j]
    ld = 0.0
    for i in range(n):
        ld += 2.0 * math.log(L[i, i])
    return ld


@njit
def _matvec(A, x, out):
    for i in range(A.shape[0]):
        s = 0.0
        for j in range(A.shape[1]):
            s += A[i, j] * x[j]
        out[i] = s


@njit
def _vdot(x, y):
    s = 0.0
    for i in range(x.shape[0]):
        s += x[i] * y[i]
    return s


# Conjugate gradients, as in Shewchuk, "An introduction to the conjugate gradient method without the
# agonizing pain" (1994), algorithm B2 (Hestenes & Stiefel 1952), with the usual early exit on the residual
@kernel(lambda rng: (_spd(rng, 5), rng.standard_normal(5), 3), "conjugate gradients (Hestenes & Stiefel 1952; "
        "Shewchuk 1994, B2)", "helper @njit matvec/dot, scratch vectors, break on a residual test, returned x",
        freeze=(1,), modes=FOUR_MODES)
@njit
def cg_solve(A, b, maxiter):
    n = b.shape[0]
    x = np.zeros(n)
    r = b.copy()
    p = r.copy()
    Ap = np.empty(n)
    rs = _vdot(r, r)
    for _ in range(maxiter):
        _matvec(A, p, Ap)
        alpha = rs / _vdot(p, Ap)
        for i in range(n):
            x[i] += alpha * p[i]
            r[i] -= alpha * Ap[i]
        rs_new = _vdot(r, r)
        if math.sqrt(rs_new) < 1e-12:
            break
        for i in range(n):
            p[i] = r[i] + (rs_new / rs) * p[i]
        rs = rs_new
    return x


# =============================================================== ODE integrators

@njit
def _lv_rhs(y, theta, out):
    out[0] = theta[0] * y[0] - theta[1] * y[0] * y[1]
    out[1] = theta[3] * y[0] * y[1] - theta[2] * y[1]


# The classical Runge-Kutta method (Hairer, Noersett & Wanner, Solving ODEs I, §II.1) on the Lotka-Volterra
# equations (Lotka 1925, Volterra 1926)
@kernel(lambda rng: (np.array([1.0, 0.5]), np.array([1.1, 0.4, 0.4, 0.1]), 0.1, 10),
        "RK4 (Hairer, Noersett & Wanner I) on Lotka-Volterra", "helper writing stage arrays, four stages "
        "allocated inside, returned state", freeze=(0, 2))
@njit
def lotka_volterra_rk4(y0, theta, dt, nsteps):
    y = y0.copy()
    k1 = np.empty(2)
    k2 = np.empty(2)
    k3 = np.empty(2)
    k4 = np.empty(2)
    tmp = np.empty(2)
    for _ in range(nsteps):
        _lv_rhs(y, theta, k1)
        for i in range(2):
            tmp[i] = y[i] + 0.5 * dt * k1[i]
        _lv_rhs(tmp, theta, k2)
        for i in range(2):
            tmp[i] = y[i] + 0.5 * dt * k2[i]
        _lv_rhs(tmp, theta, k3)
        for i in range(2):
            tmp[i] = y[i] + dt * k3[i]
        _lv_rhs(tmp, theta, k4)
        for i in range(2):
            y[i] += dt / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i])
    return y


def _lv_fit_args(rng):
    theta = np.array([1.1, 0.4, 0.4, 0.1])
    data = np.array([[1.0, 0.5]]) + 0.1 * np.abs(rng.standard_normal((8, 2)))
    return theta, np.array([1.0, 0.5]), data, 0.1


# Fitting the Lotka-Volterra parameters to population data by least squares, the trajectory stored row by
# row (`traj[t, :] = y`), as in Carpenter, "Predator-prey population dynamics: the Lotka-Volterra model in
# Stan" (Stan case study, 2018), here with forward Euler steps
@kernel(_lv_fit_args, "Lotka-Volterra fit to data (Carpenter, Stan case study 2018), Euler steps",
        "a trajectory stored by row slice assignment in the time loop, least squares against data",
        freeze=(1, 2, 3), modes=FOUR_MODES)    # order=2: llad.hvp refuses, see tests/test_realworld.py
@njit
def lv_fit_loss(theta, y0, data, dt):
    nt = data.shape[0]
    traj = np.empty((nt, 2))
    y = y0.copy()
    dy = np.empty(2)
    for t in range(nt):
        traj[t, :] = y
        _lv_rhs(y, theta, dy)
        for i in range(2):
            y[i] += dt * dy[i]
    loss = 0.0
    for t in range(nt):
        for i in range(2):
            r = traj[t, i] - data[t, i]
            loss += r * r
    return loss


# Kepler's equation E - e sin E = M by Newton's method, as in Murray & Dermott, Solar System Dynamics
# (1999), §2.4 (starting value E0 = M, or pi for large e), with an early exit on convergence
@kernel(lambda rng: (1.3, 0.3), "Kepler's equation by Newton (Murray & Dermott 1999)",
        "Newton iteration to convergence, exit by break", freeze=(1,))
@njit
def kepler_E(M, e):
    E = M if e < 0.8 else math.pi
    for _ in range(50):
        dE = (E - e * math.sin(E) - M) / (1.0 - e * math.cos(E))
        E -= dE
        if abs(dE) < 1e-14:
            break
    return E


# =============================================================== statistics, estimation, finance

# The Kalman filter log-likelihood of the local level model, as in Durbin & Koopman, Time Series Analysis
# by State Space Methods (2nd ed., 2012), chapter 2 (variances on the log scale)
@kernel(lambda rng: (np.cumsum(rng.standard_normal(8)), math.log(0.5), math.log(0.2)),
        "Kalman filter, local level model (Durbin & Koopman 2012)", "a scalar recursion, exp/log, "
        "Active float parameters", freeze=(0, 2))
@njit
def kalman_local_level(y, log_s2_eps, log_s2_eta):
    s2e = math.exp(log_s2_eps)
    s2n = math.exp(log_s2_eta)
    a = y[0]
    P = s2e + s2n
    ll = 0.0
    for t in range(1, y.shape[0]):
        F = P + s2e
        v = y[t] - a
        ll -= 0.5 * (math.log(2.0 * math.pi) + math.log(F) + v * v / F)
        K = P / F
        a = a + K * v
        P = P * (1.0 - K) + s2n
    return ll


DT_CV = 1.0


# A Kalman filter for the constant-velocity (white-noise acceleration) model, as in Bar-Shalom, Li &
# Kirubarajan, Estimation with Applications to Tracking and Navigation (2001), 2x2 covariance algebra in
# loops; returns the negative log-likelihood of position measurements
@kernel(lambda rng: (np.cumsum(1.0 + 0.3 * rng.standard_normal(7)), 0.2, 0.5),
        "Kalman filter, constant-velocity model (Bar-Shalom, Li & Kirubarajan 2001)",
        "2x2 matrices allocated inside (np.array of tuples, np.empty((2, 2))), matrix products in loops",
        freeze=(0, 1), modes=FOUR_MODES)
@njit
def kalman_cv_nll(z, q, r):
    F = np.array(((1.0, DT_CV), (0.0, 1.0)))
    Q = np.empty((2, 2))
    Q[0, 0] = q * DT_CV ** 3 / 3.0
    Q[0, 1] = q * DT_CV ** 2 / 2.0
    Q[1, 0] = Q[0, 1]
    Q[1, 1] = q * DT_CV
    x = np.zeros(2)
    x[0] = z[0]
    P = np.zeros((2, 2))
    P[0, 0] = r
    P[1, 1] = 1.0
    tmp = np.empty((2, 2))
    Pp = np.empty((2, 2))
    nll = 0.0
    for t in range(1, z.shape[0]):
        xp0 = x[0] + DT_CV * x[1]
        xp1 = x[1]
        for i in range(2):
            for j in range(2):
                s = 0.0
                for k in range(2):
                    s += F[i, k] * P[k, j]
                tmp[i, j] = s
        for i in range(2):
            for j in range(2):
                s = 0.0
                for k in range(2):
                    s += tmp[i, k] * F[j, k]
                Pp[i, j] = s + Q[i, j]
        S = Pp[0, 0] + r
        innov = z[t] - xp0
        K0 = Pp[0, 0] / S
        K1 = Pp[1, 0] / S
        x[0] = xp0 + K0 * innov
        x[1] = xp1 + K1 * innov
        for j in range(2):
            P[0, j] = Pp[0, j] - K0 * Pp[0, j]
            P[1, j] = Pp[1, j] - K1 * Pp[0, j]
        nll += 0.5 * (math.log(2.0 * math.pi * S) + innov * innov / S)
    return nll


# Welford's online variance (Welford, Technometrics 4, 1962; Knuth, TAOCP vol. 2, §4.2.2)
@kernel(lambda rng: (rng.standard_normal(7),), "Welford's online variance (Welford 1962; Knuth TAOCP 2)",
        "running mean and M2 recursion, division by the loop count")
@njit
def welford_var(x):
    mean = 0.0
    m2 = 0.0
    for k in range(x.shape[0]):
        delta = x[k] - mean
        mean += delta / (k + 1)
        m2 += delta * (x[k] - mean)
    return m2 / (x.shape[0] - 1)


# Holt's linear trend method (Holt 1957), the sum of squared one-step errors, as in Hyndman &
# Athanasopoulos, Forecasting: Principles and Practice, "Methods with trend"
@kernel(lambda rng: (np.cumsum(1.0 + 0.5 * rng.standard_normal(8)), 0.5, 0.3),
        "Holt's linear exponential smoothing (Holt 1957; Hyndman & Athanasopoulos)",
        "a two-state recursion with smoothing parameters", freeze=(0, 2))
@njit
def holt_sse(y, alpha, beta):
    level = y[0]
    trend = y[1] - y[0]
    sse = 0.0
    for t in range(1, y.shape[0]):
        e = y[t] - (level + trend)
        sse += e * e
        new_level = alpha * y[t] + (1.0 - alpha) * (level + trend)
        trend = beta * (new_level - level) + (1.0 - beta) * trend
        level = new_level
    return sse


RSQRT2PI = 0.39894228040143267794
A1, A2, A3, A4, A5 = 0.31938153, -0.356563782, 1.781477937, -1.821255978, 1.330274429


@njit
def cnd(d):
    """The normal CDF by Abramowitz & Stegun 26.2.17, as in Numba's Black-Scholes example."""
    K = 1.0 / (1.0 + 0.2316419 * math.fabs(d))
    ret_val = RSQRT2PI * math.exp(-0.5 * d * d) * (K * (A1 + K * (A2 + K * (A3 + K * (A4 + K * A5)))))
    if d > 0:
        ret_val = 1.0 - ret_val
    return ret_val


def _bs_args(rng):
    return (rng.uniform(80.0, 120.0, 4), rng.uniform(90.0, 110.0, 4), rng.uniform(0.25, 2.0, 4), 0.03, 0.25)


# Black-Scholes call prices (Black & Scholes 1973), as in Numba's examples/blackscholes (cnd by Abramowitz &
# Stegun 26.2.17); the spot differentiated by check_grads, every Greek by the oracle test
@kernel(_bs_args, "Black-Scholes, Numba's blackscholes example (A&S 26.2.17 normal CDF)",
        "fabs and a branch in a helper, log/sqrt/exp, returned price array", freeze=(1, 2, 3, 4))
@njit
def black_scholes(S, K, T, r, sigma):
    out = np.empty_like(S)
    for i in range(S.shape[0]):
        sqrtT = math.sqrt(T[i])
        d1 = (math.log(S[i] / K[i]) + (r + 0.5 * sigma * sigma) * T[i]) / (sigma * sqrtT)
        d2 = d1 - sigma * sqrtT
        out[i] = S[i] * cnd(d1) - K[i] * math.exp(-r * T[i]) * cnd(d2)
    return out


# Horner's rule (Knuth, TAOCP vol. 2, §4.6.4), coefficients highest degree first as numpy.polyval
@kernel(lambda rng: (rng.standard_normal(5), rng.uniform(-1.5, 1.5, 6)), "Horner's rule (Knuth TAOCP 2 "
        "§4.6.4), numpy.polyval order", "a recurrence in an inner loop, returned array", freeze=(0,))
@njit
def horner(c, x):
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        p = c[0]
        for k in range(1, c.shape[0]):
            p = p * x[i] + c[k]
        out[i] = p
    return out


# The cumulative trapezoidal rule, scipy.integrate.cumulative_trapezoid(y, x) (initial=None)
@kernel(lambda rng: (rng.standard_normal(7), np.cumsum(rng.uniform(0.1, 0.5, 7))),
        "scipy.integrate.cumulative_trapezoid", "a running sum written to a returned array of n - 1", freeze=(1,))
@njit
def cumtrapz(y, x):
    n = y.shape[0]
    out = np.empty(n - 1)
    s = 0.0
    for i in range(n - 1):
        s += 0.5 * (x[i + 1] - x[i]) * (y[i + 1] + y[i])
        out[i] = s
    return out


def _gp_args(rng):
    X = rng.uniform(-2.0, 2.0, (5, 2))
    y = np.sin(X[:, 0]) + 0.1 * rng.standard_normal(5)
    return np.array([math.log(0.8), math.log(1.2), math.log(0.1)]), X, y


# The Gaussian process negative log marginal likelihood with a squared-exponential kernel, Rasmussen &
# Williams, Gaussian Processes for Machine Learning (2006), Algorithm 2.1, in loops; hyperparameters on
# the log scale as scikit-learn's kernel.theta
@kernel(_gp_args, "GP log marginal likelihood, Rasmussen & Williams Alg. 2.1 (in loops)",
        "kernel matrix, Cholesky, two triangular solves, all allocated inside", freeze=(1, 2), modes=FOUR_MODES)
@njit
def gp_neg_loglik(theta, X, y):
    n, d = X.shape
    ell = math.exp(theta[0])
    sf2 = math.exp(2.0 * theta[1])
    sn2 = math.exp(2.0 * theta[2])
    K = np.empty((n, n))
    for i in range(n):
        for j in range(n):
            r2 = 0.0
            for k in range(d):
                t = (X[i, k] - X[j, k]) / ell
                r2 += t * t
            K[i, j] = sf2 * math.exp(-0.5 * r2)
        K[i, i] += sn2
    L = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1):
            s = K[i, j]
            for k in range(j):
                s -= L[i, k] * L[j, k]
            L[i, j] = math.sqrt(s) if i == j else s / L[j, j]
    z = np.empty(n)                       # L z = y
    for i in range(n):
        s = y[i]
        for k in range(i):
            s -= L[i, k] * z[k]
        z[i] = s / L[i, i]
    alpha = np.empty(n)                   # L^T alpha = z
    for i in range(n - 1, -1, -1):
        s = z[i]
        for k in range(i + 1, n):
            s -= L[k, i] * alpha[k]
        alpha[i] = s / L[i, i]
    nll = 0.5 * n * math.log(2.0 * math.pi)
    for i in range(n):
        nll += 0.5 * y[i] * alpha[i] + math.log(L[i, i])
    return nll


# =============================================================== machine learning losses

@njit
def log1pexp(t):
    """log(1 + exp(t)) without overflow, as scikit-learn's log_logistic."""
    if t > 0.0:
        return t + math.log1p(math.exp(-t))
    return math.log1p(math.exp(t))


def _logreg_args(rng):
    X = rng.standard_normal((8, 3))
    return rng.standard_normal(3), X, (rng.uniform(size=8) < 0.5).astype(np.int64), 0.1


# L2-regularised logistic regression negative log-likelihood (Bishop, Pattern Recognition and Machine
# Learning, §4.3.2; the stable form of scikit-learn's _logistic_loss), labels in {0, 1}
@kernel(_logreg_args, "logistic regression NLL (Bishop PRML §4.3.2; scikit-learn _logistic_loss)",
        "integer labels, stable log1p(exp) with a branch in a helper", freeze=(1, 3))
@njit
def logreg_nll(w, X, y, lam):
    loss = 0.0
    for i in range(X.shape[0]):
        z = 0.0
        for k in range(X.shape[1]):
            z += X[i, k] * w[k]
        loss += log1pexp(-z) if y[i] == 1 else log1pexp(z)
    for k in range(w.shape[0]):
        loss += 0.5 * lam * w[k] * w[k]
    return loss


def _softmax_args(rng):
    return rng.standard_normal((3, 4)), rng.standard_normal((6, 3)), rng.integers(0, 4, 6)


# Softmax cross-entropy with the max subtracted (log-sum-exp trick), mean over samples, logits X W in loops
# (Goodfellow, Bengio & Courville, Deep Learning (2016), §6.2.2.3 and §4.1)
@kernel(_softmax_args, "softmax cross-entropy with the max trick (Goodfellow, Bengio & Courville §6.2.2.3)",
        "a running max (branch), logits row scratch, integer labels", freeze=(1,))
@njit
def softmax_xent(W, X, labels):
    n, d = X.shape
    k = W.shape[1]
    z = np.empty(k)
    loss = 0.0
    for i in range(n):
        zmax = -np.inf
        for c in range(k):
            s = 0.0
            for j in range(d):
                s += X[i, j] * W[j, c]
            z[c] = s
            if s > zmax:
                zmax = s
        se = 0.0
        for c in range(k):
            se += math.exp(z[c] - zmax)
        loss += zmax + math.log(se) - z[labels[i]]
    return loss / n


HUBER_K = 1.345


def _huber_args(rng):
    x = np.linspace(0.0, 2.0, 8)
    y = 0.5 + 1.5 * x + 0.4 * rng.standard_normal(8)
    y[3] += 4.0                                 # an outlier in the linear branch
    theta = np.array([0.45, 1.55])
    r = y - theta[0] - theta[1] * x
    assert np.all(np.abs(np.abs(r) - HUBER_K) > 0.05)
    return theta, x, y


# Linear regression with Huber's loss (Huber, Ann. Math. Statist. 35, 1964), k = 1.345 for 95% efficiency
# (as scikit-learn's HuberRegressor epsilon default 1.35, statsmodels' HuberT)
@kernel(_huber_args, "Huber loss regression (Huber 1964; statsmodels HuberT)", "abs and a branch per residual "
        "(quadratic / linear)", freeze=(1, 2))
@njit
def huber_regression(theta, x, y):
    loss = 0.0
    for i in range(x.shape[0]):
        r = y[i] - (theta[0] + theta[1] * x[i])
        a = abs(r)
        if a <= HUBER_K:
            loss += 0.5 * r * r
        else:
            loss += HUBER_K * (a - 0.5 * HUBER_K)
    return loss


def _mlp_args(rng, d=3, hidden=4, n=5):
    size = hidden * d + hidden + hidden + 1
    return 0.5 * rng.standard_normal(size), rng.standard_normal((n, d)), rng.standard_normal(n), hidden


# A one-hidden-layer tanh network with a mean squared error, parameters in one flat vector unpacked with
# slices and reshape (the scipy.optimize.minimize idiom), forward pass in loops (Goodfellow, Bengio &
# Courville, Deep Learning (2016), §6)
@kernel(_mlp_args, "MLP in loops, flat parameter vector (Goodfellow, Bengio & Courville §6)",
        "slices and reshape of a differentiated array, tanh, a hidden-activation scratch array",
        freeze=(1, 2), modes=FOUR_MODES)
@njit
def mlp_mse(theta, X, y, hidden):
    n, d = X.shape
    W1 = theta[:hidden * d].reshape((hidden, d))
    b1 = theta[hidden * d:hidden * d + hidden]
    W2 = theta[hidden * d + hidden:hidden * d + 2 * hidden]
    b2 = theta[-1]
    h = np.empty(hidden)
    loss = 0.0
    for i in range(n):
        for j in range(hidden):
            s = b1[j]
            for k in range(d):
                s += W1[j, k] * X[i, k]
            h[j] = math.tanh(s)
        out = b2
        for j in range(hidden):
            out += W2[j] * h[j]
        r = out - y[i]
        loss += r * r
    return loss / n


def _kmeans_args(rng):
    C = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 3.0]])
    X = C[rng.integers(0, 3, 10)] + 0.5 * rng.standard_normal((10, 2))
    return X, C + 0.2 * rng.standard_normal(C.shape)


# The k-means objective (Lloyd 1982; MacQueen 1967): sum over points of the squared distance to the
# nearest centre
@kernel(_kmeans_args, "k-means energy (Lloyd 1982)", "an arg-min over centres (branch on a running minimum)",
        freeze=(0,))
@njit
def kmeans_energy(X, C):
    e = 0.0
    for i in range(X.shape[0]):
        best = np.inf
        for k in range(C.shape[0]):
            d2 = 0.0
            for j in range(X.shape[1]):
                t = X[i, j] - C[k, j]
                d2 += t * t
            if d2 < best:
                best = d2
        e += best
    return e
