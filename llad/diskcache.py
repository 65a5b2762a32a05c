"""Derivatives cached on disk, so that a second process calls them without compiling (docs/cache.md).

The key is computed from what the primal is made of, without running llad's frontend (which compiles a
fresh copy of the primal): Numba's way (the function's code, its closure, the signature, the CPU) plus
the values of the globals the function reads, recursively through every `@njit` function, module and
plain function it reaches, the plan (mode, activities, types: everything that decides the derivative's
code), and the versions of llad (a hash of its sources), Numba, llvmlite, NumPy and Python.  What cannot
be hashed makes the function uncacheable: it compiles as without a cache, and nothing is written.

An entry is one file `<cache_dir>/<key[:2]>/<key>.llad`: a header, the SHA-256 of the body, and the
body, a pickle of the derivative's object code (Numba's `serialize_using_object_code`: object code plus
the optimised bitcode for linking it into `@njit` callers), the compile result of its `@njit` entry point
reduced the way Numba's own cache reduces one, and every field of the in-memory `Derivative` the call
path reads.  Files are written to a temporary name and `os.replace`d, so readers never see half a file
and two writers both succeed.  A file that is truncated, corrupt, of another format or for another key is
ignored (the derivative compiles and overwrites it).

Return types (the default return activity depends on one) are cached the same way in `<key>.ret`, so
that choosing the plan does not compile the primal either.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import platform
import sys
import threading
import time
import types as pytypes
import uuid
import zlib
from dataclasses import dataclass

import llvmlite
import llvmlite.binding as llvm
import numba
import numpy as np
from numba.core import serialize
from numba.core import types as nbtypes
from numba.core.compiler import CompileResult
from numba.core.registry import CPUDispatcher, cpu_target
from numba.core.runtime.nrt import rtsys

from . import custom, frontend, jit, nrt, vecmath
from .config import config, logger
from .plan import Plan

FORMAT = 2
_MAGIC = b"llad-derivative-cache\n"
_NONCE = uuid.uuid4().hex[:12]        # this process's: symbols compiled here differ from any loaded one

# modules whose contents the versions in the key stand for: a function reading `np.sin` or `math.pi`
# is keyed by the name alone
_TRUSTED = frozenset(["numpy", "math", "cmath", "operator", "builtins", "numba", "llvmlite", "llad"])
_MAX_ARRAY_BYTES = 1 << 24            # a global array larger than this is not hashed: uncacheable


@dataclass
class CacheStats:
    """What the disk cache did in this process (`llad.diskcache.stats`)."""

    hits: int = 0          # derivatives loaded from disk
    misses: int = 0        # looked up, not found (or unusable): compiled
    writes: int = 0        # entries written
    uncacheable: int = 0   # compiled without looking (a value of the key cannot be hashed), or not written
    errors: int = 0        # unreadable or corrupt files, ignored
    return_hits: int = 0   # return types read from disk instead of compiling the primal

    def reset(self) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, 0)


stats = CacheStats()
_lock = threading.Lock()


class _Uncacheable(Exception):
    """A value in the key llad cannot hash faithfully."""


# --- the key ------------------------------------------------------------------------------------------
def key(dispatcher, plan: Plan) -> str | None:
    """The hex digest naming `plan`'s derivative of `dispatcher` on disk; None when the cache is off or
    the function cannot be keyed (then nothing is read or written)."""
    material = _material(dispatcher, ("derivative", repr(plan)))
    if material is _UNCACHEABLE:
        with _lock:
            stats.uncacheable += 1
        return None
    return None if material is None else hashlib.sha256(repr(material).encode()).hexdigest()


_UNCACHEABLE = object()


def _material(dispatcher, what: tuple):
    """The key's material; None when the cache is off, _UNCACHEABLE when a value cannot be hashed."""
    if config.cache_dir is None:
        return None
    if " at 0x" in what[1]:                  # a repr with an address is no key
        return _UNCACHEABLE
    try:
        return (_environment(), _dispatcher_token(dispatcher, {}), what)
    except (_Uncacheable, RecursionError) as exc:
        _log("%s: not cacheable (%s)", getattr(dispatcher.py_func, "__qualname__", "?"), exc)
        return _UNCACHEABLE


