"""Misuse: every mistake raises a NAMED error whose message says what to do,
and the same VM runs a normal program correctly afterwards (docs/design.md,
"Errors and misuse")."""

from __future__ import annotations

import asyncio
import inspect
import os
import traceback

import pytest
import trio
from programs import assert_vm_usable

import counterpoint as cp

FORGOT_TO_CALL = "did you forget to call it, or to write `async def`?"
USE_VM_PRIMITIVES = "use cp.sleep / cp.channel"
PACKAGE_DIR = os.path.dirname(os.path.abspath(cp.__file__))


async def child():
    await cp.sleep(1)
    return "child"


def a_generator():
    yield 1


NOT_COROUTINES = {
    "the async function itself": child,
    "an int": 5,
    "a generator": a_generator(),
}


# ---------------------------------------------------------------------------
# Spawning something that is not a coroutine: TypeError with advice.


@pytest.mark.parametrize("bad", NOT_COROUTINES.values(), ids=NOT_COROUTINES.keys())
def test_cp_spawn_of_a_non_coroutine_is_a_type_error_with_advice(vm, bad):
    async def main():
        cp.spawn(bad)

    with pytest.raises(TypeError, match=r"cp\.spawn") as info:
        vm.run(main())
    assert FORGOT_TO_CALL in str(info.value)
    assert_vm_usable(vm)


@pytest.mark.parametrize("bad", NOT_COROUTINES.values(), ids=NOT_COROUTINES.keys())
def test_vm_run_of_a_non_coroutine_is_a_type_error_with_advice(vm, bad):
    with pytest.raises(TypeError, match=r"vm\.run") as info:
        vm.run(bad)
    assert FORGOT_TO_CALL in str(info.value)
    assert_vm_usable(vm)


@pytest.mark.parametrize("bad", NOT_COROUTINES.values(), ids=NOT_COROUTINES.keys())
def test_par_of_a_non_coroutine_is_a_type_error_with_advice(vm, bad):
    async def main():
        await cp.par(child(), bad)

    with pytest.raises(TypeError, match=r"cp\.par") as info:
        vm.run(main())
    assert FORGOT_TO_CALL in str(info.value)
    assert_vm_usable(vm)


@pytest.mark.parametrize("bad", NOT_COROUTINES.values(), ids=NOT_COROUTINES.keys())
def test_scope_spawn_of_a_non_coroutine_is_a_type_error_with_advice(vm, bad):
    async def main():
        async with cp.scope() as s:
            s.spawn(bad)

    with pytest.raises(TypeError, match=r"scope\.spawn") as info:
        vm.run(main())
    assert FORGOT_TO_CALL in str(info.value)
    assert_vm_usable(vm)


def test_type_error_for_the_function_itself_names_the_function(vm):
    async def main():
        cp.spawn(child)

    with pytest.raises(TypeError, match="'child'"):
        vm.run(main())
    assert_vm_usable(vm)


def test_par_with_a_bad_argument_starts_none_of_its_branches(vm):
    started = []

    async def branch():
        started.append("branch")

    async def main():
        await cp.par(branch(), 42)

    with pytest.raises(TypeError, match=r"cp\.par"):
        vm.run(main())
    assert started == []
    assert vm.journal.filter(kind="spawn")[-1].data["name"] == "main"
    assert_vm_usable(vm)


# ---------------------------------------------------------------------------
# Contract calls outside a VM task: cp.NotInTaskError, a RuntimeError.


def _host_objects(vm: cp.VM) -> dict:
    """Objects of ``vm`` made inside a task, to be misused from the host."""
    objects = {}

    async def make():
        objects["lock"] = cp.Lock()
        objects["event"] = cp.Event()
        objects["semaphore"] = cp.Semaphore(1)
        objects["task"] = cp.spawn(child())
        async with cp.scope() as s:
            objects["scope"] = s
        await objects["task"]

    vm.run(make())
    objects["channel"] = vm.channel(1)
    return objects


