"""``Scheduler(program)`` (issue 11, "you are the scheduler"): the learner picks which ready
task runs next; ``.choose``/``.undo``/``.reset`` mirror the buttons; ``.ready``,
``.schedule`` and ``.outcome`` say where the game stands; a broken run says how to replay
it.  Stepping is ``vm.step(task=ID)`` on a VM the widget owns."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

# (the programs live in a module pytest does not rewrite: an assertion's message is then
# the same in a subprocess, and so is the picture that shows it)
from scheduler_programs import (
    DEADLOCK,
    LOSE,
    SERIAL,
    box,
    lost_update,
    nappers,
    two_locks,
    watch_box,
)

import counterpoint as cp
from counterpoint import lowlevel
from counterpoint.widgets import Scheduler

TESTS = Path(__file__).resolve().parent


@pytest.fixture(autouse=True)
def _collect_garbage():
    """Collect after each test, so a coroutine left unawaited (a VM dropped with unstarted
    tasks) warns inside the test that left it."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        yield
        gc.collect()


def play(game: Scheduler, choices) -> Scheduler:
    for task in choices:
        game.choose(task)
    return game


def state(game: Scheduler) -> tuple:
    return game.ready, game.schedule, game.vm.journal.digest(), game.game


# -- the game ---------------------------------------------------------------------------------


def test_a_new_game_has_the_root_ready_and_nothing_chosen():
    game = Scheduler(lost_update, watch=watch_box)
    assert game.ready == [1]
    assert game.schedule == "cp1:"
    assert game.outcome is None
    assert game.replay is None
    assert game.choices == []
    [root] = game.game["tasks"]
    assert (root["id"], root["name"], root["state"], root["ready"]) == (
        1,
        "lost_update",
        "ready",
        True,
    )
    assert root["started"] is False
    assert root["lines"][root["line"] - root["first"]].startswith("async def lost_update")


def test_interleaving_the_reads_loses_an_update_and_the_schedule_replays_it():
    game = play(Scheduler(lost_update, watch=watch_box), LOSE)
    assert game.outcome == "AssertionError"
    assert game.ready == []
    assert game.game["broken"] is True
    [failed] = game.game["tasks"]  # the root, as it failed: the raising line marked
    assert (failed["id"], failed["state"], failed["ready"]) == (1, "failed", False)
    raising = failed["lines"][failed["line"] - failed["first"]].strip()
    assert raising.startswith('assert box["n"] == 2')
    assert game.game["words"] == (
        "AssertionError: an update was lost: n is 1\n"
        f"(raised at scheduler_programs.py:{failed['line']} in task 1)"
    )
    assert game.game["watched"] == [["n", "1"]]
    assert game.replay == f"cp.VM(schedule={game.schedule!r}, seed=0).run(lost_update())"
    vm = cp.VM(schedule=game.schedule)
    with pytest.raises(AssertionError, match="n is 1"):
        vm.run(lost_update())
    assert vm.journal.digest() == game.vm.journal.digest()


def test_running_one_task_to_its_write_first_keeps_both_updates():
    game = play(Scheduler(lost_update, watch=watch_box), SERIAL)
    assert game.outcome == "'ok'"
    assert game.game["broken"] is False
    assert game.game["watched"] == [["n", "2"]]
    assert cp.VM(schedule=game.schedule).run(lost_update()) == "ok"


def test_each_task_shows_the_line_it_is_paused_at():
    game = play(Scheduler(lost_update), (1, 2))
    tasks = {task["id"]: task for task in game.game["tasks"]}
    main, reader, fresh = tasks[1], tasks[2], tasks[3]

    def current(task):
        return task["lines"][task["line"] - task["first"]].strip()

    assert current(main) == "await cp.par(add(), add())"
    assert main["state"] == "blocked" and "cp.par() branches" in main["waiting"]
    assert current(reader) == "await cp.checkpoint()"
    assert reader["where"] == f"scheduler_programs.py:{reader['line']}"
    assert reader["function"] == "add" and reader["started"] is True
    assert current(fresh) == "async def add():" and fresh["started"] is False
    assert game.ready == [2, 3]
    assert [t["ready"] for t in game.game["tasks"]] == [False, True, True]