_env_token = None


def _environment() -> tuple:
    """Everything outside the function that changes the code: versions, llad's own sources, Numba's
    code-generation settings and the CPU (Numba's `magic_tuple`: triple, CPU name, features)."""
    global _env_token
    if _env_token is None:
        nrt.ensure_runtime()
        cfg = numba.config
        settings = tuple((n, repr(getattr(cfg, n, None))) for n in (
            "OPT", "LOOP_VECTORIZE", "SLP_VECTORIZE", "BOUNDSCHECK", "FASTMATH", "ENABLE_AVX", "CPU_NAME",
            "CPU_FEATURES", "DEBUGINFO_DEFAULT", "FULL_TRACEBACKS", "LLVM_REFPRUNE_PASS",
            "USE_LLVMLITE_MEMORY_MANAGER"))
        _env_token = (FORMAT, _llad_sources(), numba.__version__, llvmlite.__version__, np.__version__,
                      sys.version, platform.machine(), cpu_target.target_context.codegen().magic_tuple(),
                      settings, frontend.PRE_AD_SPEED_LEVEL, nrt.powi_available, vecmath.describe(),
                      jit.vector_width())
    return _env_token


def _llad_sources() -> str:
    """A hash of every llad source file: a derivative compiled by other llad code is another derivative,
    also between releases with one version number."""
    root = os.path.dirname(os.path.abspath(__file__))
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in sorted(filenames):
            if name.endswith(".py"):
                path = os.path.join(dirpath, name)
                h.update(os.path.relpath(path, root).encode() + b"\0")
                with open(path, "rb") as fh:
                    h.update(fh.read())
    return h.hexdigest()


def _dispatcher_token(dispatcher, seen: dict) -> tuple:
    if dispatcher in custom._rules:
        raise _Uncacheable("a function with a custom rule")     # rules are registered at run time
    options = tuple(sorted((k, _token(v, (), seen)) for k, v in dispatcher.targetoptions.items()))
    return ("njit", options, _function_token(dispatcher.py_func, seen))


def _function_token(fn, seen: dict) -> tuple:
    """The function's code (recursively through nested functions), where it is, its closure and
    defaults, and the value of every global name its code mentions."""
    if id(fn) in seen:
        return ("seen", fn.__module__, fn.__qualname__)
    seen[id(fn)] = fn                           # kept alive, so the id is not reused meanwhile
    code = fn.__code__
    if not os.path.isfile(code.co_filename):     # exec'd code, <stdin>, generated entries: no source to key
        raise _Uncacheable(code.co_filename)
    names = _names(code)
    glob = fn.__globals__
    globals_ = tuple((n, _token(glob[n], names, seen)) for n in sorted(names) if n in glob)
    closure = ()
    if fn.__closure__:
        try:
            closure = tuple(_token(c.cell_contents, names, seen) for c in fn.__closure__)
        except ValueError:                      # an empty cell
            raise _Uncacheable("an empty closure cell") from None
    kwdefaults = tuple(sorted((k, _token(v, names, seen)) for k, v in (fn.__kwdefaults__ or {}).items()))
    return ("function", fn.__module__, fn.__qualname__, code.co_filename, code.co_firstlineno, _code_token(code),
            globals_, closure, _token(fn.__defaults__, names, seen), kwdefaults)


def _names(code) -> frozenset:
    """Every name the code (and the functions defined in it) reads as a global or an attribute."""
    out = set(code.co_names)
    for c in code.co_consts:
        if isinstance(c, pytypes.CodeType):
            out |= _names(c)
    return frozenset(out)


def _code_token(code) -> tuple:
    consts = tuple(_code_token(c) if isinstance(c, pytypes.CodeType) else _token(c, (), {}) for c in code.co_consts)
    return ("code", hashlib.sha256(code.co_code).hexdigest(), consts, code.co_names, code.co_varnames,
            code.co_freevars, code.co_cellvars, code.co_argcount, code.co_posonlyargcount, code.co_kwonlyargcount,
            code.co_flags, code.co_name)