OUTSIDE_CALLS = {
    "cp.spawn": lambda o: cp.spawn(child()),
    "cp.sleep": lambda o: cp.sleep(1),
    "cp.checkpoint": lambda o: cp.checkpoint(),
    "cp.now": lambda o: cp.now(),
    "cp.current_task": lambda o: cp.current_task(),
    "cp.rng": lambda o: cp.rng(),
    "cp.channel": lambda o: cp.channel(),
    "cp.par": lambda o: cp.par(child()),
    "cp.select": lambda o: cp.select(o["channel"]),
    "cp.select with only a timeout": lambda o: cp.select(timeout=1),
    "cp.scope": lambda o: cp.scope(),
    "cp.Lock": lambda o: cp.Lock(),
    "cp.Event": lambda o: cp.Event(),
    "cp.Semaphore": lambda o: cp.Semaphore(2),
    "cp.Condition": lambda o: cp.Condition(),
    "cp.Barrier": lambda o: cp.Barrier(2),
    "channel.send": lambda o: o["channel"].send(1),
    "channel.recv": lambda o: o["channel"].recv(),
    "async for over a channel": lambda o: o["channel"].__anext__(),
    "lock.acquire": lambda o: o["lock"].acquire(),
    "lock.release": lambda o: o["lock"].release(),
    "event.wait": lambda o: o["event"].wait(),
    "semaphore.acquire": lambda o: o["semaphore"].acquire(),
    "scope.spawn": lambda o: o["scope"].spawn(child()),
    "scope.cancel_all": lambda o: o["scope"].cancel_all(),
}


@pytest.mark.parametrize("call", OUTSIDE_CALLS.values(), ids=OUTSIDE_CALLS.keys())
def test_contract_call_outside_a_task_raises_not_in_task_error(vm, call):
    objects = _host_objects(vm)
    with pytest.raises(cp.NotInTaskError) as info:
        call(objects)
    assert isinstance(info.value, RuntimeError)
    message = str(info.value)
    assert "called outside a Counterpoint task" in message
    assert "vm.run(main())" in message  # the advice: run it in a task
    assert_vm_usable(vm)


def test_not_in_task_error_names_the_call(vm):
    with pytest.raises(cp.NotInTaskError, match=r"cp\.sleep\(\)"):
        cp.sleep(1)
    with pytest.raises(cp.NotInTaskError, match=r"cp\.Lock\(\)"):
        cp.Lock()
    assert_vm_usable(vm)


def test_contract_calls_inside_an_asyncio_coroutine_are_outside_a_task(vm):
    objects = _host_objects(vm)
    errors = []

    async def on_asyncio():
        for awaitable in (lambda: cp.sleep(1), lambda: objects["task"]):
            try:
                await awaitable()
            except cp.NotInTaskError as error:
                errors.append(str(error))

    asyncio.run(on_asyncio())
    assert len(errors) == 2
    assert "cp.sleep()" in errors[0]
    assert "`await` on task" in errors[1]
    assert all("outside a Counterpoint task" in error for error in errors)
    assert_vm_usable(vm)


@pytest.mark.parametrize(
    "call",
    [lambda coro: cp.spawn(coro), lambda coro: cp.par(coro)],
    ids=["cp.spawn", "cp.par"],
)
def test_a_coroutine_refused_outside_a_task_is_closed_not_leaked(vm, call):
    coro = child()
    with pytest.raises(cp.NotInTaskError):
        call(coro)
    assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED
    assert_vm_usable(vm)


# ---------------------------------------------------------------------------
# Bad numbers: negative -> ValueError, not an int -> TypeError.


def test_negative_sleep_is_a_value_error(vm):
    async def main():
        await cp.sleep(-1)

    with pytest.raises(ValueError, match="non-negative") as info:
        vm.run(main())
    assert "-1" in str(info.value)
    assert vm.now == 0
    assert_vm_usable(vm)


@pytest.mark.parametrize("ticks", [1.0, 0.5, "3", None, True], ids=repr)
def test_non_int_ticks_are_a_type_error(vm, ticks):
    async def main():
        await cp.sleep(ticks)

    with pytest.raises(TypeError, match="int"):
        vm.run(main())
    assert_vm_usable(vm)


def test_negative_channel_capacity_is_a_value_error(vm):
    async def main():
        cp.channel(-1)

    with pytest.raises(ValueError, match="capacity"):
        vm.run(main())
    assert_vm_usable(vm)


def test_non_int_channel_capacity_is_a_type_error(vm):
    async def main():
        cp.channel(1.5)

    with pytest.raises(TypeError, match="capacity"):
        vm.run(main())
    assert_vm_usable(vm)


