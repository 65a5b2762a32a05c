"""The llad kernel corpus: ``CASES`` lists every registered case (see ``registry``)."""
from . import core, mathfns, reverse  # noqa: F401  (importing registers the cases)
from .registry import CASES, Case, Spec, arg_shape, fresh_args, is_float32, make_shadow

__all__ = ["CASES", "Case", "Spec", "arg_shape", "fresh_args", "get", "is_float32", "make_shadow"]


def get(name: str) -> Case:
    for c in CASES:
        if c.name == name:
            return c
    raise KeyError(name)
