"""Workers (issue 3, "Workers"): real host parallelism, deterministic observation.

A worker's outcome becomes visible exactly at virtual tick ``start + cost``,
whatever the host did; workers are isolated (plain-data copies in and out);
``max_workers`` bounds and queues them; the journal records start and receipt,
and it is the same whichever backend ran the workers and however long they took.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import subprocess
import sys
import threading
import time
from concurrent.futures import Future

import pytest
from programs import assert_vm_usable, sleeps

import counterpoint as cp
from counterpoint import _plaindata

# ---------------------------------------------------------------------------
# Worker functions (plain, top level; the process backend ships them by value).


@cp.worker.task
def tw_echo(payload):
    return payload


@cp.worker.task
def tw_square(n):
    return n * n


@cp.worker.task
def tw_fail(payload):
    raise ValueError(f"bad input {payload!r}")


@cp.worker.task
def tw_mutate(payload):
    """Mutates its payload in place and returns it."""
    payload.append("worker was here")
    payload[0]["touched"] = True
    return payload


@cp.worker.task
def tw_uses_vm(_payload):
    return cp.now()


@cp.worker.task
def tw_catches_vm_use(_payload):
    try:
        cp.now()
    except cp.NotInTaskError as error:
        return type(error).__name__
    return "no error"


@cp.worker.task
def tw_slow(payload):
    time.sleep(0.05)
    return payload


class Opaque:
    pass


@cp.worker.task
def tw_returns(kind):
    return {"tuple": (1, 2), "set": {1}, "object": Opaque(), "nested": {"a": [(1,)]}}[kind]


@cp.worker.task
def tw_jitter(payload):
    """Sleeps a random amount of HOST time, then answers (or fails)."""
    time.sleep(random.random() * 0.02)
    if payload["n"] < 0:
        raise ValueError(f"negative: {payload['n']}")
    return {"n": payload["n"], "square": payload["n"] ** 2, "tag": payload["tag"].encode()}


@cp.worker.task
def tw_jitter_not_plain(payload):
    time.sleep(random.random() * 0.02)
    return (payload, Opaque())


def records(vm, kind):
    """The journal records of one kind."""
    return vm.journal.filter(kind=kind)


# ---------------------------------------------------------------------------
# Registration


def test_task_registers_a_plain_function_by_its_name_and_returns_it_unchanged(vm):
    def tw_by_name(payload):
        return payload + 1

    assert cp.worker.task(tw_by_name) is tw_by_name

    async def main():
        h = cp.worker.start("tw_by_name", 41)
        await cp.worker.wait(h)
        return cp.worker.result(h)

    assert vm.run(main()) == 42
    assert records(vm, "start")[0].data["name"] == "tw_by_name"


def test_task_name_keyword_registers_under_that_name(vm):
    @cp.worker.task(name="tw_custom_name")
    def whatever(payload):
        return payload * 2

    async def main():
        by_name = cp.worker.start("tw_custom_name", 2)
        by_function = cp.worker.start(whatever, 3)
        await cp.worker.wait_any([by_name, by_function])
        return cp.worker.result(by_name), cp.worker.result(by_function)

    assert vm.run(main()) == (4, 6)
    assert [r.data["name"] for r in records(vm, "start")] == ["tw_custom_name"] * 2
    with pytest.raises(cp.UnknownWorkerTask):
        vm.run(_start_only("whatever"))
    assert_vm_usable(vm)


async def _start_only(name, payload=None, **kwargs):
    return cp.worker.start(name, payload, **kwargs)


def test_registering_a_name_again_replaces_the_function(vm):
    @cp.worker.task(name="tw_replaced")
    def old(payload):
        return "old"

    @cp.worker.task(name="tw_replaced")
    def new(payload):
        return "new"

    async def main():
        h = cp.worker.start("tw_replaced", None)
        await cp.worker.wait(h)
        return cp.worker.result(h)

    assert vm.run(main()) == "new"


def test_async_def_functions_are_refused_with_a_type_error(vm):
    async def tw_refused_coroutine(payload):
        return payload

    async def tw_refused_agen(payload):
        yield payload

    for function in (tw_refused_coroutine, tw_refused_agen):
        with pytest.raises(TypeError, match="async def"):
            cp.worker.task(function)
        with pytest.raises(TypeError, match="async def"):
            cp.worker.task(name=f"{function.__name__}_named")(function)
    # nothing was registered
    with pytest.raises(cp.UnknownWorkerTask):
        vm.run(_start_only("tw_refused_coroutine"))
    assert_vm_usable(vm)


def test_task_refuses_non_callables_and_bad_names():
    with pytest.raises(TypeError, match="needs a function"):
        cp.worker.task(42)
    with pytest.raises(TypeError, match="non-empty str"):
        cp.worker.task(name="")(tw_echo)
    with pytest.raises(TypeError, match="non-empty str"):
        cp.worker.task(name=3)(tw_echo)


def test_start_accepts_the_name_or_the_registered_function(vm):
    async def main():
        handles = [cp.worker.start("tw_square", 3), cp.worker.start(tw_square, 4)]
        await cp.worker.wait_any(handles)
        return [cp.worker.result(h) for h in handles]

    assert vm.run(main()) == [9, 16]
    assert [r.data["name"] for r in records(vm, "start")] == ["tw_square", "tw_square"]


def test_start_of_an_unknown_name_raises_unknown_worker_task_a_lookup_error(vm):
    with pytest.raises(cp.UnknownWorkerTask) as info:
        vm.run(_start_only("tw_never_registered"))
    assert isinstance(info.value, LookupError)
    assert "tw_never_registered" in str(info.value)
    assert "@cp.worker.task" in str(info.value)
    assert records(vm, "start") == [] and records(vm, "queue") == []
    assert_vm_usable(vm)


def test_start_of_an_unregistered_function_is_a_type_error_with_advice(vm):
    def tw_not_decorated(payload):
        return payload

    with pytest.raises(TypeError, match=r"@cp\.worker\.task"):
        vm.run(_start_only(tw_not_decorated))
    with pytest.raises(TypeError, match="task name"):
        vm.run(_start_only(42))
    assert_vm_usable(vm)


def test_worker_calls_outside_a_task_raise_not_in_task_error():
    with pytest.raises(cp.NotInTaskError, match="outside a Counterpoint task"):
        cp.worker.start("tw_echo", 1)
    for call in (cp.worker.poll, cp.worker.result, cp.worker.error, cp.worker.cancel):
        with pytest.raises(cp.NotInTaskError):
            call(1)


# ---------------------------------------------------------------------------
# start: handles at once, not a checkpoint; cost checks


def test_start_returns_ascending_handles_at_once_and_is_not_a_schedule_point(vm):
    async def main():
        other = cp.spawn(sleeps(0))
        handles = [cp.worker.start("tw_echo", i, cost=i + 1) for i in range(4)]
        ran_meanwhile = other.done()
        await cp.worker.wait(handles[-1])
        return handles, ran_meanwhile

    handles, ran_meanwhile = vm.run(main())
    assert handles == [1, 2, 3, 4]
    assert ran_meanwhile is False
    kinds = [r.kind for r in vm.journal]
    first = kinds.index("start")
    assert kinds[first : first + 4] == ["start"] * 4  # no step (of anyone) between starts
    assert [r.data["worker"] for r in records(vm, "start")] == handles


def test_handles_keep_ascending_across_runs_of_the_same_vm(vm):
    assert vm.run(_start_only("tw_echo")) == 1
    assert vm.run(_start_only("tw_echo")) == 2
    assert cp.VM().run(_start_only("tw_echo")) == 1  # per VM


@pytest.mark.parametrize("cost", [1.0, 1.5, "2", None, True])
def test_cost_must_be_an_int(vm, cost):
    with pytest.raises(TypeError, match="cost"):
        vm.run(_start_only("tw_echo", cost=cost))
    assert records(vm, "start") == []
    assert_vm_usable(vm)


@pytest.mark.parametrize("cost", [0, -1])
def test_cost_must_be_at_least_one_tick(vm, cost):
    with pytest.raises(ValueError, match="at least 1"):
        vm.run(_start_only("tw_echo", cost=cost))
    assert records(vm, "start") == []
    assert vm.run(_start_only("tw_echo")) == 1  # no handle was used up
    assert_vm_usable(vm)


# ---------------------------------------------------------------------------
# The timing rule: visible exactly at tick start + cost


@pytest.mark.parametrize("name, status", [("tw_echo", 1), ("tw_fail", -1)])
def test_outcome_is_visible_exactly_at_start_plus_cost_not_before(vm, name, status):
    ran = []
    target = {"tw_echo": tw_echo, "tw_fail": tw_fail}[name]

    @cp.worker.task(name=f"tw_timing_{name}")
    def logged(payload):
        ran.append(payload)
        return target(payload)

    async def main():
        h = cp.worker.start(f"tw_timing_{name}", "p", cost=3)
        assert ran == ["p"]  # the inline backend has already finished the job...
        seen = []
        for _ in range(4):
            seen.append((cp.now(), cp.worker.poll(h)))  # ...but it is pending until tick 3
            await cp.sleep(1)
        return seen

    assert vm.run(main()) == [(0, 0), (1, 0), (2, 0), (3, status)]
    (receipt,) = records(vm, "receipt")
    assert (receipt.tick, receipt.data["status"]) == (3, status)


def test_wait_returns_at_the_due_tick_with_the_status(vm):
    async def main():
        ok = cp.worker.start("tw_echo", 1, cost=4)
        bad = cp.worker.start("tw_fail", 2, cost=6)
        first = await cp.worker.wait(ok)
        at_first = cp.now()
        second = await cp.worker.wait(bad)
        return first, at_first, second, cp.now()

    assert vm.run(main()) == (1, 4, -1, 6)


def test_a_worker_started_at_tick_5_with_cost_3_is_observed_at_tick_8(vm):
    async def main():
        await cp.sleep(5)
        h = cp.worker.start("tw_square", 7, cost=3)
        status = await cp.worker.wait(h)
        return status, cp.now(), cp.worker.result(h)

    assert vm.run(main()) == (1, 8, 49)
    (start,) = records(vm, "start")
    (receipt,) = records(vm, "receipt")
    assert (start.tick, start.data["cost"], start.data["due"]) == (5, 3, 8)
    assert receipt.tick == 8


def test_a_slow_host_job_is_waited_for_physically_at_its_due_tick():
    with cp.VM(workers="thread") as vm:

        async def main():
            h = cp.worker.start("tw_slow", {"x": 1}, cost=1)
            return await cp.worker.wait(h), cp.now(), cp.worker.result(h)

        assert vm.run(main()) == (1, 1, {"x": 1})


def test_workers_due_at_the_same_tick_are_observed_in_ascending_handle_order(vm):
    async def watcher(handles):
        ready = await cp.worker.wait_any(handles)
        return ready, cp.now()

    async def main():
        h1 = cp.worker.start("tw_echo", "a", cost=6)  # due 6
        w = cp.spawn(watcher([h1]))
        await cp.sleep(2)
        h2 = cp.worker.start("tw_fail", "b", cost=4)  # due 6
        await cp.sleep(3)
        h3 = cp.worker.start("tw_echo", "c", cost=1)  # due 6
        h4 = cp.worker.start("tw_echo", "d", cost=2)  # due 7
        ready = await cp.worker.wait_any([h4, h3, h2, h1])
        return (h1, h2, h3, h4), ready, cp.now(), await w

    handles, ready, now, watched = vm.run(main())
    assert handles == (1, 2, 3, 4)
    assert (ready, now) == ([1, 2, 3], 6)
    assert watched == ([1], 6)
    receipts = records(vm, "receipt")
    assert [(r.tick, r.data["worker"]) for r in receipts] == [(6, 1), (6, 2), (6, 3)]


def test_wait_any_returns_every_handle_observed_at_that_tick_in_ascending_order(vm):
    async def main():
        late = cp.worker.start("tw_echo", 0, cost=9)
        handles = [cp.worker.start("tw_echo", i, cost=3) for i in range(3)]
        ready = await cp.worker.wait_any([handles[2], late, handles[0], handles[1]])
        return ready, cp.now(), handles

    ready, now, handles = vm.run(main())
    assert (ready, now) == (sorted(handles), 3)


def test_wait_any_returns_the_already_done_handles_at_once_after_a_schedule_point(vm):
    log = []

    async def other():
        log.append(cp.now())

    async def main():
        h1 = cp.worker.start("tw_echo", 1, cost=1)
        h2 = cp.worker.start("tw_fail", 2, cost=2)
        h3 = cp.worker.start("tw_echo", 3, cost=10)
        await cp.sleep(2)
        cp.spawn(other())
        ready = await cp.worker.wait_any(iter([h3, h2, h1, h2]))
        return ready, cp.now(), list(log)

    assert vm.run(main()) == ([1, 2], 2, [2])  # `other` ran inside the wait_any


def test_wait_any_counts_unknown_handles_as_ready(vm):
    async def main():
        pending = cp.worker.start("tw_echo", 1, cost=5)
        return await cp.worker.wait_any([pending, 99]), cp.now()

    assert vm.run(main()) == ([99], 0)


def test_wait_any_of_no_handles_is_a_value_error(vm):
    async def main():
        await cp.worker.wait_any([])

    with pytest.raises(ValueError, match="at least one handle"):
        vm.run(main())
    assert_vm_usable(vm)


def test_handles_must_be_ints(vm):
    async def main(call):
        return call("1")

    for call in (cp.worker.poll, cp.worker.result, cp.worker.error, cp.worker.cancel):
        with pytest.raises(TypeError, match="handle"):
            vm.run(main(call))

    async def wait_bad():
        await cp.worker.wait(True)

    with pytest.raises(TypeError, match="handle"):
        vm.run(wait_bad())
    assert_vm_usable(vm)


# ---------------------------------------------------------------------------
# Status codes, result, error


def test_poll_codes_are_0_pending_1_completed_minus_1_failed_minus_2_cancelled_minus_3_unknown(
    vm,
):
    assert (cp.worker.PENDING, cp.worker.COMPLETED, cp.worker.FAILED) == (0, 1, -1)
    assert (cp.worker.CANCELLED, cp.worker.UNKNOWN) == (-2, -3)

    async def main():
        ok = cp.worker.start("tw_echo", 1, cost=1)
        bad = cp.worker.start("tw_fail", 1, cost=1)
        gone = cp.worker.start("tw_echo", 1, cost=1)
        pending = cp.worker.start("tw_echo", 1, cost=50)
        cp.worker.cancel(gone)
        await cp.sleep(1)
        polls = [cp.worker.poll(h) for h in (pending, ok, bad, gone, 12345, 0, -1)]
        waits = [await cp.worker.wait(h) for h in (ok, bad, gone, 12345)]
        return polls, waits

    assert vm.run(main()) == ([0, 1, -1, -2, -3, -3, -3], [1, -1, -2, -3])


def test_result_returns_a_copy(vm):
    async def main():
        h = cp.worker.start("tw_echo", {"xs": [1, 2], "d": {"k": "v"}})
        await cp.worker.wait(h)
        first = cp.worker.result(h)
        first["xs"].append(3)
        first["d"]["k"] = "changed"
        first["new"] = True
        return cp.worker.result(h)

    assert vm.run(main()) == {"xs": [1, 2], "d": {"k": "v"}}


def test_result_of_a_failed_worker_raises_worker_failed_with_its_error(vm):
    async def main():
        h = cp.worker.start("tw_fail", "x")
        await cp.worker.wait(h)
        return cp.worker.result(h)

    with pytest.raises(cp.WorkerFailed) as info:
        vm.run(main())
    assert "ValueError: bad input 'x'" in str(info.value)
    assert "tw_fail" in str(info.value)
    assert_vm_usable(vm)


@pytest.mark.parametrize("which", ["pending", "cancelled", "unknown", "queued"])
def test_result_of_a_pending_cancelled_or_unknown_worker_raises_invalid_state_error(which):
    vm = cp.VM(max_workers=1)

    async def main():
        running = cp.worker.start("tw_echo", 1, cost=5)
        queued = cp.worker.start("tw_echo", 1, cost=5)
        handle = {"pending": running, "queued": queued, "unknown": 77}.get(which)
        if which == "cancelled":
            handle = queued
            cp.worker.cancel(queued)
        return cp.worker.result(handle)

    with pytest.raises(cp.InvalidStateError) as info:
        vm.run(main())
    if which in ("pending", "queued"):
        assert "cp.worker.wait" in str(info.value)
    assert_vm_usable(vm)


def test_error_is_type_and_message_for_a_failed_worker_and_empty_otherwise(vm):
    async def main():
        bad = cp.worker.start("tw_fail", 5, cost=1)
        ok = cp.worker.start("tw_echo", 5, cost=1)
        gone = cp.worker.start("tw_echo", 5, cost=1)
        pending = cp.worker.start("tw_echo", 5, cost=9)
        cp.worker.cancel(gone)
        before = cp.worker.error(bad)  # not observed yet
        await cp.worker.wait_any([bad, ok])
        return before, [cp.worker.error(h) for h in (bad, ok, gone, pending, 404)]

    before, errors = vm.run(main())
    assert before == ""
    assert errors == ["ValueError: bad input 5", "", "", "", ""]


@pytest.mark.parametrize("kind", ["tuple", "set", "object", "nested"])
def test_a_worker_returning_non_plain_data_fails_with_not_plain_data(vm, kind):
    async def main():
        h = cp.worker.start("tw_returns", kind)
        return await cp.worker.wait(h), cp.worker.error(h)

    status, error = vm.run(main())
    assert status == -1
    assert error.startswith("TypeError: ") and "not plain data" in error
    assert "0x" not in error  # no memory addresses in the journal
    assert records(vm, "receipt")[0].data == {"worker": 1, "status": -1, "error": error}


def test_a_worker_exiting_with_system_exit_fails(vm):
    @cp.worker.task(name="tw_exits")
    def exits(payload):
        sys.exit(payload)

    async def main():
        h = cp.worker.start("tw_exits", 3)
        return await cp.worker.wait(h), cp.worker.error(h)

    assert vm.run(main()) == (-1, "SystemExit: 3")
    assert_vm_usable(vm)


class WorkerAbort(BaseException):
    """A BaseException that is not an Exception (like KeyboardInterrupt)."""


BASE_EXCEPTIONS = {
    "KeyboardInterrupt": KeyboardInterrupt,
    "GeneratorExit": GeneratorExit,
    "SystemExit": SystemExit,
    "WorkerAbort": WorkerAbort,
}


@cp.worker.task
def tw_raise_base(kind):
    raise BASE_EXCEPTIONS[kind](f"raised by the worker ({kind})")


async def base_exception_program():
    """Each BaseException kind in a worker, then an ordinary worker on the same VM."""
    handles = [cp.worker.start("tw_raise_base", kind) for kind in BASE_EXCEPTIONS]
    statuses = [await cp.worker.wait(h) for h in handles]
    errors = [cp.worker.error(h) for h in handles]
    ok = cp.worker.start("tw_square", 7)
    return statuses, errors, await cp.worker.wait(ok), cp.worker.result(ok)


BASE_EXCEPTION_OUTCOME = (
    [-1] * len(BASE_EXCEPTIONS),
    [f"{kind}: raised by the worker ({kind})" for kind in BASE_EXCEPTIONS],
    1,
    49,
)

BACKENDS = ["inline", "thread", pytest.param("process", marks=pytest.mark.slow)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_worker_raising_any_base_exception_fails_with_type_and_message_and_the_vm_goes_on(
    backend,
):
    with cp.VM(workers=backend) as vm:
        assert vm.run(base_exception_program()) == BASE_EXCEPTION_OUTCOME
        assert vm.run(base_exception_program()) == BASE_EXCEPTION_OUTCOME  # and again
        assert_vm_usable(vm)


@pytest.mark.slow
def test_a_worker_raising_a_base_exception_gives_the_same_journal_on_every_backend():
    digests = {}
    for backend in ("inline", "thread", "process"):
        with cp.VM(workers=backend) as vm:
            vm.run(base_exception_program())
            digests[backend] = vm.journal.digest()
    assert len(set(digests.values())) == 1, digests


class RefusingBackend(cp.worker.Backend):
    """A backend whose ``submit`` raises (full, closed, cannot serialize the job ...)."""

    def submit(self, function, payload):
        raise RuntimeError("no room for this job")


def test_a_backend_that_cannot_take_a_job_fails_the_worker_and_the_vm_goes_on(vm):
    async def main():
        h = cp.worker.start("tw_square", 3, cost=2)
        return cp.worker.poll(h), await cp.worker.wait(h), cp.worker.error(h), cp.now()

    with cp.VM(workers=RefusingBackend()) as refusing:
        status, final, error, now = refusing.run(main())
        assert (status, final, now) == (0, -1, 2)  # observed at its due tick, like any outcome
        assert error == (
            "RuntimeError: no room for this job (the RefusingBackend could not start the worker)"
        )
        assert_vm_usable(refusing)
        assert refusing.run(main())[1] == -1


class FailingFutureBackend(cp.worker.Backend):
    """A backend whose futures end in an exception, or cancelled (a pool shut down)."""

    def submit(self, function, payload):
        future = Future()
        if payload == "cancelled":
            future.cancel()
        else:
            future.set_exception(ConnectionError("the cluster went away"))
        return future


def test_a_backend_future_that_fails_or_is_cancelled_fails_the_worker_and_the_vm_goes_on():
    async def main():
        lost = cp.worker.start("tw_echo", "lost")
        dropped = cp.worker.start("tw_echo", "cancelled")
        statuses = [await cp.worker.wait(lost), await cp.worker.wait(dropped)]
        return statuses, cp.worker.error(lost), cp.worker.error(dropped)

    with cp.VM(workers=FailingFutureBackend()) as vm:
        statuses, lost, dropped = vm.run(main())
        assert statuses == [-1, -1]
        assert lost == "ConnectionError: the cluster went away (the backend failed the job)"
        assert dropped == "the backend dropped the job (was it closed?)"
        assert_vm_usable(vm)


@pytest.mark.slow
def test_a_worker_function_that_cannot_be_shipped_to_a_process_fails_the_worker():
    lock = threading.Lock()

    @cp.worker.task(name="tw_holds_a_lock")
    def holds_a_lock(n):
        with lock:
            return n

    async def main():
        h = cp.worker.start("tw_holds_a_lock", 1)
        return await cp.worker.wait(h), cp.worker.error(h)

    with cp.VM(workers="process") as vm:
        status, error = vm.run(main())
        assert status == -1
        assert error.startswith("TypeError: cannot pickle '_thread.lock' object")
        assert_vm_usable(vm)
        assert vm.run(_start_and_wait("tw_square", 5)) == (1, 25)


async def _start_and_wait(name, payload):
    h = cp.worker.start(name, payload)
    return await cp.worker.wait(h), cp.worker.result(h)


# ---------------------------------------------------------------------------
# Isolation


@pytest.mark.parametrize("backend", ["inline", "thread"])
def test_the_worker_gets_a_copy_of_the_payload(backend):
    with cp.VM(workers=backend) as vm:

        async def main():
            payload = [{"k": 1}, "x"]
            h = cp.worker.start("tw_mutate", payload)
            payload.append("task changed it after start")
            await cp.worker.wait(h)
            return payload, cp.worker.result(h)

        mine, theirs = vm.run(main())
    assert mine == [{"k": 1}, "x", "task changed it after start"]
    assert theirs == [{"k": 1, "touched": True}, "x", "worker was here"]


NOT_PLAIN_PAYLOADS = {
    "tuple": ((1, 2), "tuple", "the worker payload"),
    "set": ({1, 2}, "set", "the worker payload"),
    "frozenset": (frozenset({1}), "frozenset", "the worker payload"),
    "object": (Opaque(), "Opaque", "the worker payload"),
    "tuple in a list": ([1, (2,)], "tuple", "the worker payload[1]"),
    "object in a dict": ({"a": {"b": object()}}, "object", "the worker payload['a']['b']"),
    "tuple key": ({(1, 2): 3}, "tuple", "key of type tuple"),
    "bytearray": (bytearray(b"x"), "bytearray", "the worker payload"),
}


@pytest.mark.parametrize(
    "payload, type_name, where", NOT_PLAIN_PAYLOADS.values(), ids=NOT_PLAIN_PAYLOADS.keys()
)
def test_payloads_must_be_plain_data_checked_at_start(vm, payload, type_name, where):
    async def main():
        cp.worker.start("tw_echo", payload)

    with pytest.raises(cp.NotPlainData) as info:
        vm.run(main())
    assert isinstance(info.value, TypeError)
    message = str(info.value)
    assert type_name in message and where in message
    assert "lists and dicts" in message or "dict keys must be" in message
    if type_name in ("tuple", "set", "frozenset") and "key" not in where:
        assert "not plain data (use a list)" in message
    assert records(vm, "start") == [] and records(vm, "queue") == []
    assert_vm_usable(vm)


PLAIN_VALUES = {
    "None": None,
    "bool": True,
    "int": -(2**80),
    "float": 2.5,
    "inf": float("-inf"),
    "str": "naïve ✓",
    "bytes": b"\x00\xffbytes",
    "list": [1, "two", [3.0, None]],
    "nested dict": {"a": {"b": [{"c": b"deep"}]}, "": False},
    "non-str keys": {1: "one", None: 2, b"k": [True], 2.5: {}},
    "dollar keys": {"$bytes": "not really", "$float": "nan"},
}


@pytest.mark.parametrize("value", PLAIN_VALUES.values(), ids=PLAIN_VALUES.keys())
def test_plain_payloads_go_in_and_come_back_equal(vm, value):
    async def main():
        h = cp.worker.start("tw_echo", value)
        await cp.worker.wait(h)
        return cp.worker.result(h)

    back = vm.run(main())
    assert back == value and type(back) is type(value)
    receipt = records(vm, "receipt")[0].data
    assert _plaindata.decode(receipt["result"]) == value
    json.dumps(vm.journal.to_records())  # records hold JSON-safe data only


def test_an_inline_worker_cannot_use_the_vm(vm):
    async def main():
        await cp.sleep(3)
        uses = cp.worker.start("tw_uses_vm", None)
        catches = cp.worker.start("tw_catches_vm_use", None)
        await cp.worker.wait_any([uses, catches])
        return cp.worker.poll(uses), cp.worker.error(uses), cp.worker.result(catches)

    status, error, caught = vm.run(main())
    assert status == -1
    assert error.startswith("WorkerIsolationError: cp.now() was called from worker function")
    assert caught == "WorkerIsolationError"
    assert_vm_usable(vm)


_PEEK = {}
_PEEK_RAN = threading.Event()


@cp.worker.task
def tw_peek(_payload):
    try:
        _PEEK["now"] = cp.now()
    except cp.NotInTaskError as error:
        _PEEK["error"] = type(error).__name__
    finally:
        _PEEK_RAN.set()


def test_a_thread_worker_cannot_use_the_vm_while_a_task_runs():
    _PEEK.clear()
    _PEEK_RAN.clear()
    with cp.VM(workers="thread") as vm:

        async def main():
            await cp.sleep(7)
            h = cp.worker.start("tw_peek", None)
            assert _PEEK_RAN.wait(5)  # the task is still running while the worker runs
            return await cp.worker.wait(h)

        assert vm.run(main()) == 1
    assert _PEEK == {"error": "WorkerIsolationError"}


# ---------------------------------------------------------------------------
# cancel


def test_cancel_of_a_queued_worker_makes_it_cancelled_and_it_never_runs():
    ran = []

    @cp.worker.task(name="tw_cancel_queued_log")
    def log(payload):
        ran.append(payload)
        return payload

    vm = cp.VM(max_workers=1)

    async def main():
        h1 = cp.worker.start(log, "first", cost=3)
        h2 = cp.worker.start(log, "second", cost=1)
        h3 = cp.worker.start(log, "third", cost=1)
        assert cp.worker.poll(h2) == 0
        cancelled = cp.worker.cancel(h2)
        polled = cp.worker.poll(h2)
        again = cp.worker.cancel(h2)
        statuses = [await cp.worker.wait(h) for h in (h1, h2, h3)]
        return cancelled, polled, again, statuses, cp.now()

    assert vm.run(main()) == (True, -2, False, [1, -2, 1], 4)
    assert ran == ["first", "third"]
    assert [r.data["worker"] for r in records(vm, "queue")] == [2, 3]
    starts = [(r.tick, r.data["worker"], r.data["due"]) for r in records(vm, "start")]
    assert starts == [(0, 1, 3), (3, 3, 4)]
    receipts = [(r.tick, r.data) for r in records(vm, "receipt")]
    assert receipts[0] == (0, {"worker": 2, "status": -2})
    assert_vm_usable(vm)


@pytest.mark.parametrize("backend", ["inline", "thread"])
def test_cancel_in_flight_is_cancelled_at_once_and_never_observed(backend):
    with cp.VM(workers=backend) as vm:

        async def waiter(h):
            status = await cp.worker.wait(h)
            return status, cp.now()

        async def main():
            h = cp.worker.start("tw_slow", "x", cost=10)
            w = cp.spawn(waiter(h))
            await cp.sleep(2)
            cancelled = cp.worker.cancel(h)
            polled = cp.worker.poll(h)
            status = await cp.worker.wait(h)
            return cancelled, polled, status, cp.now(), await w

        assert vm.run(main()) == (True, -2, -2, 2, (-2, 2))
        assert vm.now == 2  # the VM did not go on to the due tick

        async def later():
            await cp.sleep(20)
            return cp.worker.poll(1), cp.worker.error(1)

        assert vm.run(later()) == (-2, "")
        assert [(r.tick, r.data) for r in records(vm, "receipt")] == [
            (2, {"worker": 1, "status": -2})
        ]
        assert_vm_usable(vm)


def test_cancel_after_completion_returns_false_and_keeps_the_outcome(vm):
    async def main():
        ok = cp.worker.start("tw_square", 5)
        bad = cp.worker.start("tw_fail", 5)
        await cp.worker.wait_any([ok, bad])
        answers = [cp.worker.cancel(ok), cp.worker.cancel(bad)]
        return answers, cp.worker.poll(ok), cp.worker.result(ok), cp.worker.poll(bad)

    assert vm.run(main()) == ([False, False], 1, 25, -1)
    assert len(records(vm, "receipt")) == 2


def test_cancel_of_an_unknown_handle_returns_false(vm):
    async def main():
        return cp.worker.cancel(1), cp.worker.cancel(-5)

    assert vm.run(main()) == (False, False)
    assert records(vm, "receipt") == []


@pytest.mark.parametrize("how", ["wait", "wait_any"])
def test_cancelling_the_task_that_waits_does_not_cancel_or_leak_the_worker(vm, how):
    async def waiter(h, other):
        if how == "wait":
            return await cp.worker.wait(h)
        return await cp.worker.wait_any([other, h])

    async def first():
        h = cp.worker.start("tw_echo", "kept", cost=5)
        other = cp.worker.start("tw_echo", "other", cost=50)
        w = cp.spawn(waiter(h, other))
        await cp.sleep(2)
        w.cancel()
        await cp.checkpoint()
        return h, w.id, w.cancelled(), cp.worker.poll(h), cp.now()

    h, waiter_id, cancelled, polled, now = vm.run(first())
    assert (cancelled, polled, now) == (True, 0, 2)

    async def later():
        before = cp.worker.poll(h)
        await cp.sleep(3)
        at_due = cp.worker.poll(h)
        status = await cp.worker.wait(h)
        return before, at_due, status, cp.worker.result(h), cp.now()

    assert vm.run(later()) == (0, 1, 1, "kept", 5)
    (receipt,) = records(vm, "receipt")
    assert (receipt.tick, receipt.data["worker"], receipt.data["status"]) == (5, h, 1)
    # the cancelled waiter is not woken by the receipt (it no longer waits on the worker)
    assert [r for r in vm.journal if r.task == waiter_id and r.tick == 5] == []
    assert all(info.id != waiter_id or info.state != "blocked" for info in vm.tasks())
    assert_vm_usable(vm)


def test_a_task_blocked_on_a_worker_that_another_task_cancels_gets_minus_2(vm):
    async def waiter(handles, any_):
        got = await (cp.worker.wait_any(handles) if any_ else cp.worker.wait(handles[0]))
        return got, cp.now()

    async def main():
        h1 = cp.worker.start("tw_echo", 1, cost=8)
        h2 = cp.worker.start("tw_echo", 2, cost=9)
        w1 = cp.spawn(waiter([h1], False))
        w2 = cp.spawn(waiter([h2, h1], True))
        await cp.sleep(3)
        cp.worker.cancel(h1)
        return await w1, await w2

    assert vm.run(main()) == ((-2, 3), ([1], 3))


# ---------------------------------------------------------------------------
# Policy


def test_max_workers_0_disables_workers_with_a_policy_error():
    vm = cp.VM(max_workers=0)
    with pytest.raises(cp.PolicyError) as info:
        vm.run(_start_only("tw_echo", 1))
    assert "workers are disabled by policy" in str(info.value)
    assert records(vm, "start") == [] and records(vm, "queue") == []
    assert_vm_usable(vm)
    vm.journal._check()


def test_max_workers_queues_further_starts_fifo_until_slots_free():
    vm = cp.VM(max_workers=2)
    costs = [3, 1, 2, 2, 1]

    async def main():
        handles = [cp.worker.start("tw_square", i, cost=c) for i, c in enumerate(costs)]
        polls = [cp.worker.poll(h) for h in handles]
        statuses = [await cp.worker.wait(h) for h in handles]
        return handles, polls, statuses, [cp.worker.result(h) for h in handles], cp.now()

    handles, polls, statuses, results, now = vm.run(main())
    assert handles == [1, 2, 3, 4, 5]  # every start returned at once
    assert polls == [0] * 5 and statuses == [1] * 5
    assert results == [0, 1, 4, 9, 16] and now == 5
    kinds = [r.kind for r in vm.journal]
    assert kinds[kinds.index("start") :][:5] == ["start", "start", "queue", "queue", "queue"]
    assert [(r.tick, r.data["worker"]) for r in records(vm, "queue")] == [(0, 3), (0, 4), (0, 5)]
    # h2 frees a slot at 1 -> h3 starts; h1 and h3 free two at 3 -> h4, h5 start (FIFO)
    starts = [
        (r.tick, r.data["worker"], r.data["cost"], r.data["due"]) for r in records(vm, "start")
    ]
    assert starts == [(0, 1, 3, 3), (0, 2, 1, 1), (1, 3, 2, 3), (3, 4, 2, 5), (3, 5, 1, 4)]
    order = [
        (r.tick, r.kind, r.data["worker"]) for r in vm.journal if r.kind in ("start", "receipt")
    ]
    assert order == [
        (0, "start", 1), (0, "start", 2),
        (1, "receipt", 2), (1, "start", 3),
        (3, "receipt", 1), (3, "start", 4), (3, "receipt", 3), (3, "start", 5),
        (4, "receipt", 5), (5, "receipt", 4),
    ]  # fmt: skip
    vm.journal._check()


def test_a_cancel_in_flight_frees_a_slot_for_the_next_queued_start():
    vm = cp.VM(max_workers=1)

    async def main():
        h1 = cp.worker.start("tw_echo", 1, cost=10)
        h2 = cp.worker.start("tw_echo", 2, cost=2)
        await cp.sleep(4)
        cp.worker.cancel(h1)
        return await cp.worker.wait(h2), cp.now()

    assert vm.run(main()) == (1, 6)
    starts = [(r.tick, r.data["worker"], r.data["due"]) for r in records(vm, "start")]
    assert starts == [(0, 1, 10), (4, 2, 6)]


@pytest.mark.parametrize(
    "bad, error",
    [(-1, ValueError), (-10, ValueError), ("2", TypeError), (1.0, TypeError), (True, TypeError)],
)
def test_max_workers_must_be_a_non_negative_int_or_none(bad, error):
    with pytest.raises(error, match="max_workers"):
        cp.VM(max_workers=bad)


# ---------------------------------------------------------------------------
# Journal: start and receipt records


def _sha256_of_plain(value):
    wire = _plaindata.encode(value)
    return hashlib.sha256(_plaindata.canonical_json(wire).encode("ascii")).hexdigest()


def test_start_and_receipt_records_carry_what_replay_needs(vm):
    payload = {"blob": b"\x01\x02", "n": [1, 2.5, None]}

    async def main():
        await cp.sleep(1)
        ok = cp.worker.start("tw_echo", payload, cost=2)
        bad = cp.worker.start("tw_fail", "p", cost=3)
        gone = cp.worker.start("tw_echo", None, cost=4)
        cp.worker.cancel(gone)
        await cp.worker.wait(bad)
        return ok, bad, gone

    ok, bad, gone = vm.run(main())
    starts = {r.data["worker"]: r for r in records(vm, "start")}
    assert starts[ok].data == {
        "worker": ok,
        "name": "tw_echo",
        "payload": _plaindata.digest(payload),
        "cost": 2,
        "due": 3,
    }
    assert starts[ok].data["payload"] == _sha256_of_plain(payload)
    assert len(starts[ok].data["payload"]) == 64
    assert starts[bad].data["payload"] == _sha256_of_plain("p")
    assert (starts[ok].tick, starts[ok].task) == (1, 1)

    receipts = {r.data["worker"]: r for r in records(vm, "receipt")}
    good = receipts[ok]
    assert good.tick == 3 and good.task == 0  # observed by the VM, not a task
    assert good.data == {
        "worker": ok,
        "status": 1,
        "result": {"blob": {"$bytes": base64.b64encode(b"\x01\x02").decode()}, "n": [1, 2.5, None]},
        "result_digest": _plaindata.digest(payload),
    }
    assert good.data["result"] == _plaindata.encode(payload)
    assert _plaindata.decode(good.data["result"]) == payload
    assert receipts[bad].data == {"worker": bad, "status": -1, "error": "ValueError: bad input 'p'"}
    assert receipts[bad].tick == 4
    assert receipts[gone].data == {"worker": gone, "status": -2}
    json.dumps(vm.journal.to_records())


def test_queue_records_name_the_task_and_payload_digest():
    vm = cp.VM(max_workers=1)

    async def main():
        cp.worker.start("tw_echo", 1, cost=1)
        h = cp.worker.start("tw_square", [3], cost=1)
        return h

    h = vm.run(main())
    (queued,) = records(vm, "queue")
    assert queued.data == {"worker": h, "name": "tw_square", "payload": _plaindata.digest([3])}


# ---------------------------------------------------------------------------
# Determinism: host timing and backends never change the journal


async def jitter_program():
    async def client(k):
        handles = [
            cp.worker.start(tw_jitter, {"n": k * 10 + i, "tag": f"c{k}"}, cost=1 + (i * k) % 3)
            for i in range(3)
        ]
        seen = []
        pending = list(handles)
        while pending:
            ready = await cp.worker.wait_any(pending)
            seen.append([cp.now(), ready, [cp.worker.poll(h) for h in handles]])
            pending = [h for h in pending if h not in ready]
        return seen, [cp.worker.result(h)["square"] for h in handles]

    bad = cp.worker.start("tw_jitter", {"n": -1, "tag": "x"}, cost=2)
    odd = cp.worker.start(tw_jitter_not_plain, 5, cost=2)
    spare = cp.worker.start("tw_jitter", {"n": 7, "tag": "s"}, cost=4)
    results = await cp.par(client(1), client(2), client(3))
    cp.worker.cancel(spare)
    return [
        results,
        [await cp.worker.wait(bad), cp.worker.error(bad)],
        [await cp.worker.wait(odd), cp.worker.error(odd)],
        cp.worker.poll(spare),
        cp.now(),
    ]


def run_jitter(workers, max_workers=None):
    with cp.VM(workers=workers, max_workers=max_workers) as vm:
        outcome = vm.run(jitter_program())
        vm.journal._check()
        return outcome, vm.journal.digest()


@pytest.mark.parametrize("max_workers", [None, 2])
@pytest.mark.parametrize("backend", ["inline", "thread"])
def test_random_host_delays_never_change_the_journal(backend, max_workers):
    runs = [run_jitter(backend, max_workers) for _ in range(5)]
    assert len({digest for _, digest in runs}) == 1
    assert all(outcome == runs[0][0] for outcome, _ in runs)
    outcome = runs[0][0]
    assert outcome[1] == [-1, "ValueError: negative: -1"]
    assert outcome[2][0] == -1 and "not plain data" in outcome[2][1]


@pytest.mark.slow
def test_the_journal_is_the_same_whichever_backend_ran_the_workers():
    for max_workers in (None, 2):
        digests = {}
        outcomes = {}
        for backend in ("inline", "thread", "process"):
            outcomes[backend], digests[backend] = run_jitter(backend, max_workers)
        assert len(set(digests.values())) == 1, (max_workers, digests)
        assert outcomes["process"] == outcomes["inline"]


@pytest.mark.slow
def test_process_workers_are_isolated_and_report_failures_like_inline():
    def program():
        async def main():
            payload = [{"k": 1}, "x"]
            h = cp.worker.start("tw_mutate", payload, cost=2)
            bad = cp.worker.start("tw_fail", {"a": b"\x00"}, cost=1)
            odd = cp.worker.start("tw_returns", "object", cost=1)
            vm_use = cp.worker.start("tw_catches_vm_use", None, cost=1)
            statuses = [await cp.worker.wait(x) for x in (h, bad, odd, vm_use)]
            return [
                payload,
                cp.worker.result(h),
                statuses,
                cp.worker.error(bad),
                cp.worker.error(odd),
                cp.worker.result(vm_use),
            ]

        return main()

    results = {}
    for backend in ("inline", "process"):
        with cp.VM(workers=backend) as vm:
            results[backend] = (vm.run(program()), vm.journal.digest())
    assert results["process"] == results["inline"]
    value = results["inline"][0]
    assert value[0] == [{"k": 1}, "x"]
    assert value[2] == [1, -1, -1, 1] and value[5] == "WorkerIsolationError"


HASHSEED_SCRIPT = """
import counterpoint as cp