def test_host_channel_with_negative_capacity_is_a_value_error(vm):
    with pytest.raises(ValueError, match="capacity"):
        vm.channel(-3)
    assert_vm_usable(vm)


@pytest.mark.parametrize(
    "make",
    [
        lambda: cp.Semaphore(-1),
        lambda: cp.Barrier(0),
        lambda: cp.scope(timeout=-1),
        lambda: cp.select(timeout=-1),
    ],
    ids=["semaphore value", "barrier parties", "scope timeout", "select timeout"],
)
def test_other_negative_counts_are_value_errors(vm, make):
    async def main():
        make()

    with pytest.raises(ValueError):
        vm.run(main())
    assert_vm_usable(vm)


# ---------------------------------------------------------------------------
# Foreign awaitables: cp.ForeignAwaitableError with advice.


def _assert_foreign(vm: cp.VM, make_awaitable) -> cp.ForeignAwaitableError:
    async def main():
        await make_awaitable()

    with pytest.raises(cp.ForeignAwaitableError) as info:
        vm.run(main())
    assert USE_VM_PRIMITIVES in str(info.value)
    assert "task 1 'main'" in str(info.value)
    return info.value


def test_awaiting_asyncio_sleep_is_a_foreign_awaitable_error(vm):
    error = _assert_foreign(vm, lambda: asyncio.sleep(1))
    assert "asyncio" in str(error)
    assert_vm_usable(vm)


def test_awaiting_asyncio_sleep_zero_is_a_foreign_awaitable_error(vm):
    error = _assert_foreign(vm, lambda: asyncio.sleep(0))
    assert "yield" in str(error)
    assert_vm_usable(vm)


def test_awaiting_an_asyncio_future_is_a_foreign_awaitable_error(vm):
    loop = asyncio.new_event_loop()
    try:
        future = loop.create_future()
        error = _assert_foreign(vm, lambda: future)
        assert "Future" in str(error)
    finally:
        loop.close()
    assert_vm_usable(vm)


def test_awaiting_trio_sleep_is_a_foreign_awaitable_error(vm):
    error = _assert_foreign(vm, lambda: trio.sleep(1))
    assert "trio" in str(error)
    assert_vm_usable(vm)


def test_foreign_awaitable_error_is_raised_at_the_await_so_the_task_can_recover(vm):
    async def main():
        try:
            await asyncio.sleep(0)
        except cp.ForeignAwaitableError:
            await cp.sleep(2)
            return "recovered", cp.now()

    assert vm.run(main()) == ("recovered", 2)
    assert_vm_usable(vm)


def test_foreign_awaitable_error_is_a_runtime_error(vm):
    assert issubclass(cp.ForeignAwaitableError, RuntimeError)
    assert issubclass(cp.ForeignAwaitableError, cp.CounterpointError)


# ---------------------------------------------------------------------------
# Closed channels.


def test_send_on_a_closed_channel_raises_and_the_vm_stays_usable(vm):
    async def main():
        ch = cp.channel(1)
        ch.close()
        await ch.send(1)

    with pytest.raises(cp.ChannelClosed, match="send on closed channel 1"):
        vm.run(main())
    assert vm.journal.filter(kind="send") == []
    assert_vm_usable(vm)


def test_a_blocked_sender_gets_channel_closed_when_the_channel_closes(vm):
    async def main():
        ch = cp.channel()

        async def closer():
            await cp.sleep(1)
            ch.close()

        cp.spawn(closer())
        await ch.send("never delivered")

    with pytest.raises(cp.ChannelClosed, match="send on closed channel"):
        vm.run(main())
    assert_vm_usable(vm)


def test_recv_on_a_closed_drained_channel_raises_channel_closed(vm):
    async def main():
        ch = cp.channel(1)
        await ch.send("last")
        ch.close()
        assert await ch.recv() == "last"
        await ch.recv()

    with pytest.raises(cp.ChannelClosed, match="receive on closed channel 1"):
        vm.run(main())
    assert_vm_usable(vm)


# ---------------------------------------------------------------------------
# Forgotten awaits.


