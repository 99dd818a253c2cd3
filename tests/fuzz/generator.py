"""Random well-formed Counterpoint programs from an int seed, as data and as source text.

A program is plain data (dicts, lists, tuples: easy to print, compare and shrink):

* ``vm``: the VM options (``seed``, ``policy``, ``max_steps``);
* the objects every run shares: ``channels`` (capacities 0..3), ``locks``, ``sems``
  (initial values), ``events``, ``conds``, ``barriers`` (parties);
* ``tasks``: the bodies of ``async def t0 .. tN``.  Task ``i`` only starts tasks
  ``j > i`` (spawn, par, scope children), so the call graph is a DAG and the
  number of task instances is bounded (``MAX_INSTANCES``);
* ``runs``: one ``vm.run(mainK())`` each, with the host events enqueued before it.

Every loop is bounded, so a program ends: it returns, fails, deadlocks, or hits
``max_steps``.  All of those are deterministic outcomes, so all of them are fair
game for the properties.

:func:`render` turns a program into a self-contained Python module (the reproducer
the harness prints); :func:`load` executes that text.  The generator draws only
``random()``, ``randint()`` and ``choice()``, so it runs on ``random.Random(seed)``
(stand-alone) or on a Hypothesis ``randoms()`` object (which then shrinks it).
"""

from __future__ import annotations

import copy
import random
from typing import Any

from counterpoint._explore import encode_schedule

MAX_INSTANCES = 40  # task instances one run may create (spawns, par, scope children)
MAX_DEPTH = 2  # nesting of blocks (scopes, locks, try ...)
WORKER_FUNCTIONS = ("fz_double", "fz_fail", "fz_slow")
# a worker that raises a BaseException (it must fail like any worker: issue 9, defect 3)
BAIL_WORKER = "fz_bail"

# op -> feature family; a program weights its families (some are off) so that
# programs differ in what they stress
FAMILIES = {
    "time": ("sleep", "checkpoint", "rng", "choose", "repeat"),
    "tasks": ("spawn", "join", "cancel_kid", "par", "scope"),
    "channels": ("send", "recv", "try_send", "try_recv", "close", "iterate", "select"),
    "sync": (
        "lock",
        "sem",
        "ev_set",
        "ev_clear",
        "ev_wait",
        "cond_notify",
        "cond_wait",
        "barrier",
    ),
    "workers": ("work", "work_any", "work_poll", "work_cancel"),
    "host": ("host_next", "host_drain"),
    "failure": ("raise", "swallow", "guard", "shielded", "deadline"),
}
BASE_WEIGHT = {
    "sleep": 6,
    "checkpoint": 4,
    "rng": 2,
    "choose": 2,
    "repeat": 3,
    "spawn": 4,
    "join": 3,
    "cancel_kid": 2,
    "par": 3,
    "scope": 4,
    "send": 5,
    "recv": 5,
    "try_send": 3,
    "try_recv": 3,
    "close": 2,
    "iterate": 2,
    "select": 3,
    "lock": 3,
    "sem": 2,
    "ev_set": 2,
    "ev_clear": 1,
    "ev_wait": 2,
    "cond_notify": 2,
    "cond_wait": 2,
    "barrier": 2,
    "work": 4,
    "work_any": 1,
    "work_poll": 1,
    "work_cancel": 1,
    "host_next": 2,
    "host_drain": 2,
    "raise": 1,
    "swallow": 2,
    "guard": 3,
    "shielded": 1,
    "deadline": 2,
}
BLOCKS = ("scope", "lock", "sem", "swallow", "guard", "shielded", "deadline", "repeat")
VALUES = (0, 1, 2, 7, 42, "a", "b", "hello", None, True, 2.5, [1, 2], {"k": 3}, (4, "x"))
SOURCES = ("keys", "mouse", "net")


