"""A GradBench tool for llad: `python tools/gradbench/run.py` speaks GradBench's JSON-lines protocol."""
