"""The `counterpoint` command: install, nbrun, run --journal and replay (lab is in
test_lab.py, run's report in test_packaging.py)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

import counterpoint as cp

ROOT = Path(__file__).parent.parent


def counterpoint(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "counterpoint", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
        **kwargs,
    )


def test_install_writes_a_kernelspec_for_this_python(tmp_path):
    done = counterpoint("install", "--prefix", tmp_path)
    assert done.returncode == 0, done.stderr
    spec = json.loads((tmp_path / "share/jupyter/kernels/counterpoint/kernel.json").read_text())
    assert spec["argv"] == [sys.executable, "-m", "counterpoint.kernel", "-f", "{connection_file}"]
    assert spec["display_name"] == "Counterpoint (deterministic VM)"
    assert spec["env"] == {"PYTHONHASHSEED": "0"}
    assert spec["language"] == "python" and spec["interrupt_mode"] == "signal"


def test_install_takes_one_place_only(tmp_path):
    done = counterpoint("install", "--user", "--prefix", tmp_path)
    assert done.returncode == 2 and "not allowed with" in done.stderr


def test_run_saves_a_journal_that_replay_reproduces(tmp_path):
    journal = tmp_path / "pipeline.db"
    done = counterpoint("run", ROOT / "examples/pipeline.py", "--journal", journal, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert f"saved to:     {journal}" in done.stdout
    assert cp.Journal.load(journal).meta["program"] == "examples/pipeline.py"
    replayed = counterpoint("replay", journal, "--trust", cwd=ROOT)
    assert replayed.returncode == 0, replayed.stderr
    assert "pipeline.py: the same 193 records" in replayed.stdout
    assert "result [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]" in replayed.stdout


SLEEPER = (
    "import counterpoint as cp\nasync def main():\n    await cp.sleep(3)\n    return 'slept'\n"
)


def test_a_run_journal_names_its_program_relative_to_the_working_directory(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub/sleeper.py").write_text(SLEEPER)
    done = counterpoint("run", "sub/sleeper.py", "--journal", "sleeper.db", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert cp.Journal.load(tmp_path / "sleeper.db").meta["program"] == "sub/sleeper.py"


def test_a_run_journal_replays_from_another_clone_after_the_original_is_gone(tmp_path):
    original, clone = tmp_path / "original", tmp_path / "clone"
    (original / "examples").mkdir(parents=True)
    (original / "examples/sleeper.py").write_text(SLEEPER)
    done = counterpoint("run", "examples/sleeper.py", "--journal", "run.db", cwd=original)
    assert done.returncode == 0, done.stderr
    shutil.copytree(original, clone)
    shutil.rmtree(original)
    replayed = counterpoint("replay", "run.db", "--trust", cwd=clone)
    assert replayed.returncode == 0, replayed.stderr
    assert "replayed examples/sleeper.py: the same" in replayed.stdout
    assert "(result 'slept')" in replayed.stdout


def test_a_run_journal_moved_with_its_program_finds_it_next_to_it_from_any_folder(tmp_path):
    (tmp_path / "made").mkdir()
    (tmp_path / "made/sleeper.py").write_text(SLEEPER)
    done = counterpoint("run", "sleeper.py", "--journal", "run.db", cwd=tmp_path / "made")
    assert done.returncode == 0, done.stderr
    (tmp_path / "made").rename(tmp_path / "moved")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    replayed = counterpoint("replay", tmp_path / "moved/run.db", "--trust", cwd=elsewhere)
    assert replayed.returncode == 0, replayed.stderr
    assert "result 'slept'" in replayed.stdout


def test_replay_says_where_it_looked_for_a_recorded_program_it_cannot_find(tmp_path):
    (tmp_path / "sleeper.py").write_text(SLEEPER)
    assert counterpoint("run", "sleeper.py", "--journal", "run.db", cwd=tmp_path).returncode == 0
    (tmp_path / "sleeper.py").unlink()
    replayed = counterpoint("replay", tmp_path / "run.db", "--trust", cwd=ROOT)
    assert replayed.returncode == 2
    assert "names the program 'sleeper.py', which is neither under the working" in (replayed.stderr)
    assert f"counterpoint replay {tmp_path / 'run.db'} PROGRAM.py" in replayed.stderr


def test_replay_of_a_failing_program_reproduces_its_failure(tmp_path):
    journal = tmp_path / "deadlock.db"
    program = ROOT / "examples/philosophers_deadlock.py"
    counterpoint("run", program, "--journal", journal)
    replayed = counterpoint("replay", journal, program)  # (a program named here: no --trust)
    assert replayed.returncode == 0, replayed.stderr
    assert "(error Deadlock: deadlock at tick 1" in replayed.stdout


def test_replay_reports_a_program_that_changed_since(tmp_path):
    program = tmp_path / "program.py"
    program.write_text("import counterpoint as cp\nasync def main():\n    await cp.sleep(3)\n")
    journal = tmp_path / "program.db"
    counterpoint("run", program, "--journal", journal)
    program.write_text("import counterpoint as cp\nasync def main():\n    await cp.sleep(4)\n")
    replayed = counterpoint("replay", journal, "--trust")
    assert replayed.returncode == 1
    assert "did not replay" in replayed.stderr and "expected" in replayed.stderr


def test_replay_explains_a_journal_with_neither_cells_nor_a_program(tmp_path):
    async def main():
        await cp.sleep(1)

    vm = cp.VM()
    vm.run(main())
    path = vm.journal.save(tmp_path / "plain.db")
    replayed = counterpoint("replay", path)
    assert replayed.returncode == 2
    assert "neither notebook cells nor the name of the program" in replayed.stderr
    assert f"counterpoint replay {path} PROGRAM.py" in replayed.stderr


MARKER_PROGRAM = """\
import pathlib
import counterpoint as cp
pathlib.Path({marker!r}).write_text("ran")
async def main():
    await cp.sleep(1)
