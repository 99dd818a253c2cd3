"""The `counterpoint` kernel, driven through jupyter_client as a notebook does: cells
run on one session VM that persists, every cell is journaled, errors show the
user's frames, interrupts stop tasks stuck in loops, magics and rich output work."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import time

import pytest
from jupyter_client.kernelspec import KernelSpecManager
from kernels import Kernel

import counterpoint as cp

VM_FILES = ("_vm.py", "_traps.py", "_scope.py", "_channel.py", "_roots.py", "_ops.py")


@pytest.fixture(scope="module")
def kernel():
    k = Kernel()
    yield k
    k.shutdown()


@pytest.fixture
def fresh(kernel):
    """The module's kernel with a fresh session VM (fifo, seed 0)."""
    reply = kernel.execute("%vm reset --seed 0 --policy fifo --max-steps 5000000")
    assert reply.status == "ok", reply.traceback_text
    return kernel


def ok(kernel: Kernel, code: str):
    reply = kernel.execute(code)
    assert reply.status == "ok", reply.traceback_text
    return reply


# -- the kernel and its spec ------------------------------------------------------------------


def test_kernel_info_names_the_counterpoint_implementation_of_python(kernel):
    kernel.client.kernel_info()
    reply = kernel.client.get_shell_msg(timeout=10)
    assert reply["content"]["implementation"] == "counterpoint"
    assert reply["content"]["implementation_version"] == cp.__version__
    assert reply["content"]["language_info"]["name"] == "python"
    assert "session VM" in reply["content"]["banner"]


def test_the_kernelspec_is_counterpoint_with_a_fixed_hash_seed(kernel):
    spec = KernelSpecManager().get_kernel_spec("counterpoint")
    assert spec.display_name == "Counterpoint (deterministic VM)"
    assert spec.language == "python"
    assert spec.env["PYTHONHASHSEED"] == "0"
    assert spec.argv[1:3] == ["-m", "counterpoint.kernel"]
    assert kernel.value("__import__('os').environ['PYTHONHASHSEED']") == "0"


# -- cells on the session VM --------------------------------------------------------------------


def test_top_level_await_runs_on_the_session_vm_and_time_carries_on(fresh):
    assert fresh.value("await sleep(3)\nnow()") == 3
    assert fresh.value("await cp.sleep(2)\nvm.now") == 5
    assert fresh.value("vm.now") == 5  # a cell without await runs on the host


def test_tasks_spawned_in_one_cell_keep_their_state_in_the_next(fresh):
    ok(fresh, "box = channel()\nlistener = spawn(box.recv(), name='listener')\nawait sleep(1)")
    assert fresh.value("[(t.name, t.state, t.waiting_on) for t in vm.tasks()]") == [
        ("listener", "blocked", "to receive on channel 1")
    ]
    assert fresh.value("await box.send(42)\nawait listener") == 42


def test_the_contract_names_are_preloaded(fresh):
    assert (
        fresh.value("[name for name in cp.__all__ if globals().get(name) is not getattr(cp, name)]")
        == []
    )
    assert fresh.value("type(vm).__name__, vm is cp.ipython.session_of(get_ipython()).vm") == (
        "VM",
        True,
    )


def test_a_cell_without_await_can_make_channels_locks_and_tasks_on_the_session_vm(fresh):
    ok(fresh, "ch = channel()\nlock = Lock()\nasync def say(word):\n    await ch.send(word)")
    ok(fresh, "t = spawn(say('hi'), name='sender')\nnow()")
    assert fresh.value("t.done(), [i.name for i in vm.tasks()]") == (False, ["sender"])
    assert fresh.value("await ch.recv()") == "hi"
    assert fresh.value("t.done(), lock.locked()") == (True, False)


def test_an_operation_called_without_await_in_a_cell_says_to_await_it(fresh):
    reply = fresh.execute("sleep(1)")
    assert reply.ename == "NotInTaskError"
    assert "In a notebook cell, `await` it" in reply.evalue