def test_undo_returns_to_exactly_the_state_before_the_last_choice():
    game = Scheduler(lost_update, watch=watch_box)
    seen = [state(game)]
    for task in LOSE:
        game.choose(task)
        seen.append(state(game))
    for before in reversed(seen[:-1]):
        game.undo()
        assert state(game) == before
    assert game.choices == []
    with pytest.raises(cp.InvalidStateError, match="no step has been chosen yet"):
        game.undo()


def test_undo_after_the_outcome_plays_on():
    game = play(Scheduler(lost_update), LOSE)
    game.undo()
    assert game.outcome is None and game.ready == [1]
    game.choose(1)
    assert game.outcome == "AssertionError"


def test_reset_starts_a_fresh_run_of_the_program():
    game = play(Scheduler(lost_update, watch=watch_box), (1, 2, 3))
    fresh = Scheduler(lost_update, watch=watch_box)
    game.reset()
    assert state(game)[:3] == state(fresh)[:3]
    assert game.choices == [] and game.schedule == "cp1:"
    play(game, SERIAL)
    assert game.outcome == "'ok'"


def test_taking_the_locks_in_opposite_orders_can_deadlock_and_says_who_waits_on_what():
    game = play(Scheduler(two_locks), DEADLOCK)
    assert game.outcome == "Deadlock"
    assert game.ready == [] and game.game["broken"] is True
    words = game.game["words"]
    assert words.startswith("Deadlock: no task can ever run again.")
    assert "task 2 'one' blocked to acquire lock 'b'" in words
    assert "task 3 'two' blocked to acquire lock 'a'" in words
    assert game.replay == f"cp.VM(schedule={game.schedule!r}, seed=0).run(two_locks())"
    with pytest.raises(cp.Deadlock):
        cp.VM(schedule=game.schedule).run(two_locks())


def test_when_every_task_sleeps_time_passes_to_the_next_wake_up():
    game = play(Scheduler(nappers), (1, 2, 3))  # both sleep now
    assert game.game["tick"] == 1 and game.ready == [3]  # (nap(1) woke)
    game.choose(3)
    assert game.game["tick"] == 3 and game.ready == [2]
    play(game, (2, 1))
    assert game.outcome == "[3, 1]"
    vm = cp.VM(schedule=game.schedule)
    assert vm.run(nappers()) == [3, 1]
    assert vm.journal.digest() == game.vm.journal.digest()


# -- bad input --------------------------------------------------------------------------------


def test_choosing_a_task_that_is_not_ready_is_refused_naming_the_ready_ones_and_changes_nothing():
    game = play(Scheduler(lost_update), (1, 2))
    before = state(game)
    with pytest.raises(cp.InvalidStateError, match=r"task 1 'lost_update' is not ready.*2 'add'"):
        game.choose(1)
    with pytest.raises(cp.InvalidStateError, match="no task 99"):
        game.choose(99)
    assert state(game) == before and game.choices == [1, 2]
    play(game, (3, 2, 3, 1))
    assert game.outcome == "AssertionError"


def test_choose_takes_an_int_task_id():
    game = Scheduler(lost_update)
    for bad in ("1", True, 1.0, None):
        with pytest.raises(TypeError, match="takes a task id"):
            game.choose(bad)  # type: ignore[arg-type]
    assert game.ready == [1]


def test_choosing_after_the_outcome_is_refused():
    game = play(Scheduler(lost_update), LOSE)
    with pytest.raises(cp.InvalidStateError, match=r"has ended \(AssertionError\).*undo\(\)"):
        game.choose(1)


