"""What ``cp.explore`` reports: :class:`ExploreReport` and its :class:`Finding` s, built
by a :class:`Tally` from the plain summaries of the runs, and the words they are shown
in (``summary()``, ``repr``, ``_repr_html_``)."""

from __future__ import annotations

import time
from typing import Any, NamedTuple

_REDUCED_SHARED = (
    "Partial-order reduction left out schedules it judged equivalent to ones it ran "
    "(shared_only=True): it assumes that tasks share state only through VM objects and "
    "cp.shared() wrappers, so that steps touching neither commute, and so do reads. Plain "
    "Python state shared without a wrapper breaks it: wrap it, or explore without "
    "shared_only."
)
_REDUCED = (
    "Partial-order reduction left out schedules it judged equivalent to ones it ran. It "
    "assumes that tasks share plain Python state (anything but VM objects) only in steps "
    "that use no VM object, such as a read or write followed by `await cp.checkpoint()`, "
    "or in the last step of a task that never used one; a step that uses a channel, lock "
    "or other VM object is taken to touch no shared Python state. Explore with "
    "por=False to drop this assumption."
)

_LISTED = 6  # outcomes named in a one-line summary; the rest are counted


def _bounded(bound: int) -> str:
    return (
        f"Only schedules with at most {count(bound, 'preemption')} were explored "
        f"(preemption_bound={bound}): a verdict of exhaustive holds within that bound."
    )