def test_awaiting_asyncio_in_a_cell_is_a_clear_error(fresh):
    reply = fresh.execute("import asyncio\nawait asyncio.sleep(1)")
    assert reply.ename == "ForeignAwaitableError"
    assert "use cp.sleep / cp.channel" in reply.evalue


LISTING = "[(r.kind, r.data) for r in vm.journal if r.kind in ('cell', 'cell_done')]"


def test_every_executed_cell_is_journaled_with_its_source_and_outcome(fresh):
    ok(fresh, "await sleep(1)")
    fresh.execute("1 / 0")
    records = fresh.value(LISTING)
    assert records == [
        ("cell", {"cell": 1, "source": "await sleep(1)"}),
        ("cell_done", {"cell": 1, "outcome": "ok"}),
        ("cell", {"cell": 2, "source": "1 / 0"}),
        (
            "cell_done",
            {
                "cell": 2,
                "outcome": "error",
                "error": "ZeroDivisionError",
                "message": "division by zero",
            },
        ),
        (
            "cell",
            {"cell": 3, "source": LISTING},
        ),
    ]


def test_a_cells_record_comes_before_everything_the_cell_does(fresh):
    ok(fresh, "await sleep(1)")
    kinds = fresh.value("[(r.kind, r.task, r.data) for r in vm.journal][:4]")
    assert kinds == [
        ("cell", 0, {"cell": 1, "source": "await sleep(1)"}),
        ("spawn", 0, {"child": 1, "name": "cell 1"}),
        ("step", 1, {}),
        ("sleep", 1, {"ticks": 1, "until": 1}),
    ]


def test_silent_executions_are_not_journaled(fresh):
    reply = fresh.execute("await sleep(1)", silent=True)
    assert reply.status == "ok"
    assert fresh.value("[r.kind for r in vm.journal if r.kind.startswith('cell')]") == ["cell"]


def test_the_same_cells_give_the_same_journal_in_another_kernel(fresh):
    cells = [
        "async def worker(i):\n    await sleep((i * 7) % 5)\n    return i * i",
        "results = await par(*[worker(i) for i in range(8)])",
        "%vm",
        "ch = channel(3)\nfor i in range(3):\n    await ch.send(i)",
        "await channel().recv()",
    ]

    def digest(k):
        ok(k, "%vm reset --seed 5 --policy random")
        for code in cells:
            k.execute(code)
        return k.value("vm.journal.digest()")

    other = Kernel()
    try:
        assert digest(fresh) == digest(other)
    finally:
        other.shutdown()


# -- errors ------------------------------------------------------------------------------------


def test_a_deadlocked_cell_stops_with_deadlock_at_its_await(fresh):
    reply = fresh.execute("ch = channel()\nawait ch.recv()")
    assert reply.status == "error" and reply.ename == "Deadlock"
    assert "waits to receive on channel 1" in reply.evalue
    assert "----> 2 await ch.recv()" in reply.traceback_text
    assert not any(name in reply.traceback_text for name in VM_FILES)
    assert fresh.value("await sleep(1)\n'the next cell works'") == "the next cell works"


def test_a_deadlock_inside_a_scope_cancels_the_cells_tasks(fresh):
    code = textwrap.dedent(
        """\
        async def stuck():
            await channel().recv()
        async with cp.scope() as s:
            s.spawn(stuck())
            s.spawn(stuck())
        """
    )
    reply = fresh.execute(code)
    assert reply.ename == "Deadlock"
    assert fresh.value("vm.tasks()") == []


def test_tracebacks_show_the_users_frames_not_the_vms(fresh):
    code = textwrap.dedent(
        """\
        async def fails():
            await sleep(1)
            raise ValueError("boom")

        await par(fails(), sleep(5))
        """
    )
    reply = fresh.execute(code)
    assert (reply.ename, reply.evalue) == ("ValueError", "boom")
    text = reply.traceback_text
    assert 'raise ValueError("boom")' in text and "await par(fails(), sleep(5))" in text
    assert not any(name in text for name in VM_FILES), text


