"""Small generated concurrent programs, for checking that exploration is sound.

``generate(seed)`` turns an int into a :class:`Program`: a zero-argument callable that
returns a fresh coroutine (what ``cp.explore`` takes), with the ``preemption_bound`` to
explore it under and a readable ``describe()``.  A program has 2 or 3 tasks of 1 to 4
operations each over shared plain Python state (a dict and a list, each access between
checkpoints), channels (rendezvous or buffered; send, recv, try_send, try_recv, close),
``cp.select``, a lock, an event, ``cp.choose``, ``cp.require``, tasks that raise, cancel a
sibling or sleep, started by ``cp.par``, by a scope (with or without a timeout), or
spawned by a root that returns without waiting for them.

``check(program)`` is the soundness property: partial-order reduction (``por=True``)
reaches the same set of outcomes as exploring every interleaving (``por=False``), under
the same preemption bound; and when they differ, the reduced report does not claim a
bare "exhaustive" -- it says what it assumed.  Most programs keep the reduction's
documented assumption (plain state is touched only in steps that use no VM object);
about one in eight breaks it on purpose (``program.keeps_assumption`` is False), and
for those only the second half of the property holds.

The same builder runs on any source of small ints: ``generate`` draws them from a
seeded ``random.Random``; ``build(draw)`` takes any ``draw(n) -> int in range(n)``, so
hypothesis can draw (and shrink) programs too.  Every draw of 0 picks the simplest
option.

    python tests/explore_programs.py 1000        # check seeds 0..999, print failures
    python tests/explore_programs.py --shared 1000   # the same for shared_only=True
"""

from __future__ import annotations

import random
import sys
import warnings
from collections.abc import Callable
from typing import Any

import counterpoint as cp

NAMES = "ABC"
# explore at most this many schedules without reduction; larger programs are skipped
FULL_LIMIT = 3000


class Program:
    """A generated program: call it for a fresh coroutine (see the module docstring)."""

    def __init__(
        self,
        label: str,
        tasks: list[list[tuple]],
        start: str,
        capacities: list[int],
        preemption_bound: int | None,
    ) -> None:
        self.label = label
        self.tasks = tasks
        self.start = start  # "par", "scope", "timeout" (a scope with one) or "spawn"
        self.capacities = capacities
        self.preemption_bound = preemption_bound
        self.keeps_assumption = not any(op[-1] == "touch" for ops in tasks for op in ops)
        self.__name__ = f"program_{label}"
        self.shared = False  # wrap the plain state with cp.shared (see shared_variant)

    def shared_variant(self) -> Program:
        """The same program with its plain state (the dict and the list) in cp.shared
        wrappers: it keeps the promise of ``explore(..., shared_only=True)``."""
        made = Program(self.label, self.tasks, self.start, self.capacities, self.preemption_bound)
        made.shared = True
        made.__name__ = f"shared_program_{self.label}"
        return made

    def __call__(self) -> Any:
        return self._main()

    def __repr__(self) -> str:
        return f"<Program {self.label}>"

    def describe(self) -> str:
        """The program as readable lines: how the root starts the tasks, then each task's
        operations."""
        lines = [
            f"program {self.label}: start={self.start}, channels={self.capacities}, "
            f"preemption_bound={self.preemption_bound}, "
            f"keeps the POR assumption: {self.keeps_assumption}"
        ]
        for name, ops in zip(NAMES, self.tasks, strict=False):
            lines.append(f"  task {name}: " + "; ".join(_op_text(op) for op in ops))
        return "\n".join(lines)

    async def _main(self) -> Any:
        state: Any = {"x": 0, "y": 0}
        log: Any = []
        if self.shared:
            state, log = cp.shared(state, name="state"), cp.shared(log, name="log")
        channels = [cp.channel(capacity) for capacity in self.capacities]
        world = {"state": state, "log": log, "channels": channels}
        world["lock"] = cp.Lock()
        world["event"] = cp.Event()
        bodies = [_task(name, ops, world) for name, ops in zip(NAMES, self.tasks, strict=False)]
        handles: dict[str, Any] = {}
        world["tasks"] = handles  # filled before any task runs, never changed after
        if self.start == "par":
            results = await cp.par(*bodies)
        elif self.start in ("scope", "timeout"):
            timeout = 2 if self.start == "timeout" else None
            async with cp.scope(timeout=timeout) as scope:
                for name, body in zip(NAMES, bodies, strict=False):
                    handles[name] = scope.spawn(body)
            results = [
                "cancelled" if task.cancelled() else task.result() for task in handles.values()
            ]
        else:  # the root spawns them and returns after two checkpoints, waiting for nobody
            for name, body in zip(NAMES, bodies, strict=False):
                handles[name] = cp.spawn(body)
            await cp.checkpoint()
            await cp.checkpoint()
            return (state["x"], state["y"], tuple(log))
        return (state["x"], state["y"], tuple(log), tuple(results))


