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
import math
import os
import re
import sqlite3
import stat
import sys
from array import array
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._errors import JournalError
from ._journal import (
    _INT_LIMIT,
    _KIND_MASK,
    A_SHIFT,
    KIND_CODES,
    KIND_NAMES,
    MAX_INT_DIGITS,
    SLEEP,
    _check_plain,
    _jv,
)
from ._kinds import decode, encode, pack

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
            # (hex digits: 3,572 at most for 4,300 decimal ones; the sign takes one more)
            number = int(body, 16) if type(body) is str and len(body) <= 3573 else _INT_LIMIT
            if -_INT_LIMIT < number < _INT_LIMIT:
                return number
            raise ValueError(f"an int of more than {MAX_INT_DIGITS:,} digits")
        if tag != "$dict" or type(body) is not list:
            raise ValueError(f"{tag!r} is not a tag of the value column")
        out = {}
        for pair in body:
            if type(pair) is not list or len(pair) != 2 or type(pair[0]) is not str:
                raise ValueError("a tagged dict holds [str key, value] pairs")
            out[pair[0]] = _untagged(pair[1])
        return out
    return value


_plain_json = json.JSONEncoder(allow_nan=False).encode


def _encode_vals(values: list) -> tuple[str, str]:
    try:
        return _plain_json(values), "json"
    except ValueError:  # an int too long for str(); see _tagged
        return json.dumps(_tagged(values)), "tagged"


def _decode_vals(text: str, form: str) -> list:
    if form == "json":
        values = _parse_json(text)
    elif form == "tagged":
        values = _untagged(_parse_json(text))
    else:
        raise ValueError(f"unknown value format {form!r}")
    if type(values) is not list:
        raise ValueError("the values are not a list")
    return values


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


def _meta_items(journal: Journal, path: Path) -> dict[str, str]:
    """``journal.meta`` as meta rows (JSON text); JournalError for a value a file cannot hold."""
    items = {}
    for key, value in journal.meta.items():
        try:
            if type(key) is not str:
                raise ValueError("meta keys are strs")
            _check_plain(value, f"meta value {key!r}")
            items[key] = _jv(value)
        except (ValueError, TypeError, RecursionError) as error:
            raise JournalError(f"{path}: cannot write the journal: {error}") from None
    return items


def _check_replaceable(path: Path, database: bool = True) -> None:
    """Refuse to replace what is not a file of its own or not a journal: a directory, a
    pipe, a socket, a device (``/dev/null`` ...) or (``database``) a file that is not an
    SQLite database.  A symlink is replaced (not what it points to)."""
    try:
        info = os.lstat(path)
    except (OSError, ValueError):
        return  # (missing; or an error that writing reports)
    if stat.S_ISLNK(info.st_mode) or (stat.S_ISREG(info.st_mode) and not info.st_size):
        return
    if stat.S_ISDIR(info.st_mode):
        what = "a directory"
    elif not stat.S_ISREG(info.st_mode):
        what = "a pipe, socket or device, not a file of its own"
    elif not database:
        return
    else:
        try:
            with open(path, "rb") as file:
                if file.read(len(_SQLITE_MAGIC)) == _SQLITE_MAGIC:
                    return
        except OSError:
            return
        what = f"a file of {info.st_size:,} bytes that is not an SQLite journal"
    raise JournalError(
        f"{path}: cannot write the journal: it is {what}; refusing to replace it "
        f"(remove it, or choose another path)"
    )


