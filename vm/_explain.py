"""``finding.explain()``: a finding's schedule told step by step.

The finding's schedule is run again on a fresh VM (as ``Finding.run`` does) with a
recorder that also notes, for every step, the source lines the task ran (a
``sys.settrace`` line tracer on user frames, so each journal record, each record-free
read of a VM object and each ``cp.shared`` access is put on the line that made it; its
opcode events also see subscripts and attributes of plain Python state), where the
task resumed (``lowlevel.source_of``) and where a failure was raised
(``lowlevel.failure_source``).  From those notes: the conflicting pair (the last race,
as :func:`~._reduction.races` finds races), the pattern (lost update, check-then-act,
lock-order cycle, lost wake-up, or other), and the text.
"""

from __future__ import annotations

import dis
import functools
import io
import linecache
import os
import sys
import sysconfig
import tokenize
from typing import Any, NamedTuple

from ._journal import HAS_VALUE, KINDS
from ._kinds import OBJECT_KINDS
from ._names import Wait, wait_words
from ._reduction import footprint, footprints, races
from ._report import count
from ._shared import SHARED, describe, ours

_CONTEXT = 2  # steps shown around each interesting one when a long run is elided
_SHORT = 24  # runs with at most this many steps are shown whole
_TEXT = 38  # characters of a source line shown


class Access(NamedTuple):
    """One thing a step did, at one source line: ``obj`` is the VM object (``("lock",
    2)``) or shared location (``("shared", label, key)``) it touched, None for an
    action that touches none (a spawn, a wake-up, a choice); ``write`` whether it
    changed it; ``words`` the action in words; ``line`` (file, line number, text, path)."""

    obj: Any
    write: bool
    words: str
    line: tuple


class StepNote(NamedTuple):
    """One step of the explained run: its ``task``, where it ``resumed`` and where it
    ``paused`` (file, line number, text; None when unknown), its ``accesses`` and the
    source ``lines`` it ran, in order (a line again only after another one), each
    with the indexes of the accesses made there: ``(where, (access index, ...))``."""

    task: int
    resumed: tuple | None
    paused: tuple | None
    accesses: tuple
    lines: tuple


class Explanation(NamedTuple):
    """What ``finding.explain()`` found, as data: the ``pattern`` (``"lost update"``,
    ``"check-then-act"``, ``"lock-order cycle"``, ``"lost wake-up"`` or ``"other"``), the
    ``sentence`` that names it, the ``marked`` steps (indexes into ``steps``: the
    conflicting pair, or the steps of the cycle) and the ``steps``; ``text`` is all of it
    in words (what ``finding.explain()`` returns)."""

    pattern: str
    sentence: str
    marked: tuple
    steps: tuple
    text: str


# -- the re-run: a recorder that takes notes --------------------------------------------------


def _where(filename: str, line: int, module_globals: Any = None) -> tuple:
    """(the file as ``where`` spells it, the line number, the line's code, the file's
    path).  (Two files may be spelt alike: nbval runs every cell as ``Cell In[1]``.)"""
    from ._where import source_name

    text = linecache.getline(filename, line, module_globals)
    return source_name(filename), line, _code(text), filename


@functools.lru_cache(maxsize=4096)
def _code(text: str) -> str:
    """A source line without its indentation and its comment."""
    text = text.strip()
    if "#" not in text:
        return text
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if token.type == tokenize.COMMENT:
                return text[: token.start[1]].rstrip()
    except (tokenize.TokenError, SyntaxError):  # (part of a statement: keep it whole)
        pass
    return text


class _Notes:
    """The notes of one re-run, per step: the journal position at each traced user line,
    the record-free reads and the shared accesses (each with its line)."""

    def __init__(self) -> None:
        self.vm: Any = None
        self.recorder: Any = None
        self.marks: list[list[tuple]] = []  # per step: (journal position, where)
        self.resumed: list[tuple | None] = []
        self.reads: list[list[tuple]] = []  # per step: (object, where)
        self.shared: list[list[tuple]] = []  # per step: (location, write, where)
        self.seq = 0  # orders the notes taken at one journal length

    def when(self) -> tuple:
        """Now, as a sort key against the journal's records (a record at index p sorts
        after every note taken while the journal had p records)."""
        self.seq += 1
        return len(self.vm._rows), -1, self.seq

    def checking(self) -> bool:
        """Whether the recorder is checking the explored invariant right now."""
        return self.recorder is not None and self.recorder._checking

    def current(self) -> tuple | None:
        if self.marks and self.marks[-1]:
            return self.marks[-1][-1][1]
        return self.resumed[-1] if self.resumed else None

    def tracer(self, internal: Any) -> Any:
        notes = self

        plain = _PlainState(notes)
        started: dict[int, Any] = {}  # frames begun (kept, so that their ids are not reused)
        resumed: dict[int, int] = {}  # a frame resumed -> its line then (3.12+ only)

        def local(frame: Any, event: str, arg: Any) -> Any:
            if notes.checking():  # (the invariant's own lines are no step's)
                return local
            if event == "opcode":
                if notes.marks:
                    plain.opcode(frame)
            elif event == "line":
                if resumed and resumed.pop(id(frame), None) == frame.f_lineno:
                    return local  # (3.12+ repeat the line a coroutine resumes on; 3.11 not)
                if notes.marks:
                    code = frame.f_code
                    where = _where(code.co_filename, frame.f_lineno, frame.f_globals)
                    notes.marks[-1].append((notes.when(), where))
            return local

        def call(frame: Any, event: str, arg: Any) -> Any:
            if event == "call" and _user(frame.f_code.co_filename, internal):
                frame.f_trace_opcodes = True
                # (3.12+: unless f_trace is set here too, the first frame of each code
                # object gets no opcode events -- CPython 3.14 in Pyodide, seen)
                frame.f_trace = local
                if _RESUME_LINES:
                    if id(frame) in started:
                        resumed[id(frame)] = frame.f_lineno
                    else:
                        started[id(frame)] = frame
                return local
            return None

        return call