def test_a_coroutine_instead_of_the_function_is_refused_and_closed():
    coro = lost_update()
    with pytest.raises(TypeError, match=r"write Scheduler\(main\), not Scheduler\(main\(\)\)"):
        Scheduler(coro)  # type: ignore[arg-type]
    assert coro.cr_frame is None  # closed: no "never awaited" warning


def test_a_program_that_is_not_a_coroutine_function_is_refused():
    with pytest.raises(TypeError, match=r"zero-argument callable.*got int"):
        Scheduler(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"program\(\) returned int"):
        Scheduler(lambda: 3)
    with pytest.raises(TypeError, match=r"watch=.*got dict"):
        Scheduler(lost_update, watch={"n": 1})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"name=.*got int"):
        Scheduler(lost_update, name=3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"timeline=.*True or False"):
        Scheduler(lost_update, timeline="yes")  # type: ignore[arg-type]


def test_a_failing_watch_is_shown_in_place_of_the_values_and_the_game_goes_on():
    game = Scheduler(lost_update, watch=lambda: {"n": box["missing"]})
    assert game.game["watched"] == [["watch()", "raised KeyError: 'missing'"]]
    game.choose(1)
    assert game.ready == [2, 3]


def test_a_lambda_program_gets_a_replay_line_that_says_program():
    game = play(Scheduler(lambda: lost_update(), name="main"), LOSE)
    assert game.outcome == "AssertionError"
    assert game.replay.endswith(".run(program())")
    assert game.vm.journal.records(1, 2)[0].data["name"] == "main"


# -- the seam calls it uses -------------------------------------------------------------------


def test_pass_time_refuses_while_a_task_is_ready_and_says_false_when_nothing_can_run():
    vm = cp.VM()
    vm.spawn(two_locks())
    with pytest.raises(cp.InvalidStateError, match="a task is ready"):
        lowlevel.pass_time(vm)
    for task in DEADLOCK:
        vm.step(task=task)
    count = len(vm.journal)
    assert lowlevel.pass_time(vm) is False
    assert len(vm.journal) == count
    lowlevel.dispose(vm)


def test_source_of_is_none_for_a_task_that_runs_only_counterpoints_code():
    async def main():
        ch = cp.channel()
        cp.spawn(ch.recv(), name="listener")
        await cp.sleep(1)

    vm = cp.VM()
    vm.run(main())
    [listener] = vm.tasks()
    assert lowlevel.source_of(vm, listener.id) is None
    assert lowlevel.source_of(vm, 99) is None
    lowlevel.dispose(vm)


# -- messages, repr and picture ---------------------------------------------------------------


def capture(game):
    sent = []
    game.board.send = lambda content, buffers=None: sent.append((content, buffers))
    return sent


def test_a_choose_request_steps_the_task_and_replies():
    game = Scheduler(lost_update)
    sent = capture(game)
    game.board._on_message(None, {"type": "request", "id": 7, "what": "choose", "task": 1}, [])
    assert sent == [({"type": "reply", "id": 7, "ok": True}, [])]
    assert game.ready == [2, 3] and game.board.error == ""


def test_a_request_to_choose_a_task_that_is_not_ready_replies_with_the_error():
    game = Scheduler(lost_update)
    sent = capture(game)
    game.board._on_message(None, {"type": "request", "id": 8, "what": "choose", "task": 2}, [])
    [(reply, _)] = sent
    assert reply["id"] == 8 and "the ready tasks are 1 'lost_update'" in reply["error"]
    assert game.board.error == reply["error"]
    game.board._on_message(None, {"type": "request", "id": 9, "what": "choose", "task": 1}, [])
    assert game.board.error == "" and game.ready == [2, 3]


def test_undo_and_reset_requests_mirror_the_methods():
    game = play(Scheduler(lost_update), (1, 2))
    sent = capture(game)
    game.board._on_message(None, {"type": "request", "id": 1, "what": "undo"}, [])
    assert game.choices == [1]
    game.board._on_message(None, {"type": "request", "id": 2, "what": "reset"}, [])
    assert game.choices == [] and game.ready == [1]
    assert [content for content, _ in sent] == [
        {"type": "reply", "id": 1, "ok": True},
        {"type": "reply", "id": 2, "ok": True},
    ]


