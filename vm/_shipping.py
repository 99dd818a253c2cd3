"""Shipping code to another process: what goes by value, and how.

Two things cross to a fresh Python process, both with cloudpickle:

* a **worker function**, to a worker process (``ProcessBackend``) or a Dask
  worker: ``function_bytes(function)``; the receiver calls ``cloudpickle.loads``.
  It goes with the values of the globals it uses at its start, as the inline
  backend reads them; ``FunctionBytes`` (the process backend's cache) pickles a
  function again when one of them has been rebound;
* a **program** (a zero-argument callable returning a coroutine), to a fresh
  interpreter, by ``cp.check_determinism(processes=True)``:
  ``program_bytes(program, options)``; the receiver calls ``load_program(data)``.
  The program travels with the **worker registry** (every registered name and its
  function), because the fresh process never imports the module whose
  ``@cp.worker.task`` decorators registered them: there ``cp.worker.start("name")``
  finds what it finds here, and the journal digest is the same.

**By value or by reference.**  Code of a *user module* goes by value: cloudpickle
ships the function's code and the module-level objects it uses, so the receiver
needs no copy of the file.  A user module is ``__main__``, a notebook cell, a
script run by ``counterpoint run``, a test module, or any module whose file is
outside the standard library and site-packages.  Everything else (the standard
library, installed packages, ``counterpoint`` itself) goes by reference: the
receiver imports it, so it must be importable there (worker processes get the
parent's ``sys.path``; Dask workers need the same packages installed).  A module
the user registered with ``cloudpickle.register_pickle_by_value`` stays registered.

What cannot be pickled at all (a function that closes over a lock, an open file,
a socket ...) cannot be shipped: its worker fails ("... could not start the
worker"); a registered task is left behind by ``program_bytes``, and starting it in
the fresh process raises ``cp.UnknownWorkerTask`` saying why; ``program_bytes``
raises cloudpickle's error for the program itself.  Nothing shipped depends on
``id()`` or hash order: modules are registered and tasks shipped in name order.
"""

from __future__ import annotations

import contextlib
import operator
import os
import site
import sys
import sysconfig
import threading
from collections.abc import Iterable, Iterator
from types import CodeType, FunctionType
from typing import Any


def _library_paths() -> tuple[str, ...]:
    """Where installed code lives: the standard library and every site-packages folder
    (the user's ``pip install --user`` one included), each ending in a separator."""
    paths = {sysconfig.get_paths()[key] for key in ("stdlib", "platstdlib", "purelib", "platlib")}
    paths.update(getattr(site, "getsitepackages", list)())  # (absent in old virtualenvs)
    paths.add(site.getusersitepackages())
    return tuple(sorted(os.path.join(path, "") for path in paths if path))


_LIBRARY_PATHS = _library_paths()

# cloudpickle's by-value registry is global: one shipment at a time changes it
_LOCK = threading.RLock()


def is_user_module(module: Any) -> bool:
    """True for a module whose code must travel by value (see the module docstring)."""
    name = module.__name__
    if name == "__main__" or name.split(".")[0] == "counterpoint":
        return False  # __main__ goes by value anyway; counterpoint is importable
    path = getattr(module, "__file__", None)
    return path is not None and not path.startswith(_LIBRARY_PATHS)


def _user_modules(objects: Iterable[Any]) -> list[Any]:
    """The user modules the objects come from, in name order."""
    found: dict[str, Any] = {}
    for obj in objects:
        name = getattr(obj, "__module__", None)
        module = sys.modules.get(name) if isinstance(name, str) else None
        if module is not None and is_user_module(module):
            found[module.__name__] = module
    return [found[name] for name in sorted(found)]


@contextlib.contextmanager
def by_value(objects: Iterable[Any]) -> Iterator[None]:
    """Pickle the user modules of ``objects`` by value inside the ``with`` block."""
    import cloudpickle

    with _LOCK:
        already = cloudpickle.list_registry_pickle_by_value()
        added = []
        for module in _user_modules(objects):
            if module.__name__ not in already:
                cloudpickle.register_pickle_by_value(module)
                added.append(module)
        try:
            yield
        finally:
            for module in added:
                cloudpickle.unregister_pickle_by_value(module)


def function_bytes(function: Any) -> bytes:
    """A worker function, pickled: by value if it is the user's own code."""
    import cloudpickle

    with by_value([function]):
        return cloudpickle.dumps(function)


_MISSING = object()  # a global name that is not bound (a builtin, or not yet defined)


def _global_names(code: CodeType, known: dict[CodeType, tuple[str, ...]]) -> tuple[str, ...]:
    """The names the code (and the functions defined in it) may read as globals;
    ``known`` caches them by code object."""
    names = known.get(code)
    if names is None:
        found = dict.fromkeys(code.co_names)
        for const in code.co_consts:
            if isinstance(const, CodeType):
                found.update(dict.fromkeys(_global_names(const, known)))
        names = known[code] = tuple(found)
    return names