def _op_text(op: tuple) -> str:
    kind, *args = op
    args = [a for a in args if a not in ("", "touch")]
    text = f"{kind}({', '.join(map(str, args))})" if args else kind
    return text + (" [touches plain state in the same step]" if op[-1] == "touch" else "")


async def _task(name: str, ops: list[tuple], world: dict) -> tuple:
    """Run one task's operations; return what it observed (task-local, never shared)."""
    state, log, channels = world["state"], world["log"], world["channels"]
    seen: list[Any] = []
    for op in ops:
        kind = op[0]
        if op[-1] == "touch":  # break the reduction's assumption: plain state and a VM op
            log.append(name.lower())
        if kind == "settle":  # a checkpoint between a VM operation and a plain access
            await cp.checkpoint()
        elif kind == "append":
            log.append(name)
            await cp.checkpoint()
        elif kind == "add":  # a racy read-modify-write
            value = state[op[1]]
            await cp.checkpoint()
            state[op[1]] = value + 1
            await cp.checkpoint()
        elif kind == "write":
            state[op[1]] = op[2]
            await cp.checkpoint()
        elif kind == "read":
            seen.append(state[op[1]])
            await cp.checkpoint()
        elif kind == "choose":
            seen.append(cp.choose(range(op[1])))
            await cp.checkpoint()
        elif kind == "require":  # prune unless the variable is (still) zero
            if op[2] == "direct":  # the first step of a task that used no VM object yet
                cp.require(state[op[1]] == 0)
            else:
                ok = state[op[1]] == 0
                await cp.checkpoint()
                cp.require(ok)
            await cp.checkpoint()
        elif kind == "require_choice":
            cp.require(cp.choose([True, False]))
            await cp.checkpoint()
        elif kind == "raise_if":  # fail when the variable is set
            if op[2] == "direct":
                if state[op[1]]:
                    raise ValueError(f"{name} saw {op[1]} set")
            else:
                bad = bool(state[op[1]])
                await cp.checkpoint()
                if bad:
                    raise ValueError(f"{name} saw {op[1]} set")
            await cp.checkpoint()
        elif kind == "send":
            await channels[op[1]].send(name)
        elif kind == "recv":
            seen.append(await channels[op[1]].recv())
        elif kind == "try_send":
            seen.append(int(channels[op[1]].try_send(name)))
            await cp.checkpoint()
        elif kind == "try_recv":
            status, value = channels[op[1]].try_recv()
            seen.append((int(status), value))
            await cp.checkpoint()
        elif kind == "close":
            channels[op[1]].close()
            await cp.checkpoint()
        elif kind == "locked":  # a critical section around a racy read-modify-write
            async with world["lock"]:
                value = state[op[1]]
                await cp.checkpoint()
                state[op[1]] = value + 1
                await cp.checkpoint()
        elif kind == "set":
            world["event"].set()
            await cp.checkpoint()
        elif kind == "wait":
            await world["event"].wait()
        elif kind == "is_set":
            seen.append(world["event"].is_set())
            await cp.checkpoint()
        elif kind == "sleep":
            await cp.sleep(op[1])
        elif kind == "select":
            chosen = await cp.select(*channels, timeout=op[1])
            seen.append((chosen.index, int(chosen.tag), chosen.value))
        elif kind == "cancel":  # cancel a sibling (the root started it before anyone ran)
            world["tasks"][op[1]].cancel()
            await cp.checkpoint()
        else:  # pragma: no cover - the builder makes only the kinds above
            raise AssertionError(f"unknown operation {op!r}")
    return tuple(seen)


_PLAIN = ("append", "add", "write", "read", "choose", "require", "raise_if", "require_choice")
_VM = ("send", "recv", "try_send", "try_recv", "close", "locked", "set", "wait", "is_set")
_VM += ("select", "cancel", "sleep")
_KINDS = _PLAIN + _VM
_CHANNEL_OPS = ("send", "recv", "try_send", "try_recv", "close", "select")
_USES_PLAIN_STATE = ("append", "add", "write", "read", "require", "raise_if")