class _Gen:
    def __init__(self, rng: Any) -> None:
        self.rng = rng
        self.weights: dict[str, int] = {}
        self.long = 1
        self.program: dict[str, Any] = {}

    # -- small draws ------------------------------------------------------------------------

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def pick(self, options):
        return self.rng.choice(list(options))

    def value(self) -> Any:
        return copy.deepcopy(self.pick(VALUES))

    def payload(self) -> Any:
        """A host event payload (plain data: no tuples)."""
        value = self.value()
        return list(value) if isinstance(value, tuple) else value

    def op(self) -> str:
        ops = [op for op, w in self.weights.items() for _ in range(w)]
        return self.pick(ops)

    # -- the program ------------------------------------------------------------------------

    def generate(self) -> dict[str, Any]:
        rng = self.rng
        scale = {family: self.pick((0, 1, 1, 2, 3)) for family in FAMILIES}
        scale["time"] = max(scale["time"], 1)
        self.weights = {
            op: BASE_WEIGHT[op] * scale[family]
            for family, ops in FAMILIES.items()
            for op in ops
            if BASE_WEIGHT[op] * scale[family] > 0
        }
        p = self.program = {
            "vm": {
                "seed": rng.randint(0, 2**31),
                "policy": self.pick(("fifo", "fifo", "random")),
                # mostly ample; sometimes short, so that runs give up (StepLimitExceeded)
                # and the next run cleans up after them
                "max_steps": self.pick((4000, 4000, 4000, rng.randint(5, 60))),
                # workers in flight (the rest queue): unbounded, or 1-2
                "max_workers": self.pick((None, None, 1, 2)),
            },
            "channels": [rng.randint(0, 3) for _ in range(rng.randint(1, 3))],
            "locks": rng.randint(1, 2),
            "sems": [rng.randint(0, 2) for _ in range(rng.randint(1, 2))],
            "events": rng.randint(1, 2),
            "conds": 1,
            "barriers": [rng.randint(1, 3)],
            "tasks": [],
        }
        if self.chance(0.15):  # a schedule string decides the first choice points
            choices = [self.pick((0, 0, 1, 1, 2)) for _ in range(rng.randint(1, 30))]
            p["vm"]["schedule"] = encode_schedule(choices)
        count = rng.randint(0, 8)
        self.long = 2 if self.chance(0.3) else 1  # some programs are twice as long
        # generated last to first, so that a task knows how many instances each later one makes
        instances: list[int] = [0] * count
        bodies: list[list] = [[] for _ in range(count)]
        for index in reversed(range(count)):
            body, made = self.body(index + 1, count, instances, 0, rng.randint(1, 9) * self.long)
            bodies[index] = body
            instances[index] = 1 + made
        p["tasks"] = bodies
        runs = []
        for _ in range(1 if self.chance(0.7) else rng.randint(2, 3)):
            events = [[self.pick(SOURCES), self.payload()] for _ in range(rng.randint(0, 3))]
            body, _ = self.body(0, count, instances, 0, rng.randint(2, 12) * self.long)
            if self.chance(0.6):  # most mains stop waiting at a deadline: cancellation everywhere
                body = [("deadline", rng.randint(2, 12), body)]
            if self.chance(0.8):  # and then let the other tasks run for a while
                body.append(("sleep", rng.randint(4, 30)))
            runs.append({"events": events, "body": body})
        # every task runs: the first main starts those that no statement starts
        started = {j for stmt in walk(p | {"runs": runs}) for j in references(stmt)}
        body = runs[0]["body"]
        target = body[0][2] if body and body[0][0] == "deadline" else body
        for j in range(count):
            if j not in started and sum(instances) < 3 * MAX_INSTANCES:
                target.insert(rng.randint(0, len(target)), ("spawn", j))
        p["runs"] = runs
        return p

    def body(self, first: int, count: int, instances: list, depth: int, length: int):
        """Statements that may start tasks ``first .. count-1``; returns (body, instances)."""
        out: list = []
        made = 0
        for _ in range(length):
            stmt, cost = self.statement(first, count, instances, depth, MAX_INSTANCES - made)
            if stmt is None:
                continue
            out.append(stmt)
            made += cost
            if stmt[0] == "raise":
                break  # nothing after a raise would run
        return out, made

    def task_ref(self, first: int, count: int, instances: list, budget: int):
        options = [j for j in range(first, count) if instances[j] <= budget]
        if not options:
            return None
        return self.pick(options)

    def statement(self, first, count, instances, depth, budget):
        rng = self.rng
        op = self.op()
        if op in BLOCKS and depth >= MAX_DEPTH:
            op = "sleep"
        p = self.program
        if op == "sleep":
            return ("sleep", self.pick((0, 1, 1, 2, 3))), 0
        if op == "checkpoint":
            return ("checkpoint",), 0
        if op == "rng":
            return ("rng",), 0
        if op == "choose":
            return ("choose", rng.randint(1, 3)), 0
        if op in ("spawn", "par", "scope"):
            refs = []
            cost = 0
            for _ in range(rng.randint(1, 3) if op != "spawn" else 1):
                j = self.task_ref(first, count, instances, budget - cost)
                if j is not None:
                    refs.append(j)
                    cost += instances[j]
            if op == "spawn":
                return (("spawn", refs[0]), cost) if refs else (None, 0)
            if op == "par":
                return (("par", refs), cost) if refs else (None, 0)
            children = [(self.pick(("start_soon", "spawn", "async_let")), j) for j in refs]
            timeout = self.pick((None, None, 0, 1, 2, 4))
            shield = self.chance(0.2)
            inner, made = self.body(first, count, instances, depth + 1, rng.randint(0, 3))
            end = self.pick((None, None, "cancel_all", "cancel", "wait_all"))
            limit = self.pick((None, None, None, 1, 2))  # max_children (LimitExceeded past it)
            return ("scope", timeout, shield, children, inner, end, limit), cost + made
        if op == "join":
            return ("join",), 0
        if op == "cancel_kid":
            return ("cancel_kid",), 0
        channel = rng.randint(0, len(p["channels"]) - 1)
        if op == "send":
            return ("send", channel, self.value()), 0
        if op == "recv":
            return ("recv", channel), 0
        if op == "try_send":
            return ("try_send", channel, self.value()), 0
        if op == "try_recv":
            return ("try_recv", channel), 0
        if op == "close":
            return ("close", channel), 0
        if op == "iterate":
            return ("iterate", channel, rng.randint(1, 3)), 0
        if op == "select":
            last = len(p["channels"]) - 1
            cases = [rng.randint(0, last) for _ in range(rng.randint(1, 3))]  # (repeats too)
            timeout = self.pick((None, None, 0, 1, 3))
            policy = self.pick(("priority", "round_robin"))
            return ("select", cases, self.chance(0.3), timeout, policy, rng.randint(1, 3)), 0
        if op in ("lock", "sem"):
            which = rng.randint(0, (p["locks"] if op == "lock" else len(p["sems"])) - 1)
            inner, made = self.body(first, count, instances, depth + 1, rng.randint(0, 3))
            return (op, which, inner), made
        if op in ("ev_set", "ev_clear", "ev_wait"):
            return (op, rng.randint(0, p["events"] - 1)), 0
        if op == "cond_notify":
            return ("cond_notify", rng.randint(0, p["conds"] - 1), self.pick((1, 2, "all"))), 0
        if op == "cond_wait":
            return ("cond_wait", rng.randint(0, p["conds"] - 1)), 0
        if op == "barrier":
            return ("barrier", rng.randint(0, len(p["barriers"]) - 1)), 0
        if op == "work":
            functions = (*WORKER_FUNCTIONS, BAIL_WORKER)
            then = self.pick((None, "wait", "wait", "result", "poll", "cancel"))
            return ("work", self.pick(functions), rng.randint(0, 9), rng.randint(1, 3), then), 0
        if op in ("work_any", "work_poll", "work_cancel"):
            return (op,), 0
        if op == "host_next":
            return ("host_next",), 0
        if op == "host_drain":
            return ("host_drain", rng.randint(0, 2)), 0
        if op == "raise":
            return ("raise", self.pick(("ValueError", "KeyError", "RuntimeError"))), 0
        # swallow, guard, shielded, deadline, repeat
        inner, made = self.body(first, count, instances, depth + 1, rng.randint(0, 4))
        if op == "swallow":
            return ("swallow", rng.randint(1, 3), inner), made
        if op == "deadline":
            return ("deadline", rng.randint(1, 6), inner), made
        if op == "repeat":
            times = rng.randint(2, 4)
            if made * times > budget:
                return None, 0
            return ("repeat", times, inner), made * times
        return (op, inner), made


