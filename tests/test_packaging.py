"""The project as a newcomer meets it: the package, the command line, the README."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
JUPYTER_MODULES = {"IPython", "ipykernel", "ipywidgets", "jupyter_client", "notebook", "zmq"}


def run(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, check=False, **kwargs)


def test_importing_counterpoint_imports_no_jupyter_package():
    code = (
        "import sys, counterpoint\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {JUPYTER_MODULES!r}))"
    )
    printed = run(sys.executable, "-c", code)
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout.strip() == "[]"


def test_the_package_lives_in_vm_and_is_imported_as_counterpoint():
    import counterpoint

    assert Path(counterpoint.__file__).resolve().parent == (ROOT / "vm").resolve()


def test_counterpoint_run_prints_result_virtual_time_and_digest():
    printed = run(sys.executable, "-m", "counterpoint", "run", str(ROOT / "examples/pipeline.py"))
    assert printed.returncode == 0, printed.stderr
    assert "result:       [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]" in printed.stdout
    assert re.search(r"virtual time: 12 ticks", printed.stdout)
    assert re.search(r"digest [0-9a-f]{64}", printed.stdout)


def test_counterpoint_run_reports_a_failing_program_with_exit_status_1():
    printed = run(
        sys.executable, "-m", "counterpoint", "run", str(ROOT / "examples/philosophers_deadlock.py")
    )
    assert printed.returncode == 1
    assert "counterpoint.Deadlock" in printed.stdout
    assert "task 2 'philosopher-0' waits to acquire lock 2" in printed.stdout
    assert "_vm.py" not in printed.stdout  # no VM internals in the report


def test_counterpoint_run_explains_a_file_without_main(tmp_path):
    program = tmp_path / "nomain.py"
    program.write_text("x = 1\n")
    printed = run(sys.executable, "-m", "counterpoint", "run", str(program))
    assert printed.returncode != 0
    assert "defines no `main`" in printed.stderr


def test_ci_runs_exactly_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    block = readme.split("<!-- test-command -->", 1)[1].split("```")[1]
    command = block.removeprefix("bash").strip()
    assert "ruff check" in command and "pytest" in command and "python3 -m venv" in command
    assert "<!-- test-command -->" in (ROOT / ".ci/run").read_text()


def test_readme_quick_start_has_exactly_two_commands():
    quick_start = (ROOT / "README.md").read_text().split("## Quick start", 1)[1].split("\n## ")[0]
    blocks = re.findall(r"```bash\n(.*?)```", quick_start, flags=re.S)
    assert len(blocks) == 2
    assert all(len(block.strip().splitlines()) == 1 for block in blocks)
    assert "counterpoint lab" in blocks[0]  # the main job: JupyterLab with the kernel
    assert "pytest" in blocks[1]


@pytest.mark.slow
def test_a_built_wheel_contains_the_package_and_the_console_script(tmp_path):
    built = run(
        sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("counterpoint-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "counterpoint/__init__.py" in names and "counterpoint/_vm.py" in names
    assert "counterpoint/kernel/kernel.py" in names and "counterpoint/ipython/session.py" in names
    assert "counterpoint/widgets/static.py" in names  # (cp.widgets)
    for module in ("common", "timeline", "timetravel", "scheduler", "explore"):  # no npm build
        assert f"counterpoint/widgets/js/{module}.js" in names
    assert "counterpoint/widgets/js/widgets.css" in names
    # the server extension is enabled by the wheel's config (kernel websockets, no delay)
    assert any(n.endswith("etc/jupyter/jupyter_server_config.d/counterpoint.json") for n in names)
    # the kernelspec is wheel data: a plain `pip install` makes the kernel visible
    spec = next(n for n in names if n.endswith("share/jupyter/kernels/counterpoint/kernel.json"))
    assert spec.startswith("counterpoint-0.1.0.data/data/")
    assert '"counterpoint.kernel"' in zipfile.ZipFile(wheel).read(spec).decode()
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    scripts = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "counterpoint = counterpoint.cli:main" in scripts
    # the pytest plugin (@pytest.mark.counterpoint_explore) is found through its entry point
    assert "[pytest11]\ncounterpoint = counterpoint.pytest_plugin" in scripts
    assert "counterpoint/pytest_plugin.py" in names
