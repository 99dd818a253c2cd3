"""Where a VM's nondeterministic inputs come from: one object, passed to the VM.

A run is determined by its program, its seed and three kinds of input that the
program does not compute: the **choices** at choice points (which ready task runs
next, which option ``cp.choose`` takes), the **outcomes of workers** (results and
errors of functions run outside the VM) and the **host events** a task takes.  By
default the policy decides, workers run and the host enqueues events.  A replay takes
all three from a journal, exploration makes the choices, and recovery (next) takes
them from a journal file and then goes on live: each passes a :class:`Sources` to the
VM (``cp.VM(..., sources=...)``, documented in ``counterpoint.lowlevel``) instead of
setting the VM's private attributes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from ._journal import Journal


class Sources(NamedTuple):
    """``chooser``: decides at choice points (a ``Chooser``: ``pick``/``choose``/``ran``
    /``advancing``/``observe``; None: the policy, or ``schedule=``); ``receipts``:
    worker outcomes by handle, ``handle -> (status, value, error)`` (None: run the
    workers); ``events``: makes the VM's host-event queue, ``events(vm) ->
    EventQueue`` (None: ``vm.events``, fed by the host)."""

    chooser: Any = None
    receipts: dict[int, tuple] | None = None
    events: Callable[[Any], Any] | None = None


def from_journal(journal: Journal) -> Sources:
    """The worker outcomes and host events recorded in ``journal`` (choices are
    re-made by the journal's own seed, policy and schedule)."""
    from ._journal import RECEIPT
    from ._plaindata import decode
    from ._replay import ReplayEvents

    receipts = {
        a: (b[0], decode(b[1]) if b[0] == 1 else None, b[3])
        for _, _, _, kind, a, b in journal._iter_raw()
        if kind == RECEIPT
    }
    return Sources(receipts=receipts, events=lambda vm: ReplayEvents(vm, journal))
