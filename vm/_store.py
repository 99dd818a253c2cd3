"""Journal files: SQLite (the default store) and JSON lines.

SQLite schema, version 1 (see ``docs/journal.md``)::

    meta(key TEXT PRIMARY KEY, value TEXT)     -- format, schema_version, seed, policy,
                                               -- complete, records, digest
    chunks(first INTEGER PRIMARY KEY,          -- index of the chunk's first record
           count INTEGER, rows BLOB, rows_format TEXT,
           vals TEXT, vals_format TEXT, marks TEXT)
    records(event_id INTEGER PRIMARY KEY, tick INTEGER, lane INTEGER,
            task INTEGER, kind TEXT, data TEXT)  -- + indexes on task, kind, tick

``chunks`` hold the journal's own compact columns (packed rows as little-endian
int64, values as JSON), a batch per row: that is what a streaming VM writes as
it runs (each batch one transaction, so a killed process leaves a loadable
prefix) and what :func:`load` reads.  ``records`` is the same journal as one
row per record with canonical JSON data, for SQL queries; it is written when the
journal is complete (``save`` and ``vm.close()``), with the digest in ``meta``.

Loading never executes code: only SQLite and JSON are parsed.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
from array import array
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._errors import JournalError
from ._journal import (
    KIND_CODES,
    KIND_NAMES,
    _encode_data,
    _pack,
)

if TYPE_CHECKING:
    from ._journal import Journal

FORMAT = "counterpoint-journal"
SCHEMA_VERSION = 1
CHUNK = 65536  # a streaming VM writes a chunk once this many records are pending
CHECKPOINT_EVERY = 16  # chunks between WAL checkpoints (about a million records)
_SQLITE_MAGIC = b"SQLite format 3\x00"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS chunks (
    first INTEGER PRIMARY KEY, count INTEGER NOT NULL,
    rows BLOB NOT NULL, rows_format TEXT NOT NULL,
    vals TEXT NOT NULL, vals_format TEXT NOT NULL, marks TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    event_id INTEGER PRIMARY KEY, tick INTEGER NOT NULL, lane INTEGER NOT NULL,
    task INTEGER NOT NULL, kind TEXT NOT NULL, data TEXT NOT NULL);
"""
_INDEXES = """
CREATE INDEX IF NOT EXISTS records_by_task ON records(task, event_id);
CREATE INDEX IF NOT EXISTS records_by_kind ON records(kind, event_id);
CREATE INDEX IF NOT EXISTS records_by_tick ON records(tick, event_id);
"""


# -- encoding of the value column ---------------------------------------------------------


def _tagged(value: Any) -> Any:
    """JSON-safe form of a value that plain json.dumps refused (ints beyond the
    process's int->str limit): every int as is or ``{"$int": hex}``, every dict
    as ``{"$dict": [[k, v], ...]}`` so that no user dict reads as a tag."""
    cls = type(value)
    if cls is int:
        return value if value.bit_length() < 10_000 else {"$int": format(value, "x")}
    if cls is list or cls is tuple:
        return [_tagged(item) for item in value]
    if cls is dict:
        return {"$dict": [[_tagged(k), _tagged(v)] for k, v in value.items()]}
    return value


def _untagged(value: Any) -> Any:
    cls = type(value)
    if cls is list:
        return [_untagged(item) for item in value]
    if cls is dict:
        ((tag, body),) = value.items()
        if tag == "$int":
            return int(body, 16)
        return {_untagged(k): _untagged(v) for k, v in body}
    return value


_plain_json = json.JSONEncoder(allow_nan=False).encode


def _encode_vals(values: list) -> tuple[str, str]:
    try:
        return _plain_json(values), "json"
    except ValueError:  # an int too long for str(); see _tagged
        return json.dumps(_tagged(values)), "tagged"


def _decode_vals(text: str, form: str) -> list:
    if form == "json":
        return _parse_line(text)  # (ints of any size, whatever the process's limit)
    if form == "tagged":
        return _untagged(_parse_line(text))
    raise ValueError(f"unknown value format {form!r}")


def _encode_rows(rows: list[int]) -> tuple[bytes, str]:
    packed = array("q", rows)  # rows fit: ids are bounded (MAX_TASK_ID, MAX_OBJECT_ID)
    if sys.byteorder != "little":
        packed.byteswap()
    return packed.tobytes(), "i64le"


def _decode_rows(blob: bytes, form: str) -> list[int]:
    if form != "i64le":
        raise ValueError(f"unknown row format {form!r}")
    rows = array("q")
    rows.frombytes(blob)
    if sys.byteorder != "little":
        rows.byteswap()
    return rows.tolist()


# -- writing ---------------------------------------------------------------------------------