def build(draw: Callable[[int], int], label: str = "drawn") -> Program:
    """A program from ``draw(n) -> int in range(n)`` (0 always picks the simplest)."""
    n_tasks = 2 + draw(2)
    capacities = [draw(3) for _ in range(draw(3))]
    start = ("par", "scope", "spawn", "timeout")[draw(4)]
    bound = (None, 0, 1, 2)[draw(4)]
    breaks_assumption = draw(8) == 7
    budget = 6  # operations in all, so that exploring everything stays small
    tasks: list[list[tuple]] = []
    for number in range(n_tasks):
        left = budget - (n_tasks - number - 1)  # leave at least one for each later task
        count = min(1 + draw(4), left)
        budget -= count
        ops: list[tuple] = []
        used_vm = after_vm = False
        for _ in range(count):
            kind = _KINDS[draw(len(_KINDS))]
            if (kind in _CHANNEL_OPS and not capacities) or (kind == "cancel" and start == "par"):
                kind = "append"
            how = "direct" if not used_vm else "flag"
            if kind in ("add", "write", "read"):
                op: tuple = (kind, "xy"[draw(2)], *((1,) if kind == "write" else ()))
            elif kind in ("require", "raise_if"):
                op = (kind, "xy"[draw(2)], how)
            elif kind == "choose":
                op = (kind, 2 + draw(2))
            elif kind in ("send", "recv", "try_send", "try_recv", "close"):
                op = (kind, draw(len(capacities)))
            elif kind == "select":
                op = (kind, (None, 0)[draw(2)])
            elif kind == "cancel":
                op = (kind, NAMES[(number + 1 + draw(n_tasks - 1)) % n_tasks])
            elif kind == "locked":
                op = (kind, "xy"[draw(2)])
            elif kind == "sleep":
                op = (kind, 1 + draw(2))
            else:
                op = (kind,)
            if kind in _USES_PLAIN_STATE and after_vm:
                ops.append(("settle",))  # keep the plain access out of the VM op's step
            is_vm = kind in _VM
            if is_vm and breaks_assumption and kind != "locked":
                op = (*op, "touch")
            ops.append(op)
            used_vm = used_vm or is_vm
            after_vm = is_vm
        tasks.append(ops)
    return Program(label, tasks, start, capacities, bound)


def generate(seed: int) -> Program:
    """The program of ``seed`` (the same on every machine and Python run)."""
    rng = random.Random(f"counterpoint-explore-soundness/{seed}")
    return build(rng.randrange, label=str(seed))


def check(program: Program, full_limit: int = FULL_LIMIT) -> str:
    """The soundness property for one program: "ok", or "skipped" when exploring every
    interleaving takes more than ``full_limit`` schedules.  Raises ``AssertionError``
    with the program's description when it does not hold."""
    bound = program.preemption_bound
    with warnings.catch_warnings():  # a task the root left behind may fail unobserved
        warnings.simplefilter("ignore", cp.UnobservedTaskFailure)
        full = cp.explore(
            program, por=False, preemption_bound=bound, max_schedules=full_limit, progress=False
        )
        if not full.exhaustive:
            return "skipped"
        reduced = cp.explore(
            program, preemption_bound=bound, max_schedules=full_limit, progress=False
        )
    same = set(map(repr, reduced.outcomes)) == set(map(repr, full.outcomes))
    detail = (
        f"\n{program.describe()}\n"
        f"por=False: {full.schedules} schedules, outcomes {sorted(map(repr, full.outcomes))}\n"
        f"por=True:  {reduced.schedules} schedules, outcomes "
        f"{sorted(map(repr, reduced.outcomes))}, {reduced.summary()}"
    )
    assert reduced.exhaustive, "the reduced search did not finish" + detail
    assert reduced.schedules <= full.schedules, "the reduction explored more" + detail
    if program.keeps_assumption:
        assert same, "partial-order reduction lost an outcome" + detail
    elif not same:
        assert any("por=False" in s for s in reduced.assumptions), (
            "outcomes differ but the report claims a bare exhaustive search" + detail
        )
    return "ok"


def check_shared(program: Program, full_limit: int = FULL_LIMIT) -> str:
    """The soundness property of ``shared_only=True``, on the program's cp.shared variant:
    the same outcomes as exploring every interleaving, in no more schedules, and an
    exhaustive verdict.  "skipped" as for :func:`check`."""
    program = program.shared_variant()
    bound = program.preemption_bound
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", cp.UnobservedTaskFailure)
        full = cp.explore(
            program, por=False, preemption_bound=bound, max_schedules=full_limit, progress=False
        )
        if not full.exhaustive:
            return "skipped"
        reduced = cp.explore(
            program,
            preemption_bound=bound,
            max_schedules=full_limit,
            progress=False,
            shared_only=True,
        )
    detail = (
        f"\n{program.describe()} (state in cp.shared, shared_only=True)\n"
        f"por=False: {full.schedules} schedules, outcomes {sorted(map(repr, full.outcomes))}\n"
        f"shared_only: {reduced.schedules} schedules, outcomes "
        f"{sorted(map(repr, reduced.outcomes))}, {reduced.summary()}"
    )
    assert reduced.exhaustive, "the reduced search did not finish" + detail
    assert reduced.schedules <= full.schedules, "the reduction explored more" + detail
    same = set(map(repr, reduced.outcomes)) == set(map(repr, full.outcomes))
    assert same, "shared_only reduction lost an outcome" + detail
    return "ok"


def main(argv: list[str]) -> int:
    shared = "--shared" in argv
    argv = [arg for arg in argv if arg != "--shared"]
    count = int(argv[0]) if argv else 200
    start = int(argv[1]) if len(argv) > 1 else 0
    tally: dict[str, int] = {}
    failures = 0
    for seed in range(start, start + count):
        try:
            verdict = (check_shared if shared else check)(generate(seed))
        except AssertionError as error:
            failures += 1
            verdict = "failed"
            print(f"seed {seed}: {error}\n", flush=True)
        tally[verdict] = tally.get(verdict, 0) + 1
    print(tally)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