def test_a_task_failing_unawaited_is_reported_at_the_line_that_raised(fresh):
    code = textwrap.dedent(
        """\
        async def boom():
            raise ValueError("nobody awaits me")

        spawn(boom(), name="boom")
        await sleep(1)
        """
    )
    reply = fresh.execute(code)
    assert reply.status == "ok"
    (stderr,) = [out["content"]["text"] for out in reply.outputs if out["msg_type"] == "stream"]
    # "Cell In[N]" as in tracebacks, never the cell's temporary file (it changes per run)
    assert re.fullmatch(
        r"UnobservedTaskFailure: task 2 'boom' failed and nothing awaited it: ValueError: "
        r"nobody awaits me\n"
        r"  Cell In\[\d+\], line 2: raise ValueError\(\"nobody awaits me\"\)\n",
        stderr,
    ), stderr
    assert not any(name in stderr for name in (*VM_FILES, "session.py")), stderr


def test_max_steps_stops_a_livelocked_cell(fresh):
    ok(fresh, "%vm reset --max-steps 500")
    code = "async def spin():\n    while True:\n        await checkpoint()\nawait spawn(spin())"
    reply = fresh.execute(code)
    assert reply.ename == "StepLimitExceeded"
    assert "more than 500 steps" in reply.evalue
    # the spinner is cancelled and unwinds at its next step, in the next cell that awaits
    assert fresh.value("[(t.name, t.state) for t in vm.tasks()]") == [("spin", "ready")]
    ok(fresh, "await sleep(1)")
    assert fresh.value("vm.tasks()") == []


def test_a_session_vm_has_a_step_limit_per_cell_that_can_be_lifted(own_kernel):
    # a livelocked cell stops on its own before the journal eats the kernel's memory
    assert "max_steps:       5000000" in ok(own_kernel, "%vm").result["text/plain"]
    code = "async def spin():\n    while True:\n        await checkpoint()\nawait spawn(spin())"
    reply = own_kernel.execute(code, timeout=120)
    assert reply.ename == "StepLimitExceeded"
    assert "more than 5000000 steps in the cell 'cell 2'" in reply.evalue
    assert "`%vm reset --max-steps N` (or `none`)" in reply.evalue
    assert (
        "max_steps:       None" in ok(own_kernel, "%vm reset --max-steps none").result["text/plain"]
    )
    reply = own_kernel.execute("%vm --max-steps 9")
    assert "go with `%vm reset`" in reply.evalue


# -- rich output --------------------------------------------------------------------------------


def test_a_task_in_a_cell_says_where_it_is_paused_as_cell_in_n(fresh):
    ok(fresh, "async def nap():\n    x = 1\n    await sleep(5)")
    ok(fresh, "t = spawn(nap(), name='napper')\nawait sleep(1)")
    cell = fresh.value("get_ipython().compile.format_code_name(nap.__code__.co_filename)")
    assert cell[0] == "Cell" and cell[1].startswith("In[")  # (as a traceback names it)
    assert fresh.value("t.info().where") == f"Cell {cell[1]}:3"
    assert fresh.value("t.info().code") == "await sleep(5)"


def test_tasks_channels_and_journals_show_as_text_and_html_tables(fresh):
    ok(
        fresh,
        "ch = channel(2)\nawait ch.send('a')\nt = spawn(sleep(9), name='napper')\nawait sleep(1)",
    )
    for expression, text in [
        (
            "vm.tasks()",
            "TaskInfo(id=2, name='napper', state='sleeping', waiting_on='until tick 9', "
            "where=None, code=None)",
        ),
        ("ch", "<Channel 1 capacity=2 buffered=1>"),
        ("t", "<Task 2 'napper' sleeping>"),
        ("vm.journal", "<Journal of"),
    ]:
        data = ok(fresh, expression).result
        assert text in data["text/plain"]
        assert data["text/html"].count("<table") >= 1
        assert "0x" not in data["text/plain"] + data["text/html"]


