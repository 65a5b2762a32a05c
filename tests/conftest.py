"""Session-wide test settings.

llad's disk cache of derivatives is off in the test suite (LLAD_CACHE_DIR="" before llad is imported,
inherited by every subprocess a test starts): the suite never writes into the user's cache directory,
and every test compiles the derivative it checks, so no entry left by an earlier run (or by an earlier
test that patched llad) can change a result.  tests/test_derivative_cache.py turns the cache on in its
own subprocesses, each with its own directory.
"""
import os

os.environ["LLAD_CACHE_DIR"] = ""

import llad  # noqa: E402

llad.config.cache_dir = None
