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
    """
    try:
        with in_worker(getattr(function, "__name__", "?")):  # no VM here (isolation)
            result = function(payload)
    except (Exception, SystemExit) as error:  # the worker's failure is its outcome
        return FAILED, None, f"{type(error).__name__}: {error}"
    try:
        return COMPLETED, copy_plain(result, "the worker's result"), ""
    except NotPlainData as error:
        return FAILED, None, f"TypeError: {error}"


def serve(reader_fd: int, writer_fd: int) -> None:
    """The loop of a worker process: receive (function bytes, payload), send the outcome.

    Started by ``ProcessBackend`` as ``python -c ... READ_FD WRITE_FD``; the first
    message is the parent's ``sys.path``, so functions shipped by reference import
    the same modules.  Stdout and stderr stay the user's.
    """
    import signal
    import sys
    from multiprocessing.connection import Connection

    import cloudpickle

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the VM's process, not us
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
                connection.send((FAILED, None, f"could not load the worker function: {error!r}"))
                continue
        connection.send(run_job(function, payload))
