"""Counterpoint inside IPython: ``%load_ext counterpoint`` (or the kernel).

``load(shell)`` starts a :class:`Session` on an IPython shell: the session VM is
``vm`` in the user namespace with the contract names preloaded, cells with a
top-level ``await`` run on it, every cell is journaled, and the magics ``%vm``,
``%tasks``, ``%journal``, ``%replay`` and ``%%explore`` are there.
"""

from __future__ import annotations

from typing import Any

from .session import Session

__all__ = ["Session", "load", "session_of", "unload"]

_SESSIONS: dict[int, Session] = {}  # id(shell) -> its session (one per shell)


def load(shell: Any, **options: Any) -> Session:
    """The shell's session, started if need be (``options`` go to ``cp.VM``)."""
    session = _SESSIONS.get(id(shell))
    if session is None or session.shell is not shell:
        session = _SESSIONS[id(shell)] = Session(shell, **options)
    return session


def session_of(shell: Any) -> Session | None:
    session = _SESSIONS.get(id(shell))
    return session if session is not None and session.shell is shell else None


def unload(shell: Any) -> None:
    session = _SESSIONS.pop(id(shell), None)
    if session is not None:
        session.uninstall()


def load_ipython_extension(shell: Any) -> None:
    load(shell)


def unload_ipython_extension(shell: Any) -> None:
    unload(shell)
