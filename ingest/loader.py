"""Batch loading of message rows: COPY on PostgreSQL, ``bulk_create`` elsewhere.

Both skip messages whose (source_kind, external_id) is already in the corpus, count what they
inserted, and hold at most one batch in memory.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

import psycopg
from django.db import connection
from psycopg.copy import QueuedLibpqWriter

from ingest.models import Message
from ingest.rows import (
    BINARY_HEADER,
    BINARY_TRAILER,
    COLUMN_TYPES,
    COLUMNS,
    MessageRow,
    RowPacker,
)

BATCH_SIZE = 50_000  # rows; a direct batch is kept in memory until it is stored


class MessageLoader:
    """Takes rows one at a time and writes them in batches (subclasses say how). Use it as a
    context manager, inside a transaction.

    ``pause()`` must be called before running any other statement on the connection: on
    PostgreSQL a COPY stays open while rows arrive, so the server stores them as the parser reads.
    """

    def __init__(self, *, export_id: int, source_kind: str, batch_size: int | None = None) -> None:
        self.export_id = export_id
        self.source_kind = source_kind
        self.batch_size = batch_size or BATCH_SIZE
        self.seen = 0
        self.inserted = 0

    def add(self, row: MessageRow) -> None:
        raise NotImplementedError

    def flush(self) -> None:
        """Write what is pending."""

    def pause(self) -> None:
        """Finish any open bulk write so the connection can run other statements."""
        self.flush()

    def finish(self) -> None:
        self.flush()

    @property
    def duplicates(self) -> int:
        return self.seen - self.inserted

    def __enter__(self) -> MessageLoader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.finish()


class OrmMessageLoader(MessageLoader):
    """Any database: ``bulk_create`` with ``ignore_conflicts``, a batch at a time."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rows: dict[str, MessageRow] = {}  # by external_id: duplicates within a batch drop

    def add(self, row: MessageRow) -> None:
        self.seen += 1
        self.rows.setdefault(row[4], row)  # by external_id (rows may be plain tuples)
        if len(self.rows) >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            fields = MessageRow._fields
            objs = [Message(**dict(zip(fields, row, strict=True))) for row in self.rows.values()]
            self.rows = {}
            Message.objects.bulk_create(objs, batch_size=1000, ignore_conflicts=True)

    def finish(self) -> None:
        super().finish()
        # bulk_create(ignore_conflicts=True) does not say which rows it kept: count them.
        self.inserted = Message.objects.filter(export_id=self.export_id).count()