#: whether a resumed coroutine's first line event repeats the line it resumed on (3.12+)
_RESUME_LINES = sys.version_info >= (3, 12)


# -- plain Python state: subscripts and attributes, read off the bytecode ------------------------

# The bytecode patterns below are CPython 3.11's and 3.12+'s (3.14's in Pyodide): where
# they differ, both are read (``BINARY_SUBSCR`` / ``BINARY_OP []``, ``LOAD_METHOD`` /
# ``LOAD_ATTR`` with its method bit, the 3.13+ two-local loads split in two).
_LOADS = frozenset(
    {
        "LOAD_FAST", "LOAD_FAST_BORROW", "LOAD_FAST_CHECK", "LOAD_DEREF", "LOAD_CLOSURE",
        "LOAD_GLOBAL", "LOAD_NAME",
    }
)  # fmt: skip
_CONSTANTS = frozenset({"LOAD_CONST", "LOAD_SMALL_INT"})
_TWO_LOADS = frozenset({"LOAD_FAST_LOAD_FAST", "LOAD_FAST_BORROW_LOAD_FAST_BORROW"})
_MUTATORS = frozenset(
    {"append", "extend", "insert", "pop", "remove", "clear", "update", "setdefault", "popitem"}
)
_MISSING = object()
_METHOD_BIT = sys.version_info >= (3, 12)  # LOAD_ATTR's low bit: a method load


@functools.lru_cache(maxsize=512)
def _instructions(code: Any) -> tuple[list, dict[int, int]]:
    found = []
    for ins in dis.get_instructions(code):
        if ins.opname in _TWO_LOADS:  # (3.13+) two locals at once: read as two loads
            found += [ins._replace(opname="LOAD_FAST", argval=name) for name in ins.argval]
        else:
            found.append(ins)
    return found, {ins.offset: k for k, ins in enumerate(found)}


def _opname(ins: Any) -> str:
    """The instruction's name, 3.11's spelling where 3.12+ spell the same thing otherwise."""
    name = ins.opname
    if name == "BINARY_OP" and ins.argrepr == "[]":
        return "BINARY_SUBSCR"
    if name == "LOAD_ATTR" and _METHOD_BIT and ins.arg is not None and ins.arg & 1:
        return "LOAD_METHOD"
    return name


