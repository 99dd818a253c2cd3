"""Replay and determinism checks.

``replay(program, journal)`` runs ``program`` on a fresh VM made like the one
that wrote the journal (its seed, policy and ``max_workers`` are in
``journal.meta``) and compares the new journal with the old one, record by
record, as it goes.  Workers are not run again: their outcomes come from the
journal's receipts.  Host events come from the journal's event records, at the
moments the original run took them.  The first difference raises
``NondeterminismError``.

``check_determinism(program)`` runs a program several times — in fresh
processes with different hash seeds if asked — and compares the digests.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
from collections import deque
from pathlib import Path
from types import CoroutineType
from typing import Any

from ._errors import NondeterminismError, UnknownWorkerTask
from ._journal import (
    _TASK_MASK,
    EVENT,
    SPAWN,
    STEP,
    TASK_SHIFT,
    Journal,
    _line,
)
from ._kinds import decode, encode
from ._plaindata import decode as decode_plain
from ._sources import from_journal
from ._traps import discard
from .events import EventQueue, HostEvent


def _fresh(program: Any, what: str) -> Any:
    """A new coroutine from ``program`` (a zero-argument callable), or ``program`` itself."""
    if callable(program):
        return program()
    if isinstance(program, CoroutineType):
        return program
    raise TypeError(
        f"{what} needs the program as a zero-argument callable that returns a fresh "
        f"coroutine (such as `main`, not `main()`), got {type(program).__name__}"
    )


def _describe(journal: Journal, index: int) -> str:
    """Record ``index`` (0-based) as its canonical JSON line."""
    if index >= len(journal):
        return "nothing (the journal ends here)"
    for i, tick, task, kind, a, b in journal._iter_raw(index, index + 1):
        return _line(i + 1, tick, task, kind, encode(kind, a, b, tick))
    return "nothing (the journal ends here)"


def _context(journal: Journal, index: int) -> str:
    """ "task 3 'worker', in its step 5 (step 120 of the run)" for record ``index``."""
    task_of = (journal._rows[index] >> TASK_SHIFT) & _TASK_MASK if index < len(journal) else 0
    names: dict[int, str] = {}
    steps = task_steps = 0
    for _, _, task, kind, a, b in journal._iter_raw(0, min(index + 1, len(journal))):
        if kind == STEP:
            steps += 1
            if task == task_of:
                task_steps += 1
        elif kind == SPAWN:
            names[a] = b
    if task_of == 0:
        return f"on the host side (after step {steps} of the run)"
    name = names.get(task_of, "?")
    return f"task {task_of} {name!r}, in its step {task_steps} (step {steps} of the run)"


def first_difference(expected: Journal, got: Journal, start: int = 0) -> int | None:
    """The index of the first record that differs (or where one journal ends), or None."""
    for (i, tick_e, task_e, kind_e, a_e, b_e), (_, tick_g, task_g, kind_g, a_g, b_g) in zip(
        expected._iter_raw(start), got._iter_raw(start), strict=False
    ):
        if (tick_e, task_e, kind_e, a_e) != (tick_g, task_g, kind_g, a_g) or (
            b_e != b_g and decode(kind_e, a_e, b_e, tick_e) != decode(kind_g, a_g, b_g, tick_g)
        ):
            return i
    shorter = min(len(expected), len(got))
    return None if len(expected) == len(got) else shorter


def divergence(expected: Journal, got: Journal, index: int, how: str) -> NondeterminismError:
    return NondeterminismError(
        f"{how}: expected {_describe(expected, index)} at event {index + 1}, "
        f"got {_describe(got, index)} ({_context(got, index)})",
        event_id=index + 1,
        expected=expected[index] if index < len(expected) else None,
        got=got[index] if index < len(got) else None,
    )


class ReplayEvents(EventQueue):
    """Host events from a journal: each is offered exactly where the original took it."""

    def __init__(self, vm: Any, expected: Journal) -> None:
        super().__init__(vm)
        self._script: deque[tuple[int, HostEvent]] = deque(
            (index, HostEvent(b[0], decode_plain(b[1])))
            for index, _, _, kind, _, b in expected._iter_raw()
            if kind == EVENT
        )

    def enqueue(self, source: str, payload: Any = None) -> None:  # host events are replayed
        return None

    def pending(self) -> int:
        return 1 if self._available() else 0

    def _available(self) -> bool:  # the next event was taken at this very record
        script = self._script
        return bool(script) and script[0][0] == len(self._vm._rows)

    def _take(self, limit: int) -> list[HostEvent]:
        taken: list[HostEvent] = []
        position = len(self._vm._rows)
        while len(taken) < limit and self._script and self._script[0][0] == position + len(taken):
            taken.append(self._script.popleft()[1])
        return taken


class _Checker:
    """A VM slice hook: compare the records written so far with the expected journal."""

    def __init__(self, expected: Journal, got: Journal) -> None:
        self.expected = expected
        self.got = got
        self.checked = 0
        self.error: NondeterminismError | None = None  # the first difference found

    @property
    def failed(self) -> bool:
        return self.error is not None

    def watch(self, vm: Any, first: int, last: int) -> None:  # (a vm.watch callback)
        self()

    def __call__(self, final: bool = False) -> None:
        if self.error is not None:
            return
        got, expected = self.got, self.expected
        upto = len(got)
        index = first_difference(expected, got, self.checked)
        if index is not None and (index < upto and index < len(expected)):
            self.error = divergence(expected, got, index, "the replay diverged from the journal")
            raise self.error
        if upto > len(expected):
            self.error = divergence(
                expected, got, len(expected), "the replay went on past the journal"
            )
            raise self.error
        self.checked = upto


def replaying_vm(expected: Journal, **vm_options: Any) -> tuple[Any, _Checker]:
    """A fresh VM made like the one that wrote ``expected``, with its workers' outcomes
    and host events taken from the journal, and a checker that compares the records
    written so far (it runs between slices of steps; call it for a final check)."""
    from ._vm import VM

    options = {
        key: expected.meta[key]
        for key in ("seed", "policy", "max_workers", "schedule", "max_steps")
        if key in expected.meta
    }
    options.update(vm_options)
    vm = VM(**options, sources=from_journal(expected))
    checker = _Checker(expected, vm.journal)
    vm.watch(checker.watch)  # compare every batch: a divergence stops the replay early
    return vm, checker


def replay(program: Any, journal: Journal | str | os.PathLike, **vm_options: Any) -> Any:
    """Re-run ``program`` and check it against ``journal`` record by record.

    ``program`` is a zero-argument callable returning a fresh coroutine (or a
    coroutine).  ``journal`` is a ``cp.Journal`` or a journal file.  The VM is made
    with the journal's seed, policy and ``max_workers`` (override them with
    keyword arguments).  Returns what the program returns (or raises what it
    raises) if the whole journal is reproduced; raises ``cp.NondeterminismError``
    ("expected <record> at event N, got <record>") at the first difference.

    >>> import counterpoint as cp
    >>> async def main():
    ...     await cp.sleep(cp.rng().randrange(10))
    ...     return cp.now()
    >>> vm = cp.VM(seed=42)
    >>> vm.run(main()) == cp.replay(main, vm.journal)
    True
    """

    try:
        expected = journal if isinstance(journal, Journal) else Journal.load(journal)
    except BaseException:
        if isinstance(program, CoroutineType):
            discard(program)  # a coroutine we were given must not be left unawaited
        raise
    coro = _fresh(program, "cp.replay()")
    try:
        vm, checker = replaying_vm(expected, **vm_options)
    except BaseException:
        discard(coro)
        raise
    outcome: BaseException | None = None
    result = None
    try:
        try:
            result = vm.run(coro)
        except NondeterminismError:
            raise
        except BaseException as error:  # the program's own failure: replayed too, if it matches
            outcome = error
        checker()
        if len(vm.journal) < len(expected):
            raise divergence(expected, vm.journal, len(vm.journal), "the replay ended early")
    except NondeterminismError:
        vm._dispose()  # (the replay's own VM: its tasks go with it, unwarned)
        raise
    if outcome is not None:
        raise outcome
    return result


# -- check_determinism -----------------------------------------------------------------------

_CHILD = """
import sys
import counterpoint as cp
from counterpoint._shipping import MISSED, left_behind_message, load_program
with open(sys.argv[1], "rb") as file:
    program, options = load_program(file.read())
