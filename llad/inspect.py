"""The lowering depths of a derivative: what `llad.dump` and `llad dump` show."""
from __future__ import annotations

DEPTHS = ("python", "numba", "llvm", "deriv", "deriv-opt", "asm")


def dump(mode, f, *args, depth: str = "deriv") -> str:
    from .api import _get_derivative, prepare
    if depth not in DEPTHS + ("all",):
        raise ValueError(f"llad.dump: depth must be one of {', '.join(DEPTHS)} or 'all', got {depth!r}")
    plan, dispatcher, _, _ = prepare(mode, f, args)
    d = _get_derivative(dispatcher, plan)
    if depth == "all":
        return "\n".join(f";; ===== {dp} =====\n{_depth(d, dp)}" for dp in DEPTHS)
    return _depth(d, depth)


def _depth(d, depth: str) -> str:
    import inspect as pyinspect
    if depth == "python":
        return pyinspect.getsource(d.primal.dispatcher.py_func)
    if depth == "numba":
        import io
        buf = io.StringIO()
        d.primal.dispatcher.inspect_types(file=buf, signature=d.primal.signature)
        return buf.getvalue()
    if depth == "llvm":
        return d.primal.text
    if depth == "deriv":
        return d.text
    if depth == "deriv-opt":
        return d.library.get_llvm_str()
    if depth == "asm":
        return d.library.get_asm_str()
    raise ValueError(depth)