_USER: dict[str, bool] = {}  # module name -> is_user_module (a module's file stays put)


def _goes_by_value(obj: Any) -> bool:
    if type(obj) is not FunctionType:
        return False
    name = obj.__module__ or ""
    user = _USER.get(name)
    if user is None:
        module = sys.modules.get(name)
        if module is None or name == "__main__":
            return True  # not importable by name: cloudpickle ships it by value
        user = _USER[name] = is_user_module(module)
    return user


def _uses(function: Any, known: dict[CodeType, tuple[str, ...]]) -> list:
    """What the bytes of a function shipped by value depend on besides the function
    object: the values of the globals its code names, its defaults, closure cells and
    attributes, and the same for the by-value functions among them (a helper)."""
    used: list = []
    stack, seen = [function], []
    while stack:
        current = stack.pop()
        if not _goes_by_value(current) or any(current is done for done in seen):
            continue
        seen.append(current)
        start = len(used)
        scope = current.__globals__
        used += [scope.get(name, _MISSING) for name in _global_names(current.__code__, known)]
        if current.__defaults__:
            used += current.__defaults__
        if current.__kwdefaults__:
            used += current.__kwdefaults__.values()
        for cell in current.__closure__ or ():
            try:
                used.append(cell.cell_contents)
            except ValueError:  # a cell not filled yet
                used.append(_MISSING)
        used += current.__dict__.values()
        stack += used[start:]
    return used


class FunctionBytes:
    """``function_bytes`` with a cache: a function is pickled again only when a value it
    uses has been rebound (see ``_uses``), so a worker process runs what the inline
    backend would run at the same start.  An object it uses that is changed in place
    (a list appended to) is not noticed: pass such data in the payload."""

    def __init__(self) -> None:
        self._cache: dict[int, tuple[Any, list, bytes]] = {}
        self._names: dict[CodeType, tuple[str, ...]] = {}  # (of functions the cache holds)

    def __call__(self, function: Any) -> bytes:
        used = _uses(function, self._names)
        cached = self._cache.get(id(function))  # (the entry holds the function: no reuse)
        if (
            cached is None
            or cached[0] is not function
            or len(cached[1]) != len(used)
            or not all(map(operator.is_, cached[1], used))
        ):
            cached = self._cache[id(function)] = (function, used, function_bytes(function))
        return cached[2]


def program_bytes(program: Any, options: dict) -> bytes:
    """A program, its VM options and the worker registry, pickled for ``load_program``.

    The program travels with every registered worker task (in name order), so that
    ``cp.worker.start("name")`` finds the task in the fresh process, which never
    imports the module that registered it.  A registered function that cannot be
    pickled is left behind, with the reason: starting it there raises
    ``cp.UnknownWorkerTask`` saying so.  A program that cannot be pickled raises
    cloudpickle's error.
    """
    import cloudpickle

    from ._workerjob import describe
    from ._workers import REGISTRY

    registry = {name: REGISTRY[name] for name in sorted(REGISTRY)}
    left_behind: dict[str, str] = {}
    inner = getattr(program, "func", None)  # a functools.partial's function
    with by_value([program, inner, *registry.values()]):
        try:
            return cloudpickle.dumps((program, options, registry, left_behind))
        except Exception:
            pass  # find what cannot go; the program itself may be the culprit
        for name in list(registry):
            try:
                cloudpickle.dumps(registry[name])
            except Exception as error:
                left_behind[name] = describe(error)
                del registry[name]
        return cloudpickle.dumps((program, options, registry, left_behind))


# worker names registered where the program came from that could not be shipped
# (name -> why), and those of them the program then tried to start, in order
LEFT_BEHIND: dict[str, str] = {}
MISSED: list[str] = []


def load_program(data: bytes) -> tuple[Any, dict]:
    """The receiving side of ``program_bytes``: register the shipped worker tasks
    (replacing any that importing the program's modules registered), then return
    ``(program, options)``."""
    import cloudpickle

    from ._workers import REGISTRY

    program, options, registry, left_behind = cloudpickle.loads(data)
    REGISTRY.update(registry)
    LEFT_BEHIND.update(left_behind)
    return program, options


def left_behind_message(name: str) -> str | None:
    """Why worker task ``name`` is not here, if it was left behind; None otherwise."""
    why = LEFT_BEHIND.get(name)
    if why is None:
        return None
    return (
        f"worker task {name!r} is registered where the program comes from, but could not be "
        f"shipped with it to a fresh process ({why}); make the function picklable by cloudpickle: "
        f"create locks, open files, sockets and the like inside the function, not in what it "
        f"closes over or in the module-level names it uses"
    )
