"""``cp.shared(obj)``: plain Python state that exploration can see.

A wrapper around a dict, a list or an object with attributes.  It behaves like the
object it wraps (reads and writes go to it), and while ``cp.explore`` runs the
program, every read and write is reported to the explorer as an access to a
*location*: ``("shared", label, key)`` -- a dict key, a list index, an attribute
name with a dot before it (``".balance"``), or ``None`` for the container's structure
(its keys, its length); :func:`describe` spells one as the program does.  The label is
the wrapper's ``name`` (``cp.shared(box, name="box")``), else ``"shared N"`` (the N-th
wrapper the run made).  A dict or list read out of a wrapper comes wrapped too, as
``box['items']``, so nested state is tracked as deep as it is reached.

Partial-order reduction then knows which steps conflict: two steps are dependent only
when one writes a location the other reads or writes (reads commute).  With
``explore(..., shared_only=True)`` that is the whole story; without it, steps that use
no VM object are still taken to touch any plain Python state (the sound default).

Outside an exploring VM (a plain ``vm.run``, or host code) a wrapper costs one check
per access and reports nothing.

Each wrapper method reports its access by calling ``chooser.access(location, write)``;
:func:`user_frame` called there finds the user code that made the access (the lint
and explanations name its source line).
"""

from __future__ import annotations

import itertools
import os
import sys
import types
from collections.abc import Iterator
from typing import Any

from ._traps import current

__all__ = ["SharedDict", "SharedList", "SharedObject", "shared"]

SHARED = "shared"
_PLAIN_KEYS = (str, int, float, bool, bytes, type(None))
_host_numbers = itertools.count(1)  # wrappers made outside any VM task


_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep
_OURS: tuple[str, ...] | None = None


def ours(filename: str) -> bool:
    """Whether ``filename`` is Counterpoint's own code: the VM, or the IPython
    extension, the kernel and the widgets (which run inside a notebook's tasks)."""
    global _OURS
    if _OURS is None:
        import importlib.util

        dirs = [_PACKAGE]
        for name in ("counterpoint.ipython", "counterpoint.kernel", "counterpoint.widgets"):
            try:
                spec = importlib.util.find_spec(name)
            except (ImportError, ValueError):  # pragma: no cover - a partial install
                spec = None
            for place in (spec.submodule_search_locations or []) if spec else []:
                dirs.append(os.path.abspath(place) + os.sep)
        _OURS = tuple(dirs)
    return filename.startswith(_OURS)


def user_frame() -> tuple[str, int, str]:
    """(file, line, function) of the innermost frame outside Counterpoint: the user code
    that made the access being reported."""
    frame = sys._getframe(1)
    while frame.f_back is not None and ours(frame.f_code.co_filename):
        frame = frame.f_back
    code = frame.f_code
    return code.co_filename, frame.f_lineno, code.co_name


def describe(location: tuple) -> str:
    """A location in words as the program spells it: ``box['n']``, ``account.balance``,
    ``len(box)`` (its structure), or a VM object such as ``channel 3``."""
    if location and location[0] == SHARED:
        _, label, key = location
        if key is None:
            return f"len({label})"
        if isinstance(key, str) and key.startswith("."):
            return f"{label}{key}"
        return f"{label}[{key!r}]"
    kind, number = location[0], location[1] if len(location) > 1 else None
    return kind if number is None else f"{kind} {number}"


def _chooser() -> Any:
    """The exploring chooser of the VM whose task is running, or None."""
    task = current().task
    return task._vm._chooser if task is not None else None


def _key(key: Any) -> Any:
    """A key as plain data, the same in every process (a location compares across
    processes): plain values as they are, a tuple of them too; any other key by its
    type's name, which may merge locations (more dependence, never less)."""
    if type(key) in _PLAIN_KEYS:
        return key
    if type(key) is tuple and all(type(item) in _PLAIN_KEYS for item in key):
        return key
    return f"<{type(key).__qualname__}>"


