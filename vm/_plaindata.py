"""Plain data: what crosses the boundary between the VM and the host.

Worker payloads and results and host-event payloads must be *plain data*:
``None``, bools, ints, floats, strings, bytes, lists, and dicts whose keys are
plain scalars.  :func:`copy_plain` checks a value and returns a deep copy (so a
worker cannot share state with the VM); :func:`encode` turns plain data into a
JSON-safe *wire form* that a journal record can hold and :func:`decode` turns
it back, exactly; :func:`digest` is the SHA-256 of the wire form.

Ints have at most 4,300 decimal digits (``MAX_INT_DIGITS``, see ``docs/journal.md``).

Wire form: JSON values stand for themselves, except
``{"$bytes": "<base64>"}`` for bytes, ``{"$float": "nan" | "inf" | "-inf"}``
for non-finite floats, and ``{"$dict": [[key, value], ...]}`` for a dict with a
non-string key or a key starting with ``$`` (so no user dict is ambiguous).
"""

from __future__ import annotations

import base64
import hashlib
import math
from typing import Any

from ._journal import _INT_LIMIT, MAX_INT_DIGITS, _jv

_SCALARS = (type(None), bool, int, float, str, bytes)
_MAX_DEPTH = 100


class NotPlainData(TypeError):
    """A worker payload/result or event payload that is not plain data.

    The message says where the offending value sits and what type it was.
    """


def copy_plain(value: Any, what: str = "value") -> Any:
    """A deep copy of ``value`` if it is plain data; else ``NotPlainData``.

    >>> copy_plain({"xs": [1, 2.5, b"ok"], 3: None})
    {'xs': [1, 2.5, b'ok'], 3: None}
    """
    return _copy(value, what, 0)


def _copy(value: Any, where: str, depth: int) -> Any:
    cls = type(value)
    if cls in _SCALARS:
        if cls is int and not -_INT_LIMIT < value < _INT_LIMIT:
            raise NotPlainData(
                f"{where} is an int of {value.bit_length():,} bits, more than the "
                f"{MAX_INT_DIGITS:,} decimal digits a journal holds (reading longer ones takes "
                f"quadratic time); pass it as a str or as bytes"
            )
        return value
    if depth > _MAX_DEPTH:
        raise NotPlainData(f"{where} is nested more than {_MAX_DEPTH} levels deep")
    if cls is list:
        return [_copy(item, f"{where}[{i}]", depth + 1) for i, item in enumerate(value)]
    if cls is dict:
        out = {}
        for key, item in value.items():
            if type(key) not in _SCALARS:
                raise NotPlainData(
                    f"{where} has a key of type {type(key).__name__}; dict keys must be None, "
                    f"bool, int, float, str or bytes"
                )
            out[key] = _copy(item, f"{where}[{key!r}]", depth + 1)
        return out
    hint = " (use a list)" if isinstance(value, tuple | set | frozenset) else ""
    raise NotPlainData(
        f"{where} is a {cls.__name__}, which is not plain data{hint}. Workers and host events "
        f"carry only None, bool, int, float, str, bytes, lists and dicts."
    )


def encode(value: Any) -> Any:
    """The JSON-safe wire form of plain data (see the module docstring).

    >>> encode({"a": b"hi", 1: float("inf")})
    {'$dict': [['a', {'$bytes': 'aGk='}], [1, {'$float': 'inf'}]]}
    """
    cls = type(value)
    if cls is bytes:
        return {"$bytes": base64.b64encode(value).decode("ascii")}
    if cls is float and not math.isfinite(value):
        return {"$float": repr(value)}
    if cls is list:
        return [encode(item) for item in value]
    if cls is dict:
        if all(type(key) is str and not key.startswith("$") for key in value):
            return {key: encode(item) for key, item in value.items()}
        pairs = [[encode(key), encode(item)] for key, item in value.items()]
        pairs.sort(key=lambda pair: canonical_json(pair[0]))  # equal dicts, equal forms
        return {"$dict": pairs}
    return value


def decode(wire: Any) -> Any:
    """The plain data a wire form stands for; ``decode(encode(v)) == v``.

    >>> decode(encode({"a": [b"x", None], 2: True}))
    {'a': [b'x', None], 2: True}
    """
    cls = type(wire)
    if cls is list:
        return [decode(item) for item in wire]
    if cls is dict:
        if len(wire) == 1:
            ((tag, body),) = wire.items()
            if tag == "$bytes":
                return base64.b64decode(body)
            if tag == "$float":
                return float(body)
            if tag == "$dict":
                return {decode(key): decode(item) for key, item in body}
        return {key: decode(item) for key, item in wire.items()}
    return wire


def canonical_json(wire: Any) -> str:
    """Canonical JSON text (sorted keys, no spaces, ints in full) of a wire form."""
    return _jv(wire)


def digest(value: Any) -> str:
    """SHA-256 (hex) of the canonical JSON text of the wire form of ``value``.

    >>> digest({"b": 1, "a": [2]}) == digest({"a": [2], "b": 1})
    True
    """
    return hashlib.sha256(canonical_json(encode(value)).encode("ascii")).hexdigest()