def test_forgotten_await_on_sleep_is_reported_at_the_next_operation(vm):
    reached = []

    async def main():
        cp.sleep(1)
        reached.append("before the next operation")
        await cp.checkpoint()
        reached.append("after the next operation")

    with pytest.raises(cp.ForgottenAwaitError) as info:
        vm.run(main())
    message = str(info.value)
    assert "cp.sleep(1)" in message
    assert "never awaited" in message
    assert "Write `await cp.sleep(1)`" in message
    assert reached == ["before the next operation"]
    assert vm.now == 0  # the forgotten sleep did nothing
    assert_vm_usable(vm)


def test_forgotten_await_on_send_is_reported_and_delivers_nothing(vm):
    async def main():
        ch = cp.channel(1)
        ch.send(1)
        await cp.checkpoint()

    with pytest.raises(cp.ForgottenAwaitError) as info:
        vm.run(main())
    message = str(info.value)
    assert "send(1)" in message
    assert "never awaited" in message
    assert "`await " in message
    assert vm.journal.filter(kind="send") == []
    assert_vm_usable(vm)


def test_forgotten_await_at_the_end_of_a_task_is_reported(vm):
    async def main():
        await cp.checkpoint()
        cp.sleep(1)

    with pytest.raises(cp.ForgottenAwaitError, match=r"Write `await cp\.sleep\(1\)`"):
        vm.run(main())
    assert vm.journal[-1].kind == "fail"
    assert vm.journal[-1].data["error"] == "ForgottenAwaitError"
    assert_vm_usable(vm)


def test_forgotten_send_at_the_end_of_a_task_is_reported(vm):
    async def main():
        ch = cp.channel(1)
        ch.send("x")

    with pytest.raises(cp.ForgottenAwaitError, match=r"send\('x'\)"):
        vm.run(main())
    assert_vm_usable(vm)


def test_forgotten_await_in_a_spawned_task_fails_that_task(vm):
    async def forgetful():
        cp.sleep(5)

    async def main():
        task = cp.spawn(forgetful(), name="forgetful")
        with pytest.raises(cp.ForgottenAwaitError, match=r"cp\.sleep"):
            await task
        return "observed"

    assert vm.run(main()) == "observed"
    assert_vm_usable(vm)


def test_an_operation_stored_and_awaited_later_is_not_forgotten(vm):
    async def main():
        op = cp.sleep(1)
        await cp.checkpoint()
        await op
        return cp.now()

    assert vm.run(main()) == 1
    assert_vm_usable(vm)


def test_forgotten_await_error_is_a_runtime_error():
    assert issubclass(cp.ForgottenAwaitError, RuntimeError)


# ---------------------------------------------------------------------------
# Impossible waits and re-entrancy.


def test_a_task_awaiting_itself_is_a_runtime_error(vm):
    async def main():
        await cp.current_task()

    with pytest.raises(RuntimeError, match="awaits itself"):
        vm.run(main())
    assert_vm_usable(vm)


def test_vm_run_from_inside_a_task_is_a_runtime_error(vm):
    inner = child()

    async def main():
        vm.run(inner)

    with pytest.raises(RuntimeError, match="inside a running task") as info:
        vm.run(main())
    inner.close()
    assert "vm.run()" in str(info.value)
    assert_vm_usable(vm)


def test_running_another_vm_from_inside_a_task_is_a_runtime_error(vm):
    inner = child()

    async def main():
        cp.VM().run(inner)

    with pytest.raises(RuntimeError, match="inside a running task"):
        vm.run(main())
    inner.close()
    assert_vm_usable(vm)


def test_vm_step_from_inside_a_task_is_a_runtime_error(vm):
    async def main():
        vm.step()

    with pytest.raises(RuntimeError, match=r"vm\.step\(\) was called from inside a running task"):
        vm.run(main())
    assert_vm_usable(vm)


def test_result_of_an_unfinished_task_is_an_invalid_state_error(vm):
    async def main():
        task = cp.spawn(child())
        task.result()

    with pytest.raises(cp.InvalidStateError, match="has not finished yet"):
        vm.run(main())
    assert_vm_usable(vm)


def test_spawning_into_an_exited_scope_raises_scope_closed(vm):
    async def main():
        async with cp.scope() as s:
            pass
        s.spawn(child())

    with pytest.raises(cp.ScopeClosed, match="already exited"):
        vm.run(main())
    assert_vm_usable(vm)