def _trusted(module_name) -> bool:
    return isinstance(module_name, str) and module_name.split(".")[0] in _TRUSTED


def _token(v, names: frozenset, seen: dict):
    """A value as key material; raises _Uncacheable for anything whose meaning to Numba it cannot pin."""
    if v is None or isinstance(v, (bool, int, float, complex, str, bytes)):
        return (type(v).__name__, repr(v))
    if isinstance(v, tuple):          # a namedtuple's class must be trusted too (Numba types it by class)
        cls = "tuple" if type(v) is tuple else _class_token(type(v), names, seen)
        return ("tuple", cls, tuple(_token(x, names, seen) for x in v))
    if isinstance(v, (set, frozenset)):
        return ("set", tuple(sorted(repr(_token(x, names, seen)) for x in v)))
    if isinstance(v, dict) and all(isinstance(k, str) for k in v):
        return ("dict", tuple(sorted((k, _token(x, names, seen)) for k, x in v.items())))
    if isinstance(v, np.ndarray):
        if v.dtype.hasobject or v.nbytes > _MAX_ARRAY_BYTES:
            raise _Uncacheable("a global array")
        return ("ndarray", repr(v.dtype), v.shape, hashlib.sha256(np.ascontiguousarray(v).tobytes()).hexdigest())
    if isinstance(v, np.generic):
        return ("scalar", repr(v.dtype), repr(v.item()))
    if isinstance(v, np.dtype):
        return ("dtype", repr(v))
    if isinstance(v, nbtypes.Type):
        return ("nbtype", type(v).__qualname__, str(v))
    if isinstance(v, CPUDispatcher):
        return _dispatcher_token(v, seen)
    if isinstance(v, pytypes.ModuleType):
        return _module_token(v, names, seen)
    if isinstance(v, type):
        return _class_token(v, names, seen)
    if isinstance(v, pytypes.FunctionType):
        if _trusted(v.__module__):
            return ("global", v.__module__, v.__qualname__)
        return ("pyfunc", _function_token(v, seen), _overloads(v, seen))
    if isinstance(v, (pytypes.BuiltinFunctionType, np.ufunc)):
        module = getattr(v, "__module__", None) or "builtins"
        if isinstance(v, np.ufunc) or _trusted(module):
            return ("builtin", module, getattr(v, "__qualname__", v.__name__))
        raise _Uncacheable(repr(v))
    if _trusted(type(v).__module__) and type(v).__module__.startswith("llad"):
        return ("llad", type(v).__qualname__, repr(v))         # modes: llad.Reverse, ... (plain reprs)
    raise _Uncacheable(type(v).__qualname__)


def _class_token(cls, names, seen) -> tuple:
    if _trusted(cls.__module__):
        return ("class", cls.__module__, cls.__qualname__)
    raise _Uncacheable(f"class {cls.__qualname__}")            # jitclasses, enums, namedtuples of the user


def _module_token(mod, names: frozenset, seen: dict) -> tuple:
    """A trusted module by its name; any other by the values of the names the code reads from it."""
    if _trusted(mod.__name__):
        return ("module", mod.__name__)
    if id(mod) in seen:
        return ("seen", mod.__name__)
    seen[id(mod)] = mod
    return ("module", mod.__name__, tuple((n, _token(getattr(mod, n), names, seen)) for n in sorted(names)
                                          if n in vars(mod)))


def _overloads(fn, seen: dict) -> tuple:
    """The implementations registered for a plain Python function with `numba.extending.overload`
    (`register_jitable` too): Numba compiles those, not `fn`, so they belong in the key."""
    from numba.core.typing.templates import builtin_registry
    out = []
    for func, fnty in builtin_registry.globals:
        if func is not fn:
            continue
        for template in getattr(fnty, "templates", ()):
            impl = getattr(template, "_overload_func", None)
            if not isinstance(impl, pytypes.FunctionType):
                raise _Uncacheable(f"a typing template of {fn.__qualname__}")
            out.append(_function_token(impl, seen))
    return tuple(out)


