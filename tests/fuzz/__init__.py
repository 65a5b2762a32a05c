"""Property-based fuzzing of llad: random Numba kernels (grammar.py), checked by check.py."""