class Writer:
    """Writes a journal to an SQLite file in chunks: for ``save`` and streaming VMs."""

    def __init__(self, journal: Journal, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.journal = journal
        self.written = 0  # records already in the file
        self.chunks = 0
        self.values_written = 0
        self.connection: sqlite3.Connection | None = None
        meta = {"format": FORMAT, "schema_version": str(SCHEMA_VERSION), "complete": "0"}
        meta.update(_meta_items(journal, self.path))
        try:
            for stale in (self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm")):
                _check_replaceable(stale, stale is self.path)
                stale.unlink(missing_ok=True)
            self.connection = _connect(self.path)
            self.connection.executescript(_SCHEMA)
            self._set_meta(meta)
        except (OSError, ValueError, sqlite3.Error) as error:  # (ValueError: NUL in the name)
            self._fail(error)

    def _fail(self, error: BaseException) -> None:
        """Close the file and raise a JournalError saying why it could not be written."""
        connection, self.connection = self.connection, None
        if connection is not None:
            try:
                connection.close()
            except sqlite3.Error:
                pass
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
        if self.connection is None:
            raise JournalError(f"{self.path}: the journal file is closed; nothing more fits")
        journal._seal()
        values_end = len(journal._vals)
        try:
            blob, rows_format = _encode_rows(journal._rows[first:end])
            text, vals_format = _encode_vals(journal._vals[self.values_written : values_end])
            marks = json.dumps(journal._marks_between(first, end))
            self.connection.execute("BEGIN")
            self.connection.execute(
                "INSERT INTO chunks VALUES (?, ?, ?, ?, ?, ?, ?)",
                (first, end - first, blob, rows_format, text, vals_format, marks),
            )
            self.connection.execute("COMMIT")
            self.chunks += 1
            if self.chunks % CHECKPOINT_EVERY == 0:
                self.connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except (sqlite3.Error, OverflowError, ValueError) as error:
            self._fail(error)
        self.written = end
        self.values_written = values_end

    def finish(self) -> None:
        """Write everything, then the ``records`` table and its indexes, and close."""
        self.flush(force=True)
        journal = self.journal
        rows = (
            (index + 1, tick, 0, task, KIND_NAMES[kind], encode(kind, a, b, tick))
            for index, tick, task, kind, a, b in journal._iter_raw()
        )
        meta = _meta_items(journal, self.path)
        try:
            self.connection.execute("BEGIN")
            self.connection.execute("DELETE FROM records")
            self.connection.executemany("INSERT INTO records VALUES (?, ?, ?, ?, ?, ?)", rows)
            self.connection.execute("COMMIT")
            self.connection.executescript(_INDEXES)
            self._set_meta(
                {
                    **meta,
                    "complete": "1",
                    "records": str(len(journal)),
                    "digest": journal.digest() if len(journal) else "",
                }
            )
            self.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self.connection.close()
        except (sqlite3.Error, OverflowError, ValueError) as error:
            self._fail(error)
        self.connection = None


def save(journal: Journal, path: str | os.PathLike) -> Path:
    """Write ``journal`` to an SQLite file (replacing an older one) and return the path."""
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
    """Write the canonical JSON line of every record; ``sha256sum`` of the file is the digest.

    An empty journal is refused: an empty file is what a write that never happened
    leaves, so loading one is an error (``save`` keeps empty journals)."""
    out = Path(path)
    if not len(journal):
        raise JournalError(
            f"{out}: the journal has no records, and an empty JSON-lines file does not load "
            f"(it cannot be told from a file whose writing failed); save() it to SQLite instead"
        )
    try:
        with out.open("w", encoding="ascii", newline="\n") as file:
            for line in journal.iter_lines():
                file.write(line)
                file.write("\n")
    except (OSError, ValueError) as error:  # (ValueError: a NUL in the name)
        raise JournalError(f"{out}: cannot write the journal: {error}") from error
    return out


_LONG_DIGITS = re.compile(r"[0-9]{%d}" % (MAX_INT_DIGITS + 1))


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a finite number; a journal holds finite floats only")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:40]} is beyond a float's range; a journal holds finite floats")
    return value


def _bounded_int(text: str) -> int:
    digits = len(text) - (text[0] == "-")
    if digits > MAX_INT_DIGITS:
        raise ValueError(
            f"an int of {digits:,} digits; the ints of a journal have at most "
            f"{MAX_INT_DIGITS:,} (see docs/journal.md)"
        )
    try:
        return int(text)
    except ValueError:  # longer than this process's int<->str limit allows
        return int(Decimal(text))


# ints at C speed (C refuses any longer than the process's int<->str limit) ...
_FAST_JSON = json.JSONDecoder(parse_float=_finite_float, parse_constant=_no_constant).decode
# ... or one by one, bounded
_BOUNDED_JSON = json.JSONDecoder(
    parse_int=_bounded_int, parse_float=_finite_float, parse_constant=_no_constant
).decode
_SCAN = json.JSONDecoder(parse_float=_finite_float, parse_constant=_no_constant).scan_once


def _parse_record(line: str) -> Any:
    """``_parse_json`` of one JSON line, faster for the common case: a line that is
    one JSON object with no whitespace around it (as ``export_jsonl`` writes them)."""
    if line[-1:] == "}" and line[:1] == "{" and 0 < sys.get_int_max_str_digits() <= MAX_INT_DIGITS:
        try:
            value, end = _SCAN(line, 0)
        except (StopIteration, ValueError, RecursionError):
            pass  # (let _parse_json say what is wrong)
        else:
            if end == len(line):
                return value
    return _parse_json(line)


def _parse_json(text: str) -> Any:
    """``json.loads`` for journal files: floats are finite and ints have at most
    ``MAX_INT_DIGITS`` digits (a longer one is refused before it is converted, which
    would take time quadratic in its length), whatever the process's int<->str limit.
    Raises ValueError (or TypeError) if the text is not such JSON."""
    try:
        limit = sys.get_int_max_str_digits()
        if (0 < limit <= MAX_INT_DIGITS) or not _LONG_DIGITS.search(text):
            try:
                return _FAST_JSON(text)
            except json.JSONDecodeError:
                raise
            except ValueError:  # an int longer than the limit: convert ints one by one
                pass
        return _BOUNDED_JSON(text)
    except RecursionError:
        raise ValueError("it is nested too deeply") from None


_FIELDS = frozenset({"data", "event_id", "kind", "lane", "task", "tick"})


def _load_jsonl(path: Path, file: Any, journal: Journal) -> None:
    number = 0
    for number, raw in enumerate(file, 1):
        if not raw.strip():
            continue
        try:
            record = _parse_record(raw.decode("utf-8").rstrip("\r\n"))
            if type(record) is not dict or record.keys() != _FIELDS:
                raise ValueError(
                    f"a record is an object with the keys {', '.join(sorted(_FIELDS))}"
                )
            event_id, lane, tick = record["event_id"], record["lane"], record["tick"]
            if type(event_id) is not int or event_id != number:
                raise ValueError(f"its event_id is {event_id!r}, not {number} (its line number)")
            if type(lane) is not int or lane != 0:
                raise ValueError(f"its lane is {lane!r}, not 0")
            kind_name, data = record["kind"], record["data"]
            if type(kind_name) is not str or kind_name not in KIND_CODES:
                raise ValueError(f"{kind_name!r} is not a record kind")
            if type(data) is not dict:
                raise ValueError("its data is not an object")
            if type(tick) is not int or tick < journal._mark_tick[-1]:
                raise ValueError(f"tick {tick!r}: ticks are ints that never decrease")
            row, value = pack(KIND_CODES[kind_name], record["task"], data)
            journal._append_loaded(row, value, tick)
            # what the record says is exactly what it decodes to: nothing dropped or
            # added (and no 2.0 or true standing for a sleep's 2 ticks)
            kind = row & _KIND_MASK
            if decode(kind, row >> A_SHIFT, value, tick) != data or (
                kind == SLEEP and type(data["ticks"]) is not int
            ):
                raise ValueError(f"its data is not what a VM writes for a {kind_name} record")
        except KeyError as error:
            problem = f"its data has no {error}"
        except (ValueError, TypeError, AttributeError, RecursionError) as error:  # + bad UTF-8
            problem = str(error)
        else:
            continue
        hint = "" if raw.endswith(b"\n") else " (the file ends in the middle of a line)"
        raise JournalError(f"{path}: line {number} is not a journal record: {problem}{hint}")
    if not len(journal):
        raise JournalError(f"{path}: the file has no records ({number} blank lines)")


# -- loading -----------------------------------------------------------------------------------

_JSONL_SUFFIXES = (".jsonl", ".json", ".ndjson")


def load(path: str | os.PathLike, journal: Journal) -> Journal:
    """Fill ``journal`` (empty) from a file; raise JournalError naming the file and problem."""
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"a journal file is a path (str or os.PathLike), not {path!r}")
    path = Path(path)
    try:
        # O_NONBLOCK: a FIFO (or a device) opens at once, to be refused, instead of hanging
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        raise JournalError(f"{path}: no such journal file") from None
    except IsADirectoryError:
        raise JournalError(f"{path}: is a directory, not a journal file") from None
    except (OSError, ValueError) as error:  # permissions, symlink loops, NUL in the name ...
        raise JournalError(f"{path}: cannot read the journal: {error}") from error
    try:
        info = os.fstat(fd)
    except OSError as error:
        os.close(fd)
        raise JournalError(f"{path}: cannot read the journal: {error}") from error
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        what = "a directory" if stat.S_ISDIR(info.st_mode) else "a pipe, socket or device"
        raise JournalError(f"{path}: is {what}, not a journal file")
    if info.st_size == 0:
        os.close(fd)
        raise JournalError(
            f"{path}: the file is empty (0 bytes), so it is not a Counterpoint journal: "
            f"every journal file has content (an SQLite journal its header, a JSON-lines "
            f"journal at least one record). Was its writing cut short?"
        )
    with open(fd, "rb", closefd=True) as file:
        try:
            os.set_blocking(fd, True)
            head = file.read(100)
        except OSError as error:
            raise JournalError(f"{path}: cannot read the journal: {error}") from error
        if head.startswith(_SQLITE_MAGIC):
            file.close()
            _load_sqlite(path, head, journal)
        elif head.lstrip()[:1] in (b"{", b"") and path.suffix.lower() in _JSONL_SUFFIXES:
            file.seek(0)
            try:
                _load_jsonl(path, file, journal)
            except OSError as error:
                raise JournalError(f"{path}: cannot read the journal: {error}") from error
        else:
            raise JournalError(
                f"{path}: not a Counterpoint journal (neither an SQLite journal nor JSON lines "
                f"ending in .jsonl)"
            )
    return journal