# --- files --------------------------------------------------------------------------------------------
def _path(digest: str, suffix: str) -> str:
    return os.path.join(config.cache_dir, digest[:2], f"{digest}.{suffix}")


def _read(digest: str, suffix: str):
    """The unpickled body of an entry, or None (absent, or unusable: counted as an error)."""
    try:
        with open(_path(digest, suffix), "rb") as fh:
            blob = fh.read()
    except OSError:
        return None
    try:
        head, rest = blob[:len(_MAGIC)], blob[len(_MAGIC):]
        body = rest[32:]
        if head != _MAGIC or hashlib.sha256(body).digest() != rest[:32]:
            raise ValueError("bad header or checksum")
        payload = pickle.loads(zlib.decompress(body))
        if payload.get("format") != FORMAT or payload.get("key") != digest:
            raise ValueError("another format or key")
        return payload
    except Exception as exc:  # noqa: BLE001 - any damage: ignore the file, compile, overwrite it
        with _lock:
            stats.errors += 1
        _log("ignoring the unreadable cache file %s (%s)", _path(digest, suffix), exc)
        return None


def _write(digest: str, suffix: str, payload: dict) -> bool:
    """Write atomically (a temporary file, then os.replace): concurrent writers of one key both succeed
    and a reader sees one whole file or none."""
    payload = dict(payload, format=FORMAT, key=digest)
    body = zlib.compress(serialize.dumps(payload), 1)
    path = _path(digest, suffix)
    tmp = f"{path}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(tmp, "wb") as fh:
            fh.write(_MAGIC + hashlib.sha256(body).digest() + body)
        os.replace(tmp, path)
        return True
    except OSError as exc:
        _log("cannot write the cache file %s (%s)", path, exc)
        try:
            os.unlink(tmp)
        except OSError:
            pass
        return False


def _log(msg: str, *args) -> None:
    if config.verbose:
        logger.info("cache: " + msg, *args)


# --- derivatives ----------------------------------------------------------------------------------------
def salt(digest: str | None) -> str:
    """What build_derivative mixes into the symbol of a derivative it may write under `digest`."""
    return "" if digest is None else f"{digest}.{_NONCE}"


def load(digest: str | None, plan: Plan):
    """The derivative stored under `digest`, ready to call, or None (absent or unusable: compile)."""
    if digest is None:
        return None
    t0 = time.perf_counter()
    payload = _read(digest, "llad")
    if payload is None or payload["plan"] != plan:
        with _lock:
            stats.misses += 1
        return None
    try:
        d = _rebuild(payload)
    except _Uncacheable as exc:
        _log("not loading %s: %s", digest[:16], exc)
        d = None
    except Exception as exc:  # noqa: BLE001 - a file that unpickled but does not load: compile instead
        with _lock:
            stats.errors += 1
        _log("cannot load %s (%s)", digest[:16], exc)
        d = None
    with _lock:
        if d is None:
            stats.misses += 1
        else:
            stats.hits += 1
    if d is not None:
        d.seconds = {"load": time.perf_counter() - t0}
        _log("%s %s: loaded from the disk cache in %.1f ms", d.function_name, plan.mode_tag,
             1e3 * d.seconds["load"])
    return d