def count(n: int, noun: str) -> str:
    """``"1 schedule"``, ``"2 schedules"``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _outcomes(n: int) -> str:
    if not n:
        return "no outcomes"
    return "1 outcome" if n == 1 else f"{n} distinct outcomes"


class _FindingFields(NamedTuple):
    outcome: str
    message: str
    schedule: str
    preemptions: int
    count: int
    replay: str


class Finding(_FindingFields):
    """A failure or deadlock found by ``explore``, with the schedule that shows it best
    (the fewest preemptions found) and a line that replays it.

    >>> import counterpoint as cp
    >>> async def main():
    ...     if cp.choose([1, 0]) == 0:
    ...         raise ZeroDivisionError("the 0 was chosen")
    >>> finding = cp.explore(main).failures[0]
    >>> finding.outcome, finding.schedule, finding.replay
    ('ZeroDivisionError', 'cp1:11', "cp.VM(schedule='cp1:11', seed=0).run(main())")

    A finding is a tuple of those six fields: it compares, prints and pickles as them.
    It also remembers, outside its fields, how ``explore`` ran it (the program, the seed
    and ``max_steps``), so :meth:`show` can run it again; the program is not pickled
    (it may not pickle), so a finding from another process needs ``program=``.

    A deadlock also says who was stuck: :attr:`blocked` and :attr:`finished` (plain
    data, kept outside the six fields and pickled with the finding).
    """

    @property
    def blocked(self) -> tuple[tuple[int, str, str], ...]:
        """A deadlock's blocked tasks, ``(task id, name, what it waits on)`` in ascending
        task id -- ``cp.Deadlock.blocked`` of the finding's run; ``()`` for a failure
        (and for a finding pickled before findings carried it).

        >>> import counterpoint as cp
        >>> async def main():
        ...     fork, knife = cp.Lock(name="fork"), cp.Lock(name="knife")
        ...     async def eat(first, second):
        ...         async with first:
        ...             await cp.checkpoint()
        ...             async with second:
        ...                 pass
        ...     async def left():
        ...         await eat(fork, knife)
        ...     async def right():
        ...         await eat(knife, fork)
        ...     await cp.par(left(), right())
        >>> finding = cp.explore(main).deadlocks[0]
        >>> for task, name, waits in finding.blocked:
        ...     print(task, name, waits)
        1 main for its cp.par() branches (tasks 2, 3) to finish
        2 left to acquire lock 'knife' (held by task 3 'right')
        3 right to acquire lock 'fork' (held by task 2 'left')
        """
        return self.__dict__.get("_blocked", ())

    @property
    def finished(self) -> tuple[tuple[int, str, str], ...]:
        """A deadlock's tasks that had ended by then, ``(task id, name, how)`` with
        ``how`` one of ``"done"``, ``"failed"``, ``"cancelled"`` (``cp.Deadlock.finished``);
        ``()`` for a failure."""
        return self.__dict__.get("_finished", ())

    def _replace(self, **changes: Any) -> Finding:
        made = super()._replace(**changes)
        made.__dict__.update(self.__dict__)
        return made

    def __getstate__(self) -> dict | None:  # the program stays in this process
        here = ("_program", "_invariant")  # (they may not pickle)
        return {k: v for k, v in self.__dict__.items() if k not in here} or None

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

    def __copy__(self) -> Finding:
        return self

    def __deepcopy__(self, memo: Any) -> Finding:
        return self

    def run(self, program: Any = None) -> Any:
        """Run the finding's schedule again on a fresh VM (the seed and ``max_steps``
        ``explore`` used) and return that VM: its journal ends where the finding does.
        The run's exception (the failure, or ``cp.Deadlock``) is caught; a run that ends
        otherwise raises ``cp.NondeterminismError``.  ``program`` is the zero-argument
        callable that was explored; by default the one ``explore`` was given (known
        when the finding comes from an ``explore`` call in this process)."""
        return self._replay(self._program_of(program, "show"))[0]

    def _replay(self, program: Any, chooser: Any = None) -> tuple[Any, BaseException | None]:
        """Run the finding's schedule again (or let ``chooser`` follow it): (the VM, the
        run's exception); ``cp.NondeterminismError`` if it ends otherwise."""
        from ._errors import Cancelled, Deadlock, NondeterminismError
        from ._sources import Sources
        from ._vm import VM  # (here: _vm imports this module through _explore)

        invariant = self.__dict__.get("_invariant")
        if invariant is not None:  # checked after every step, as explore did
            if chooser is None:
                from ._explore import _Recorder
                from ._schedule import decode_schedule
                from ._strategies import DEFAULT

                chooser = _Recorder(decode_schedule(self.schedule), DEFAULT)
            chooser.invariant = invariant
        vm = VM(
            schedule=self.schedule if chooser is None else None,
            seed=self.__dict__.get("_seed", 0),
            max_steps=self.__dict__.get("_max_steps", 100_000),
            sources=Sources(chooser=chooser),
        )
        raised: BaseException | None = None
        try:
            value = vm.run(program())
            if invariant is not None:
                chooser.check_invariant()  # (after the last step, as explore does)
        except Deadlock as error:
            raised, ended = error, "Deadlock"
        except Exception as error:
            raised, ended = error, type(error).__name__
        except Cancelled as error:
            raised, ended = error, "Cancelled"
        else:
            ended = f"returned {value!r}"[:80]
        finally:
            if invariant is not None:  # (a broken invariant stops the run between steps)
                vm._dispose()
        if ended != self.outcome:
            raise NondeterminismError(
                f"the finding's schedule {self.schedule!r} ran again ended {ended}, not "
                f"{self.outcome}: the program is not the one explored, or it is not "
                "deterministic (see cp.explore)"
            )
        return vm, raised

    def _program_of(self, program: Any, method: str) -> Any:
        """``program``, or the one ``explore`` was given; a clear error if neither."""
        if program is None:
            program = self.__dict__.get("_program")
            if program is None:
                raise ValueError(
                    "this finding does not know its program (it was made or unpickled "
                    "outside the cp.explore() call that found it): pass it, e.g. "
                    f"finding.{method}(program=main) with the function cp.explore() was given"
                )
        if not callable(program):
            from ._traps import discard

            discard(program)  # (a refused coroutine must not warn "never awaited")
            raise TypeError(
                "program= is the zero-argument callable cp.explore() was given (such as "
                f"`main`, not `main()`), not {type(program).__name__}"
            )
        return program

    def explain(self, program: Any = None) -> str:
        """The finding's schedule told step by step: each step's task, source lines and
        what it did (VM operations, record-free reads, ``cp.shared`` accesses), the
        conflicting pair marked ``<-``, and the pattern named (lost update,
        check-then-act, lock-order cycle, lost wake-up, or other).  The program is run
        again under the finding's schedule, as :meth:`run` does (``program``: the same).
        The text is a ``str`` that a REPL or a notebook shows as text.

        >>> import counterpoint as cp
        >>> async def main():
        ...     a, b = cp.Lock(name="a"), cp.Lock(name="b")
        ...     async def one():
        ...         async with a:
        ...             await cp.checkpoint()
        ...             async with b:
        ...                 pass
        ...     async def two():
        ...         async with b:
        ...             await cp.checkpoint()
        ...             async with a:
        ...                 pass
        ...     await cp.par(one(), two())
        >>> finding = cp.explore(main).deadlocks[0]
        >>> print(finding.explain().splitlines()[1].replace("; ", ";\\n"))
        Lock-order cycle: task 2 'one' holds lock 'a' and waits for lock 'b';
        task 3 'two' holds lock 'b' and waits for lock 'a'.
        """
        from ._explain import explain

        return explain(self, self._program_of(program, "explain"))

    def show(self, program: Any = None) -> Any:
        """The finding's run as a widget (``cp.widgets.Timeline``): the program run
        again under the finding's schedule (see :meth:`run`)."""
        from counterpoint import widgets

        return widgets.Timeline(self.run(program).journal)