"""


def test_replay_of_a_journal_that_names_a_program_shows_it_and_refuses_without_trust(tmp_path):
    marker = tmp_path / "ran.txt"
    program = tmp_path / "evil.py"
    program.write_text(MARKER_PROGRAM.format(marker=str(marker)))
    journal = tmp_path / "from-someone.db"
    assert counterpoint("run", program, "--journal", journal).returncode == 0
    marker.unlink()
    refused = counterpoint("replay", journal)
    assert refused.returncode == 3
    assert f"written by the program {str(program.resolve())!r}" in refused.stderr
    assert "refused: replaying a journal runs code" in refused.stderr
    assert "--trust" in refused.stderr
    assert not marker.exists()  # nothing ran
    trusted = counterpoint("replay", journal, "--trust")
    assert trusted.returncode == 0, trusted.stderr
    assert marker.read_text() == "ran"


def test_replay_against_a_program_named_on_the_command_line_runs_that_one(tmp_path):
    marker = tmp_path / "ran.txt"
    recorded, chosen = tmp_path / "recorded.py", tmp_path / "chosen.py"
    recorded.write_text(MARKER_PROGRAM.format(marker=str(marker)))
    chosen.write_text("import counterpoint as cp\nasync def main():\n    await cp.sleep(1)\n")
    journal = tmp_path / "j.db"
    counterpoint("run", recorded, "--journal", journal)
    marker.unlink()
    replayed = counterpoint("replay", journal, chosen)
    assert replayed.returncode == 0, replayed.stderr
    assert f"replayed {chosen}: the same" in replayed.stdout
    assert not marker.exists()  # the program the file names never ran


def test_replay_of_a_session_journal_shows_its_cells_and_refuses_without_trust(tmp_path):
    from counterpoint._journal import A_SHIFT, CELL

    marker = tmp_path / "ran.txt"
    vm = cp.VM()
    source = f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')"
    vm.journal._rows.append(CELL | 1 << A_SHIFT)
    vm.journal._vals.append(source)
    path = vm.journal.save(tmp_path / "session.db")
    refused = counterpoint("replay", path)
    assert refused.returncode == 3
    assert "holds 1 notebook cell(s); replaying it runs their code" in refused.stderr
    assert "    | pathlib.Path(" in refused.stderr  # the code, shown before anything runs
    assert not marker.exists()
    named = counterpoint("replay", path, tmp_path / "x.py")
    assert named.returncode == 2 and "a PROGRAM cannot replace them" in named.stderr


def test_loading_a_journal_never_runs_what_it_names(tmp_path):
    marker = tmp_path / "ran.txt"
    program = tmp_path / "evil.py"
    program.write_text(MARKER_PROGRAM.format(marker=str(marker)))
    journal = tmp_path / "j.db"
    counterpoint("run", program, "--journal", journal)
    marker.unlink()
    loaded = cp.Journal.load(journal)
    loaded.digest(), loaded.to_records(), loaded.state_at(len(loaded)), list(loaded)
    loaded.save(tmp_path / "copy.jsonl")
    cp.Journal.load(tmp_path / "copy.jsonl")
    assert not marker.exists()  # a journal is data: loading and reading it runs nothing


def test_replay_of_a_corrupt_file_is_a_journal_error(tmp_path):
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not a journal")
    replayed = counterpoint("replay", path)
    assert replayed.returncode == 2 and "JournalError" not in replayed.stderr
    assert str(path) in replayed.stderr


@pytest.mark.slow
def test_nbrun_executes_a_notebook_and_writes_its_outputs(tmp_path):
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("await sleep(4)\nnow()"),
            nbformat.v4.new_code_cell("print(vm.now * 10)"),
        ],
        metadata={"kernelspec": {"name": "counterpoint", "display_name": "Counterpoint"}},
    )
    path = tmp_path / "tiny.ipynb"
    nbformat.write(nb, path)
    done = counterpoint("nbrun", path)
    assert done.returncode == 0, done.stderr
    assert "executed 2 code cells" in done.stdout
    ran = nbformat.read(path, as_version=4)
    assert ran.cells[0].outputs[0]["data"]["text/plain"] == "4"
    assert ran.cells[1].outputs[0]["text"] == "40\n"
    # and again: the same file, byte for byte (no wall-clock timings in it)
    first = path.read_bytes()
    assert counterpoint("nbrun", path).returncode == 0
    assert path.read_bytes() == first


@pytest.mark.slow
def test_nbrun_reports_a_failing_cell_with_status_1(tmp_path):
    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell("await channel().recv()")],
        metadata={"kernelspec": {"name": "counterpoint", "display_name": "Counterpoint"}},
    )
    path = tmp_path / "stuck.ipynb"
    nbformat.write(nb, path)
    done = counterpoint("nbrun", path, "--output", tmp_path / "out.ipynb")
    assert done.returncode == 1
    assert "Deadlock" in done.stderr
    out = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    assert out.cells[0].outputs[0]["ename"] == "Deadlock"


def test_nbrun_of_a_missing_notebook_says_so(tmp_path):
    done = counterpoint("nbrun", tmp_path / "nope.ipynb")
    assert done.returncode == 2 and "no such notebook" in done.stderr
