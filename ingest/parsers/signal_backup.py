"""Parser for Signal Android on-device backups (``signal-YYYY-MM-DD-HHMMSS.backup``).

A backup is an encrypted stream of frames (see ``signal_crypto``): the app's SQLite database as SQL
statements with parameters, interleaved with attachment payloads, preferences and key-values. We
replay the statements for the few tables that hold conversations into a temporary SQLite database
on disk (deleted at the end), keep only the attachment payloads that are long message texts, and
then read the messages back out with ``signal_schema``. Memory stays flat whatever the file size:
one frame is held at a time and everything else lives in the temporary database.

Usage::

    for record in parse("signal.backup", passphrase="12345 67890 ..."):
        ...
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO, NamedTuple

from ingest.parsers import signal_pb2
from ingest.parsers.records import ExportError, Progress, ProgressCallback, Record
from ingest.parsers.signal_crypto import FrameReader, normalize_passphrase
from ingest.parsers.signal_schema import KEPT_TABLES, READ_COLUMNS, Account, read_records

__all__ = ["parse"]

log = logging.getLogger(__name__)

LONG_TEXT_TYPE = "text/x-signal-plain"
# Signal caps long messages far below this; a bigger "text" attachment is not worth holding.
MAX_LONG_TEXT = 4 * 1024 * 1024
PROGRESS_INTERVAL = 0.2  # seconds
# Store only the columns signal_schema reads (False: every column, as the backup has them).
NARROW = True

NO_MESSAGES = "This Signal backup holds no message tables, so there is nothing to import."

_CREATE_TABLE = re.compile(r"\s*CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?[\"'`\[]?(\w+)", re.I)
_INSERT = re.compile(r"\s*INSERT\s+(?:OR\s+\w+\s+)?INTO\s+[\"'`\[]?(\w+)", re.I)
# The whole of a plain "INSERT [OR x] INTO t [(a, b)] VALUES (?, ?)", which is what Signal writes.
_INSERT_PARTS = re.compile(
    r"\s*(INSERT\s+(?:OR\s+\w+\s+)?INTO)\s+[\"'`\[]?\w+[\"'`\]]?\s*(?:\(([^()]*)\))?\s*"
    r"VALUES\s*\(\s*(\?(?:\s*,\s*\?)*)\s*\)\s*;?\s*\Z",
    re.I,
)
_UINT64_SIGN = 1 << 63
_UINT64 = 1 << 64


def parse(
    path: str | os.PathLike[str],
    *,
    passphrase: str,
    progress: ProgressCallback | None = None,
) -> Iterator[Record]:
    """Yield the identities, conversations and messages of a Signal backup.

    Raises ``ExportError`` (with a sentence for the user) for a malformed passphrase, a file that
    is not a Signal backup, a wrong passphrase, or a corrupted or truncated file.
    """
    normalize_passphrase(passphrase)  # fail on a mistyped passphrase before touching the file
    path = Path(path)
    with open(path, "rb") as stream, tempfile.TemporaryDirectory(prefix="joe-signal-") as tmp:
        db = sqlite3.connect(Path(tmp) / "backup.sqlite", isolation_level=None)
        try:
            # The copy is thrown away: durability would only slow the replay down.
            db.execute("PRAGMA journal_mode = OFF")
            db.execute("PRAGMA synchronous = OFF")
            account = _replay(stream, passphrase, db, progress)
            if not {"message", "sms", "mms"} & _tables(db):
                raise ExportError(NO_MESSAGES)
            yield from read_records(db, account)
        finally:
            db.close()


def _replay(
    stream: BinaryIO, passphrase: str, db: sqlite3.Connection, progress: ProgressCallback | None
) -> Account:
    """Replay every frame into ``db``; return what the frames say about the phone's owner."""
    reader = FrameReader(stream, passphrase)
    total = reader.file_size
    account = Account()
    replayer = _Replayer(db, narrow=NARROW)
    last_report = time.monotonic()
    db.execute("BEGIN")
    for frame in reader:
        if frame.HasField("statement"):
            replayer.execute(frame.statement)
        elif frame.HasField("attachment"):
            text = _long_text(db, replayer, reader, frame.attachment)
            if text is not None:
                db.execute(
                    "INSERT OR REPLACE INTO joe_long_text (message_id, body) VALUES (?, ?)", text
                )
        elif frame.HasField("keyValue"):
            value = frame.keyValue
            account.note_key_value(
                value.key, value.stringValue or (str(value.longValue) if value.longValue else "")
            )
        elif frame.HasField("preference"):
            account.note_preference(frame.preference.key, frame.preference.value)
        if progress is not None and time.monotonic() - last_report >= PROGRESS_INTERVAL:
            last_report = time.monotonic()
            progress(Progress(done=reader.position, total=total, unit="bytes"))
    db.execute("COMMIT")
    if replayer.failures:
        log.warning("Signal backup: %d SQL statements could not be replayed", replayer.failures)
    if progress is not None:
        progress(Progress(done=total, total=total, unit="bytes"))
    return account