class _PlainState:
    """Reads and writes of plain Python state during the re-run: ``x[k]``, ``x[k] = v``,
    ``x[k] += v``, ``o.a``, ``o.a = v``, ``o.a += v`` and a mutating method of a list or
    dict (``log.append(v)``), where ``x`` / ``o`` is a name (a local, a closure's or a
    global variable), found by looking at the instruction about to run (opcode
    events) and the simple loads before it.  A dict or list is labelled by the name it
    was first reached through, an instance of a user class by its class; a second
    object that would get the same label gets ``#2``, and so on.  Objects are told
    apart by identity during the run only (kept alive, so identities are not reused);
    nothing observable depends on an identity."""

    def __init__(self, notes: _Notes) -> None:
        self.notes = notes
        self.labels: dict[int, str] = {}
        self.kept: list = []
        self.used: dict[str, int] = {}
        self.pending: dict[int, tuple] = {}  # frame -> the target of an augmented store

    def opcode(self, frame: Any) -> None:
        found, index = _instructions(frame.f_code)
        k = index.get(frame.f_lasti)
        if k is None:
            return
        name = _opname(found[k])
        if name == "BINARY_SUBSCR":
            augmented = k >= 4 and found[k - 1].opname == found[k - 2].opname == "COPY"
            first = k - 4 if augmented else k - 2
            target = self._target(frame, found, first, first + 1)
            if augmented:
                self.pending[id(frame)] = target
            self._note(frame, target, False)
        elif name == "STORE_SUBSCR":
            if k >= 2 and found[k - 1].opname == found[k - 2].opname == "SWAP":
                target = self.pending.pop(id(frame), None)
            else:
                target = self._target(frame, found, k - 2, k - 1)
            self._note(frame, target, True)
        elif name == "LOAD_ATTR":
            augmented = k >= 2 and found[k - 1].opname == "COPY"
            target = self._attribute(frame, found, k - 2 if augmented else k - 1, found[k])
            if augmented:
                self.pending[id(frame)] = target
            self._note(frame, target, False)
        elif name == "STORE_ATTR":
            if k >= 1 and found[k - 1].opname == "SWAP":
                target = self.pending.pop(id(frame), None)
            else:
                target = self._attribute(frame, found, k - 1, found[k])
            self._note(frame, target, True)
        elif name == "LOAD_METHOD" and found[k].argval in _MUTATORS:
            held = self._operand(frame, found, k - 1)
            if held is not None and type(held[0]) in (list, dict):
                self._note(frame, (held[0], held[1], None), True)

    def _operand(self, frame: Any, found: list, k: int) -> tuple | None:
        """(value, name) of the simple load at instruction ``k`` (None if it is not one)."""
        if k < 0:
            return None
        ins = found[k]
        if ins.opname in _CONSTANTS:
            return ins.argval, None
        if ins.opname not in _LOADS:
            return None
        name = ins.argval
        value = frame.f_locals.get(name, _MISSING)
        if value is _MISSING:
            value = frame.f_globals.get(name, _MISSING)
        return None if value is _MISSING else (value, name)

    def _target(self, frame: Any, found: list, at: int, key_at: int) -> tuple | None:
        held, key = self._operand(frame, found, at), self._operand(frame, found, key_at)
        if held is None or key is None or type(held[0]) not in (list, dict):
            return None
        if type(key[0]) not in (str, int, bool, float, tuple, type(None)):
            return None
        return held[0], held[1], key[0]

    def _attribute(self, frame: Any, found: list, at: int, ins: Any) -> tuple | None:
        held = self._operand(frame, found, at)
        if held is None or not _user_object(held[0]):
            return None
        return held[0], None, "." + ins.argval

    def _note(self, frame: Any, target: tuple | None, write: bool) -> None:
        if target is None:
            return
        obj, name, key = target
        label = self.labels.get(id(obj))
        if label is None:
            base = name if name is not None else type(obj).__name__
            n = self.used[base] = self.used.get(base, 0) + 1
            label = base if n == 1 else f"{base}#{n}"
            self.labels[id(obj)] = label
            self.kept.append(obj)
        notes = self.notes
        where = _where(frame.f_code.co_filename, frame.f_lineno, frame.f_globals)
        notes.shared[-1].append((("plain", label, key), write, where, notes.when()))


def _user_object(value: Any) -> bool:
    """An instance of a class of the program (not a module, class or function, nor one of
    Counterpoint's or the standard library's objects)."""
    cls = type(value)  # (only the class is asked: an instance may report what it is asked)
    return _user_class(cls) and not issubclass(cls, type) and not callable(value)


@functools.lru_cache(maxsize=256)
def _user_class(cls: type) -> bool:
    """A class of the program: defined in ``__main__``, in code run without a module of
    its own (``exec``, a notebook), or in a file of the program's (not Counterpoint's,
    the standard library's or an installed package's)."""
    from ._vm import is_internal

    module = getattr(cls, "__module__", None) or ""
    if module == "__main__" or module not in sys.modules:
        return True
    filename = getattr(sys.modules[module], "__file__", None)
    if not filename or filename.startswith(_INSTALLED):
        return False
    return _user(filename, is_internal)


def _folder(path: str) -> str:
    """``path`` as frames spell it, ending in a separator (Pyodide's prefix is ``/``, so
    sysconfig says ``//lib/python3.14``; its frames say ``/lib/python3.14``)."""
    if os.sep == "/" and path.startswith("//"):
        path = "/" + path.lstrip("/")
    return path.rstrip(os.sep) + os.sep


_LIBRARY = tuple(
    sorted(
        {_folder(sysconfig.get_paths()[key]) for key in ("stdlib", "platstdlib")}
        # where the standard library really is: in Pyodide, a zip file (/lib/python314.zip)
        | {_folder(os.path.dirname(os.__file__))}
    )
)
_INSTALLED = tuple(sorted({_folder(sysconfig.get_paths()[key]) for key in ("purelib", "platlib")}))


def _user(filename: str, internal: Any) -> bool:
    """Whether a frame of ``filename`` is the program's: not Counterpoint's (the VM, the
    IPython extension, the kernel, the widgets), not the
    standard library's or an installed package's, not code Python generates
    (``<string>``, ``<frozen ...>``)."""
    if filename.startswith(("<string>", "<frozen", *_LIBRARY, *_INSTALLED)):
        return False
    return not internal(filename) and not ours(filename)