def test_more_children_than_max_children_raises_limit_exceeded(vm):
    async def main():
        async with cp.scope(max_children=1) as s:
            s.spawn(child())
            s.spawn(child())

    with pytest.raises(cp.LimitExceeded, match="max_children=1"):
        vm.run(main())
    assert_vm_usable(vm)


# ---------------------------------------------------------------------------
# Objects of one VM used by a task of another.


def _objects_of_another_vm() -> dict:
    other = cp.VM()
    objects = {}

    async def make():
        objects["channel"] = cp.channel(1)
        objects["lock"] = cp.Lock()
        objects["event"] = cp.Event()
        objects["semaphore"] = cp.Semaphore(1)
        objects["task"] = cp.spawn(child())
        await objects["task"]

    other.run(make())
    return objects


async def _send(o):
    await o["channel"].send(1)


async def _recv(o):
    await o["channel"].recv()


async def _try_send(o):
    o["channel"].try_send(1)


async def _select(o):
    await cp.select(o["channel"])


async def _acquire(o):
    await o["lock"].acquire()


async def _semaphore(o):
    await o["semaphore"].acquire()


async def _wait(o):
    await o["event"].wait()


async def _set(o):
    o["event"].set()


async def _join(o):
    await o["task"]


@pytest.mark.parametrize(
    "use", [_send, _recv, _try_send, _select, _acquire, _semaphore, _wait, _set, _join]
)
def test_an_object_of_another_vm_raises_wrong_vm_error(vm, use):
    objects = _objects_of_another_vm()
    with pytest.raises(cp.WrongVMError, match="another VM") as info:
        vm.run(use(objects))
    assert isinstance(info.value, RuntimeError)
    assert_vm_usable(vm)


# ---------------------------------------------------------------------------
# Bad VM arguments.


def test_unknown_policy_is_a_value_error():
    with pytest.raises(ValueError, match="'lifo'") as info:
        cp.VM(policy="lifo")
    assert "fifo" in str(info.value) and "random" in str(info.value)


@pytest.mark.parametrize("seed", ["x", 1.0, None, True], ids=repr)
def test_non_int_seed_is_a_type_error(seed):
    with pytest.raises(TypeError, match="seed must be an int"):
        cp.VM(seed=seed)


@pytest.mark.parametrize("max_steps", [0, -1])
def test_non_positive_max_steps_is_a_value_error(max_steps):
    with pytest.raises(ValueError, match="max_steps must be a positive int"):
        cp.VM(max_steps=max_steps)


def test_valid_vm_arguments_make_a_usable_vm():
    vm = cp.VM(seed=7, policy="random", max_steps=1000)
    assert (vm.seed, vm.policy) == (7, "random")
    assert_vm_usable(vm)


# ---------------------------------------------------------------------------
# Tracebacks show the user's frames, not the VM's.


async def _fail_deep():
    await cp.sleep(1)
    raise ValueError("deep failure")


async def _middle():
    return await cp.spawn(_fail_deep(), name="deep")


async def _through_par():
    await cp.par(cp.sleep(2), _fail_deep())


def _frames(vm: cp.VM, program) -> list[traceback.FrameSummary]:
    with pytest.raises(ValueError, match="deep failure") as info:
        vm.run(program())
    return traceback.extract_tb(info.value.__traceback__)


def _in_package(frame: traceback.FrameSummary) -> bool:
    return os.path.abspath(frame.filename).startswith(PACKAGE_DIR + os.sep)


@pytest.mark.parametrize("program", [_middle, _through_par])
def test_traceback_of_a_task_failure_shows_the_users_frames_and_no_vm_frame_among_them(vm, program):
    frames = _frames(vm, program)
    names = [frame.name for frame in frames]
    assert names[-1] == "_fail_deep"
    first_user = names.index(program.__name__)
    assert not any(_in_package(frame) for frame in frames[first_user:])
    assert_vm_usable(vm)


def test_traceback_of_a_task_failure_has_no_vm_frame_after_vm_runs_reraise(vm):
    frames = _frames(vm, _middle)
    # frames[0] is this test's own call of vm.run; frames[1] may be vm.run's re-raise
    assert frames[1].name == "run"
    assert [frame.filename for frame in frames[2:] if _in_package(frame)] == []
