"""`llad.config`: settings, each with an environment mirror read at import.

| setting | environment | meaning |
|---|---|---|
| `verbose` | `LLAD_VERBOSE` | log each derivative's compilation, stage by stage with its time, to the `llad` logger |
| `vector_math` | `LLAD_VECTOR_MATH` | llad's vectorisable `exp` in derivative code instead of libm's (default off) |

Only settings llad implements are here; the others of the API (`cache_dir`, `guard_memory`) are not
built yet and are absent rather than accepted and ignored.
"""
from __future__ import annotations

import logging
import os
import sys

_TRUE = ("1", "true", "yes", "on")

logger = logging.getLogger("llad")


class Config:
    """The settings object (`llad.config`); assigning an unknown name is an error."""

    __slots__ = ("_verbose", "_vector_math")

    def __init__(self):
        self._verbose = False
        self.verbose = os.environ.get("LLAD_VERBOSE", "").strip().lower() in _TRUE
        # off by default, unlike the API's plan: measured (docs/api.md), the branch-free exp wins 2x where the
        # loop vectoriser takes the loop, and loses up to 1.6x (logsumexp) where a strict reduction keeps
        # the loop scalar, against glibc's table-driven exp
        self._vector_math = os.environ.get("LLAD_VECTOR_MATH", "0").strip().lower() in _TRUE

    @property
    def vector_math(self) -> bool:
        return self._vector_math

    @vector_math.setter
    def vector_math(self, value: bool) -> None:
        """Part of every derivative's plan (its cache key): a change compiles new derivatives."""
        if bool(value) != self._vector_math:
            self._vector_math = bool(value)
            from . import api
            api._fast.clear()

    @property
    def verbose(self) -> bool:
        return self._verbose

    @verbose.setter
    def verbose(self, value: bool) -> None:
        self._verbose = bool(value)
        if self._verbose and not logger.handlers:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("llad: %(message)s"))
            logger.addHandler(handler)
        logger.setLevel(logging.INFO if self._verbose else logging.WARNING)

    def __repr__(self) -> str:
        return f"llad.config(verbose={self.verbose}, vector_math={self.vector_math})"


config = Config()