def _explained(finding: Finding) -> list[str]:
    """The lines of ``finding.explain()`` that ``assert_ok`` adds to its message (its
    headline and replay line are said already); none when the program is unknown."""
    if finding.__dict__.get("_program") is None:
        return []
    try:
        text = finding.explain()
    except Exception as error:  # the message must still say what was found
        return ["", f"(finding.explain() failed: {type(error).__name__}: {error})"]
    return ["", *text.splitlines()[1:-1]]


def _found(fields: tuple, seed: int, max_steps: int) -> Finding:
    finding = Finding(*fields)
    finding.__dict__.update(_seed=seed, _max_steps=max_steps)
    return finding


class ExploreReport:
    """What ``cp.explore`` found.

    ``schedules`` (executions run), ``strategy``, ``exhaustive`` (the whole choice tree was
    covered), ``assumptions`` (sentences: what the verdict rests on, empty when
    nothing was left out), ``outcomes`` (outcome -> count; an outcome is the return
    value, or the exception type name), ``deadlocks`` and ``failures`` (lists of
    :class:`Finding`), ``pruned`` (executions ended by ``cp.require``), ``seconds``
    and ``schedules_per_second``; ``first_finding`` (the number of the run, 1, 2 ...,
    that first failed or deadlocked; None if none did) and ``first_finding_seconds``
    (how long the search took to get there); ``program``, the callable explored (``None`` in a
    report pickled from another process: it is not pickled) -- ``show()`` needs it to
    run a finding again.

    >>> import counterpoint as cp
    >>> async def main():
    ...     return cp.choose("ab") + cp.choose("xy")
    >>> report = cp.explore(main)
    >>> report.schedules, report.exhaustive, sorted(report.outcomes), report.assumptions
    (4, True, ['ax', 'ay', 'bx', 'by'], [])
    >>> print(report.summary().replace("; ", ";\\n"))
    dfs: 4 schedules, exhaustive;
    no failures or deadlocks, 4 distinct outcomes: 'ax', 'ay', 'bx', 'by'
    """

    def __init__(self, strategy: str) -> None:
        self.strategy = strategy
        self.schedules = 0
        self.exhaustive = False
        self.assumptions: list[str] = []
        self.outcomes: dict[Any, int] = {}
        self.deadlocks: list[Finding] = []
        self.failures: list[Finding] = []
        self.pruned = 0
        self.seconds = 0.0
        self.first_finding: int | None = None  # which run (1, 2, ...) first failed
        self.first_finding_seconds: float | None = None  # and how long the search took to it
        self.warnings: list[str] = []  # the lint: atomic here, racy under threads
        self.program: Any = None  # what was explored (this process only: never pickled)

    def _explored(self, program: Any, invariant: Any = None) -> None:
        """Remember the program explored, here and on each finding (for ``show()``),
        and the invariant it was explored with (a finding's run checks it again)."""
        self.program = program
        for finding in self.deadlocks + self.failures:
            finding.__dict__["_program"] = program
            if invariant is not None:
                finding.__dict__["_invariant"] = invariant

    def __getstate__(self) -> dict:  # the program stays in this process (it may not pickle)
        state = dict(self.__dict__)
        state["program"] = None
        return state

    def assert_ok(self, *, allow_partial: bool = False) -> None:
        """Raise ``AssertionError`` unless the search is a pass: it found no failure and
        no deadlock, and -- unless ``allow_partial`` -- it was exhaustive (a search that
        stopped at ``max_schedules`` proves nothing about the schedules it did not run).
        The message shows the first finding (the fewest preemptions among its kind)
        and the line that replays it, or why the search is not a proof.

        >>> import counterpoint as cp
        >>> async def main():
        ...     return cp.choose([1, 2])
        >>> cp.explore(main).assert_ok()  # exhaustive, nothing found: a pass
        """
        if not isinstance(allow_partial, bool):
            raise TypeError(f"assert_ok(allow_partial=...) is True or False, not {allow_partial!r}")
        findings = self.failures + self.deadlocks
        if findings:
            first = min(findings, key=lambda f: (f.preemptions, len(f.schedule)))
            more = len(findings) - 1
            message = (first.message or "").strip()
            lines = [
                f"cp.explore found {count(len(findings), 'problem')}: {self._problems()} "
                f"in {count(self.schedules, 'schedule')}",
                f"{first.outcome} (in {count(first.count, 'schedule')}, "
                f"{count(first.preemptions, 'preemption')})" + (f": {message}" if message else ""),
                f"replay it: {first.replay}",
            ]
            if more:
                lines.append(f"({more} more: see the report's failures and deadlocks)")
            lines.extend(_explained(first))
            raise AssertionError("\n".join(lines))
        if not self.exhaustive and not allow_partial:
            raise AssertionError(
                f"cp.explore found no problem, but the search is not exhaustive: it ran "
                f"{count(self.schedules, 'schedule')} ({self.strategy}) and stopped before "
                "covering every schedule, so untried schedules may fail. Raise "
                "max_schedules (dfs covers every schedule of a small program), or pass "
                "allow_partial=True to accept a partial search"
            )

    def show(self) -> Any:
        """The report as a widget, ``cp.widgets.ExploreView``: outcomes as a bar chart,
        findings grouped by outcome; picking a finding shows its run."""
        from counterpoint import widgets

        return widgets.ExploreView(self)

    @property
    def schedules_per_second(self) -> float:
        return self.schedules / self.seconds if self.seconds else 0.0

    def _verdict(self) -> str:
        if not self.exhaustive:
            return "not exhaustive"
        if not self.assumptions:
            return "exhaustive"
        n = len(self.assumptions)
        return f"exhaustive if {n} assumption{'s hold' if n > 1 else ' holds'}"

    def _problems(self) -> str:
        """``"no failures or deadlocks"``, ``"1 failure, no deadlocks"`` ..."""
        failures, deadlocks = len(self.failures), len(self.deadlocks)
        if not failures and not deadlocks:
            return "no failures or deadlocks"
        return (
            f"{count(failures, 'failure') if failures else 'no failures'}, "
            f"{count(deadlocks, 'deadlock') if deadlocks else 'no deadlocks'}"
        )

    def _outcome_text(self, outcome: Any) -> str:
        """An outcome as the reader knows it: an exception's type name bare, a returned
        value as its repr (so a returned string reads as a string)."""
        errors = {finding.outcome for finding in self.failures + self.deadlocks}
        if isinstance(outcome, str) and outcome in errors:
            return outcome
        return repr(outcome)

    def _outcomes_line(self, listed: int | None = None) -> str:
        """How many distinct outcomes, and which: ``"2 distinct outcomes: 20, 30"``."""
        n = len(self.outcomes)
        if not n:
            return "no outcomes"
        try:  # in order when the outcomes compare (numbers, strings), else as found
            found = sorted(self.outcomes)
        except TypeError:
            found = list(self.outcomes)
        names = [self._outcome_text(outcome) for outcome in found]
        if listed is not None and n > listed:
            names = [*names[:listed], f"... ({n - listed} more)"]
        return f"{_outcomes(n)}: {', '.join(names)}"

    def summary(self) -> str:
        """One line: the search, its verdict (and whether it rests on assumptions), the
        failures and deadlocks, and the distinct outcomes (a search with no failure whose
        runs ended differently says so: a lost update need not raise)."""
        return (
            f"{self.strategy}: {count(self.schedules, 'schedule')}, {self._verdict()}"
            f"{' (see report.assumptions)' if self.exhaustive and self.assumptions else ''}"
            f"; {self._problems()}, {self._outcomes_line(_LISTED)}"
            f"{f'; {self.pruned} pruned' if self.pruned else ''}"
        )

    def _headline(self) -> str:
        return (
            f"{self.strategy}: {count(self.schedules, 'schedule')}"
            f"{f' ({self._verdict()})' if self.exhaustive else ''}, {self._problems()}, "
            f"{_outcomes(len(self.outcomes))}"
            f"{f', {self.pruned} pruned' if self.pruned else ''}"
        )

    def __repr__(self) -> str:
        lines = [
            f"<ExploreReport {self._headline()}>",
            "outcomes: "
            + ", ".join(f"{self._outcome_text(o)} x{n}" for o, n in self.outcomes.items()),
        ]
        for finding in self.deadlocks + self.failures:
            lines.append(
                f"{finding.outcome} (in {count(finding.count, 'schedule')}, "
                f"{count(finding.preemptions, 'preemption')}): "
                f"{finding.message.splitlines()[0] if finding.message else ''}"
            )
            lines.append(f"  replay: {finding.replay}")
        lines.extend(f"assumes: {sentence}" for sentence in self.assumptions)
        lines.extend(f"warning: {sentence}" for sentence in self.warnings)
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        from html import escape

        from ._display import table

        rows = [[self._outcome_text(o), n] for o, n in self.outcomes.items()]
        out = table(["outcome", "schedules"], rows, self._headline())
        findings = [
            [
                f.outcome,
                f.count,
                f.preemptions,
                f.message.splitlines()[0] if f.message else "",
                f.replay,
            ]
            for f in self.deadlocks + self.failures
        ]
        if findings:
            heading = ["finding", "schedules", "preemptions", "message", "replay"]
            out += table(heading, findings)
        if self.assumptions:
            items = "".join(f"<li>{escape(sentence)}</li>" for sentence in self.assumptions)
            out += f"<p><b>This verdict assumes:</b></p><ul>{items}</ul>"
        if self.warnings:
            items = "".join(f"<li>{escape(sentence)}</li>" for sentence in self.warnings)
            out += f"<p><b>Warnings:</b></p><ul>{items}</ul>"
        return out


