"""Batch loading of message rows: COPY on PostgreSQL, ``bulk_create`` elsewhere.

Both skip messages whose (source_kind, external_id) is already in the corpus, count what they
inserted, and hold at most one batch in memory.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from types import TracebackType
from typing import Any, NamedTuple

from django.db import connection
from psycopg.copy import QueuedLibpqWriter

from ingest.models import Message

BATCH_SIZE = 20_000
MAX_ID_LENGTH = 255  # Message.external_id and reply_to_external_id are varchar(255)


class MessageRow(NamedTuple):
    conversation_id: int
    identity_id: int
    export_id: int
    source_kind: str
    external_id: str
    sent_at: dt.datetime
    text: str
    reply_to_external_id: str


COLUMNS = ",".join(MessageRow._fields)


def clean_text(text: str) -> str:
    """Text PostgreSQL accepts: no NUL characters, no lone UTF-16 surrogates (broken JSON)."""
    if "\x00" in text:
        text = text.replace("\x00", "")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def clean_id(external_id: str) -> str:
    """An id that fits its column; an over-long one keeps a prefix and a hash of the whole."""
    external_id = clean_text(external_id)
    if len(external_id) <= MAX_ID_LENGTH:
        return external_id
    digest = hashlib.sha256(external_id.encode()).hexdigest()
    return f"{external_id[: MAX_ID_LENGTH - 65]}#{digest}"


class MessageLoader:
    """Collects rows and writes them in batches (subclasses say how). Use it as a context
    manager, inside a transaction.

    ``pause()`` must be called before running any other statement on the connection: on
    PostgreSQL a COPY stays open between batches so the server writes one batch while the parser
    reads the next.
    """

    def __init__(self, *, export_id: int, source_kind: str, batch_size: int = BATCH_SIZE) -> None:
        self.export_id = export_id
        self.source_kind = source_kind
        self.batch_size = batch_size
        self.rows: dict[str, MessageRow] = {}  # by external_id: duplicates within a batch drop
        self.seen = 0
        self.inserted = 0

    def add(self, row: MessageRow) -> None:
        self.seen += 1
        self.rows.setdefault(row.external_id, row)
        if len(self.rows) >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            rows, self.rows = list(self.rows.values()), {}
            self._write(rows)

    def pause(self) -> None:
        """Finish any open bulk write so the connection can run other statements."""

    def finish(self) -> None:
        self.flush()
        self.pause()

    @property
    def duplicates(self) -> int:
        return self.seen - self.inserted

    def _write(self, rows: list[MessageRow]) -> None:
        raise NotImplementedError

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
    """Any database: ``bulk_create`` with ``ignore_conflicts``."""

    def _write(self, rows: list[MessageRow]) -> None:
        objs = [Message(**row._asdict()) for row in rows]
        Message.objects.bulk_create(objs, batch_size=1000, ignore_conflicts=True)

    def finish(self) -> None:
        super().finish()
        # bulk_create(ignore_conflicts=True) does not say which rows it kept: count them.
        self.inserted = Message.objects.filter(export_id=self.export_id).count()


class PostgresMessageLoader(MessageLoader):
    """COPY straight into ingest_message, after one indexed lookup per batch for known ids.

    Safe only while no other transaction inserts messages at the same time: the import service
    holds an advisory lock for that.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._cursor = connection.cursor()
        self._copy_context: Any = None
        self._copy: Any = None

    def pause(self) -> None:
        if self._copy_context is not None:
            context, self._copy_context, self._copy = self._copy_context, None, None
            context.__exit__(None, None, None)

    def _write(self, rows: list[MessageRow]) -> None:
        self.pause()
        # psycopg's own cursor: Django's debug cursor would keep every batch's ids in memory.
        raw_cursor = self._cursor.cursor
        raw_cursor.execute(
            "SELECT external_id FROM ingest_message"
            " WHERE source_kind = %s AND external_id = ANY(%s)",
            [self.source_kind, [row.external_id for row in rows]],
        )
        known = {external_id for (external_id,) in raw_cursor.fetchall()}
        if known:
            rows = [row for row in rows if row.external_id not in known]
        if not rows:
            return
        if self._copy is None:
            # A writer thread sends the rows, so the parser reads on while the server inserts.
            self._copy_context = raw_cursor.copy(
                f"COPY ingest_message ({COLUMNS}) FROM STDIN",
                writer=QueuedLibpqWriter(raw_cursor),
            )
            self._copy = self._copy_context.__enter__()
        write_row = self._copy.write_row
        for row in rows:
            write_row(row)
        self.inserted += len(rows)

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
    *, export_id: int, source_kind: str, batch_size: int = BATCH_SIZE
) -> MessageLoader:
    """The fastest loader the database offers."""
    cls = PostgresMessageLoader if connection.vendor == "postgresql" else OrmMessageLoader
    return cls(export_id=export_id, source_kind=source_kind, batch_size=batch_size)