class PostgresMessageLoader(MessageLoader):
    """COPY straight into ingest_message while no row collides; a staging table once one does.

    The common import (new messages) streams each batch into ingest_message with a binary COPY
    inside a savepoint, a writer thread sending rows while the parser reads on. If a batch holds
    a message the corpus already has (a re-upload, an overlapping newer backup, a repeated day
    file), the unique index stops that COPY: the batch rolls back to its savepoint and goes
    through the staging table instead, whose ``INSERT ... ON CONFLICT DO NOTHING`` keeps only the
    new rows and says how many. Later batches stay on the staging path until one of them is
    entirely new. (Asking first which ids exist is slower: inside the import's transaction the
    planner's statistics do not know the rows already loaded and it scans them all.)

    A batch cut short by ``pause()`` before ``OPEN_AFTER`` rows (a new person or conversation
    early in an export) is staged without a savepoint. Each direct batch costs a
    subtransaction; after ``MAX_SAVEPOINTS`` of them the import stays on the staging path, so
    one huge import does not pile up subtransactions (past 64 a backend's cache overflows and
    every other session's visibility checks slow down until the import commits).
    """

    OPEN_AFTER = 2_000
    MAX_SAVEPOINTS = 48

    def __init__(self, *, packed: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # packed: rows arrive as binary COPY bytes (add_packed, from the Slack worker
        # processes); the few that arrive as rows are packed here, so a COPY never mixes both.
        self.packed = packed
        self._packer = RowPacker() if packed else None
        self._cursor = connection.cursor()
        # psycopg's own cursor: Django's debug cursor would keep every statement in memory.
        self._raw = self._cursor.cursor
        self._copy_context: Any = None
        self._write_row: Any = None
        self._mode: str | None = None  # the open COPY: "direct", "stage" or None
        self._batch: list[MessageRow] = []  # rows not yet safely stored (none while staging)
        self._pending = 0
        self._direct = True  # the next batch tries the direct path
        self._staged = False  # the staging table exists
        self.direct_batches = 0
        self.staged_batches = 0

    def add(self, row: MessageRow) -> None:
        if self._packer is not None:
            self._packer.pack(row)
            self.add_packed(*self._packer.take())
            return
        self.seen += 1
        self._pending += 1
        mode = self._mode
        if mode == "stage":
            self._write_row(row)
        else:
            self._batch.append(row)
            if mode == "direct":
                # A row already stored fails the COPY, but the server reads on to the end of
                # the data and says so then: flush() handles it.
                self._write_row(row)
            elif len(self._batch) >= self.OPEN_AFTER:
                self._open()
        if self._pending >= self.batch_size:
            self.flush()

    def add_packed(self, data: bytes, rows: int) -> None:
        """``rows`` rows already encoded for the COPY (``ingest.rows.RowPacker``)."""
        assert self.packed, "a loader made with packed=True takes packed rows"
        self.seen += rows
        self._pending += rows
        mode = self._mode
        if mode == "stage":
            self._write_row(data)
        else:
            self._batch.append(data)  # type: ignore[arg-type]
            if mode == "direct":
                self._write_row(data)
            elif self._pending >= self.OPEN_AFTER:  # the batch holds all pending rows
                self._open()
        if self._pending >= self.batch_size:
            self.flush()

    def _open(self) -> None:
        if self._direct and self.direct_batches < self.MAX_SAVEPOINTS:
            self._raw.execute("SAVEPOINT joe_message_batch")
            self._mode, table = "direct", "ingest_message"
        else:
            self._stage_table()
            self._mode, table = "stage", "joe_message_stage"
        self._copy_context = self._raw.copy(
            f"COPY {table} ({COLUMNS}) FROM STDIN (FORMAT BINARY)",
            writer=QueuedLibpqWriter(self._raw),
        )
        copy = self._copy_context.__enter__()
        copy.set_types(COLUMN_TYPES)
        if self.packed:
            copy.write(BINARY_HEADER)
            self._write_row = copy.write
        else:
            self._write_row = copy.write_row
        for row in self._batch:
            self._write_row(row)
        if self._mode == "stage":
            self._batch = []

    def _end_copy(self) -> None:
        context, write, self._copy_context, self._write_row = (
            self._copy_context,
            self._write_row,
            None,
            None,
        )
        if context is not None:
            if self.packed:
                try:
                    write(BINARY_TRAILER)  # psycopg adds it only after write_row
                except BaseException as error:  # end the COPY, so the rollback can run
                    context.__exit__(type(error), error, error.__traceback__)
                    raise
            context.__exit__(None, None, None)

    def flush(self) -> None:
        mode, pending = self._mode, self._pending
        if mode == "direct":
            try:
                self._end_copy()
            except psycopg.errors.UniqueViolation:
                # A message the corpus already has: undo the batch and stage it instead.
                self._raw.execute("ROLLBACK TO SAVEPOINT joe_message_batch")
                self._raw.execute("RELEASE SAVEPOINT joe_message_batch")
                mode = None
            else:
                self._raw.execute("RELEASE SAVEPOINT joe_message_batch")
                self.inserted += pending
                self.direct_batches += 1
        elif mode == "stage":
            self._end_copy()
            self._insert_staged(pending)
        if mode is None and self._batch:
            self._stage_rows(self._batch)
            self._insert_staged(pending)
        self._mode, self._batch, self._pending = None, [], 0

    def _stage_table(self) -> None:
        if not self._staged:
            self._raw.execute(
                "CREATE TEMPORARY TABLE IF NOT EXISTS joe_message_stage"
                " (LIKE ingest_message INCLUDING DEFAULTS) ON COMMIT DROP"
            )
            self._raw.execute("ALTER TABLE joe_message_stage ALTER COLUMN id DROP NOT NULL")
            self._raw.execute("TRUNCATE joe_message_stage")
            self._staged = True

    def _stage_rows(self, rows: list[MessageRow]) -> None:
        self._stage_table()
        with self._raw.copy(
            f"COPY joe_message_stage ({COLUMNS}) FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types(COLUMN_TYPES)
            if self.packed:
                copy.write(BINARY_HEADER)
                for data in rows:
                    copy.write(data)  # type: ignore[arg-type]
                copy.write(BINARY_TRAILER)
            else:
                for row in rows:
                    copy.write_row(row)

    def _insert_staged(self, pending: int) -> None:
        self._raw.execute(
            f"INSERT INTO ingest_message ({COLUMNS}) SELECT {COLUMNS} FROM joe_message_stage"
            " ON CONFLICT (source_kind, external_id) DO NOTHING"
        )
        new = self._raw.rowcount
        self.inserted += new
        self.staged_batches += 1
        self._raw.execute("TRUNCATE joe_message_stage")
        # A batch with nothing old in it: the overlap is over, go back to COPY.
        self._direct = new == pending

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc_type is None:
                self.finish()
            elif self._copy_context is not None:
                # Abort the COPY so the connection is usable for the rollback.
                context, self._copy_context = self._copy_context, None
                context.__exit__(exc_type, exc, tb)
        finally:
            self._cursor.close()


def message_loader(
    *, export_id: int, source_kind: str, batch_size: int | None = None, packed: bool = False
) -> MessageLoader:
    """The fastest loader the database offers (``packed``: one that takes binary COPY bytes,
    PostgreSQL only)."""
    if connection.vendor == "postgresql":
        return PostgresMessageLoader(
            export_id=export_id, source_kind=source_kind, batch_size=batch_size, packed=packed
        )
    assert not packed, "packed rows need PostgreSQL"
    return OrmMessageLoader(export_id=export_id, source_kind=source_kind, batch_size=batch_size)