def _recorder_class() -> type:
    from ._explore import _Recorder  # (here: _explore imports _report, which imports this)

    class _Explaining(_Recorder):
        """The explorer's recorder, following the finding's schedule, taking notes."""

        def __init__(self, prefix: list[int], notes: _Notes) -> None:
            from ._strategies import DEFAULT

            super().__init__(prefix, DEFAULT)
            self.notes = notes

        def ran(self, vm: Any, task: Any, candidates: list | None) -> None:
            super().ran(vm, task, candidates)
            notes = self.notes
            notes.vm = vm
            notes.resumed.append(_resumes_at(task))
            notes.marks.append([])
            notes.reads.append([])
            notes.shared.append([])

        def observe(self, obj: tuple) -> None:
            super().observe(obj)
            notes = self.notes
            if notes.reads:
                notes.reads[-1].append((obj, notes.current(), notes.when()))

        def access(self, location: tuple, write: bool) -> None:
            from ._shared import user_frame

            super().access(location, write)
            notes = self.notes
            if not notes.shared or self._checking:  # (an invariant's reads are not steps')
                return
            filename, line, _ = user_frame()
            notes.shared[-1].append((location, bool(write), _where(filename, line), notes.when()))

    return _Explaining


def _resumes_at(task: Any) -> tuple | None:
    """Where ``task`` resumes: the line its innermost user frame is paused at (its
    ``def`` line if it has not started), as ``lowlevel.source_of`` finds it, without
    reading the whole function's source (one line is all a step needs)."""
    from ._vm import is_internal
    from ._where import paused_frame

    coro = task._coro
    if coro is None:
        return None
    frame = paused_frame(coro)
    if frame is not None:
        return _where(frame.f_code.co_filename, frame.f_lineno, frame.f_globals)
    frame = getattr(coro, "cr_frame", None)  # not started (a closed one has no frame)
    if frame is None or is_internal(frame.f_code.co_filename):
        return None
    code = frame.f_code
    return _where(code.co_filename, code.co_firstlineno, frame.f_globals)


def _rerun(finding: Any, program: Any) -> tuple:
    """Run the finding's schedule again, taking notes: (vm, recorder, notes, error)."""
    from ._schedule import decode_schedule
    from ._vm import is_internal

    notes = _Notes()
    recorder = notes.recorder = _recorder_class()(decode_schedule(finding.schedule), notes)
    before = sys.gettrace()
    sys.settrace(notes.tracer(is_internal))
    try:
        vm, error = finding._replay(program, recorder)
    finally:
        sys.settrace(before)
    recorder.tasks = vm._next_task
    vm._dispose()
    return vm, recorder, notes, error


# -- from notes to steps ----------------------------------------------------------------------


class _Names:
    """Task and object names, read off the journal's spawn and create records."""

    def __init__(self) -> None:
        self.tasks: dict[int, str] = {}
        self.objects: dict[tuple, str] = {}

    def task(self, task: int) -> str:
        name = self.tasks.get(task)
        return f"task {task}" if name is None else f"task {task} {name!r}"

    def obj(self, obj: Any) -> str:
        if obj is None:
            return "nothing"
        if obj[0] in _STATE:  # (as the program spells it: box['n'], account.balance)
            return describe((SHARED, *obj[1:]))
        if obj[0] == "timer":
            return f"the timer at tick {obj[1]}"
        if obj[1] is None:
            return obj[0]
        name = self.objects.get(obj)
        return f"{obj[0]} {obj[1]}" if name is None else f"{obj[0]} {name!r}"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 24 else text[:21] + "..."


def _words(kind: str, data: dict, subject: int, task: int, names: _Names) -> str | None:
    """A record in words, as what ``task``'s step did (None: not worth a word)."""
    obj = names.obj
    who = "" if subject == task else f"{names.task(subject)} "
    if kind == "step" or kind == "timer":
        return None
    if kind == "spawn":
        return f"spawns {names.task(data['child'])}"
    if kind == "create":
        kinds = [k for k in data if k in OBJECT_KINDS]
        (object_kind,) = ["condition"] if "condition" in kinds else kinds or ["object"]
        return f"creates {obj((object_kind, data.get(object_kind)))}"
    if kind == "block":
        op = data["op"]
        ((key, target),) = [(k, v) for k, v in data.items() if k != "op"] or [("", None)]
        if isinstance(target, list):  # a select's cases ("channel 3", ...)
            return f"{who}waits in select on {', '.join(map(str, target))}"
        if op in ("recv", "send", "acquire", "wait", "join"):  # (the VM's own words)
            name = names.objects.get((key, target))
            return f"{who}waits {wait_words(Wait(op, key, target, name))}"
        return f"{who}waits for {obj((key, target))}"
    if kind == "wake":
        return None
    if kind in ("send", "recv"):
        verb = "sends" if kind == "send" else "receives"
        side = "on" if kind == "send" else "from"
        return f"{who}{verb} {_short(data['value'])} {side} {obj(('channel', data['channel']))}"
    if kind == "close":
        return f"{who}closes {obj(('channel', data['channel']))}"
    if kind == "sleep":
        return f"{who}sleeps {count(data['ticks'], 'tick')}"
    if kind == "cancel":
        return None if not data["by"] else f"cancels {names.task(subject)}"
    if kind == "done":
        return f"{who}returns {_short(data['value'])}"
    if kind == "fail":
        return f"{who}raises {data['error']}"
    if kind == "cancelled":
        return f"{who}ends cancelled"
    if kind in ("acquire", "release", "set", "clear"):
        ((object_kind, ident),) = data.items()
        verb = {"acquire": "acquires", "release": "releases", "set": "sets", "clear": "clears"}
        return f"{who}{verb[kind]} {obj((object_kind, ident))}"
    if kind == "notify":
        woken = data["woken"]
        return (
            f"notifies {obj(('condition', data['condition']))} "
            f"({'waking nobody' if not woken else 'waking ' + str(woken)})"
        )
    if kind == "choose":
        return f"chooses option {data['index']} of {data['options']}"
    if kind == "select":
        return f"{who}selects case {data['index']}"
    if kind == "scope":
        return None
    if kind == "queue":
        return f"queues {data['name']!r} for worker {data['worker']}"
    if kind == "start":
        return f"worker {data['worker']} starts {data['name']!r} ({data['cost']} ticks)"
    if kind == "receipt":
        return f"{who}gets worker {data['worker']}'s receipt"
    if kind == "event":
        return f"{who}takes a host event from {data['source']!r}"
    if kind in ("suspend", "resume"):
        return f"{kind}s {names.task(subject)}"
    if kind == "timeout":
        return f"scope {data['scope']} times out"
    return None  # (notebook cell markers and the like: no part of a step's story)