def generate(seed_or_rng: int | Any) -> dict[str, Any]:
    """A random program from an int seed (or a ``random.Random``-like object)."""
    rng = random.Random(seed_or_rng) if isinstance(seed_or_rng, int) else seed_or_rng
    return _Gen(rng).generate()


def uses(program: dict[str, Any], op: str) -> bool:
    """Does any statement of ``program`` do ``op``?"""
    return any(stmt[0] == op for stmt in walk(program))


def cancels_workers(program: dict[str, Any]) -> bool:
    """Does the program cancel a worker (what issue 9's defect 1 needed to show)?"""
    return any(
        stmt[0] == "work_cancel" or (stmt[0] == "work" and stmt[4] == "cancel")
        for stmt in walk(program)
    )


def walk(program: dict[str, Any]):
    """Every statement of the program, nested ones included."""
    stack = [stmt for body in program["tasks"] for stmt in body]
    stack += [stmt for run in program["runs"] for stmt in run["body"]]
    while stack:
        stmt = stack.pop()
        yield stmt
        stack.extend(inner_bodies_flat(stmt))


def references(stmt: tuple) -> list[int]:
    """The tasks a statement starts."""
    op = stmt[0]
    if op == "spawn":
        return [stmt[1]]
    if op == "par":
        return list(stmt[1])
    if op == "scope":
        return [j for _, j in stmt[3]]
    return []