# -- magics ---------------------------------------------------------------------------------------


def test_vm_magic_shows_the_status_and_resets_the_vm(fresh):
    ok(fresh, "await sleep(4)")
    status = ok(fresh, "%vm").result["text/plain"]
    assert "policy:          fifo" in status and "virtual time:    4" in status
    ok(fresh, "%vm reset --seed 7 --policy random")
    assert fresh.value("vm.seed, vm.policy, vm.now, len(vm.tasks())") == (7, "random", 0, 0)
    reply = fresh.execute("%vm reset --policy lifo")
    assert reply.status == "error" and "invalid choice" in reply.evalue
    assert fresh.value("vm.policy") == "random"  # a bad reset keeps the VM


def test_vm_reset_picks_the_workers_and_streams_the_journal_to_a_file(fresh, tmp_path):
    path = tmp_path / "session.db"
    status = ok(fresh, f"%vm reset --workers thread --max-workers 2 --journal {path}")
    text = status.result["text/plain"]
    assert "workers:         thread (at most 2 at once)" in text
    assert f"streamed to:     {path}" in text
    code = textwrap.dedent(
        """\
        @cp.worker.task
        def square(n):
            return n * n

        handle = cp.worker.start("square", 7, cost=3)
        await cp.worker.wait(handle)
        cp.worker.result(handle), now()
        """
    )
    assert fresh.value(code) == (49, 3)
    # the next reset completes the file (workers and max-workers are kept, the file is not)
    text = ok(fresh, "%vm reset").result["text/plain"]
    assert "thread (at most 2 at once)" in text and "streamed to" not in text
    done = subprocess.run(
        [sys.executable, "-m", "counterpoint", "replay", str(path), "--trust"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    # cell 2 (the reset) closed the VM while it ran, so it has no outcome
    assert "replayed 1 of 2 cells on a fresh VM: the same" in done.stdout


def test_vm_reset_in_a_cell_that_awaits_is_refused_and_keeps_the_vm(fresh):
    ok(fresh, "await sleep(3)")
    reply = fresh.execute("%vm reset --seed 4\nawait sleep(1)")
    assert reply.ename == "UsageError" and "put it in a cell of its own" in reply.evalue
    assert fresh.value("vm.seed, vm.now") == (0, 3)


def test_magic_misuse_is_a_usage_error_without_a_traceback(fresh):
    for line in ("%vm --seed 3", "%tasks now", "%journal --last -1", "%replay twice"):
        reply = fresh.execute(line)
        assert (reply.status, reply.ename) == ("error", "UsageError"), line
    assert "--seed: options go with `%vm reset`" in fresh.execute("%vm --seed 3").evalue


def test_tasks_magic_lists_live_tasks_and_what_they_wait_on(fresh):
    assert ok(fresh, "%tasks").result["text/plain"] == "no live tasks"
    ok(fresh, "gate = Event()\nspawn(gate.wait(), name='gatekeeper')\nawait sleep(2)")
    data = ok(fresh, "%tasks").result
    assert data["text/plain"].splitlines() == [
        "task  name          state     waiting on",
        "   2  'gatekeeper'  blocked   for event 1",
    ]
    assert "gatekeeper" in data["text/html"]


def test_tasks_magic_shows_the_cell_line_each_task_is_paused_at(fresh):
    ok(fresh, "async def napper():\n    await sleep(10)")
    ok(fresh, "spawn(napper(), name='napper')\nawait sleep(1)")
    text = ok(fresh, "%tasks").result["text/plain"]
    header, row = text.splitlines()
    assert header.endswith("at") and "napper" in row
    assert row.endswith(":2  await sleep(10)") and "Cell In[" in row


def test_journal_magic_shows_the_last_records_and_saves_the_journal(fresh, tmp_path):
    ok(fresh, "await sleep(2)")
    lines = ok(fresh, "%journal --last 3").result["text/plain"].splitlines()
    assert lines[0].startswith("journal: ") and len(lines) == 4
    assert "cell      cell=2 source='%journal --last 3'" in lines[-1]
    path = tmp_path / "session.db"
    assert "saved" in ok(fresh, f"%journal --save {path}").result["text/plain"]
    saved = cp.Journal.load(path)
    assert [r.data["source"] for r in saved if r.kind == "cell"] == [
        "await sleep(2)",
        "%journal --last 3",
        f"%journal --save {path}",
    ]
    ok(fresh, f"%journal --save {tmp_path / 'session.jsonl'}")
    assert json.loads((tmp_path / "session.jsonl").read_text().splitlines()[0])["kind"] == "cell"
    shown, digest = fresh.value("tail = %journal --last 3\nrepr(tail), vm.journal.digest()")
    assert re.match(f"journal: [0-9]+ records, digest {digest}; the last 3 shown", shown)


def test_journal_magic_hides_step_records_unless_asked_for_all(fresh):
    def kinds(text: str) -> set[str]:  # a record line: "#7  t=0  task 2  send  ..."
        return {line.split()[4] for line in text.splitlines()[1:] if line.startswith("  #")}

    ok(fresh, "await par(sleep(1), sleep(2))")
    shown = ok(fresh, "%journal --last 50").result
    assert "step" not in kinds(shown["text/plain"]) and ">step<" not in shown["text/html"]
    assert {"sleep", "timer", "cell"} <= kinds(shown["text/plain"])
    assert "step records among them hidden (%journal --all shows them)" in shown["text/plain"]
    everything = ok(fresh, "%journal --all --last 50").result
    assert "step" in kinds(everything["text/plain"]) and ">step<" in everything["text/html"]
    assert "hidden" not in everything["text/plain"].splitlines()[0]


def test_magic_help_is_plain_text_without_rest_marks(fresh):
    for name in ("%vm", "%tasks", "%journal", "%replay", "%%explore"):
        text = fresh.value(f"get_ipython().object_inspect_text({name!r})")
        doc = re.sub(r"\x1b\[[0-9;]*m", "", text).split("Docstring:", 1)[1]
        assert doc.split()[0] == name, doc
        for mark in ("``", ":func:", ":class:", ":meth:", "::"):
            assert mark not in doc, (name, mark)


def test_replay_magic_reruns_the_session_in_a_fresh_process(fresh):
    ok(fresh, "async def tick(n):\n    await sleep(n)\n    return now()")
    ok(fresh, "await par(tick(3), tick(1))")
    fresh.execute("await channel().recv()")
    report = ok(fresh, "%replay").result["text/plain"]
    assert report.startswith("replayed 3 cells on a fresh VM: the same")


def test_replay_magic_in_a_cell_that_awaits_replays_the_cells_before_it(fresh):
    ok(fresh, "await sleep(3)")
    ok(fresh, "await sleep(1)\nreport = %replay")
    assert fresh.value("str(report)").startswith("replayed 1 cells on a fresh VM: the same")


def test_replay_magic_before_any_cell_says_there_is_nothing_to_replay(fresh):
    assert ok(fresh, "%replay").result["text/plain"] == (
        "nothing to replay yet: no cell ran on this VM before this one"
    )


def test_replay_magic_reports_a_session_that_does_not_replay(fresh):
    ok(fresh, "import random\nawait sleep(random.randrange(1, 10**9))")
    reply = fresh.execute("%replay")
    assert reply.ename == "NondeterminismError"
    assert "expected" in reply.evalue and "got" in reply.evalue


def test_a_saved_session_replays_stand_alone(fresh, tmp_path):
    ok(
        fresh,
        "ch = channel(1)\nasync def produce():\n    for i in range(3):\n        await ch.send(i)",
    )
    ok(fresh, "spawn(produce())\nprint([await ch.recv() for _ in range(3)])")
    path = tmp_path / "session.db"
    ok(fresh, f"%journal --save {path}")
    done = subprocess.run(
        [sys.executable, "-m", "counterpoint", "replay", str(path), "--trust"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "replayed 2 of 3 cells on a fresh VM: the same" in done.stdout
    assert "cell 3 was still running when the journal was saved" in done.stdout


def test_explore_magic_explores_the_cells_program(fresh):
    code = textwrap.dedent(
        """\
        %%explore
        box = {"n": 0}
        async def add():
            seen = box["n"]
            await checkpoint()
            box["n"] = seen + 1
        await par(add(), add())
        box["n"]
        """
    )
    text = ok(fresh, code).result["text/plain"]
    assert text.startswith("<ExploreReport dfs: 6 schedules (exhaustive)")
    assert "outcomes: 2 x2, 1 x4" in text


def test_an_explore_findings_replay_line_runs_in_the_next_cell(fresh):
    code = textwrap.dedent(
        """\
        %%explore --max 50
        amount = choose([10, 50, 120])
        if amount > 100:
            raise ValueError(f"overdraft of {amount - 100}")
        amount
        """
    )
    report = ok(fresh, code).result["text/plain"]
    replay_line = report.splitlines()[-1].split("replay: ")[1]
    assert replay_line == "cp.VM(schedule='cp1:21', seed=0).run(explored())"
    reply = fresh.execute(replay_line)
    assert (reply.ename, reply.evalue) == ("ValueError", "overdraft of 20")


# -- interrupts ------------------------------------------------------------------------------------


@pytest.fixture
def own_kernel():
    k = Kernel()
    yield k
    k.shutdown()


def interrupt_soon(kernel: Kernel, code: str, after: float = 1.0):
    msg_id = kernel.client.execute(code)
    time.sleep(after)
    kernel.interrupt()
    return kernel.collect(msg_id)


@pytest.mark.parametrize(
    "loop",
    ["pass", "await checkpoint()"],
    ids=["busy in its own code", "livelocked on checkpoints"],
)
def test_interrupt_stops_a_task_stuck_in_a_loop(own_kernel, loop):
    code = (
        f"async def stuck():\n    while True:\n        {loop}\nawait spawn(stuck(), name='stuck')"
    )
    reply = interrupt_soon(own_kernel, code)
    assert reply.status == "error" and reply.ename == "KeyboardInterrupt"
    cancelled = own_kernel.value("[r.data['reason'] for r in vm.journal if r.kind == 'cancel']")
    assert "the cell was interrupted" in cancelled
    assert own_kernel.value("await sleep(1)\n'the next cell works'") == "the next cell works"
    assert own_kernel.value("vm.tasks()") == []  # (a cancelled task unwinds at its next step)


def test_interrupt_names_the_task_it_stopped_and_shows_its_frames(own_kernel):
    code = "async def stuck():\n    while True:\n        pass\nawait spawn(stuck(), name='stuck')"
    reply = interrupt_soon(own_kernel, code)
    assert "while task 2 'stuck' ran" in reply.evalue
    assert "while True:" in reply.traceback_text  # the stuck task's own line, in the cause
    reasons = own_kernel.value(
        "[(r.task, r.data['reason']) for r in vm.journal if r.kind == 'cancel']"
    )
    assert (2, "interrupted by KeyboardInterrupt") in reasons


def test_interrupt_stops_a_cell_looping_in_its_own_code(own_kernel):
    reply = interrupt_soon(own_kernel, "await sleep(1)\nwhile True:\n    pass")
    assert reply.ename == "KeyboardInterrupt"
    assert own_kernel.value("await sleep(1)\nvm.now") == 2


def test_interrupting_a_cell_cancels_the_workers_it_started(own_kernel):
    ok(own_kernel, "%vm reset --workers process")
    ok(own_kernel, "import time\n@cp.worker.task\ndef nap(s):\n    time.sleep(s)\n    return s")
    reply = interrupt_soon(
        own_kernel, "handle = cp.worker.start('nap', 600, cost=5)\nawait cp.worker.wait(handle)"
    )
    assert reply.ename == "KeyboardInterrupt"
    # the interrupt came while the VM waited for the worker at its due tick (5); the next
    # cell passes that tick without waiting ten minutes for it
    assert own_kernel.value("await sleep(10)\nnow(), await cp.worker.wait(handle)") == (15, -2)
    receipts = own_kernel.value("[r.data for r in vm.journal if r.kind == 'receipt']")
    assert receipts == [{"worker": 1, "status": -2}]


def test_replay_stops_before_an_interrupted_cell_and_checks_the_cells_before_it(own_kernel):
    ok(own_kernel, "await sleep(2)")
    interrupt_soon(
        own_kernel,
        "async def spin():\n    while True:\n        await checkpoint()\nawait spawn(spin())",
    )
    ok(own_kernel, "await sleep(1)")
    report = ok(own_kernel, "%replay").result["text/plain"]
    assert report.startswith("replayed 1 of 3 cells on a fresh VM: the same")
    assert report.endswith("(cell 2 was interrupted, and an interrupt cannot be replayed)")


# -- widgets --------------------------------------------------------------------------------------


def test_an_ipywidgets_slider_displays_and_syncs(fresh):
    reply = ok(fresh, "import ipywidgets\nslider = ipywidgets.IntSlider(value=3, max=10)\nslider")
    views = [out for out in reply.outputs if out["msg_type"] in ("execute_result", "display_data")]
    view = views[0]["content"]["data"]["application/vnd.jupyter.widget-view+json"]
    model_id = view["model_id"]
    opened = [out for out in reply.outputs if out["msg_type"] == "comm_open"]
    assert model_id in [out["content"]["comm_id"] for out in opened]
    # the front end moves the slider: the kernel's model follows
    msg = fresh.client.session.msg(
        "comm_msg",
        {
            "comm_id": model_id,
            "data": {"method": "update", "state": {"value": 7}, "buffer_paths": []},
        },
    )
    fresh.client.shell_channel.send(msg)
    deadline = time.monotonic() + 10
    while fresh.value("slider.value") != 7:
        assert time.monotonic() < deadline, "the kernel never saw the update"
        time.sleep(0.1)
    # and the kernel moves it: the front end hears of it
    reply = ok(fresh, "slider.value = 9")
    updates = [
        out["content"]["data"]
        for out in reply.outputs
        if out["msg_type"] == "comm_msg" and out["content"]["comm_id"] == model_id
    ]
    assert {"method": "update", "state": {"value": 9}, "buffer_paths": []} in updates


# -- the IPython extension in a stock kernel ------------------------------------------------------


def test_load_ext_counterpoint_gives_a_stock_kernel_the_session(tmp_path):
    k = Kernel("python3")
    try:
        ok(k, "%load_ext counterpoint")
        assert k.value("await sleep(2)\nvm.now") == 2
        assert ok(k, "%tasks").result["text/plain"] == "no live tasks"
        assert k.execute("await channel().recv()").ename == "Deadlock"
        ok(k, "%unload_ext counterpoint")
        assert k.value("import asyncio\nawait asyncio.sleep(0)\n'asyncio again'") == "asyncio again"
        assert k.value("'run_cell' in vars(get_ipython())") is False  # IPython's own again
        assert k.value("import warnings\nwarnings.showwarning.__module__") == "warnings"
    finally:
        k.shutdown()