def _steps(vm: Any, recorder: Any, notes: _Notes, names: _Names) -> list[StepNote]:
    """Every step of the re-run: its task, lines and accesses (records, record-free reads,
    shared accesses), each on the line that made it."""
    from .lowlevel import raw_records

    journal = vm.journal
    total = len(journal._rows)
    starts = [start for _, start, _ in recorder.steps]
    advances = set()
    for position in recorder.advances:  # records of time advancing belong to no step
        end = next((s for s in starts if s >= position), total)
        advances.update(range(position, end))
    out: list[StepNote] = []
    records = list(raw_records(journal))
    for record in records:  # names first: a step may name a task spawned later
        if KINDS[record.kind].name == "spawn":
            names.tasks[record.a] = record.value
        elif KINDS[record.kind].name == "create":
            kind, options = record.value
            if "name" in options:
                names.objects[(kind, record.a)] = options["name"]
    for j, (task, start, _) in enumerate(recorder.steps):
        end = starts[j + 1] if j + 1 < len(starts) else total
        marks = notes.marks[j]
        resumed = notes.resumed[j]
        paused = marks[-1][1] if marks else resumed
        found: list[tuple[tuple, Access]] = []  # (when, access)
        m = 0
        where = resumed
        for position in range(start, end):
            while m < len(marks) and marks[m][0] < (position, 0, 0):
                where = marks[m][1]
                m += 1
            if position in advances:
                continue
            record = records[position]
            kind = KINDS[record.kind]
            data = kind.decode(record.a, record.value, record.tick)
            words = _words(kind.name, data, record.task, task, names)
            if words is None:
                continue
            values = iter((record.value,)) if HAS_VALUE[record.kind] else iter(())
            touched = footprint(task, None, [journal._rows[position]], values)[2]
            obj = min(touched, key=repr) if touched else None
            found.append(((position, 0, 0), Access(obj, True, words, where or _NOWHERE)))
        for obj, where, when in notes.reads[j]:
            found.append((when, Access(obj, False, f"reads {names.obj(obj)}", where or _NOWHERE)))
        for location, write, where, when in notes.shared[j]:
            verb = "writes" if write else "reads"
            found.append((when, Access(location, write, f"{verb} {names.obj(location)}", where)))
        found.sort(key=lambda item: item[0])
        found = [item for k, item in enumerate(found) if not _repeats(found, k)]
        accesses = tuple(access for _, access in found)
        out.append(StepNote(task, resumed, paused, accesses, _lines(marks, found, resumed)))
    return out


_NOWHERE = ("", 0, "", "")


def _repeats(found: list, k: int) -> bool:
    """Whether access k says again what the one before it said, on the same line (a
    condition that reads a location twice)."""
    if not k:
        return False
    before, access = found[k - 1][1], found[k][1]
    return before.words == access.words and before.line == access.line


def _lines(marks: list[tuple], found: list[tuple], resumed: tuple | None) -> tuple:
    """The lines a step ran, in order, each with the accesses made there."""
    timeline = sorted(
        [(when, where, None) for when, where in marks]
        + [(when, access.line, k) for k, (when, access) in enumerate(found)],
        key=lambda item: item[0],
    )
    lines: list[tuple[tuple, list[int]]] = []
    for _, where, k in timeline:
        if not lines or lines[-1][0][1::2] != where[1::2]:  # (line, path)
            lines.append((where, []))
        if k is not None:
            lines[-1][1].append(k)
    if not lines and resumed is not None:
        lines.append((resumed, []))
    return tuple((where, tuple(ks)) for where, ks in lines)


# -- patterns ---------------------------------------------------------------------------------


