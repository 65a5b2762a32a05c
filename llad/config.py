"""`llad.config`: settings, each with an environment mirror read at import.

| setting | environment | meaning |
|---|---|---|
| `verbose` | `LLAD_VERBOSE` | log each derivative's compilation, stage by stage with its time, to the `llad` logger |
| `vector_math` | `LLAD_VECTOR_MATH` | vectorised `exp`/`log`/`sin`/... in derivative code (llad's own functions, libmvec for the rest) and reassociable sums in its copy of f (default on); off: libm and f's arithmetic exactly (vecmath.py) |
| `cache_dir` | `LLAD_CACHE_DIR` | where derivatives are kept for later processes (docs/cache.md); `None` disables it |
| `guard_memory` | `LLAD_GUARD_MEMORY` | debugging: bounds-checked tapes and canaries around shadows (default off) |

`cache_dir` defaults to the per-user cache directory (`$XDG_CACHE_HOME/llad` or `~/.cache/llad`;
`~/Library/Caches/llad` on macOS, `%LOCALAPPDATA%/llad/Cache` on Windows); LLAD_CACHE_DIR set to `""` or
`none` disables the disk cache.

`guard_memory` (docs/errors.md, "Guarded memory"): every loop-tape access of a reverse derivative is
checked against the tape's capacity (an access outside goes to a scratch word instead), shadows llad
allocates get a canary after their end, checked when they are released, and the shadows of array
arguments are passed to the derivative inside canary-filled buffers checked after the call;
`llad.MemoryGuardError` names the kernel and what was overwritten.  Part of every derivative's plan: a
change compiles new derivatives.  Calls from Python only (a derivative called inside `@njit` is
compiled without guards).
"""
from __future__ import annotations

import logging
import os
import sys

_TRUE = ("1", "true", "yes", "on")

logger = logging.getLogger("llad")


class Config:
    """The settings object (`llad.config`); assigning an unknown name is an error."""

    __slots__ = ("_verbose", "_vector_math", "_cache_dir", "_guard_memory")

    def __init__(self):
        self._verbose = False
        self.verbose = os.environ.get("LLAD_VERBOSE", "").strip().lower() in _TRUE
        self._vector_math = os.environ.get("LLAD_VECTOR_MATH", "1").strip().lower() in _TRUE
        self._cache_dir = None
        self.cache_dir = _cache_dir_from_environment()
        self._guard_memory = os.environ.get("LLAD_GUARD_MEMORY", "0").strip().lower() in _TRUE

    @property
    def cache_dir(self) -> str | None:
        return self._cache_dir

    @cache_dir.setter
    def cache_dir(self, value) -> None:
        """A directory (created on the first write), or None: no derivative is read from or written to disk.
        Not part of any derivative's key: derivatives already in memory stay valid."""
        if value is None:
            self._cache_dir = None
            return
        if not isinstance(value, (str, os.PathLike)):
            raise TypeError(f"llad.config.cache_dir must be a path or None, got {value!r}")
        path = os.fspath(value)
        if not path:
            raise ValueError("llad.config.cache_dir: set None to disable the disk cache, not an empty path")
        self._cache_dir = os.path.abspath(os.path.expanduser(path))

    @property
    def vector_math(self) -> bool:
        return self._vector_math

    @vector_math.setter
    def vector_math(self, value: bool) -> None:
        """Part of every derivative's plan (its cache key): a change compiles new derivatives."""
        if bool(value) != self._vector_math:
            self._vector_math = bool(value)
            from . import api
            api.forget_calls()

    @property
    def guard_memory(self) -> bool:
        return self._guard_memory

    @guard_memory.setter
    def guard_memory(self, value: bool) -> None:
        """Part of every derivative's plan (its cache key): a change compiles new derivatives."""
        if bool(value) != self._guard_memory:
            self._guard_memory = bool(value)
            from . import api
            api.forget_calls()

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
        return (f"llad.config(verbose={self.verbose}, vector_math={self.vector_math}, cache_dir={self.cache_dir!r}, "
                f"guard_memory={self.guard_memory})")


def _cache_dir_from_environment() -> str | None:
    """LLAD_CACHE_DIR when set (`""` or `none`: disabled), else the platform's per-user cache directory."""
    env = os.environ.get("LLAD_CACHE_DIR")
    if env is not None:
        return None if env.strip().lower() in ("", "none") else env
    return default_cache_dir()


def default_cache_dir() -> str:
    """The per-user cache directory: the one pip and Numba's users expect (XDG on Linux)."""
    home = os.path.expanduser("~")
    if sys.platform == "win32":
        return os.path.join(os.environ.get("LOCALAPPDATA") or os.path.join(home, "AppData", "Local"), "llad", "Cache")
    if sys.platform == "darwin":
        return os.path.join(home, "Library", "Caches", "llad")
    return os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.join(home, ".cache"), "llad")


config = Config()