def _label(name: Any) -> str:
    if name is not None:
        if not isinstance(name, str):
            raise TypeError(f"cp.shared(name=...) takes a str, got {type(name).__name__}")
        return name
    task = current().task
    if task is None:
        return f"shared host-{next(_host_numbers)}"
    vm = task._vm
    number = vm.__dict__.get("_shared_count", 0) + 1
    vm._shared_count = number
    return f"shared {number}"


def _unwrap(value: Any) -> Any:
    return object.__getattribute__(value, "_cp_target") if isinstance(value, _Shared) else value


class _Shared:
    """Common to the wrappers: the wrapped object, its label, wrapped children."""

    __slots__ = ("_cp_children", "_cp_label", "_cp_target")

    def __init__(self, target: Any, label: str) -> None:
        object.__setattr__(self, "_cp_target", target)
        object.__setattr__(self, "_cp_label", label)
        object.__setattr__(self, "_cp_children", None)

    def _cp_child(self, key: Any, value: Any) -> Any:
        """A dict or list read out of this wrapper, wrapped (the same wrapper while the
        same object sits under the same key)."""
        kind = _WRAPPERS.get(type(value))
        if kind is None:
            return value
        children = self._cp_children
        if children is None:
            children = {}
            object.__setattr__(self, "_cp_children", children)
        held = children.get(key)
        if held is not None and object.__getattribute__(held, "_cp_target") is value:
            return held
        child = kind(value, describe((SHARED, self._cp_label, key)))
        children[key] = child
        return child

    def __reduce__(self) -> Any:
        raise TypeError(
            f"{self._cp_label} is a cp.shared() wrapper, which is not pickled: pickle "
            "the object it wraps (keep a reference to it, or copy it: dict(w), list(w))"
        )