def _connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None)  # explicit transactions
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")  # survives a killed process
    # checkpoints (the only fsyncs) every CHECKPOINT_EVERY chunks, not every 4 MB
    connection.execute("PRAGMA wal_autocheckpoint=0")
    return connection


class Writer:
    """Writes a journal to an SQLite file in chunks: for ``save`` and streaming VMs."""

    def __init__(self, journal: Journal, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.journal = journal
        self.written = 0  # records already in the file
        self.chunks = 0
        self.values_written = 0
        try:
            for stale in (self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm")):
                stale.unlink(missing_ok=True)
            self.connection = _connect(self.path)
            self.connection.executescript(_SCHEMA)
            meta = {"format": FORMAT, "schema_version": str(SCHEMA_VERSION), "complete": "0"}
            meta.update({key: json.dumps(value) for key, value in journal.meta.items()})
            self._set_meta(meta)
        except (OSError, sqlite3.Error) as error:
            raise JournalError(f"{self.path}: cannot write the journal: {error}") from error

    def _set_meta(self, items: dict[str, str]) -> None:
        self.connection.execute("BEGIN")
        self.connection.executemany(
            "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", list(items.items())
        )
        self.connection.execute("COMMIT")

    def flush(self, force: bool = False) -> None:  # (also a VM slice hook)
        """Write the records added since the last flush as one chunk, if there are at
        least ``CHUNK`` of them (any number if ``force``).  One transaction each."""
        journal = self.journal
        first, end = self.written, len(journal._rows)
        if end - first < (1 if force else CHUNK):
            return
        values_end = len(journal._vals)
        blob, rows_format = _encode_rows(journal._rows[first:end])
        text, vals_format = _encode_vals(journal._vals[self.values_written : values_end])
        marks = json.dumps(journal._marks_between(first, end))
        try:
            self.connection.execute("BEGIN")
            self.connection.execute(
                "INSERT INTO chunks VALUES (?, ?, ?, ?, ?, ?, ?)",
                (first, end - first, blob, rows_format, text, vals_format, marks),
            )
            self.connection.execute("COMMIT")
            self.chunks += 1
            if self.chunks % CHECKPOINT_EVERY == 0:
                self.connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error as error:
            raise JournalError(f"{self.path}: cannot write the journal: {error}") from error
        self.written = end
        self.values_written = values_end

    def finish(self) -> None:
        """Write everything, then the ``records`` table and its indexes, and close."""
        self.flush(force=True)
        journal = self.journal
        rows = (
            (index + 1, tick, 0, task, KIND_NAMES[kind], _encode_data(kind, a, b, tick))
            for index, tick, task, kind, a, b in journal._iter_raw()
        )
        try:
            self.connection.execute("BEGIN")
            self.connection.execute("DELETE FROM records")
            self.connection.executemany("INSERT INTO records VALUES (?, ?, ?, ?, ?, ?)", rows)
            self.connection.execute("COMMIT")
            self.connection.executescript(_INDEXES)
            self._set_meta(
                {
                    **{key: json.dumps(value) for key, value in journal.meta.items()},
                    "complete": "1",
                    "records": str(len(journal)),
                    "digest": journal.digest() if len(journal) else "",
                }
            )
            self.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self.connection.close()
        except sqlite3.Error as error:
            raise JournalError(f"{self.path}: cannot write the journal: {error}") from error


def save(journal: Journal, path: str | os.PathLike) -> Path:
    """Write ``journal`` to an SQLite file (replacing it) and return the path."""
    writer = Writer(journal, path)
    writer.finish()
    return writer.path


class ClosedColumn:
    """What a VM's record columns become when ``vm.close()`` completes its journal file:
    writing a record raises (the file is finished), reading the count still works."""

    __slots__ = ("column", "path")

    def __init__(self, column: list, path: Path) -> None:
        self.column = column
        self.path = path

    def __len__(self) -> int:
        return len(self.column)

    def append(self, item: Any) -> None:
        raise closed_error(self.path, "this action")


def closed_error(path: Path, what: str) -> JournalError:
    return JournalError(
        f"{what} would journal records after vm.close() finished this VM's journal file "
        f"{path}, which cannot take more (its records, count and digest are final), so they "
        f"would be lost; make a new cp.VM(journal=...) to run more"
    )


# -- JSON lines --------------------------------------------------------------------------------


def export_jsonl(journal: Journal, path: str | os.PathLike) -> Path:
    """Write the canonical JSON line of every record; ``sha256sum`` of the file is the digest."""
    out = Path(path)
    try:
        with out.open("w", encoding="ascii", newline="\n") as file:
            for line in journal.iter_lines():
                file.write(line)
                file.write("\n")
    except OSError as error:
        raise JournalError(f"{out}: cannot write the journal: {error}") from error
    return out


def _parse_line(line: str) -> Any:
    try:
        return json.loads(line)
    except ValueError:  # maybe an int beyond the process's int->str limit
        return json.loads(line, parse_int=lambda digits: int(Decimal(digits)))


def _load_jsonl(path: Path, journal: Journal) -> None:
    tick = 0
    with path.open("rb") as file:
        for number, raw in enumerate(file, 1):
            if not raw.strip():
                continue
            try:
                record = _parse_line(raw.decode("utf-8"))
                if record["event_id"] != number or record["lane"] != 0:
                    raise ValueError(f"expected event_id {number} and lane 0")
                kind = KIND_CODES[record["kind"]]
                if type(record["tick"]) is not int or record["tick"] < tick:
                    raise ValueError("ticks must be ints that never decrease")
                tick = record["tick"]
                row, value = _pack(kind, record["task"], record["data"])
            except (ValueError, KeyError, TypeError, AttributeError) as error:  # + bad UTF-8
                raise JournalError(f"{path}: line {number} is not a journal record: {error}")
            journal._append_loaded(row, value, tick)


# -- loading -----------------------------------------------------------------------------------


def load(path: str | os.PathLike, journal: Journal) -> Journal:
    """Fill ``journal`` (empty) from a file; raise JournalError naming the file and problem."""
    path = Path(path)
    try:
        with path.open("rb") as file:
            head = file.read(len(_SQLITE_MAGIC))
    except FileNotFoundError:
        raise JournalError(f"{path}: no such journal file") from None
    except OSError as error:
        raise JournalError(f"{path}: cannot read the journal: {error}") from error
    if head == _SQLITE_MAGIC:
        _load_sqlite(path, journal)
    elif head[:1] in (b"{", b"") and path.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        _load_jsonl(path, journal)
    else:
        raise JournalError(
            f"{path}: not a Counterpoint journal (neither an SQLite journal nor JSON lines "
            f"ending in .jsonl)"
        )
    return journal


def _load_sqlite(path: Path, journal: Journal) -> None:
    try:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as error:
        raise JournalError(f"{path}: cannot open the journal: {error}") from error
    try:
        try:
            meta = dict(connection.execute("SELECT key, value FROM meta"))
        except sqlite3.OperationalError:
            raise JournalError(f"{path}: not a Counterpoint journal (it has no meta table)")
        problems = [row[0] for row in connection.execute("PRAGMA quick_check")]
        if problems != ["ok"]:
            raise JournalError(f"{path}: the journal file is corrupted ({'; '.join(problems[:3])})")
        if meta.get("format") != FORMAT:
            raise JournalError(
                f"{path}: not a Counterpoint journal (format {meta.get('format')!r})"
            )
        version = meta.get("schema_version")
        if version != str(SCHEMA_VERSION):
            raise JournalError(
                f"{path}: journal schema version {version}, but this version of Counterpoint "
                f"reads version {SCHEMA_VERSION}"
            )
        for key, value in meta.items():
            if key not in ("format", "schema_version", "complete", "records", "digest"):
                try:
                    journal.meta[key] = json.loads(value)
                except ValueError:
                    raise JournalError(f"{path}: the journal's meta value {key!r} is corrupted")
        expected = 0
        for first, count, blob, rows_format, text, vals_format, marks in connection.execute(
            "SELECT first, count, rows, rows_format, vals, vals_format, marks "
            "FROM chunks ORDER BY first"
        ):
            if type(first) is not int or type(count) is not int or count < 1:
                raise JournalError(f"{path}: a chunk's position is corrupted")
            if first != expected:
                raise JournalError(f"{path}: records {expected + 1}..{first} are missing")
            try:
                rows = _decode_rows(blob, rows_format)
                values = _decode_vals(text, vals_format)
                ticks = json.loads(marks)
                if len(rows) != count or not ticks or ticks[0][0] != first:
                    raise ValueError("its sizes do not add up")
                journal._extend_loaded(rows, values, ticks)
            except (ValueError, TypeError, IndexError, KeyError) as error:
                raise JournalError(
                    f"{path}: the chunk of records {first + 1}..{first + count} is corrupted "
                    f"({error})"
                ) from None
            expected = first + count
        if meta.get("complete") == "1":
            if meta.get("records") != str(len(journal)):
                raise JournalError(
                    f"{path}: the journal says it has {meta.get('records')} records, "
                    f"but {len(journal)} are stored"
                )
            if len(journal) and meta.get("digest") != journal.digest():
                raise JournalError(f"{path}: the records do not match the journal's digest")
    except sqlite3.DatabaseError as error:
        raise JournalError(f"{path}: the journal file is corrupted ({error})") from error
    finally:
        connection.close()