class _Replayer:
    """Runs the backup's SQL for the tables and columns we read, and skips the rest.

    Skipping other tables (FTS indexes and their triggers, sessions, keys, jobs, receipts...) is
    what Signal's own importer would do with ``sqlite_`` and FTS tables, taken further: they are
    never read here, and some (virtual tables, triggers) would fail or slow every insert. Within a
    kept table only the columns ``signal_schema`` reads are stored: each table is created as the
    backup says, then narrowed to those columns, and each ``INSERT`` is rewritten to name them, so
    the parameters of the other columns are never turned into Python values at all.
    """

    def __init__(self, db: sqlite3.Connection, *, narrow: bool = True) -> None:
        self.db = db
        self.narrow = narrow
        self.failures = 0
        self._plans: dict[str, _Plan | None] = {}  # statement text -> how to replay it
        self._columns: dict[str, tuple[str, ...]] = {}  # table -> the backup's column order
        self._stored: dict[str, frozenset[str]] = {}  # table -> the columns we keep
        self._attachment_query: str | None = None
        db.execute("CREATE TABLE joe_long_text (message_id INTEGER PRIMARY KEY, body TEXT)")

    def execute(self, statement: signal_pb2.SqlStatement) -> None:
        sql = statement.statement
        plan = self._plans.get(sql, _UNKNOWN)
        if plan is _UNKNOWN:
            plan = self._plan(sql)
            if len(self._plans) < 10_000:  # INSERT templates repeat; CREATEs don't
                self._plans[sql] = plan
        if plan is None:
            return
        try:
            if plan.create:
                self._create(sql, plan.table)
                return
            parameters = statement.parameters
            if plan.indices is None:
                values = _parameters(parameters)
            elif len(parameters) == plan.expected:
                values = _parameters(parameters, plan.indices)
            else:
                raise sqlite3.ProgrammingError(
                    f"{len(parameters)} parameters for {plan.expected} columns"
                )
            self.db.execute(plan.sql, values)
        except sqlite3.Error as error:
            self.failures += 1
            log.debug("Signal backup: skipped %r: %s", sql[:80], error)

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
        names = (
            tuple(_unquote(name) for name in listed.split(","))
            if listed is not None
            else self._columns[table]
        )
        if len(names) != placeholders.count("?"):
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
        self.db.execute(sql)
        info = self.db.execute(f'PRAGMA table_info("{table}")').fetchall()
        self._columns[table] = tuple(row[1] for row in info)
        wanted = READ_COLUMNS[table]
        kept = [row for row in info if row[1].lower() in wanted]
        if not self.narrow or not kept or len(kept) == len(info):
            self._stored[table] = frozenset(row[1].lower() for row in info)
            return
        single_key = sum(1 for row in info if row[5]) == 1
        definitions = []
        for _cid, name, declared, _not_null, default, key in kept:
            definition = f'"{name}" {declared}'.rstrip()
            if key and single_key:
                definition += " PRIMARY KEY"  # an INTEGER one stays the rowid, as in Signal
            if default is not None:
                definition += f" DEFAULT {default}"
            definitions.append(definition)
        self.db.execute(f'DROP TABLE "{table}"')
        self.db.execute(f'CREATE TABLE "{table}" ({", ".join(definitions)})')
        self._stored[table] = frozenset(row[1].lower() for row in kept)

    def attachment_query(self) -> str | None:
        """SQL for (content type, message id) of an attachment row, by the schema's names."""
        if self._attachment_query is None:
            tables = _tables(self.db)
            # "part" (mid, ct) became "attachment" (message_id, content_type) in database v215.
            table = next((t for t in ("attachment", "part") if t in tables), None)
            if table is None:
                return None
            columns = _columns(self.db, table)
            content_type = "content_type" if "content_type" in columns else "ct"
            message = "message_id" if "message_id" in columns else "mid"
            if not {content_type, message} <= columns:
                return None
            self._attachment_query = f"SELECT {content_type}, {message} FROM {table} WHERE _id = ?"  # noqa: S608
        return self._attachment_query


class _Plan(NamedTuple):
    """How one statement text is replayed."""

    table: str
    sql: str  # what runs: the statement as written, or rewritten to name only kept columns
    indices: tuple[int, ...] | None = None  # the parameters bound, in order; None: all of them
    expected: int | None = None  # how many parameters the statement has, when indices is set
    create: bool = False


_UNKNOWN = _Plan("", "")  # not planned yet (None means "skip it")


def _unquote(name: str) -> str:
    return name.strip().strip("\"'`[]")


def _parameters(
    parameters: Sequence[signal_pb2.SqlStatement.SqlParameter],
    indices: Iterable[int] | None = None,
) -> list[object]:
    """Those parameters as Python values (this runs millions of times: keep it lean)."""
    values: list[object] = []
    append = values.append
    for parameter in parameters if indices is None else map(parameters.__getitem__, indices):
        fields = parameter.ListFields()  # the one field set, whichever it is
        value = fields[0][1] if fields else None
        kind = type(value)
        if kind is int:
            # Java wrote a signed long into a uint64 field: undo the two's complement.
            if value >= _UINT64_SIGN:  # type: ignore[operator]
                value -= _UINT64  # type: ignore[operator]
        elif kind is bool:  # only nullparameter is a bool
            value = None
        append(value)
    return values


def _long_text(
    db: sqlite3.Connection,
    replayer: _Replayer,
    reader: FrameReader,
    attachment: signal_pb2.Attachment,
) -> tuple[int, str] | None:
    """(message id, text) when this attachment is a long message body; else None (skipped).

    Signal writes each attachment's payload right after the attachment's row, so the row (and
    its content type) is already in the database.
    """
    query = replayer.attachment_query()
    if query is None or attachment.length > MAX_LONG_TEXT:
        return None
    row = db.execute(query, (attachment.rowId,)).fetchone()
    if row is None or row[0] != LONG_TEXT_TYPE or row[1] is None:
        return None
    return row[1], reader.read_payload().decode("utf-8", errors="replace")


def _tables(db: sqlite3.Connection) -> set[str]:
    return {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _columns(db: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
