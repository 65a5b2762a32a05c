"""Real-world kernels: code as Numba users write it (optimisation test problems, molecular dynamics,
integrators, linear solvers in loops, statistics and machine-learning losses), each with its source
named, checked by `tests/test_realworld.py`.  `KERNELS` lists them; `docs/realworld.md` tabulates them."""
from .kernels import KERNELS  # noqa: F401