def inner_bodies_flat(stmt: tuple) -> list:
    return [s for body in inner_bodies(stmt) for s in body]


def inner_bodies(stmt: tuple) -> list[list]:
    op = stmt[0]
    if op == "scope":
        return [stmt[4]]
    if op in ("lock", "sem"):
        return [stmt[2]]
    if op == "swallow":
        return [stmt[2]]
    if op in ("guard", "shielded"):
        return [stmt[1]]
    if op in ("deadline", "repeat"):
        return [stmt[2]]
    return []


# -- source text ------------------------------------------------------------------------------

HEADER = '''\
"""A Counterpoint program generated by the fuzz harness (tests/fuzz)."""

import time
from types import SimpleNamespace

import counterpoint as cp


@cp.worker.task(name="fz_double")
def fz_double(n):
    return 2 * n


@cp.worker.task(name="fz_fail")
def fz_fail(n):
    raise ValueError(f"worker fz_fail refuses {n}")


@cp.worker.task(name="fz_slow")
def fz_slow(n):
    time.sleep(0.0005 * (n % 4))  # host timing varies; what the program sees must not
    return n + 1


class Bail(BaseException):
    """Not an Exception: what a worker raising KeyboardInterrupt looks like (defect 3)."""


@cp.worker.task(name="fz_bail")
def fz_bail(n):
    raise Bail(f"worker fz_bail bails out on {n}")

'''