def _rebuild(p: dict):
    """Object code back into Numba's JIT engine, then the entry point's compile result, as Numba's
    cache does (CompileResult._rebuild)."""
    from .pipeline import Derivative
    nrt.ensure_runtime()
    engine = cpu_target.target_context.codegen()._engine
    if engine.is_symbol_defined(p["name"]) or engine.is_symbol_defined(p["entry_symbol"]):
        raise _Uncacheable("its symbol is defined in this process already")
    if any(sym.startswith("llad_") for sym in p["undefined"]):
        _register_lapack_symbols()
    if any(sym.startswith("_ZGV") for sym in p["undefined"]):
        vecmath.available()                      # loads libmvec, whose functions the code calls
    for sym in p["undefined"]:                   # MCJIT aborts the process on a symbol it cannot resolve
        if not llvm.address_of_symbol(sym):
            raise _Uncacheable(f"symbol {sym} is not available in this process")
    text = zlib.decompress(p["text"]).decode()
    ctx = cpu_target.target_context      # no ctx.refresh(): loading registries would import half of Numba
    library = ctx.codegen().unserialize_library(p["library"])
    library.__dict__["_llad_unopt_texts"] = [text]      # the frontend reads it when a caller is differentiated
    envs = library.__dict__["_llad_envs"] = [_environment_for(*e) for e in p["envs"]]   # set_env keeps a pointer
    for env in envs:
        library.codegen.set_env(env.env_name, env)
    for sym in p["entry_undefined"]:
        if sym != p["name"] and not llvm.address_of_symbol(sym):
            raise _Uncacheable(f"symbol {sym} is not available in this process")
    compiled = CompileResult._rebuild(ctx, *p["entry"])
    entry = jit.entry_from_cache(p["name"], library, p["return_type"], p["argtypes"], compiled)
    d = Derivative(p["plan"], None, None, text, entry, library, p["output_types"], p["has_primal_output"],
                   alias_pairs=p["alias_pairs"], written=p["written"], name=p["name"], frame_bytes=p["frame_bytes"],
                   function_name=p["function_name"], loaded=True)
    return d


def _register_lapack_symbols() -> None:
    """llad's names for SciPy's BLAS/LAPACK routines (blas.py) are bound when code calling them is first
    compiled in a process; a loaded derivative calling them needs them bound first."""
    from . import blas
    register = getattr(blas, "register_symbols", None)
    if register is not None:
        register()


def save(digest: str | None, d) -> None:
    """Write derivative `d` under `digest` when everything it needs in another process is in it."""
    if digest is None or d.loaded:
        return
    try:
        payload = _payload(d)
    except _Uncacheable as exc:
        with _lock:
            stats.uncacheable += 1
        _log("%s %s: not cached (%s)", d.function_name, d.plan.mode_tag, exc)
        return
    except Exception as exc:  # noqa: BLE001 - something Numba cannot reduce or pickle: do not cache it
        with _lock:
            stats.uncacheable += 1
        _log("%s %s: not cached (%s: %s)", d.function_name, d.plan.mode_tag, type(exc).__name__, exc)
        return
    try:
        ok = _write(digest, "llad", payload)
    except Exception as exc:  # noqa: BLE001 - unpicklable after all
        ok = False
        _log("%s %s: not cached (%s: %s)", d.function_name, d.plan.mode_tag, type(exc).__name__, exc)
    with _lock:
        if ok:
            stats.writes += 1
        else:
            stats.uncacheable += 1


def _payload(d) -> dict:
    library = d.library
    if any(lib is not rtsys.library for lib in library._linking_libraries):
        raise _Uncacheable("it links other libraries (custom rules)")
    if "numba.dynamic.globals" in d.text:
        raise _Uncacheable("it holds addresses of this process's objects")
    module = library._final_module
    envs = _environments(_check_definitions(module, d.name, d.text))
    undefined = _undefined(module)
    for sym in undefined:
        if not llvm.address_of_symbol(sym):
            raise _Uncacheable(f"it calls {sym}, which only this process's JIT defines")
    (cres,) = d.entry.overloads.values()
    entry_module = cres.library._final_module
    entry_symbol = cres.fndesc.llvm_cpython_wrapper_name
    reduced = cres._reduce()
    return {
        "plan": d.plan, "name": d.name, "function_name": d.function_name, "text": zlib.compress(d.text.encode(), 1),
        "library": library.serialize_using_object_code(), "undefined": undefined,
        "entry": reduced, "entry_symbol": entry_symbol, "entry_undefined": _undefined(entry_module),
        "return_type": cres.signature.return_type, "argtypes": tuple(cres.signature.args),
        "output_types": d.output_types, "has_primal_output": d.has_primal_output, "alias_pairs": d.alias_pairs,
        "written": d.written, "frame_bytes": d.frame_bytes, "envs": envs,
    }


