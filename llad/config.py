"""`llad.config`: settings, each with an environment mirror read at import.

| setting | environment | meaning |
|---|---|---|
| `verbose` | `LLAD_VERBOSE` | log each derivative's compilation, stage by stage with its time, to the `llad` logger |

Only settings llad implements are here; the others of the API (`cache_dir`, `vector_math`,
`guard_memory`) are not built yet and are absent rather than accepted and ignored.
"""
from __future__ import annotations

import logging
import os
import sys

_TRUE = ("1", "true", "yes", "on")

logger = logging.getLogger("llad")


class Config:
    """The settings object (`llad.config`); assigning an unknown name is an error."""

    __slots__ = ("_verbose",)

    def __init__(self):
        self._verbose = False
        self.verbose = os.environ.get("LLAD_VERBOSE", "").strip().lower() in _TRUE

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
        return f"llad.config(verbose={self.verbose})"


config = Config()