def _later_step(steps: list[StepNote], i: int, task: int) -> int | None:
    """The first step of ``task`` after step ``i`` that touches what step i touched (or
    that touches nothing known: plain Python state), the later half of a race."""
    objects = {a.obj for a in steps[i].accesses if a.obj is not None}
    for j in range(i + 1, len(steps)):
        if steps[j].task != task:
            continue
        theirs = {a.obj for a in steps[j].accesses if a.obj is not None}
        if not objects or not theirs or objects & theirs:
            return j
    return None


_STATE = ("shared", "plain")  # locations of Python state (not VM objects)


def _lost_update(steps: list[StepNote], names: _Names) -> tuple | None:
    """Two tasks read a location, then both write it: the last such location."""
    best = None
    by_location: dict[Any, list[tuple[int, int, bool]]] = {}
    for j, step in enumerate(steps):
        for access in step.accesses:
            if access.obj is not None and access.obj[0] in _STATE:
                by_location.setdefault(access.obj, []).append((j, step.task, access.write))
    for location, uses in by_location.items():
        read: dict[int, int] = {}  # task -> its last read not yet written back
        for j, task, write in uses:
            if not write:
                read[task] = j
                continue
            first = read.pop(task, None)
            if first is None:
                continue
            # another task read it before this write and writes it back later, without
            # reading it again: both read before either wrote
            for other, seen in read.items():
                again = next(((k, wr) for k, t, wr in uses if t == other and k > j), None)
                later = best is None or max(first, seen) > best[2]
                if other != task and again is not None and again[1] and later:
                    best = (location, min(first, seen), max(first, seen), task, other)
    if best is None:
        return None
    location, first, seen, _, _ = best
    where = names.obj(location)
    sentence = (
        f"Lost update on {where}: {names.task(steps[first].task)} and "
        f"{names.task(steps[seen].task)} both read it before either wrote it back."
    )
    return "lost update", sentence, {first: location, seen: location}


def _check_then_act(steps: list[StepNote], names: _Names, failed: int | None) -> tuple | None:
    """A task reads a location, another changes it, then the first acts on what it read
    (writes something, or fails): the last such read."""
    best = None
    for i, step in enumerate(steps):
        for access in step.accesses:
            if access.write or access.obj is None:
                continue
            obj = access.obj
            change = next(
                (
                    k
                    for k in range(i + 1, len(steps))
                    if steps[k].task != step.task
                    and any(a.obj == obj and a.write for a in steps[k].accesses)
                ),
                None,
            )
            if change is None:
                continue
            acts = next(
                (
                    k
                    for k in range(change + 1, len(steps))
                    if steps[k].task == step.task
                    and (k == failed or any(a.write and a.obj for a in steps[k].accesses))
                ),
                None,
            )
            if acts is not None and (best is None or (i, change) > best[1:3]):
                best = (obj, i, change, acts)
    if best is None:
        return None
    obj, i, change, acts = best
    how = "failed" if acts == failed else "acted on what it had read"
    sentence = (
        f"Check-then-act on {names.obj(obj)}: {names.task(steps[i].task)} read it "
        f"(step {i + 1}), {names.task(steps[change].task)} changed it (step {change + 1}), "
        f"then {names.task(steps[i].task)} {how} (step {acts + 1})."
    )
    return "check-then-act", sentence, {i: obj, change: obj}


def _deadlock_pattern(vm: Any, steps: list[StepNote], names: _Names) -> tuple | None:
    """A lock-order cycle or a lost wake-up, read off the state the deadlock left."""
    journal = vm.journal
    last = max((i for i, r in enumerate(journal._rows) if not _host_cancel(journal, i)), default=0)
    waits = journal.state_at(last + 1).waits
    holder = {t: w.holder for t, w in waits.items() if w.op == "acquire" and w.holder}
    for start in sorted(holder):
        path, task = [], start
        while task in holder and task not in path:
            path.append(task)
            task = holder[task]
        if task == start and len(path) > 1:
            parts = [
                f"{names.task(t)} holds {names.obj((waits[p].object, waits[p].id))} and waits "
                f"for {names.obj((waits[t].object, waits[t].id))}"
                for t, p in zip(path, path[-1:] + path[:-1], strict=True)
            ]
            marked = {}
            for t, p in zip(path, path[-1:] + path[:-1], strict=True):
                lock = (waits[p].object, waits[p].id)
                j = _acquired(steps, t, lock)
                if j is not None:
                    marked[j] = lock
            sentence = "Lock-order cycle: " + "; ".join(parts) + "."
            return "lock-order cycle", sentence, marked
    for task in sorted(waits):
        wait = waits[task]
        if wait.op != "wait" or wait.object not in ("event", "condition"):
            continue
        obj = (wait.object, wait.id)
        waited = max(
            (j for j, s in enumerate(steps) if s.task == task and _blocks(s, obj)), default=None
        )
        if waited is None:
            continue
        signal = max(
            (
                j
                for j in range(waited)
                if steps[j].task != task
                and any(a.obj == obj and a.write and _signals(a, obj) for a in steps[j].accesses)
            ),
            default=None,
        )
        if signal is None:
            continue
        who, waiter = names.task(steps[signal].task), names.task(task)
        if wait.object == "condition":
            sentence = (
                f"Lost wake-up on {names.obj(obj)}: {who} notified it (step {signal + 1}) "
                f"before {waiter} waited for it (step {waited + 1}); nothing notifies it again."
            )
            return "lost wake-up", sentence, {signal: obj, waited: obj}
        cleared = max(
            (j for j in range(signal + 1, waited + 1) if _clears(steps[j], obj)), default=None
        )
        if cleared is None:
            continue
        sentence = (
            f"Lost wake-up on {names.obj(obj)}: {who} set it (step {signal + 1}), then "
            f"{names.task(steps[cleared].task)} cleared it (step {cleared + 1}) and {waiter} "
            f"waited for it (step {waited + 1}); nothing sets it again."
        )
        return "lost wake-up", sentence, {signal: obj, cleared: obj}
    return None


