"""Ctrl-C while a VM runs: never in the middle of the scheduler's own bookkeeping.

Python raises ``KeyboardInterrupt`` wherever the main thread happens to be.  In a
task's own code (a ``while True: pass`` in a task, say) that is what we want: the
task ends there, journaled as cancelled "interrupted by KeyboardInterrupt", and
``vm.run`` passes the interrupt on.  Inside the scheduler or an operation it would
leave the VM half-way through an update (a task taken off the ready queue and
never resumed).  So while the VM runs, SIGINT goes to :func:`_on_sigint`, which
raises at once if the interrupted frame is user code, and otherwise notes the
interrupt; the scheduler raises it at the top of its next step, where nothing is
half-done (as trio does with its "KeyboardInterrupt protection").

The handler is installed only on the main thread and only over Python's default
handler: a program with its own SIGINT handler keeps it.
"""

from __future__ import annotations

import signal
import threading
from _signal import getsignal as _getsignal
from _signal import signal as _set_handler
from types import FrameType, TracebackType

_SAFE: set = set()  # code objects of VM functions where raising is safe (physical waits)

# Ctrl-C noted while the VM's own code ran on the main thread (signals go there only);
# the scheduler driving a VM on the main thread raises it at its next safe point
noted: list[int] = []
_MAIN = threading.main_thread().ident
_SIGINT = int(signal.SIGINT)


def noted_here() -> list[int] | tuple:
    """The interrupts this thread's scheduler must raise: ``noted`` on the main thread,
    none elsewhere (a VM on another thread is not the one Ctrl-C was meant for)."""
    return noted if threading.get_ident() == _MAIN else ()


def safe_to_interrupt(function) -> None:
    """Mark a VM function as a safe place for KeyboardInterrupt (it copes with it)."""
    _SAFE.add(function.__code__)


def _in_user_code(frame: FrameType | None) -> bool:
    """True if ``frame`` (the interrupted one) is user code run by the scheduler, or a
    VM function marked safe; False if it is the VM's own bookkeeping."""
    from ._vm import VM, is_internal

    loop = VM._loop.__code__
    innermost = frame
    while frame is not None:
        code = frame.f_code
        if is_internal(code.co_filename):
            if code in _SAFE:
                return True
            # the scheduler loop itself is bookkeeping; a frame it resumed is a task's
            return code is loop and frame is not innermost
        frame = frame.f_back
    return True  # no VM frame: the host's own code


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    if _in_user_code(frame):
        raise KeyboardInterrupt
    noted.append(signum)


class DeferredInterrupts:
    """``with DeferredInterrupts():`` around driving the scheduler."""

    __slots__ = ("installed",)

    def __enter__(self) -> DeferredInterrupts:
        # (the _signal functions: signal's own wrap handlers in enums, at a cost per run)
        self.installed = (
            threading.get_ident() == _MAIN and _getsignal(_SIGINT) is signal.default_int_handler
        )
        if self.installed:
            noted.clear()
            _set_handler(_SIGINT, _on_sigint)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if not self.installed:
            return
        _set_handler(_SIGINT, signal.default_int_handler)
        if noted:  # noted, and not yet raised by the scheduler
            noted.clear()
            if not isinstance(error, KeyboardInterrupt):
                raise KeyboardInterrupt


def take_interrupt() -> None:
    """Called by the scheduler at a safe point when an interrupt was noted."""
    noted.clear()
    raise KeyboardInterrupt