vm = cp.VM(**options)
try:
    vm.run(program())
except Exception:
    pass
if MISSED:  # a worker task the parent has, and could not ship: not the program's doing
    print(left_behind_message(MISSED[0]), file=sys.stderr)
    sys.exit(3)  # _LEFT_BEHIND
vm.journal.save(sys.argv[2])
"""

# _CHILD's exit status when its program started a worker task that could not be shipped
_LEFT_BEHIND = 3


def _run_here(program: Any, options: dict) -> Journal:
    from ._vm import VM

    vm = VM(**options)
    try:
        vm.run(_fresh(program, "cp.check_determinism()"))
    except Exception:
        pass  # a failing program can be deterministic too: its journal says how it failed
    return vm.journal


def _run_in_process(program_file: Path, options: dict, out: Path, hash_seed: int) -> Journal:
    env = dict(os.environ, PYTHONHASHSEED=str(hash_seed))
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(program_file), str(out)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode == _LEFT_BEHIND:
        raise UnknownWorkerTask(f"cp.check_determinism(): {done.stderr.strip().splitlines()[-1]}")
    if done.returncode != 0 or not out.exists():
        raise RuntimeError(
            f"cp.check_determinism(): the run in a fresh process failed:\n{done.stderr.strip()}"
        )
    return Journal.load(out)


def check_determinism(
    program: Any,
    runs: int = 2,
    processes: bool = False,
    *,
    seed: int = 0,
    policy: str = "fifo",
) -> str:
    """Run ``program`` ``runs`` times and check that every run writes the same journal.

    ``program`` is a zero-argument callable returning a fresh coroutine.  With
    ``processes=True`` each run happens in a fresh Python process with its own
    ``PYTHONHASHSEED`` (so hash-order dependence shows up); the program is shipped
    there with cloudpickle, with the worker tasks registered here (``_shipping.py``).
    Returns the common digest; raises ``cp.NondeterminismError`` naming the first
    record where two runs differ, and ``cp.UnknownWorkerTask`` if the program starts
    a registered worker task that could not be shipped.

    >>> import counterpoint as cp
    >>> async def main():
    ...     return await cp.par(cp.sleep(2), cp.sleep(1))
    >>> len(cp.check_determinism(main, runs=3))
    64
    """
    if not callable(program):
        if isinstance(program, CoroutineType):
            discard(program)
        raise TypeError(
            "cp.check_determinism() needs a zero-argument callable that returns a fresh "
            "coroutine (such as `main`, not `main()`)"
        )
    if not isinstance(runs, int) or runs < 2:
        raise ValueError(f"runs must be an int >= 2 (it compares runs), got {runs!r}")
    options = {"seed": seed, "policy": policy}
    if processes:
        from ._shipping import program_bytes

        data = program_bytes(program, options)
        with tempfile.TemporaryDirectory(prefix="counterpoint-") as folder:
            program_file = Path(folder) / "program.pickle"
            program_file.write_bytes(data)
            hash_seeds = random.Random().sample(range(1, 2**31), runs)
            journals = [
                _run_in_process(program_file, options, Path(folder) / f"run{i}.db", hash_seed)
                for i, hash_seed in enumerate(hash_seeds)
            ]
    else:
        journals = [_run_here(program, options) for _ in range(runs)]
    first = journals[0]
    for number, other in enumerate(journals[1:], 2):
        if other.digest() != first.digest():
            index = first_difference(first, other)
            raise divergence(first, other, index, f"run {number} differs from run 1")
    return first.digest()
