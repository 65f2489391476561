"""Replaying a Signal backup's SQL statements into a temporary SQLite database.

``Replayer`` runs the statements for the tables and columns ``signal_schema`` reads and skips the
rest. It runs either in the parsing process (``LocalReplay``) or, for big backups on a machine
with a second core, in a child process fed the decrypted frames through a pipe
(``ChildReplay``), so decrypting and replaying overlap: the replay then costs about as long as
the decryption instead of adding to it. Run as ``python -m ingest.parsers.signal_replay DB``, this
module is that child: it reads the frames on stdin, writes ``DB``, and prints how many statements
failed. The passphrase never leaves the parent; the child only ever sees decrypted frames.

Framing on the pipe: one byte of kind, a 4-byte big-endian length, then the body. ``S``: a
serialized ``BackupFrame`` holding a statement; ``L``: a long message text (an 8-byte signed
message id, then UTF-8); ``E``: the end (no body). A child that reaches end of input without
``E`` (its parent died or gave up) exits with status 1 without committing, and a parent never
reads a database whose child did not answer the end.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import BinaryIO, NamedTuple

from ingest.parsers import signal_pb2
from ingest.parsers.signal_schema import KEPT_TABLES, READ_COLUMNS

try:
    import fcntl
except ImportError:  # not a POSIX system: the pipe keeps its default size
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

LONG_TEXT_TYPE = "text/x-signal-plain"

_CREATE_TABLE = re.compile(r"\s*CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?[\"'`\[]?(\w+)", re.I)
_INSERT = re.compile(r"\s*INSERT\s+(?:OR\s+\w+\s+)?INTO\s+[\"'`\[]?(\w+)", re.I)
# The whole of a plain "INSERT [OR x] INTO t [(a, b)] VALUES (?, ?)", which is what Signal writes.
_INSERT_PARTS = re.compile(
    r"\s*(INSERT\s+(?:OR\s+\w+\s+)?INTO)\s+[\"'`\[]?\w+[\"'`\]]?\s*(?:\(([^()]*)\))?\s*"
    r"VALUES\s*\(\s*(\?(?:\s*,\s*\?)*)\s*\)\s*;?\s*\Z",
    re.I,
)
_WITHOUT_ROWID = re.compile(r"\)\s*WITHOUT\s+ROWID\s*;?\s*\Z", re.I)
_LONG_TEXT_SQL = "INSERT OR REPLACE INTO joe_long_text (message_id, body) VALUES (?, ?)"
_FLUSH_AT = 1 << 18  # bytes buffered for the child before they are written to its pipe
_PIPE_SIZE = 1 << 20  # Linux allows this much by default (fs.pipe-max-size)
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)  # Linux's number, where Python lacks it


class Replayer:
    """Runs the backup's SQL for the tables and columns we read, and skips the rest.

    Skipping other tables (FTS indexes and their triggers, sessions, keys, jobs, receipts...) is
    what Signal's own importer would do with ``sqlite_`` and FTS tables, taken further: they are
    never read here, and some (virtual tables, triggers) would fail or slow every insert. Within a
    kept table only the columns ``signal_schema`` reads are stored (``narrow``): each table is
    created as the backup says, then narrowed to those columns, and each ``INSERT`` is rewritten
    to name them, so the parameters of the other columns are never turned into Python values.
    """

    def __init__(self, db: sqlite3.Connection, *, narrow: bool = True) -> None:
        self.db = db
        self.narrow = narrow
        self.failures = 0
        self._plans: dict[str, _Plan | None] = {}  # statement text -> how to replay it
        self._columns: dict[str, tuple[str, ...]] = {}  # table -> the backup's column order
        self._stored: dict[str, frozenset[str]] = {}  # table -> the columns we keep
        db.execute("CREATE TABLE joe_long_text (message_id INTEGER PRIMARY KEY, body TEXT)")

    def execute(self, statement: signal_pb2.SqlStatement) -> None:
        sql = statement.statement
        plan = self._plans.get(sql, _UNKNOWN)
        if plan is _UNKNOWN:
            plan = self._plan(sql)
            if len(self._plans) < 10_000:  # INSERT templates repeat; CREATEs don't
                self._plans[sql] = plan  # forgotten when its table is created (see _create)
        if plan is None:
            return
        try:
            if plan.create:
                self._create(sql, plan.table)
                return
            parameters = statement.parameters
            if plan.indices is None:
                values = sql_parameters(parameters)
            elif len(parameters) == plan.expected:
                values = sql_parameters(parameters, plan.indices)
            else:
                raise sqlite3.ProgrammingError(
                    f"{len(parameters)} parameters for {plan.expected} columns"
                )
            self.db.execute(plan.sql, values)
        except sqlite3.Error as error:
            self.failures += 1
            log.debug("Signal backup: skipped %r: %s", sql[:80], error)

    def long_text(self, message_id: int, text: str) -> None:
        self.db.execute(_LONG_TEXT_SQL, (message_id, text))

    def _plan(self, sql: str) -> _Plan | None:
        create = _CREATE_TABLE.match(sql)
        if create:
            table = create.group(1).lower()
            return _Plan(table, sql, create=True) if table in KEPT_TABLES else None
        insert = _INSERT.match(sql)
        if insert is None or insert.group(1).lower() not in KEPT_TABLES:
            return None
        table = insert.group(1).lower()
        parts = _INSERT_PARTS.match(sql)
        stored = self._stored.get(table)
        if parts is None or stored is None:
            return _Plan(table, sql)  # replayed as written, every parameter bound
        verb, listed, placeholders = parts.groups()
        names = _bound_columns(listed, placeholders, self._columns[table])
        if names is None:
            return _Plan(table, sql)  # SQLite will say what is wrong with it
        indices = tuple(i for i, name in enumerate(names) if name.lower() in stored)
        if len(indices) == len(names) and listed is None:
            return _Plan(table, sql)  # nothing left out: bind everything, as written
        if not indices:
            return _Plan(table, f'{verb} "{table}" DEFAULT VALUES', (), len(names))
        columns = ", ".join(f'"{names[i]}"' for i in indices)
        marks = ", ".join("?" * len(indices))
        rewritten = f'{verb} "{table}" ({columns}) VALUES ({marks})'
        return _Plan(table, rewritten, indices, len(names))

    def _create(self, sql: str, table: str) -> None:
        """Create ``table`` as the backup does; then narrow it to the columns we read."""
        if table in self._columns:
            # A second CREATE: a no-op with IF NOT EXISTS, an error without, as in SQLite.
            self.db.execute(sql)
            return
        self.db.execute(sql)
        info = self.db.execute(f'PRAGMA table_info("{table}")').fetchall()
        self._columns[table] = tuple(row[1] for row in info)
        self._stored[table] = frozenset(row[1].lower() for row in info)
        # Statements planned before the table existed bound every parameter: plan them again.
        self._plans = {k: p for k, p in self._plans.items() if p is None or p.table != table}
        if not self.narrow:
            return
        definition = _narrowed(self.db, table, sql, info)
        if definition is None:
            return
        try:
            self.db.execute(f'CREATE TABLE "joe_narrow_{table}" ({definition})')
        except sqlite3.Error as error:  # something we did not foresee: keep the whole table
            log.debug("Signal backup: %s stays whole: %s", table, error)
            return
        self.db.execute(f'DROP TABLE "{table}"')
        self.db.execute(f'ALTER TABLE "joe_narrow_{table}" RENAME TO "{table}"')
        self._stored[table] = frozenset(
            row[1].lower() for row in info if row[1].lower() in READ_COLUMNS[table]
        )


def _narrowed(db: sqlite3.Connection, table: str, sql: str, info: list[tuple]) -> str | None:
    """The column definitions of ``table`` narrowed to the columns we read, with the keys,
    UNIQUE constraints, NOT NULLs and defaults that concern them; None when it should stay
    whole (nothing to leave out, WITHOUT ROWID, or a key or UNIQUE constraint that involves a
    column we leave out, which would change which rows an INSERT OR REPLACE/IGNORE keeps)."""
    wanted = READ_COLUMNS[table]
    kept = [row for row in info if row[1].lower() in wanted]
    if not kept or len(kept) == len(info) or _WITHOUT_ROWID.search(sql):
        return None
    kept_names = {row[1] for row in kept}
    key = [row[1] for row in sorted(info, key=lambda row: row[5]) if row[5]]
    constraints = []
    for _seq, index, unique, origin, _partial in db.execute(f'PRAGMA index_list("{table}")'):
        if not unique or origin not in ("u", "pk"):
            continue  # only constraints written in CREATE TABLE come with the table
        columns = [row[2] for row in db.execute(f'PRAGMA index_info("{index}")')]
        if None in columns or not set(columns) <= kept_names:
            return None
        if origin == "u":
            constraints.append(f"UNIQUE ({', '.join(_quoted(c) for c in columns)})")
    if not set(key) <= kept_names:
        return None
    definitions = []
    for _cid, name, declared, not_null, default, _position in kept:
        definition = f"{_quoted(name)} {declared}".rstrip()
        if key == [name]:
            definition += " PRIMARY KEY"  # an INTEGER one stays the rowid, as in Signal
        if not_null:
            definition += " NOT NULL"
        if default is not None:
            definition += f" DEFAULT ({default})"  # table_info gives the expression bare
        definitions.append(definition)
    if len(key) > 1:
        constraints.append(f"PRIMARY KEY ({', '.join(_quoted(c) for c in key)})")
    return ", ".join(definitions + constraints)


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def is_kept(sql: str) -> bool:
    """Whether a statement creates or fills one of the tables we read (the rest is skipped)."""
    match = _CREATE_TABLE.match(sql) or _INSERT.match(sql)
    return match is not None and match.group(1).lower() in KEPT_TABLES


class _Plan(NamedTuple):
    """How one statement text is replayed."""

    table: str
    sql: str  # what runs: the statement as written, or rewritten to name only kept columns
    indices: tuple[int, ...] | None = None  # the parameters bound, in order; None: all of them
    expected: int | None = None  # how many parameters the statement has, when indices is set
    create: bool = False


_UNKNOWN = _Plan("", "")  # not planned yet (None means "skip it")


class LongTextRows:
    """Which attachment rows hold a long message's text, read off the statements inserting them.

    Signal keeps a long message's full text as a ``text/x-signal-plain`` attachment whose payload
    follows its row. The parent process decides from this whether to decrypt a payload, without
    asking the database (which may be filling up in another process).
    """

    def __init__(self) -> None:
        self._schema = sqlite3.connect(":memory:")  # only to learn each table's column order
        self._columns: dict[str, tuple[str, ...]] = {}
        self._plans: dict[str, tuple[tuple[int, ...], int] | None] = {}
        self._rows: dict[int, int] = {}  # attachment row id -> message id

    def note(self, statement: signal_pb2.SqlStatement, sql: str) -> None:
        """Look at one statement (``sql`` is its text); remember long-text attachment rows."""
        plan = self._plans.get(sql, _LATER)
        if plan is _LATER:
            plan = self._plan(sql)
            if plan is not _LATER and len(self._plans) < 10_000:
                self._plans[sql] = plan
        if plan is None or plan is _LATER:
            return
        indices, expected = plan
        parameters = statement.parameters
        if len(parameters) != expected:
            return  # the replay fails this statement too
        row_id, content_type, message_id = sql_parameters(parameters, indices)
        if content_type == LONG_TEXT_TYPE and isinstance(row_id, int):
            if isinstance(message_id, int):
                self._rows[row_id] = message_id
        else:
            self._rows.pop(row_id, None)  # type: ignore[arg-type]

    def message_of(self, attachment_row: int) -> int | None:
        """The message whose long text the payload after this attachment frame is, if any."""
        return self._rows.pop(attachment_row, None)

    def _plan(self, sql: str) -> tuple[tuple[int, ...], int] | None | object:
        """(parameter indices of row id, content type, message id; parameter count), None
        for a statement that is not about attachment rows, or _LATER for one about a table
        not created yet (asked again once it is)."""
        create = _CREATE_TABLE.match(sql)
        if create:
            table = create.group(1).lower()
            if table in ("attachment", "part") and table not in self._columns:
                try:
                    self._schema.execute(sql)
                except sqlite3.Error:
                    return None
                info = self._schema.execute(f'PRAGMA table_info("{table}")').fetchall()
                self._columns[table] = tuple(row[1].lower() for row in info)
            return None
        insert = _INSERT.match(sql)
        if insert is None or insert.group(1).lower() not in ("attachment", "part"):
            return None
        table = insert.group(1).lower()
        parts = _INSERT_PARTS.match(sql)
        if parts is None:
            return None
        if table not in self._columns:
            return _LATER
        names = _bound_columns(parts.group(2), parts.group(3), self._columns[table])
        if names is None:
            return None
        names = tuple(name.lower() for name in names)
        # "part" (mid, ct) became "attachment" (message_id, content_type) in database v215.
        wanted = ("_id", "content_type" if "content_type" in names else "ct")
        wanted += ("message_id" if "message_id" in names else "mid",)
        if not set(wanted) <= set(names):
            return None
        return tuple(names.index(name) for name in wanted), len(names)


_LATER = object()


class LocalReplay:
    """Replays in this process, into a database at ``path``."""

    def __init__(self, path: Path, *, narrow: bool) -> None:
        self.db = _connect(path)
        self.replayer = Replayer(self.db, narrow=narrow)
        self.db.execute("BEGIN")

    def statement(self, frame: signal_pb2.BackupFrame, _raw: bytes) -> None:
        self.replayer.execute(frame.statement)

    def long_text(self, message_id: int, text: str) -> None:
        self.replayer.long_text(message_id, text)

    def finish(self) -> int:
        """Commit; return how many statements could not be replayed."""
        self.db.execute("COMMIT")
        self.db.close()
        return self.replayer.failures

    def abort(self) -> None:
        self.db.close()


class ChildReplay:
    """Replays in a child process (this module run as a script), fed through its stdin."""

    def __init__(self, path: Path, *, narrow: bool) -> None:
        self._log_path = path.with_suffix(".log")
        if not sys.executable:
            raise OSError("no Python interpreter to start")
        command = [sys.executable, "-m", __name__, str(path)] + ([] if narrow else ["--full"])
        root = str(Path(__file__).resolve().parents[2])  # the folder holding "ingest"
        path_entries = [root, *filter(None, [os.environ.get("PYTHONPATH")])]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(path_entries)}
        with open(self._log_path, "wb") as errors:
            self._process = subprocess.Popen(  # noqa: S603 (our own interpreter and module)
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=errors,
                env=env,
                bufsize=0,  # the frames are buffered here; a pipe error surfaces in _flush
            )
        self._buffer = bytearray()
        _widen_pipe(self._process.stdin)

    def statement(self, _frame: signal_pb2.BackupFrame, raw: bytes) -> None:
        buffer = self._buffer
        buffer += b"S"
        buffer += len(raw).to_bytes(4, "big")
        buffer += raw
        if len(buffer) >= _FLUSH_AT:
            self._flush()

    def long_text(self, message_id: int, text: str) -> None:
        body = message_id.to_bytes(8, "big", signed=True) + text.encode("utf-8", "surrogatepass")
        self._buffer += b"L" + len(body).to_bytes(4, "big") + body
        self._flush()

    def finish(self) -> int:
        self._buffer += b"E\0\0\0\0"
        self._flush()
        assert self._process.stdin is not None and self._process.stdout is not None
        try:
            self._process.stdin.close()
        except BrokenPipeError:
            raise self._failed() from None
        output = self._process.stdout.read()
        self._process.stdout.close()
        if self._process.wait() != 0 or not output.strip().isdigit():
            raise self._failed()
        return int(output)

    def abort(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()
        for stream in (self._process.stdin, self._process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()

    def _flush(self) -> None:
        stdin = self._process.stdin
        assert stdin is not None
        view = memoryview(self._buffer)
        try:
            done = 0
            while done < len(view):  # one write() may take only part of it (a signal, say)
                done += stdin.write(view[done:]) or 0
        except BrokenPipeError:
            raise self._failed() from None
        finally:
            view.release()
        self._buffer.clear()

    def _failed(self) -> RuntimeError:
        self._process.wait()
        tail = self._log_path.read_text(errors="replace").strip().splitlines()[-5:]
        log.error("Signal backup: the replay process failed: %s", "\n".join(tail))
        return RuntimeError(
            f"the Signal replay process stopped (exit status {self._process.returncode})"
        )


def sql_parameters(
    parameters: Sequence[signal_pb2.SqlStatement.SqlParameter],
    indices: Iterable[int] | None = None,
) -> list[object]:
    """Those parameters as Python values (this runs millions of times: keep it lean).

    A parameter has one field set, whichever it is; ``ListFields`` gives it without asking
    each field in turn. Negative longs need no fixing here (the .proto reads them as int64);
    the null marker is the one boolean a parameter can hold.
    """
    selected = parameters if indices is None else map(parameters.__getitem__, indices)
    return [
        None if not fields or (value := fields[0][1]) is True or value is False else value
        for fields in map(_list_fields, selected)
    ]


_list_fields = signal_pb2.SqlStatement.SqlParameter.ListFields


def _widen_pipe(stream: object) -> None:
    """A 1 MB pipe instead of 64 KB: fewer wake-ups. With the default one the two processes
    barely overlapped on a 2-core VM (see benchmarks/RESULTS.md). Linux only; elsewhere the
    pipe keeps its size."""
    with contextlib.suppress(OSError, AttributeError):
        fcntl.fcntl(stream.fileno(), _F_SETPIPE_SZ, _PIPE_SIZE)  # type: ignore[attr-defined]


def _bound_columns(
    listed: str | None, placeholders: str, columns: tuple[str, ...]
) -> tuple[str, ...] | None:
    """The column each placeholder of an INSERT fills: the ones it lists, else the table's in
    order; None when there are not as many as placeholders."""
    names = (
        tuple(name.strip().strip("\"'`[]") for name in listed.split(","))
        if listed is not None
        else columns
    )
    return names if len(names) == placeholders.count("?") else None


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    # The copy is thrown away: durability would only slow the replay down.
    db.execute("PRAGMA journal_mode = OFF")
    db.execute("PRAGMA synchronous = OFF")
    return db


def serve(path: Path, source: BinaryIO, out: BinaryIO, *, narrow: bool = True) -> int:
    """The child's loop: replay what ``source`` carries into ``path``; 0 once committed."""
    db = _connect(path)
    replayer = Replayer(db, narrow=narrow)
    db.execute("BEGIN")
    read = source.read
    frame_type = signal_pb2.BackupFrame
    while True:
        head = read(5)
        if len(head) < 5:
            return 1  # the parent went away before the end: nothing is committed
        kind, size = head[0], int.from_bytes(head[1:], "big")
        body = read(size) if size else b""
        if len(body) < size:
            return 1
        if kind == 0x53:  # "S"
            frame = frame_type()
            frame.ParseFromString(body)
            replayer.execute(frame.statement)
        elif kind == 0x4C:  # "L"
            message_id = int.from_bytes(body[:8], "big", signed=True)
            replayer.long_text(message_id, body[8:].decode("utf-8", "surrogatepass"))
        elif kind == 0x45:  # "E"
            db.execute("COMMIT")
            db.close()
            out.write(str(replayer.failures).encode())
            out.flush()
            return 0
        else:
            raise ValueError(f"unknown frame kind {kind!r} on the replay pipe")


if __name__ == "__main__":
    arguments = sys.argv[1:]
    with open(0, "rb", buffering=1 << 20, closefd=False) as stdin:
        sys.exit(
            serve(Path(arguments[0]), stdin, sys.stdout.buffer, narrow="--full" not in arguments)
        )