@cp.worker.task
def tw_keys(payload):
    return {"lengths": {str(key): len(str(key)) for key in payload},
            "sorted": sorted({str(key) for key in payload}), "raw": payload}

async def main():
    payload = {f"key{i}": i for i in range(30)}
    payload.update({i: b"int key" for i in range(5)}, **{"$odd": None})
    handles = [cp.worker.start("tw_keys", payload, cost=c) for c in (2, 1, 2)]
    ready = await cp.worker.wait_any(handles)
    return ready, [await cp.worker.wait(h) for h in handles], cp.worker.result(handles[0])

vm = cp.VM()
vm.run(main())
DIGEST = vm.journal.digest()
print(DIGEST)
"""


def test_the_journal_digest_does_not_depend_on_pythonhashseed():
    digests = []
    for hash_seed in ("0", "4242"):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed)
        done = subprocess.run(
            [sys.executable, "-c", HASHSEED_SCRIPT],
            capture_output=True, text=True, env=env, check=False, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        digests.append(done.stdout.strip())
    namespace = {"__name__": "tw_hashseed"}
    exec(compile(HASHSEED_SCRIPT, "<hashseed>", "exec"), namespace)
    assert len(digests[0]) == 64
    assert digests[0] == digests[1] == namespace["DIGEST"]


# ---------------------------------------------------------------------------
# Host side


def test_the_vm_stays_usable_after_a_failed_worker_is_awaited_for_its_result(vm):
    async def main():
        h = cp.worker.start("tw_fail", 1)
        await cp.worker.wait(h)
        cp.worker.result(h)

    for _ in range(2):
        with pytest.raises(cp.WorkerFailed):
            vm.run(main())
        assert_vm_usable(vm)


def test_a_pending_worker_survives_the_end_of_the_run_that_started_it(vm):
    h = vm.run(_start_only("tw_square", 6, cost=4))

    async def later():
        return cp.worker.poll(h), await cp.worker.wait(h), cp.worker.result(h), cp.now()

    assert vm.run(later()) == (0, 1, 36, 4)


@cp.worker.task(name="tw_square_late")
def tw_square_late(n):
    return n * n


def test_a_queued_worker_whose_due_tick_would_pass_the_last_tick_fails_when_it_starts(tmp_path):
    from counterpoint._journal import MAX_TICK

    async def main():
        handles = [cp.worker.start("tw_square_late", i, cost=MAX_TICK - 1) for i in range(2)]
        return [await cp.worker.wait(h) for h in handles], cp.worker.error(handles[1])

    vm = cp.VM(max_workers=1)
    statuses, error = vm.run(main())
    assert statuses == [1, -1]  # the second could only start at MAX_TICK - 1: too late
    assert error.startswith("TickRangeError: cp.worker.start(cost=")
    saved = vm.journal.save(tmp_path / "late.db")  # every tick fits in the file
    assert cp.Journal.load(saved).digest() == vm.journal.digest()