def _check_definitions(module, name: str, text: str) -> list[str]:
    """The object may define only the derivative itself, private functions, Numba's reference-count and
    exception-argument helpers and the environment slots Numba declares in every module: another
    process could define any other name differently.  Returns the environment slots the derivative reads
    (an exception raised with a run-time message reads its function's)."""
    read = []
    for gv in list(module.functions) + list(module.global_variables):
        if gv.is_declaration or gv.linkage in (llvm.Linkage.internal, llvm.Linkage.private) or gv.name == name:
            continue
        if gv.name.startswith(("NRT_", "nrt_", "__excinfo_unwrap_args")):
            continue        # Numba's, the same code wherever defined (the last is named by a hash of its types)
        if gv.name.startswith(".dtor.") and gv.linkage in (llvm.Linkage.linkonce_odr, llvm.Linkage.weak_odr):
            continue        # Numba's destructors, named by the type they destroy (`.dtor.list.int64`)
        if gv.name.startswith("_ZN08NumbaEnv") and gv.linkage == llvm.Linkage.common:
            if text.count(gv.name) > 1:
                read.append(gv.name)
            continue
        raise _Uncacheable(f"it defines {gv.name}")
    return read


def _environments(names: list[str]) -> tuple:
    """The Numba environments behind the slots the derivative reads, to be stored with it and set again
    on loading (what Numba's cache does for its own functions: CompileResult.referenced_envs), as
    (slot, module name, constants)."""
    from numba.core.environment import lookup_environment
    envs = []
    for name in names:
        env = lookup_environment(name)
        if env is None or not env.can_cache():
            raise _Uncacheable(f"it reads the environment {name}, which cannot be stored")
        envs.append((name, env.globals["__name__"], list(env.consts)))
    return tuple(envs)


def _environment_for(name: str, module: str, consts: list):
    """The environment for a slot: the live one when this process has it, else a new one with the stored
    constants.  Its globals are the module's when that is imported, else a dict naming it: nopython code
    (the exception paths that read these slots) reads only the constants; the globals serve object-mode
    code (numba/core/pylowering.py), so the module (25-50 ms of imports for numba.np.arrayobj) is not
    imported for them.  Such an environment is not registered where Numba would find it for its own
    functions."""
    from numba.core.environment import Environment, lookup_environment
    env = lookup_environment(name)
    if env is not None:
        return env
    mod = sys.modules.get(module)
    env = Environment(mod.__dict__ if mod is not None else {"__name__": module})
    env.consts[:] = consts
    env.env_name = name
    return env


def _undefined(module) -> list[str]:
    return sorted(gv.name for gv in list(module.functions) + list(module.global_variables)
                  if gv.is_declaration and not gv.name.startswith("llvm."))


# --- return types ---------------------------------------------------------------------------------------
def return_type(dispatcher, argtypes: tuple):
    """The primal's return type for argtypes, without compiling it: from the compiled overload, from the
    disk cache, or by compiling it (and writing it down)."""
    known = _return_types.get((dispatcher, argtypes))
    if known is not None:
        return known
    material = _material(dispatcher, ("return", repr(argtypes)))
    digest = None if material is None or material is _UNCACHEABLE else \
        hashlib.sha256(repr(material).encode()).hexdigest()
    cres = dispatcher.overloads.get(argtypes)
    ret = None if cres is None else cres.signature.return_type
    payload = None if digest is None else _read(digest, "ret")
    stored = payload is not None and payload.get("argtypes") == argtypes
    if ret is None and stored:
        with _lock:
            stats.return_hits += 1
        ret = payload["return_type"]
    if ret is None:
        ret = frontend.compile_primal(dispatcher, argtypes).signature.return_type
    if digest is not None and not stored:
        try:
            _write(digest, "ret", {"argtypes": argtypes, "return_type": ret})
        except Exception:  # noqa: BLE001 - a type that does not pickle: nothing cached
            pass
    _return_types[(dispatcher, argtypes)] = ret
    return ret


_return_types: dict = {}      # (dispatcher, argtypes) -> return type, once per process