def _host_cancel(journal: Any, index: int) -> bool:
    from ._journal import CANCEL
    from ._kinds import _KIND_MASK

    row = journal._rows[index]
    return row & _KIND_MASK == CANCEL and not row >> 34


def _acquired(steps: list[StepNote], task: int, lock: tuple) -> int | None:
    found = None
    for j, step in enumerate(steps):
        if step.task == task and any(
            a.obj == lock and a.words.startswith("acquires") for a in step.accesses
        ):
            found = j
    return found


def _blocks(step: StepNote, obj: tuple) -> bool:
    return any(a.obj == obj and "waits" in a.words for a in step.accesses)


def _clears(step: StepNote, obj: tuple) -> bool:
    return any(a.obj == obj and a.words.startswith("clears") for a in step.accesses)


def _signals(access: Access, obj: tuple) -> bool:
    """A set of an event, or a notify of a condition that woke nobody (one that woke a
    task was not lost, whoever it woke)."""
    if obj[0] == "condition":
        return access.words.startswith("notifies") and access.words.endswith("(waking nobody)")
    return access.words.startswith("sets")


def _last_race(
    summary_steps: tuple, barriers: frozenset, steps: list[StepNote], recorder: Any
) -> tuple | None:
    """The last race (as ``races()`` finds them) whose later step was taken."""
    pairs = []
    for i, task in races(summary_steps, barriers, (), recorder.tasks):
        j = _later_step(steps, i, task)
        if j is not None:
            seen = _touches(steps[i]) and _touches(steps[j])
            pairs.append((seen, j, i))
    if not pairs:
        return None
    _, j, i = max(pairs)  # (the last race on something known, else the last one)
    return i, j


def _touches(step: StepNote) -> bool:
    """Whether a step touched anything explain can name (a VM object, Python state)."""
    return any(access.obj for access in step.accesses)


_PLAIN_HINT = (
    "(A step of this race touched nothing explain can see: state shared through a "
    "nonlocal or global\n variable, or reached through a call, is invisible to it; keep "
    "it in cp.shared(...) to have each access named.)"
)

# -- the text ---------------------------------------------------------------------------------


class Text(str):
    """The text of an explanation: a ``str`` that a REPL or a notebook shows as the text
    it is (lines and all), not as a quoted string."""

    __slots__ = ()

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        from html import escape

        return f"<pre>{escape(str(self))}</pre>"


def explain(finding: Any, program: Any) -> Text:
    """The text of ``finding.explain()`` (see :func:`explanation`)."""
    return Text(explanation(finding, program).text)


def explanation(finding: Any, program: Any) -> Explanation:
    """Run ``finding``'s schedule again with notes, and explain it."""
    vm, recorder, notes, error = _rerun(finding, program)
    names = _Names()
    steps = _steps(vm, recorder, notes, names)
    failed = _failed_step(steps, finding)
    found = None
    if finding.outcome == "Deadlock":
        found = _deadlock_pattern(vm, steps, names)
    else:
        found = _lost_update(steps, names) or _check_then_act(steps, names, failed)
    if found is None:
        summary_steps, barriers = footprints(
            vm.journal, recorder.steps, recorder.advances, recorder.reads, recorder.accesses
        )
        race = _last_race(summary_steps, barriers, steps, recorder)
        marked = dict.fromkeys(race or ())
        if race is None:
            sentence = (
                "Other: no two steps below race, so this outcome does not depend on their order."
            )
        else:
            i, j = race
            sentence = (
                f"Other: the last race is step {i + 1} ({names.task(steps[i].task)}) against "
                f"step {j + 1} ({names.task(steps[j].task)})."
            )
            if finding.outcome != "Deadlock" and not all(_touches(steps[k]) for k in race):
                # a step that touched nothing known: state explain cannot see
                sentence += "\n" + _PLAIN_HINT
        found = ("other", sentence, marked)
    pattern, sentence, marked = found
    failure = _failure_line(error, finding) if finding.outcome != "Deadlock" else None
    text = _render(finding, pattern, sentence, marked, steps, names, failed, failure)
    return Explanation(pattern, sentence, tuple(sorted(marked)), tuple(steps), text)