def _check_meta(key: str, value: Any) -> None:
    """Raise ValueError unless ``value`` is a meta value a VM can be made with again."""
    _check_plain(value, f"meta value {key!r}")
    if key == "seed":
        ok = type(value) is int
    elif key == "policy":
        ok = value in ("fifo", "random")
    elif key == "max_workers":
        ok = value is None or (type(value) is int and value >= 0)
    elif key == "max_steps":
        ok = value is None or (type(value) is int and value >= 1)
    elif key == "program":
        ok = type(value) is str
    elif key == "schedule":
        from ._schedule import check_schedule

        try:
            ok = type(value) is str and check_schedule(value) is None
        except (ValueError, TypeError, IndexError) as error:
            raise ValueError(f"its schedule is not one ({error})") from None
    else:
        return
    if not ok:
        raise ValueError(f"{value!r} is not a {key} a VM can be made with")


def _wal_mode(head: bytes) -> bool:
    """The SQLite header says the database is in WAL mode (file format 2)."""
    return len(head) >= 20 and head[18] == 2 and head[19] == 2


def _load_sqlite(path: Path, head: bytes, journal: Journal) -> None:
    try:  # (before connecting: SQLite creates an empty -wal file even to read)
        wal_missing = Path(f"{path}-wal").stat().st_size == 0
    except OSError:
        wal_missing = True
    try:
        uri = path.absolute().as_uri() + "?mode=ro"  # (percent-encodes '?', '#', '%' ...)
        connection = sqlite3.connect(uri, uri=True)
    except (sqlite3.Error, ValueError) as error:
        raise JournalError(f"{path}: cannot open the journal: {error}") from error
    try:
        tables = dict(
            connection.execute(
                "SELECT lower(name), type FROM sqlite_master WHERE lower(name) IN "
                "('meta', 'chunks')"
            )
        )
        if "meta" not in tables:
            if _wal_mode(head) and wal_missing:
                raise JournalError(
                    f"{path}: this looks like a journal database copied without its -wal file "
                    f"(it is in WAL mode, has no tables, and there is no {path.name}-wal beside "
                    f"it: a running VM keeps its newest records there); copy {path.name}-wal "
                    f"too, or close the VM (vm.close()) before copying"
                ) from None
            raise JournalError(f"{path}: not a Counterpoint journal (it has no meta table)")
        for name, kind in sorted(tables.items()):  # (reading a view or a generated column
            hidden = connection.execute(f"PRAGMA table_xinfo({name})").fetchall()  # runs SQL)
            if kind != "table" or any(column[-1] for column in hidden):
                raise JournalError(
                    f"{path}: not a Counterpoint journal (its {name} is not a plain table)"
                )
        try:
            meta = dict(connection.execute("SELECT key, value FROM meta"))
        except sqlite3.OperationalError as error:
            if "locked" in str(error) or "busy" in str(error):
                raise
            raise JournalError(
                f"{path}: not a Counterpoint journal (its meta table is another's: {error})"
            ) from None
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
                    if type(key) is not str or type(value) is not str:
                        raise ValueError("meta keys and values are text")
                    journal.meta[key] = parsed = _parse_json(value)
                    _check_meta(key, parsed)
                except (ValueError, TypeError) as error:
                    raise JournalError(
                        f"{path}: the journal's meta value {key!r} is corrupted ({error})"
                    ) from None
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
                ticks = _parse_json(marks)
                if len(rows) != count or type(ticks) is not list or not ticks:
                    raise ValueError("its sizes do not add up")
                if type(ticks[0]) is not list or not ticks[0] or ticks[0][0] != first:
                    raise ValueError("its first tick mark is not at its first record")
                journal._extend_loaded(rows, values, ticks)
            except (ValueError, TypeError, IndexError, KeyError, OverflowError) as error:
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
    except sqlite3.OperationalError as error:
        if "locked" in str(error) or "busy" in str(error):
            raise JournalError(
                f"{path}: the journal file is locked by another process (a VM writing it?); "
                f"try again, or load it once that VM is closed ({error})"
            ) from error
        raise JournalError(f"{path}: the journal file is corrupted ({error})") from error
    except sqlite3.DatabaseError as error:
        raise JournalError(f"{path}: the journal file is corrupted ({error})") from error
    finally:
        connection.close()
