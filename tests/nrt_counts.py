"""NRT allocation statistics of a snippet run in a fresh process (`NUMBA_NRT_STATS=1`), for leak tests."""
import os
import pathlib
import subprocess
import sys
import textwrap

ROOT = pathlib.Path(__file__).resolve().parent.parent


def leaks(setup: str, one_round: str, rounds: int = 20) -> tuple[int, int, int]:
    """Run `setup`, then `one_round` once to warm up and `rounds` more times: (meminfos not freed, meminfos
    allocated, raw NRT allocations not freed) over those rounds."""
    code = textwrap.dedent(setup) + "\ndef one_round():\n" + textwrap.indent(textwrap.dedent(one_round), "    ") + \
        textwrap.dedent(f"""
        from numba.core.runtime import rtsys
        one_round()
        s0 = rtsys.get_allocation_stats()
        for _ in range({rounds}):
            one_round()
        s1 = rtsys.get_allocation_stats()
        print((s1.mi_alloc - s0.mi_alloc) - (s1.mi_free - s0.mi_free), s1.mi_alloc - s0.mi_alloc,
              (s1.alloc - s0.alloc) - (s1.free - s0.free))
        """)
    path = os.pathsep.join([str(ROOT), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])
    out = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, NUMBA_NRT_STATS="1", PYTHONPATH=path),
                         capture_output=True, text=True, cwd=str(ROOT))
    assert out.returncode == 0, out.stderr
    leaked, allocated, raw = map(int, out.stdout.split())
    return leaked, allocated, raw
