"""Benchmark harness: ``python -m tools.bench --help``."""
