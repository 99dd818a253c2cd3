"""Shrink a failing program: drop runs, host events, tasks and statements, unwrap blocks
and simplify numbers, as long as it still fails the same way (greedy, to a fixpoint)."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator
from typing import Any

from .generator import inner_bodies
from .generator import references as _references

# where each block keeps its body
_BODY_AT = {
    "scope": 4,
    "lock": 2,
    "sem": 2,
    "swallow": 2,
    "guard": 1,
    "shielded": 1,
    "deadline": 2,
    "repeat": 2,
}


def _bodies(program: dict) -> Iterator[tuple[tuple, list]]:
    """(path, body) for every statement list; a path is ("tasks"|"runs", i, stmt, stmt ...)."""

    def nested(path: tuple, body: list):
        yield path, body
        for index, stmt in enumerate(body):
            for inner in inner_bodies(stmt):
                yield from nested((*path, index), inner)

    for i, body in enumerate(program["tasks"]):
        yield from nested(("tasks", i), body)
    for k, run in enumerate(program["runs"]):
        yield from nested(("runs", k), run["body"])


def _body_at(program: dict, path: tuple) -> list:
    kind, i, *steps = path
    body = program["tasks"][i] if kind == "tasks" else program["runs"][i]["body"]
    for index in steps:
        body = body[index][_BODY_AT[body[index][0]]]
    return body


def _with_body(program: dict, path: tuple, new_body: list) -> dict:
    out = copy.deepcopy(program)
    kind, i, *steps = path
    if not steps:
        if kind == "tasks":
            out["tasks"][i] = new_body
        else:
            out["runs"][i]["body"] = new_body
        return out
    parent = _body_at(out, (kind, i, *steps[:-1]))
    stmt = list(parent[steps[-1]])
    stmt[_BODY_AT[stmt[0]]] = new_body
    parent[steps[-1]] = tuple(stmt)
    return out


def _renumber(stmt: tuple, gone: int) -> tuple:
    def new(j: int) -> int:
        return j - 1 if j > gone else j

    op = stmt[0]
    if op == "spawn":
        return ("spawn", new(stmt[1]))
    if op == "par":
        return ("par", [new(j) for j in stmt[1]])
    if op in _BODY_AT:
        out = list(stmt)
        if op == "scope":
            out[3] = [(how, new(j)) for how, j in stmt[3]]
        out[_BODY_AT[op]] = [_renumber(s, gone) for s in stmt[_BODY_AT[op]]]
        return tuple(out)
    return stmt


def _without_task(program: dict, gone: int) -> dict:
    out = copy.deepcopy(program)
    del out["tasks"][gone]
    out["tasks"] = [[_renumber(s, gone) for s in body] for body in out["tasks"]]
    for run in out["runs"]:
        run["body"] = [_renumber(s, gone) for s in run["body"]]
    return out


def _simpler_statements(stmt: tuple) -> list:
    """Replacements for one statement, simplest first (a list of statement lists)."""
    op = stmt[0]
    out: list = []
    if op in _BODY_AT:
        out.append(list(stmt[_BODY_AT[op]]))  # unwrap the block
    if op == "sleep" and stmt[1] > 1:
        out.append([("sleep", 1)])
    if op == "sleep" and stmt[1] == 1:
        out.append([("sleep", 0)])
    if op == "par" and len(stmt[1]) > 1:
        out += [[("par", [j])] for j in stmt[1]]
    if op == "scope":
        _, timeout, shield, children, body, end, limit = stmt
        if timeout is not None:
            out.append([("scope", None, shield, children, body, end, limit)])
        if shield:
            out.append([("scope", timeout, False, children, body, end, limit)])
        if end is not None:
            out.append([("scope", timeout, shield, children, body, None, limit)])
        if limit is not None:
            out.append([("scope", timeout, shield, children, body, end, None)])
        for index in range(len(children)):
            rest = children[:index] + children[index + 1 :]
            out.append([("scope", timeout, shield, rest, body, end, limit)])
    if op == "select":
        _, cases, with_kid, timeout, policy, repeat = stmt
        if repeat > 1:
            out.append([("select", cases, with_kid, timeout, policy, 1)])
        if len(cases) > 1:
            out += [[("select", [c], with_kid, timeout, policy, repeat)] for c in cases]
        if with_kid:
            out.append([("select", cases, False, timeout, policy, repeat)])
        if policy != "priority":
            out.append([("select", cases, with_kid, timeout, "priority", repeat)])
    if op == "work":
        _, function, payload, cost, then = stmt
        if cost > 1:
            out.append([("work", function, payload, 1, then)])
        if then is not None:
            out.append([("work", function, payload, cost, None)])
    if op == "repeat" and stmt[1] > 1:
        out.append([("repeat", 1, stmt[2])])
    if op == "swallow" and stmt[1] > 1:
        out.append([("swallow", 1, stmt[2])])
    if op in ("send", "try_send") and stmt[2] != 0:
        out.append([(op, stmt[1], 0)])
    return out


def candidates(program: dict) -> Iterator[dict]:
    """Smaller or simpler variants of ``program``, the biggest cuts first."""
    runs = program["runs"]
    if len(runs) > 1:
        for k in range(len(runs)):
            out = copy.deepcopy(program)
            del out["runs"][k]
            yield out
    for k, run in enumerate(runs):
        if run["events"]:
            out = copy.deepcopy(program)
            out["runs"][k]["events"] = []
            yield out
            for e in range(len(run["events"])):
                out = copy.deepcopy(program)
                del out["runs"][k]["events"][e]
                yield out
    # tasks nobody starts any more, then whole bodies, then statements one by one
    used = {j for _, body in _bodies(program) for stmt in body for j in _references(stmt)}
    for gone in reversed(range(len(program["tasks"]))):
        if gone not in used:
            yield _without_task(program, gone)
    for path, body in list(_bodies(program)):
        if len(body) > 1:
            yield _with_body(program, path, [])
            half = len(body) // 2
            yield _with_body(program, path, body[half:])
            yield _with_body(program, path, body[:half])
        for index in range(len(body)):
            yield _with_body(program, path, body[:index] + body[index + 1 :])
    for path, body in list(_bodies(program)):
        for index, stmt in enumerate(body):
            for replacement in _simpler_statements(stmt):
                yield _with_body(program, path, body[:index] + replacement + body[index + 1 :])
    for key, simple in (("channels", 0), ("sems", 1), ("barriers", 1)):
        values = program[key]
        for index, value in enumerate(values):
            if value != simple:
                out = copy.deepcopy(program)
                out[key][index] = simple
                yield out
    for key in ("locks", "events"):
        if program[key] > 1:
            out = copy.deepcopy(program)
            out[key] = 1
            yield out  # (a statement that used a later one makes it fail differently)
    if program["vm"]["policy"] != "fifo":
        out = copy.deepcopy(program)
        out["vm"]["policy"] = "fifo"
        yield out


def size(program: dict) -> int:
    """A measure of size: statements + tasks + runs + host events."""
    statements = sum(len(body) for _, body in _bodies(program))
    events = sum(len(run["events"]) for run in program["runs"])
    return statements + len(program["tasks"]) + len(program["runs"]) + events


def shrink(
    program: dict[str, Any],
    fails: Callable[[dict[str, Any]], bool],
    *,
    max_checks: int = 600,
    seconds: float = 120.0,
) -> tuple[dict[str, Any], int]:
    """The smallest variant of ``program`` found that still ``fails``; and how many
    checks that took.  Greedy: take the first candidate that fails, start again."""
    deadline = time.monotonic() + seconds
    checks = 0
    current = program
    improved = True
    while improved and checks < max_checks and time.monotonic() < deadline:
        improved = False
        for candidate in candidates(current):
            if checks >= max_checks or time.monotonic() >= deadline:
                break
            checks += 1
            try:
                failed = fails(candidate)
            except Exception:  # a candidate the harness cannot even run: not this failure
                failed = False
            if failed:
                current = candidate
                improved = True
                break
    return current, checks
