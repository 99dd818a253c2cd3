"""Steering and following a VM from the host: its schedule and its watchers.

* :func:`schedule_of` reads the ``cp1:`` schedule of a journal: at every step where
  more than one task was ready, the index of the task that ran among the ready ones
  in ascending id (the choice points of ``cp.VM(schedule=...)`` and ``cp.explore``),
  and at every ``cp.choose`` the option taken.  It replays the records through the
  time-travel model, so the VM keeps nothing extra while it runs: the hot loop pays
  nothing for a schedule nobody asks for.
* :class:`Watchers` calls ``vm.watch`` callbacks with the event ids of new records,
  between slices of a run (a VM slice hook) and after host calls.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ._journal import CHOOSE, STEP

if TYPE_CHECKING:
    from ._journal import Journal
    from ._vm import VM

WATCH_EVERY = 1000  # steps between watcher calls while a run goes on


def schedule_of(journal: Journal) -> str:
    """The ``cp1:`` string of every choice recorded in ``journal``."""
    return ScheduleReader(journal).read()


class ScheduleReader:
    """Reads the choices of a journal as it grows: each :meth:`read` goes on from the
    records it has seen (a VM keeps one, so ``vm.schedule`` after each host step costs
    only the new records).  The ready tasks at each step are those of time travel's
    model (``_Model.ready``, the task of the last step, less the suspended ones)."""

    def __init__(self, journal: Journal) -> None:
        from ._timetravel import _Model

        self.journal = journal
        self.model = _Model(journal.meta.get("policy") == "random")
        self.choices: list[int] = []
        self.seen = 0

    def read(self) -> str:
        from ._schedule import encode_schedule

        model, choices, ended = self.model, self.choices, {}
        for _, tick, task, kind, a, b in self.journal._iter_raw(self.seen):
            if kind == STEP:
                offered = set(model.ready)
                if model.stepping:
                    offered.add(model.stepping)
                offered -= model.suspended
                if len(offered) > 1:
                    choices.append(sum(1 for other in offered if other < task))
            elif kind == CHOOSE:
                choices.append(b)
            model.apply(tick, task, kind, a, b, ended)
        self.seen = len(self.journal)
        return encode_schedule(choices)


class Watchers:
    """The callbacks of ``vm.watch``: a VM slice hook that reports new records."""

    def __init__(self, vm: VM) -> None:
        self.vm = vm
        self.callbacks: list[Callable] = []
        self.seen = len(vm._journal)  # records before the first watch are not news
        self.slice = vm._slice

    def add(self, callback: Callable) -> Callable[[], None]:
        vm = self.vm
        if not self.callbacks:
            self.seen = len(vm._journal)
            self.slice = vm._slice
            vm._slice = min(vm._slice, WATCH_EVERY)
            vm._slice_hooks.append(self)
        entry = [callback]  # a list of its own: the same callback may be watched twice

        def unwatch() -> None:
            for i, other in enumerate(self.callbacks):
                if other is entry:
                    del self.callbacks[i]
                    break
            else:
                return  # unwatched already
            if not self.callbacks:
                vm._slice = self.slice
                if self in vm._slice_hooks:
                    vm._slice_hooks.remove(self)

        self.callbacks.append(entry)
        return unwatch

    def __call__(self, force: bool = False) -> None:
        """Report the records written since the last call (a slice hook; also called
        after host calls).  A callback's exception propagates to the VM's caller."""
        total = len(self.vm._journal)
        if total <= self.seen:
            return
        first, self.seen = self.seen + 1, total
        for (callback,) in list(self.callbacks):
            callback(self.vm, first, total)