def test_the_mime_bundle_holds_the_picture_and_a_repr_without_addresses():
    game = play(Scheduler(lost_update, watch=watch_box), (1, 2, 3))
    data, _ = game._repr_mimebundle_()
    assert data["text/plain"] == "Scheduler(lost_update: 3 steps chosen, ready [2, 3])"
    assert "0x" not in data["text/plain"]
    assert "application/vnd.jupyter.widget-view+json" in data
    html = data["text/html"]
    assert html.startswith('<svg xmlns="http://www.w3.org/2000/svg" class="counterpoint-scheduler"')
    assert "<script" not in html and "schedule: cp1:0111" in html and "watched: n = 0" in html
    assert 'class="counterpoint-timeline"' in html  # the journal so far, below the game
    play(game, (2, 3, 1))
    assert repr(game) == "Scheduler(lost_update: 6 steps chosen, outcome AssertionError)"
    assert "Broken: AssertionError: an update was lost: n is 1" in game._picture()


def test_the_run_so_far_is_drawn_by_a_timeline_under_the_board_that_follows_each_game():
    assert Scheduler(lost_update, timeline=False).timeline is None  # (unless not wanted)
    game = Scheduler(lost_update)
    first = game.timeline
    assert game.children == (game.board, first) and first.live
    play(game, (1, 2))
    assert first.total == len(game.vm.journal) > 1  # it followed the steps
    game.undo()
    second = game.timeline
    assert second is not first and game.children == (game.board, second)
    assert not first.live or first._unwatch is None  # the old VM's timeline let go
    assert second.total == len(game.vm.journal)
    game.close()
    assert second._unwatch is None


PICTURE_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from scheduler_programs import LOSE, lost_update, watch_box
    from counterpoint.widgets import Scheduler

    game = Scheduler(lost_update, watch=watch_box)
    for task in LOSE[:{count}]:
        game.choose(task)
    sys.stdout.write(game._picture())
    """
)


@pytest.mark.parametrize("count", [3, 6])
def test_the_static_picture_is_byte_identical_in_other_processes(count):
    pictures = set()
    for seed in ("1", "4242"):
        out = subprocess.run(
            [sys.executable, "-c", PICTURE_SCRIPT.format(tests=str(TESTS), count=count)],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        pictures.add(out.stdout)
    [picture] = pictures
    game = play(Scheduler(lost_update, watch=watch_box), LOSE[:count])
    assert picture == game._picture()


def test_an_invariant_broken_by_a_step_ends_the_game_there():
    shared = {}

    async def account():
        shared["balance"] = 10

        async def withdraw():
            seen = shared["balance"]
            await cp.checkpoint()
            shared["balance"] = seen - 10

        await cp.par(withdraw(), withdraw())

    game = Scheduler(account, invariant=lambda: shared["balance"] >= 0, timeline=False)
    for task in (1, 2, 3, 2):
        game.choose(task)
    assert game.outcome is None  # one withdrawal: balance 0, still fine
    game.choose(3)  # the second writes 10 - 10 = 0 ... from what it read: still 0
    assert game.outcome is None
    game.reset()
    for task in (1, 2, 2, 3):  # the first withdraws fully, then the second reads 0
        game.choose(task)
    game.choose(3)
    assert game.outcome == "AssertionError" and game.game["broken"]
    assert "the invariant is false after step 5 (task 3)" in game.game["words"]
    assert game.replay.startswith("cp.VM(schedule='cp1:")

    def raising():
        raise KeyError("balance")

    shared.clear()
    game = Scheduler(account, invariant=raising, timeline=False)
    game.choose(1)
    assert game.outcome == "KeyError" and "the invariant raised KeyError" in game.game["words"]
    with pytest.raises(TypeError, match="invariant"):
        Scheduler(account, invariant=5)