def _failed_step(steps: list[StepNote], finding: Any) -> int | None:
    """The step where the failure began: the first that raised (the root re-raises a
    child's error later), else the last step."""
    if finding.outcome == "Deadlock":
        return None
    for j, step in enumerate(steps):
        if any(a.words.startswith("raises") for a in step.accesses):
            return j
    return len(steps) - 1 if steps else None


def _failure_line(error: BaseException | None, finding: Any) -> str | None:
    from .lowlevel import failure_source

    if error is None:
        return None
    source = failure_source(error)
    if source is None or source.line is None:
        return None
    text = ""
    if source.first <= source.line < source.first + len(source.lines):
        text = source.lines[source.line - source.first].strip()
    return f"raised at {source.where}" + (f": {text}" if text else "")


def _shown(n: int, marked: dict, failed: int | None) -> list[int]:
    """The steps shown: all of a short run; else the first, the last and those around
    each interesting step."""
    if n <= _SHORT:
        return list(range(n))
    keep = {0, n - 1, n - 2}
    for j in (*marked, *(() if failed is None else (failed,))):
        keep.update(range(max(0, j - _CONTEXT), min(n, j + _CONTEXT + 1)))
    return sorted(keep)


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _render(
    finding: Any,
    pattern: str,
    sentence: str,
    marked: dict,
    steps: list[StepNote],
    names: _Names,
    failed: int | None,
    failure: str | None,
) -> str:
    message = (finding.message or "").strip()
    deadlock = finding.outcome == "Deadlock"
    head = message.splitlines()[0] if message and not deadlock else ""
    first = f"{finding.outcome}: {head}" if head else finding.outcome
    schedule = _clip(finding.schedule, _TEXT)  # (the replay line below has all of it)
    lines = [
        f"{first}  (schedule {schedule}, {count(finding.preemptions, 'preemption')})",
        sentence,
    ]
    if deadlock and message:
        lines.extend(message.splitlines())
    elif failure:
        lines.append(failure)
    files = {s.paused[3] for s in steps if s.paused} | {
        a.line[3] for s in steps for a in s.accesses if a.line[0]
    }
    many_files = len(files) > 1
    task_width = max((len(names.task(s.task)) for s in steps), default=0)
    number_width = len(str(len(steps)))
    rows: list[tuple[str, str, str, str, str]] = []  # (step, task, line, text, action)
    previous = -1
    for j in _shown(len(steps), marked, failed):
        if j > previous + 1:
            rows.append(("", "", "", f"... {count(j - previous - 1, 'step')} ...", ""))
        previous = j
        step = steps[j]
        events = _events(step)
        at = _marked_line(step, events, marked[j]) if j in marked else None
        for k, (where, actions) in enumerate(events):
            filename, number, text, _ = where
            place = ""
            if number:
                place = f"{filename}:{number}" if many_files else f"line {number}"
            mark = "  <-" if k == at else ""
            label = f"step {j + 1:>{number_width}}" if k == 0 else ""
            who = names.task(step.task) if k == 0 else ""
            rows.append((label, who, place, _clip(text, _TEXT), ", ".join(actions) + mark))
    widths = [max((len(r[c]) for r in rows if r[0] or r[2]), default=0) for c in range(4)]
    widths[1] = max(widths[1], task_width)
    for label, who, place, text, action in rows:
        if not label and not place and text.startswith("..."):
            lines.append(f"  {text}")
            continue
        cells = [label.ljust(widths[0]), who.ljust(widths[1]), place.ljust(widths[2])]
        cells.append(text.ljust(widths[3]))
        lines.append(("  " + "  ".join(cells) + "  " + action).rstrip())
    lines.append(f"replay it: {finding.replay}")
    return "\n".join(lines)


def _marked_line(step: StepNote, events: list, obj: Any) -> int:
    """Which of a marked step's shown lines gets the mark: the first that touches
    ``obj`` (the object of the conflict), else the first."""
    words = {a.words for a in step.accesses if obj is not None and a.obj == obj}
    return next((k for k, (_, actions) in enumerate(events) if words & set(actions)), 0)


_PLAIN_LINES = 3  # lines without an access shown per step (and its last line)


def _events(step: StepNote) -> list[tuple[tuple, list[str]]]:
    """The lines of a step to show, each with its actions: every line that made an
    access, the step's last line (where it paused), and its first few other lines."""
    events: list[tuple[tuple, list[str]]] = []
    plain = 0
    left = 0
    last = len(step.lines) - 1
    for n, (where, ks) in enumerate(step.lines):
        if not ks and n != last:
            plain += 1
            if plain > _PLAIN_LINES:
                left += 1
                continue
        if left:
            events.append((("", 0, f"... {count(left, 'line')} ...", ""), []))
            left = 0
        events.append((where, [step.accesses[k].words for k in ks]))
    return events or [(_NOWHERE, [])]
