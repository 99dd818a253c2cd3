"""What every worker backend runs: one registered function on one payload.

This module is imported by worker processes (process and Dask backends), so it
imports nothing from the VM beyond plain-data checking and the isolation marker.
"""

from __future__ import annotations

from typing import Any

from ._plaindata import NotPlainData, copy_plain
from ._traps import in_worker

COMPLETED = 1
FAILED = -1


def run_job(function: Any, payload: Any) -> tuple[int, Any, str]:
    """Call ``function(payload)``; return ``(status, result, error)``.

    ``status`` is 1 with a plain-data copy of the result, or -1 with
    ``"ExceptionType: message"`` in ``error`` (also when the result is not plain
    data).  Never raises.

    Whatever the function raises is its failure, ``BaseException`` included
    (``KeyboardInterrupt``, ``SystemExit``, ``GeneratorExit``, a custom subclass):
    the same outcome on every backend, and the VM is untouched.  A *real* Ctrl-C
    never lands here: while a VM runs, SIGINT inside a worker is noted and raised
    by the scheduler at its next step (``_interrupts.py``), and worker processes
    ignore SIGINT.
    """
    try:
        with in_worker(getattr(function, "__name__", "?")):  # no VM here (isolation)
            result = function(payload)
    except BaseException as error:  # raised by the function itself: the worker failed
        return FAILED, None, describe(error)
    try:
        return COMPLETED, copy_plain(result, "the worker's result"), ""
    except NotPlainData as error:
        return FAILED, None, f"TypeError: {error}"
    except Exception as error:  # copying the result failed (a broken __eq__, recursion ...)
        return FAILED, None, describe(error)


def describe(error: BaseException) -> str:
    """``"ExceptionType: message"`` for a worker's error, even if ``str(error)`` fails."""
    try:
        message = str(error)
    except Exception:
        message = "(the exception's message could not be made)"
    return f"{type(error).__name__}: {message}"


def _exit_with_parent(parent: int) -> None:
    """Exit this worker process as soon as its parent is gone (a daemon thread).

    The parent's death closes the job pipe, which ends an idle process; a process in
    the middle of a long job notices here, within a quarter of a second: an orphan
    is re-parented (to init or a subreaper), so ``getppid`` changes."""
    import os
    import time

    while os.getppid() == parent:
        time.sleep(0.25)
    os._exit(70)


def serve(reader_fd: int, writer_fd: int, parent: int | None = None) -> None:
    """The loop of a worker process: receive (function bytes, payload), send the outcome.

    Started by ``ProcessBackend`` as ``python -c ... READ_FD WRITE_FD PARENT_PID``;
    the first message is the parent's ``sys.path``, so functions shipped by reference
    import the same modules.  Stdout and stderr stay the user's.  The process exits
    when the parent closes the pipe, sends ``None``, or dies.
    """
    import os
    import signal
    import sys
    import threading
    from multiprocessing.connection import Connection

    import cloudpickle

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the VM's process, not us
    if parent is not None:
        if os.getppid() != parent:
            return  # orphaned before we even started
        threading.Thread(
            target=_exit_with_parent, args=(parent,), name="exit-with-parent", daemon=True
        ).start()
    reader = Connection(reader_fd, writable=False)
    connection = Connection(writer_fd, readable=False)
    try:
        sys.path[:] = reader.recv()
    except (EOFError, OSError):
        return
    functions: dict[bytes, Any] = {}
    while True:
        try:
            message = reader.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        function_bytes, payload = message
        function = functions.get(function_bytes)
        if function is None:
            try:
                function = functions[function_bytes] = cloudpickle.loads(function_bytes)
            except BaseException as error:
                outcome = (FAILED, None, f"could not load the worker function: {error!r}")
                function = None
        if function is not None:
            outcome = run_job(function, payload)
        try:
            connection.send(outcome)
        except (OSError, ValueError):
            return  # the parent is gone