FOOTER = '''

def run(vm, o=None, runs=None):
    """Run the program's runs (the first ``runs`` of them) on ``vm``; return their outcomes."""
    o = SimpleNamespace(log=[]) if o is None else o
    outcomes = []
    for main, events in list(zip(build(o), HOST_EVENTS, strict=True))[:runs]:
        for source, payload in events:
            vm.events.enqueue(source, payload)
        try:
            outcomes.append(("ok", vm.run(main())))
        except (cp.Cancelled, Bail) as error:  # (BaseExceptions a run may end with)
            outcomes.append((type(error).__name__, str(error)))
        except Exception as error:
            outcomes.append((type(error).__name__, str(error)))
    return outcomes


if __name__ == "__main__":
    vm = cp.VM(**VM_OPTIONS)
    print(run(vm))
    print(vm.journal.digest())
'''


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.scopes = 0

    def line(self, indent: int, text: str) -> None:
        self.lines.append("    " * indent + text)

    def body(self, indent: int, body: list) -> None:
        if not body:
            self.line(indent, "pass")
        for stmt in body:
            self.statement(indent, stmt)

    def statement(self, i: int, stmt: tuple) -> None:
        op = stmt[0]
        w = self.line
        if op == "sleep":
            w(i, f"await cp.sleep({stmt[1]})")
        elif op == "checkpoint":
            w(i, "await cp.checkpoint()")
        elif op == "rng":
            w(i, "o.log.append(cp.rng().randrange(1000))")
        elif op == "choose":
            w(i, f"o.log.append(cp.choose(range({stmt[1]})))")
        elif op == "spawn":
            w(i, f"kids.append(cp.spawn(t{stmt[1]}()))")
        elif op == "join":
            w(i, "if kids:")
            w(i + 1, "o.log.append(await kids.pop(0))")
        elif op == "cancel_kid":
            w(i, "if kids:")
            w(
                i + 1, "o.log.append(getattr(kids[-1], 'task', kids[-1]).cancel())"
            )  # (a Slot's task)
        elif op == "par":
            calls = ", ".join(f"t{j}()" for j in stmt[1])
            w(i, f"o.log.append(await cp.par({calls}))")
        elif op == "scope":
            _, timeout, shield, children, inner, end, limit = stmt
            self.scopes += 1
            s = f"s{self.scopes}"
            args = []
            if timeout is not None:
                args.append(f"timeout={timeout}")
            if shield:
                args.append("shield=True")
            if limit is not None:
                args.append(f"max_children={limit}")
            w(i, f"async with cp.scope({', '.join(args)}) as {s}:")
            for how, j in children:
                if how == "start_soon":
                    w(i + 1, f"{s}.start_soon(t{j}())")
                else:
                    w(i + 1, f"kids.append({s}.{how}(t{j}()))")
            if inner or (not children and end is None):
                self.body(i + 1, inner)
            if end == "wait_all":
                w(i + 1, f"await {s}.wait_all()")
            elif end is not None:
                w(i + 1, f"{s}.{end}()")
        elif op == "send":
            w(i, f"await o.ch[{stmt[1]}].send({stmt[2]!r})")
        elif op == "recv":
            w(i, f"o.log.append(await o.ch[{stmt[1]}].recv())")
        elif op == "try_send":
            w(i, f"o.log.append(o.ch[{stmt[1]}].try_send({stmt[2]!r}))")
        elif op == "try_recv":
            w(i, f"o.log.append(o.ch[{stmt[1]}].try_recv())")
        elif op == "close":
            w(i, f"o.ch[{stmt[1]}].close()")
        elif op == "iterate":
            w(i, f"async for value in o.ch[{stmt[1]}]:")
            w(i + 1, "o.log.append(value)")
            w(i + 1, f"if len(o.log) % {stmt[2]} == 0:")
            w(i + 2, "break")
        elif op == "select":
            _, cases, with_kid, timeout, policy, repeat = stmt
            listed = ", ".join(f"o.ch[{c}]" for c in cases)
            args = f"*[{listed}]" + (" + kids[-1:]" if with_kid else "")
            if timeout is not None:
                args += f", timeout={timeout}"
            if policy != "priority":
                args += f", policy={policy!r}"
            w(i, f"for _ in range({repeat}):")
            w(i + 1, f"sel = await cp.select({args})")
            w(i + 1, "o.log.append((sel.index, int(sel.tag), sel.value))")
        elif op in ("lock", "sem"):
            name = "locks" if op == "lock" else "sems"
            w(i, f"async with o.{name}[{stmt[1]}]:")
            self.body(i + 1, stmt[2])
        elif op == "ev_set":
            w(i, f"o.events[{stmt[1]}].set()")
        elif op == "ev_clear":
            w(i, f"o.events[{stmt[1]}].clear()")
        elif op == "ev_wait":
            w(i, f"await o.events[{stmt[1]}].wait()")
        elif op == "cond_notify":
            w(i, f"async with o.conds[{stmt[1]}]:")
            if stmt[2] == "all":
                w(i + 1, f"o.conds[{stmt[1]}].notify_all()")
            else:
                w(i + 1, f"o.conds[{stmt[1]}].notify({stmt[2]})")
        elif op == "cond_wait":
            w(i, f"async with o.conds[{stmt[1]}]:")
            w(i + 1, f"await o.conds[{stmt[1]}].wait()")
        elif op == "barrier":
            w(i, f"o.log.append(await o.barriers[{stmt[1]}].wait())")
        elif op == "work":
            _, function, payload, cost, then = stmt
            w(i, f"hs.append(cp.worker.start({function!r}, {payload}, cost={cost}))")
            if then == "wait":
                w(i, "o.log.append(await cp.worker.wait(hs[-1]))")
            elif then == "result":
                w(i, "await cp.worker.wait(hs[-1])")
                w(i, "o.log.append(cp.worker.result(hs[-1]))")
            elif then == "poll":
                w(i, "o.log.append((cp.worker.poll(hs[-1]), cp.worker.error(hs[-1])))")
            elif then == "cancel":
                w(i, "o.log.append(cp.worker.cancel(hs[-1]))")
        elif op == "work_any":
            w(i, "if hs:")
            w(i + 1, "o.log.append(await cp.worker.wait_any(hs))")
        elif op == "work_poll":
            w(i, "o.log.append([(cp.worker.poll(h), cp.worker.error(h)) for h in hs])")
        elif op == "work_cancel":
            w(i, "if hs:")
            w(i + 1, "o.log.append(cp.worker.cancel(hs[0]))")
        elif op == "host_next":
            w(i, "o.log.append(await cp.events.next())")
        elif op == "host_drain":
            w(i, f"o.log.append(cp.events.drain({stmt[1]}))")
        elif op == "raise":
            w(i, f"raise {stmt[1]}({'boom'!r})")
        elif op == "swallow":
            w(i, f"for _ in range({stmt[1]}):")
            w(i + 1, "try:")
            self.body(i + 2, stmt[2] or [("sleep", 1)])
            w(i + 1, "except cp.Cancelled:")
            w(i + 2, "o.log.append('swallowed')")
        elif op == "guard":
            w(i, "try:")
            self.body(i + 1, stmt[1])
            w(i, "except Exception as error:")
            w(i + 1, "o.log.append(type(error).__name__)")
        elif op == "shielded":
            w(i, "try:")
            self.body(i + 1, stmt[1])
            w(i, "finally:")
            w(i + 1, "async with cp.scope(shield=True):")
            w(i + 2, "await cp.sleep(1)")
            w(i + 2, "o.log.append('cleaned up')")
        elif op == "repeat":
            w(i, f"for _ in range({stmt[1]}):")
            self.body(i + 1, stmt[2])
        elif op == "deadline":
            w(i, "try:")
            w(i + 1, f"async with cp.scope(timeout={stmt[1]}):")
            self.body(i + 2, stmt[2])
            w(i, "except TimeoutError:")
            w(i + 1, "o.log.append('deadline')")
        else:  # pragma: no cover - the generator makes no other ops
            raise ValueError(f"unknown op {op!r}")


