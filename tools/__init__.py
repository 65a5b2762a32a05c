"""Developer tools for llad (benchmarks); not part of the installed package."""