class _Container(_Shared):
    """A dict or a list: what reading all of it means is the subclass's ``_read_all``."""

    __slots__ = ()

    def _read_all(self, chooser: Any) -> None:  # pragma: no cover - each subclass has one
        raise NotImplementedError

    def _read_everything(self) -> None:
        chooser = _chooser()
        if chooser is not None:
            self._read_all(chooser)

    def __eq__(self, other: Any) -> bool:
        self._read_everything()
        return self._cp_target == _unwrap(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        self._read_everything()
        return f"cp.shared({self._cp_target!r})"


class SharedDict(_Container):
    """A dict whose reads and writes exploration sees, key by key."""

    __slots__ = ()

    # -- reads
    def __getitem__(self, key: Any) -> Any:
        chooser = _chooser()
        if chooser is not None:
            chooser.access((SHARED, self._cp_label, _key(key)), False)
        return self._cp_child(key, self._cp_target[key])

    def get(self, key: Any, default: Any = None) -> Any:
        chooser = _chooser()
        if chooser is not None:
            chooser.access((SHARED, self._cp_label, _key(key)), False)
        target = self._cp_target
        return self._cp_child(key, target[key]) if key in target else default

    def __contains__(self, key: Any) -> bool:
        chooser = _chooser()
        if chooser is not None:
            chooser.access((SHARED, self._cp_label, _key(key)), False)
        return key in self._cp_target

    def __len__(self) -> int:
        chooser = _chooser()
        if chooser is not None:
            chooser.access((SHARED, self._cp_label, None), False)
        return len(self._cp_target)

    def __iter__(self) -> Iterator:
        chooser = _chooser()
        if chooser is not None:
            chooser.access((SHARED, self._cp_label, None), False)
        return iter(list(self._cp_target))

    def keys(self) -> list:
        chooser = _chooser()
        if chooser is not None:
            chooser.access((SHARED, self._cp_label, None), False)
        return list(self._cp_target)

    def _read_all(self, chooser: Any) -> None:
        label = self._cp_label
        chooser.access((SHARED, label, None), False)
        for key in self._cp_target:
            chooser.access((SHARED, label, _key(key)), False)

    def values(self) -> list:
        self._read_everything()
        return [self._cp_child(k, v) for k, v in self._cp_target.items()]

    def items(self) -> list:
        self._read_everything()
        return [(k, self._cp_child(k, v)) for k, v in self._cp_target.items()]

    def copy(self) -> dict:
        self._read_everything()
        return dict(self._cp_target)

    # -- writes
    def __setitem__(self, key: Any, value: Any) -> None:
        chooser = _chooser()
        target = self._cp_target
        if chooser is not None:
            if key not in target:
                chooser.access((SHARED, self._cp_label, None), True)
            chooser.access((SHARED, self._cp_label, _key(key)), True)
        target[key] = _unwrap(value)

    def __delitem__(self, key: Any) -> None:
        chooser = _chooser()
        if chooser is not None:
            chooser.access((SHARED, self._cp_label, None), True)
            chooser.access((SHARED, self._cp_label, _key(key)), True)
        del self._cp_target[key]

    def setdefault(self, key: Any, default: Any = None) -> Any:
        chooser = _chooser()
        target = self._cp_target
        if chooser is not None:
            if key in target:
                chooser.access((SHARED, self._cp_label, _key(key)), False)
            else:
                chooser.access((SHARED, self._cp_label, None), True)
                chooser.access((SHARED, self._cp_label, _key(key)), True)
        return self._cp_child(key, target.setdefault(key, _unwrap(default)))

    _MISSING = object()

    def pop(self, key: Any, default: Any = _MISSING) -> Any:
        chooser = _chooser()
        target = self._cp_target
        if chooser is not None:
            present = key in target
            chooser.access((SHARED, self._cp_label, None), present)
            chooser.access((SHARED, self._cp_label, _key(key)), present)
        if default is SharedDict._MISSING:
            return target.pop(key)
        return target.pop(key, default)

    def popitem(self) -> tuple:
        chooser = _chooser()
        target = self._cp_target
        if chooser is not None:
            chooser.access((SHARED, self._cp_label, None), True)
            if target:
                chooser.access((SHARED, self._cp_label, _key(next(reversed(target)))), True)
        return target.popitem()

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def clear(self) -> None:
        chooser = _chooser()
        target = self._cp_target
        if chooser is not None:
            chooser.access((SHARED, self._cp_label, None), True)
            for key in target:
                chooser.access((SHARED, self._cp_label, _key(key)), True)
        target.clear()


class SharedList(_Container):
    """A list whose reads and writes exploration sees, index by index (an insertion or
    removal writes every index it shifts, and the length)."""

    __slots__ = ()

    def _index(self, chooser: Any, index: Any, write: bool) -> None:
        """Report an access to one index (a negative one also reads the length)."""
        label = self._cp_label
        size = len(self._cp_target)
        if type(index) is slice:  # (a read: slice writes shift, see __setitem__)
            chooser.access((SHARED, label, None), False)
            for position in range(*index.indices(size)):
                chooser.access((SHARED, label, position), False)
            return
        if not isinstance(index, int) or index < 0 or index >= size:
            chooser.access((SHARED, label, None), False)  # depends on the length
        if isinstance(index, int):
            chooser.access((SHARED, label, index + size if index < 0 else index), write)

    def _from(self, chooser: Any, start: int) -> None:
        """A write that shifts every element from ``start`` on, and the length."""
        label = self._cp_label
        chooser.access((SHARED, label, None), True)
        for position in range(max(0, start), len(self._cp_target) + 1):
            chooser.access((SHARED, label, position), True)

    def _read_all(self, chooser: Any) -> None:
        label = self._cp_label
        chooser.access((SHARED, label, None), False)
        for position in range(len(self._cp_target)):
            chooser.access((SHARED, label, position), False)

    # -- reads
    def __getitem__(self, index: Any) -> Any:
        chooser = _chooser()
        if chooser is not None:
            self._index(chooser, index, False)
        value = self._cp_target[index]
        if type(index) is slice:
            return value
        return self._cp_child(index if index >= 0 else index + len(self._cp_target), value)

    def __len__(self) -> int:
        chooser = _chooser()
        if chooser is not None:
            chooser.access((SHARED, self._cp_label, None), False)
        return len(self._cp_target)

    def __iter__(self) -> Iterator:
        self._read_everything()
        return iter([self._cp_child(i, v) for i, v in enumerate(self._cp_target)])

    def __contains__(self, value: Any) -> bool:
        self._read_everything()
        return _unwrap(value) in self._cp_target

    def index(self, value: Any, *args: Any) -> int:
        self._read_everything()
        return self._cp_target.index(_unwrap(value), *args)

    def count(self, value: Any) -> int:
        self._read_everything()
        return self._cp_target.count(_unwrap(value))

    def copy(self) -> list:
        self._read_everything()
        return list(self._cp_target)

    # -- writes
    def __setitem__(self, index: Any, value: Any) -> None:
        chooser = _chooser()
        if chooser is not None:
            if type(index) is slice:
                self._from(chooser, index.indices(len(self._cp_target))[0])
            else:
                self._index(chooser, index, True)
        self._cp_target[index] = value if type(index) is slice else _unwrap(value)

    def __delitem__(self, index: Any) -> None:
        chooser = _chooser()
        if chooser is not None:
            size = len(self._cp_target)
            if type(index) is slice:
                start = index.indices(size)[0]
            else:
                start = index + size if isinstance(index, int) and index < 0 else index
            self._from(chooser, start if isinstance(start, int) else 0)
        del self._cp_target[index]

    def append(self, value: Any) -> None:
        chooser = _chooser()
        if chooser is not None:
            label = self._cp_label
            chooser.access((SHARED, label, None), True)
            chooser.access((SHARED, label, len(self._cp_target)), True)
        self._cp_target.append(_unwrap(value))

    def extend(self, values: Any) -> None:
        values = [_unwrap(value) for value in values]
        chooser = _chooser()
        if chooser is not None:
            label = self._cp_label
            size = len(self._cp_target)
            chooser.access((SHARED, label, None), True)
            for position in range(size, size + len(values)):
                chooser.access((SHARED, label, position), True)
        self._cp_target.extend(values)

    def __iadd__(self, values: Any) -> SharedList:
        self.extend(values)
        return self

    def insert(self, index: int, value: Any) -> None:
        chooser = _chooser()
        if chooser is not None:
            size = len(self._cp_target)
            start = index + size if index < 0 else index
            self._from(chooser, min(max(start, 0), size))
        self._cp_target.insert(index, _unwrap(value))

    def pop(self, index: int = -1) -> Any:
        chooser = _chooser()
        if chooser is not None:
            size = len(self._cp_target)
            self._from(chooser, index + size if index < 0 else index)
        return self._cp_target.pop(index)

    def remove(self, value: Any) -> None:
        chooser = _chooser()
        if chooser is not None:
            self._read_all(chooser)
            self._from(chooser, 0)
        self._cp_target.remove(_unwrap(value))

    def clear(self) -> None:
        chooser = _chooser()
        if chooser is not None:
            self._from(chooser, 0)
        self._cp_target.clear()

    def sort(self, **options: Any) -> None:
        chooser = _chooser()
        if chooser is not None:
            self._read_all(chooser)
            self._from(chooser, 0)
        self._cp_target.sort(**options)

    def reverse(self) -> None:
        chooser = _chooser()
        if chooser is not None:
            self._read_all(chooser)
            self._from(chooser, 0)
        self._cp_target.reverse()


class SharedObject(_Shared):
    """An object whose attribute reads and writes exploration sees, attribute by
    attribute.  Its methods run with ``self`` the wrapper, so what they read and write
    is seen too (a method that calls ``super()`` runs on the object itself: Python
    needs a real instance there, so its accesses are not seen); ``isinstance`` sees
    the wrapped object's class; ``==`` compares the wrapped objects."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:  # (only names the wrapper lacks get here)
        target = self._cp_target
        found = getattr(type(target), name, None)
        if isinstance(found, types.FunctionType) and name not in getattr(target, "__dict__", ()):
            if "__class__" in found.__code__.co_freevars:  # it calls super(): on the object
                return types.MethodType(found, target)
            return types.MethodType(found, self)  # a method: runs on the wrapper
        if isinstance(found, property) and found.fget is not None:
            return found.fget(self)
        chooser = _chooser()
        if chooser is not None:
            chooser.access((SHARED, self._cp_label, "." + name), False)
        return self._cp_child("." + name, getattr(target, name))

    def __setattr__(self, name: str, value: Any) -> None:
        target = self._cp_target
        found = getattr(type(target), name, None)
        if isinstance(found, property) and found.fset is not None:
            found.fset(self, value)
            return
        chooser = _chooser()
        if chooser is not None:
            chooser.access((SHARED, self._cp_label, "." + name), True)
        setattr(target, name, _unwrap(value))

    def __delattr__(self, name: str) -> None:
        chooser = _chooser()
        if chooser is not None:
            chooser.access((SHARED, self._cp_label, "." + name), True)
        delattr(self._cp_target, name)

    @property  # type: ignore[misc]
    def __class__(self) -> type:  # (isinstance(wrapper, Account) holds)
        return type(self._cp_target)

    def __eq__(self, other: Any) -> bool:
        chooser = _chooser()
        target = self._cp_target
        if chooser is not None:
            for name in getattr(target, "__dict__", ()):
                chooser.access((SHARED, self._cp_label, "." + name), False)
        return target == _unwrap(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"cp.shared({self._cp_target!r})"


_WRAPPERS: dict[type, type] = {dict: SharedDict, list: SharedList}
_IMMUTABLE = (int, float, complex, str, bytes, bool, tuple, frozenset, type(None), range)


def shared(obj: Any, *, name: str | None = None) -> Any:
    """Wrap a dict, a list or an object so that exploration sees every read and write
    of it (see :mod:`counterpoint._shared`).  ``name`` labels its locations in
    explanations and warnings (default ``"shared N"``).  Wrapping a wrapper returns it.

    >>> import counterpoint as cp
    >>> async def main():
    ...     box = cp.shared({"n": 0}, name="box")
    ...     async def add():
    ...         seen = box["n"]
    ...         await cp.checkpoint()
    ...         box["n"] = seen + 1
    ...     await cp.par(add(), add())
    ...     return box["n"]
    >>> report = cp.explore(main, shared_only=True)
    >>> sorted(report.outcomes), report.exhaustive
    ([1, 2], True)
    """
    if isinstance(obj, _Shared):
        return obj
    label = _label(name)
    kind = _WRAPPERS.get(type(obj))
    if kind is not None:
        return kind(obj, label)
    if isinstance(obj, (dict, list)):  # a subclass: its own methods would bypass a wrapper
        raise TypeError(
            f"cp.shared() wraps a plain dict or list, not a {type(obj).__name__} (a "
            "subclass): pass dict(obj) or list(obj), or wrap an object that holds it"
        )
    if isinstance(obj, _IMMUTABLE) or type(obj).__module__ == "builtins":
        raise TypeError(
            f"cp.shared() wraps mutable state (a dict, a list or an object with "
            f"attributes), not a {type(obj).__name__}: put the value in a dict, "
            "e.g. cp.shared({'n': 0})"
        )
    if isinstance(obj, types.CoroutineType | types.FunctionType | types.ModuleType):
        raise TypeError(
            f"cp.shared() wraps state, not a {type(obj).__name__}: wrap the dict, list or "
            "object the tasks share"
        )
    return SharedObject(obj, label)
