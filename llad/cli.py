"""The `llad` command: `llad demo`, `llad dump FILE.py:FUNC ...`."""
from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys

EXAMPLES = """examples:
  llad demo
  llad dump examples/sumsin.py:sumsin --mode reverse --args "float64[::1]" --activity dup --depth deriv
  llad dump examples/sumsin.py:sumsin --mode forward --args "float64[::1]" --activity dup --depth asm
  llad dump kernels.py:step --mode reverse --args "float64[:, ::1], int64, float64" \\
            --activity dup,const,active --depth all
  llad dump examples/sumsin.py:sumsin --mode reverse --args "float64[::1]" --depth cfg -o cfg.svg
"""


class CLIError(Exception):
    """A user error: printed as one line, exit status 2."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="llad", description="llad: a differentiating compiler for Numba functions.",
                                epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--verbose", action="store_true", help="show Python tracebacks and IR in errors")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="differentiate bundled kernels (ODE, GMM, stencil), check them against finite "
                                "differences, and time them")
    d = sub.add_parser("dump", help="print one lowering depth of a derivative",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    d.add_argument("target", metavar="FILE.py:FUNC", help="the Python file and the function in it (a numba.njit "
                                                         "function or a plain one, which llad jits)")
    d.add_argument("--mode", choices=["forward", "forward-primal", "reverse", "reverse-primal"], default="reverse",
                   help="derivative mode (default: reverse)")
    d.add_argument("--args", required=True, metavar="TYPES",
                   help='argument types in Numba syntax, comma separated, e.g. "float64[::1], int64, float32[:, :]"')
    d.add_argument("--activity", metavar="LIST", default=None,
                   help="one of dup, const, active per argument, comma separated (default: dup for float arrays, "
                        "const otherwise; active is for float scalars in reverse mode)")
    d.add_argument("--return", dest="ret", choices=["active", "const", "dup"], default=None,
                   help="return activity (default: active for a float result in reverse, dup in forward)")
    d.add_argument("--depth", default="deriv",
                   choices=["python", "numba", "llvm", "deriv", "deriv-opt", "asm", "cfg", "all"],
                   help="python (source), numba (typed IR), llvm (primal IR the AD pass reads), deriv (derivative "
                        "IR before optimisation), deriv-opt (after O3), asm (native), cfg (Graphviz DOT of the "
                        "derivative's control flow), all")
    d.add_argument("--annotate", action="store_true",
                   help="with --depth llvm: mark each instruction active/inactive and each taped value")
    d.add_argument("-o", "--output", metavar="FILE",
                   help="write to FILE instead of stdout; for --depth cfg, FILE.svg/.png renders with Graphviz")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "demo":
            from . import demo
            return demo.run()
        return _dump(args)
    except CLIError as e:
        print(f"llad: error: {e}", file=sys.stderr)
        return 2
    except Exception as e:   # noqa: BLE001 - one clear line unless --verbose
        if args.verbose:
            raise
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"llad: error: {type(e).__name__}: {msg}", file=sys.stderr)
        return 1


def _load_function(target: str):
    if ":" not in target:
        raise CLIError(f"expected FILE.py:FUNC, got {target!r}")
    path, name = target.rsplit(":", 1)
    if not os.path.isfile(path):
        raise CLIError(f"no such file: {path}")
    spec = importlib.util.spec_from_file_location("_llad_user_module", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module      # as an import would: Numba links a recursive call through it
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
    try:
        spec.loader.exec_module(module)
    except SyntaxError as e:
        raise CLIError(f"syntax error in {path}:{e.lineno}: {e.msg}") from None
    except Exception as e:   # noqa: BLE001
        raise CLIError(f"importing {path} failed: {type(e).__name__}: {e}") from None
    fn = getattr(module, name, None)
    if fn is None or not callable(fn):
        raise CLIError(f"{path} has no function {name!r}")
    return fn


def parse_types(text: str) -> list:
    import numba
    from numba.core import types
    out = []
    for part in _split_types(text):
        try:
            t = eval(part, {"__builtins__": {}}, {**vars(types), "numba": numba})  # noqa: S307 (type syntax only)
        except Exception:  # noqa: BLE001
            raise CLIError(f"cannot read the type {part!r} (use Numba syntax, e.g. float64[::1], int64)") from None
        if not isinstance(t, types.Type):
            raise CLIError(f"{part!r} is not a Numba type")
        out.append(t)
    return out


def _split_types(text: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in text:
        depth += ch in "[(" and 1 or 0
        depth -= ch in "])" and 1 or 0
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur.strip())
    if not parts:
        raise CLIError("--args is empty")
    return parts


def example_value(t, rng):
    """A value of Numba type t, to specialise the derivative on (only the type matters)."""
    import numpy as np
    from numba.core import types
    if isinstance(t, types.Array):
        dtype = np.dtype(str(t.dtype))
        shape = (4,) * t.ndim
        if t.layout == "C":
            return rng.random(shape).astype(dtype)
        if t.layout == "F":
            return np.asfortranarray(rng.random(shape).astype(dtype))
        return rng.random(tuple(2 * s for s in shape)).astype(dtype)[(slice(None, None, 2),) * t.ndim]
    if isinstance(t, types.Boolean):
        return True
    if isinstance(t, types.Integer):
        return 4
    if isinstance(t, types.Float):
        return 0.5
    if isinstance(t, types.BaseTuple):
        return tuple(example_value(e, rng) for e in t.types)
    raise CLIError(f"llad dump cannot make an example value of type {t}")


def _dump(args) -> int:
    import numpy as np
    from numba.core import types

    import llad
    fn = _load_function(args.target)
    tys = parse_types(args.args)
    acts = [a.strip() for a in args.activity.split(",")] if args.activity else [
        "dup" if isinstance(t, types.Array) and isinstance(t.dtype, types.Float) else "const" for t in tys]
    if len(acts) != len(tys):
        raise CLIError(f"--activity has {len(acts)} entries but --args has {len(tys)}")
    rng = np.random.default_rng(0)
    annotated = []
    for t, a in zip(tys, acts):
        v = example_value(t, rng)
        if a == "dup":
            annotated.append(llad.Duplicated(v, np.zeros_like(v)))
        elif a == "active":
            annotated.append(llad.Active(float(v)))
        elif a == "const":
            annotated.append(llad.Const(v))
        else:
            raise CLIError(f"unknown activity {a!r} (use dup, const or active)")
    mode = {"forward": llad.Forward, "forward-primal": llad.ForwardWithPrimal, "reverse": llad.Reverse,
            "reverse-primal": llad.ReverseWithPrimal}[args.mode]
    ret = {"active": llad.Active, "const": llad.Const, "dup": llad.Duplicated, None: None}[args.ret]
    call_args = ([ret] if ret is not None else []) + annotated
    text = llad.dump(mode, fn, *call_args, depth=args.depth, annotate=args.annotate)
    return _write(text, args)


def _write(text: str, args) -> int:
    if not args.output:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return 0
    out = args.output
    if args.depth == "cfg" and os.path.splitext(out)[1] in (".svg", ".png", ".pdf"):
        dot = shutil.which("dot")
        if dot is None:
            raise CLIError("rendering needs Graphviz's `dot`: install it (Debian/Ubuntu: apt-get install graphviz; "
                           "macOS: brew install graphviz), or write DOT text with -o out.dot")
        subprocess.run([dot, "-T" + os.path.splitext(out)[1][1:], "-o", out], input=text.encode(), check=True)
        return 0
    with open(out, "w") as fh:
        fh.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
