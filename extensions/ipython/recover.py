"""``%recover PATH``: a notebook session back from its journal file, in a fresh kernel.

A session VM made with ``%vm reset --journal PATH`` streams its journal to PATH,
every cell marker at once (so a kernel killed between cells leaves all its cells).
``%recover PATH`` re-runs the file's cells -- the same sources, in the same order --
on a VM that recovers the file (``cp.VM.recover``: every record checked, worker
outcomes and host events taken from the file), in this shell's namespace, so that
every variable, task, channel, lock and pending worker is back; then the session
goes on with that VM, and new cells append to the same file.

What cannot be re-run is said, not guessed (see docs/recovery.md):

* an **interrupted** cell (where Ctrl-C landed is not in the journal): the cells
  before it are restored, the rest of the file is not; the session goes on in memory
  and the file is left as it was;
* a cell **still running** when the kernel died is re-run to its end, as a killed
  program is (its journaled records are checked, then it goes on live);
* a cell that does not re-make its records (it read a file that changed, a silent
  execution used the VM) raises ``NondeterminismError`` naming the event; the session
  keeps the VM it had, and the file is left as it was.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from counterpoint import Journal, JournalError, NondeterminismError, lowlevel

from .replay import cells_of

KEPT = ("seed", "policy", "max_steps")  # the session options a file's meta says


def recover_session(session: Any, path: Path, **options: Any) -> str:
    """Re-run the cells journaled in ``path`` on a recovering VM bound to ``session``;
    return the report (raise ``JournalError`` / ``ValueError`` for a file that cannot
    be recovered, ``NondeterminismError`` where a cell does not re-make its records)."""
    journal = Journal.load(path)
    cells = cells_of(journal)
    if not cells:
        raise ValueError(
            f"{path} holds no notebook cells: recover a program's file with "
            f"cp.VM.recover(path) or `counterpoint run --recover {path} PROGRAM.py`"
        )
    rerun, end, lost = len(cells), len(journal), ""
    for i, (start, number, source, outcome) in enumerate(cells):
        why = _not_rerun(outcome, source, i == len(cells) - 1)
        if why:
            rerun, end = i, start
            restored = f"cells {number}..{cells[-1][1]} are" if i < len(cells) - 1 else "it is"
            lost = (
                f"cell {number} {why}: {restored} not restored, and the session goes on in "
                f"memory ({path} is left as it was; `%journal --save NEW` keeps this journal)"
            )
            break
    options = {**options}
    options.setdefault("workers", session.options.get("workers", "inline"))
    if end == len(journal):
        vm = type(session.vm).recover(path, **options)
    else:  # (the file cannot be continued: its records go on past what can be re-run)
        expected = lowlevel.prefix(journal, end)
        vm = lowlevel.recovering_vm(type(session.vm), expected, None, **options)
    made_with = {**session.options, "workers": options["workers"]}
    made_with.update((key, value) for key, value in journal.meta.items() if key in KEPT)
    previous = session.swap_vm(vm, path if not lost else None, made_with)
    cells_before = session.cells
    session.cells = cells[0][1] - 1  # (a file made by `%vm reset --journal` starts at 1)
    try:
        _rerun(session, [source for _, _, source, _ in cells[:rerun]])
        vm._stream.flush(True)  # (checks the last records)
        if not lost and not vm.recovery.live:
            raise NondeterminismError(
                f"the cells re-made {vm.recovery.checked:,} of the {len(journal):,} records "
                f"of {path}; the others were not written by cells (a silent execution that "
                f"used the VM?), so the session cannot go on from the file"
            )
    except BaseException:
        session.swap_vm(*previous)
        session.cells = cells_before
        vm.close()  # (the file is left as it was)
        raise
    previous[0].close()
    running = [number for _, number, _, outcome in cells[:rerun] if outcome is None]
    parts = [
        f"recovered {rerun} cell{'s' if rerun != 1 else ''} from {path}: "
        f"{vm.recovery.checked:,} records re-executed and checked, digest "
        f"{vm.journal.digest()}"
    ]
    if running:
        parts.append(
            f"cell {running[-1]} was running when the kernel stopped: it was re-run to its end"
        )
    parts.append(lost or f"new cells append to {path}")
    return "; ".join(parts)


def _not_rerun(outcome: Any, source: str, last: bool) -> str:
    """Why a journaled cell cannot be re-run ("" if it can)."""
    if outcome is not None and outcome[0] == "interrupted":
        return (
            "was interrupted, and an interrupt cannot be re-executed (where it landed is "
            "not journaled)"
        )
    if source.lstrip().startswith(("%vm reset", "%recover")):
        return "replaced the session VM (the file ends there)"
    if outcome is None and not last:
        return "has no outcome in the journal (its VM was replaced while it ran)"
    return ""


def _rerun(session: Any, sources: list[str]) -> None:
    """Run the cells' sources in the shell, showing nothing (their outputs were shown
    when they first ran; a traceback too)."""
    from IPython.utils.capture import capture_output

    shell = session.shell
    session.replaying = True
    shown = shell.showtraceback, shell.showsyntaxerror
    shell.showtraceback = shell.showsyntaxerror = _quiet
    try:
        for source in sources:
            with capture_output():
                shell.run_cell(source, store_history=False)
    finally:
        shell.showtraceback, shell.showsyntaxerror = shown
        session.replaying = False


def _quiet(*args: Any, **kwargs: Any) -> None:
    return None


__all__ = ["JournalError", "recover_session"]