def render(program: dict[str, Any], *, local_logs: bool = False) -> str:
    """The program as a self-contained Python module (``build``, ``run``, ``VM_OPTIONS``).

    ``local_logs=True`` gives each task a log of its own instead of the shared ``o.log``:
    then every state tasks share is a VM object, as ``cp.explore``'s partial-order
    reduction assumes (see docs/explore.md)."""
    out = _Writer()
    p = program
    out.line(0, f"VM_OPTIONS = {p['vm']!r}")
    out.line(0, f"HOST_EVENTS = {[run['events'] for run in p['runs']]!r}")
    out.line(0, "")
    out.line(0, "")
    out.line(0, "def build(o):")
    out.line(1, '"""The main of each run; `o` holds the shared objects and the log."""')
    for index, body in enumerate(p["tasks"]):
        out.line(0, "")
        out.line(1, f"async def t{index}():")
        out.line(2, "kids, hs = [], []")
        out.body(2, body)
        out.line(2, "return len(o.log)")
    for index, run in enumerate(p["runs"]):
        out.line(0, "")
        out.line(1, f"async def main{index}():")
        out.line(2, "kids, hs = [], []")
        if index == 0:
            out.line(2, f"o.ch = [cp.channel(c) for c in {p['channels']!r}]")
            out.line(2, f"o.locks = [cp.Lock() for _ in range({p['locks']})]")
            out.line(2, f"o.sems = [cp.Semaphore(v) for v in {p['sems']!r}]")
            out.line(2, f"o.events = [cp.Event() for _ in range({p['events']})]")
            out.line(2, f"o.conds = [cp.Condition() for _ in range({p['conds']})]")
            out.line(2, f"o.barriers = [cp.Barrier(n) for n in {p['barriers']!r}]")
        out.body(2, run["body"])
        out.line(2, "return o.log[-3:]")
    out.line(0, "")
    out.line(1, f"return [{', '.join(f'main{k}' for k in range(len(p['runs'])))}]")
    lines = out.lines
    if local_logs:
        lines = [
            line.replace("kids, hs = [], []", "kids, hs, log = [], [], []").replace("o.log", "log")
            for line in lines
        ]
    data = (
        f"\n\n# the program as data (python -m tests.fuzz --file reads it back)\nPROGRAM = {p!r}\n"
    )
    return HEADER + "\n".join(lines) + "\n" + FOOTER + data


_COMPILED: dict[str, Any] = {}
PROGRAM_FILE = "<fuzz program>"  # the file name of generated code (in tracebacks)


def load(source: str) -> dict[str, Any]:
    """Execute program source; return its namespace (``build``, ``run``, ``VM_OPTIONS`` ...).

    The module is not put in ``sys.modules``, so the process backend ships its worker
    functions by value."""
    code = _COMPILED.get(source)
    if code is None:
        if len(_COMPILED) > 256:
            _COMPILED.clear()
        code = _COMPILED[source] = compile(source, PROGRAM_FILE, "exec")
    namespace: dict[str, Any] = {"__name__": "counterpoint_fuzz_program"}
    exec(code, namespace)
    return namespace