_BROKEN = "the invariant "  # (how explore's invariant failures begin: see _explore)


def _simplest(best: _Best) -> tuple[int, int, int]:
    return best.preemptions, best.steps, best.order


class _Best(NamedTuple):
    schedule: str
    preemptions: int
    message: str
    count: int
    steps: int = 0
    order: int = 0  # which distinct problem it was (0, 1, ...): ties keep the order found
    finished: tuple = ()  # (a deadlock's: Finding.finished)


class Tally:
    """Folds run summaries into what a report needs: outcome counts, pruned runs, and
    per distinct problem the schedule with the fewest preemptions (the first found, on
    a tie) and how many runs hit it."""

    def __init__(self) -> None:
        self.schedules = 0
        self.pruned = 0
        self.outcomes: dict[Any, int] = {}
        self.found: dict[tuple, _Best] = {}  # (kind, outcome, key) -> the best run
        self.first_finding: int | None = None  # the run that first failed or deadlocked
        self.first_finding_clock: float | None = None  # (time.perf_counter() then)
        self.redundant = 0  # runs abandoned by sleep sets
        self.warnings: dict[str, None] = {}  # the lint's sentences, in the order found

    def add(self, summary: Any) -> None:
        kind = summary.kind
        if kind == "blocked":  # (sleep sets: equivalent to a run already counted)
            self.redundant += 1
            return
        self.schedules += 1
        if summary.warnings:
            for warning in summary.warnings:
                self.warnings.setdefault(warning, None)
        if kind == "pruned":
            self.pruned += 1
            return
        outcome = summary.outcome
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
        if kind == "ok":
            return
        if self.first_finding is None:
            self.first_finding = self.schedules
            self.first_finding_clock = time.perf_counter()
        # the same blocked tasks are the same deadlock, whatever the tick
        key = (kind, outcome, summary.blocked if kind == "deadlock" else summary.message)
        best = self.found.get(key)
        if best is None or (summary.preemptions, summary.steps) < (best.preemptions, best.steps):
            number, order = (best.count + 1, best.order) if best else (1, len(self.found))
            self.found[key] = _Best(
                summary.schedule,
                summary.preemptions,
                summary.message,
                number,
                summary.steps,
                order,
                summary.finished,
            )
        else:
            self.found[key] = best._replace(count=best.count + 1)

    def report(
        self,
        strategy: str,
        verdict: Any,
        bound: int | None,
        seconds: float,
        replay: tuple[int, int, str],
        shared_only: bool = False,
        invariant: bool = False,
    ) -> ExploreReport:
        """The report of a search that ended with ``verdict``; ``replay`` is (seed,
        max_steps, program name) for the findings' replay lines."""
        seed, max_steps, name = replay
        report = ExploreReport(strategy)
        report.schedules = self.schedules
        report.pruned = self.pruned
        report.outcomes = dict(self.outcomes)
        report.exhaustive = verdict.covered
        if verdict.bounded and bound is not None:
            report.assumptions.append(_bounded(bound))
        if verdict.reduced:
            report.assumptions.append(_REDUCED_SHARED if shared_only else _REDUCED)
        report.seconds = seconds
        report.first_finding = self.first_finding
        report.warnings = list(self.warnings)
        # the simplest story first: fewest preemptions, then fewest steps, then as found
        found = sorted(self.found.items(), key=lambda item: _simplest(item[1]))
        for (kind, outcome, detail), best in found:
            limit = f", max_steps={max_steps}" if outcome == "StepLimitExceeded" else ""
            replay_line = f"cp.VM(schedule={best.schedule!r}, seed={seed}{limit}).run({name}())"
            if invariant and outcome == "AssertionError" and best.message.startswith(_BROKEN):
                # the VM checks no invariant: the line runs the interleaving, run() checks
                replay_line += "  # the invariant breaks on the way: finding.run() checks it"
            fields = (outcome, best.message, best.schedule, best.preemptions, best.count)
            finding = _found((*fields, replay_line), seed, max_steps)
            if kind == "deadlock":
                finding.__dict__.update(_blocked=detail, _finished=best.finished)
            (report.deadlocks if kind == "deadlock" else report.failures).append(finding)
        return report
