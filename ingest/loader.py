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
    """Takes rows one at a time and writes them in batches (subclasses say how). Use it as a
    context manager, inside a transaction.

    ``pause()`` must be called before running any other statement on the connection: on
    PostgreSQL a COPY stays open while rows arrive, so the server stores them as the parser reads.
    """

    def __init__(self, *, export_id: int, source_kind: str, batch_size: int = BATCH_SIZE) -> None:
        self.export_id = export_id
        self.source_kind = source_kind
        self.batch_size = batch_size
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
        self.rows.setdefault(row.external_id, row)
        if len(self.rows) >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            objs = [Message(**row._asdict()) for row in self.rows.values()]
            self.rows = {}
            Message.objects.bulk_create(objs, batch_size=1000, ignore_conflicts=True)

    def finish(self) -> None:
        super().finish()
        # bulk_create(ignore_conflicts=True) does not say which rows it kept: count them.
        self.inserted = Message.objects.filter(export_id=self.export_id).count()


class PostgresMessageLoader(MessageLoader):
    """Rows stream into an unindexed temporary table with COPY; each batch then moves into
    ingest_message in one ``INSERT ... ON CONFLICT DO NOTHING``, whose row count says how many
    were new. (Asking first which ids exist is slower: inside the import's transaction the
    planner's statistics do not know the rows already loaded and it scans them all.)
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._cursor = connection.cursor()
        # psycopg's own cursor: Django's debug cursor would keep every statement in memory.
        self._raw = self._cursor.cursor
        self._raw.execute(
            "CREATE TEMPORARY TABLE IF NOT EXISTS joe_message_stage"
            " (LIKE ingest_message INCLUDING DEFAULTS) ON COMMIT DROP"
        )
        self._raw.execute("ALTER TABLE joe_message_stage ALTER COLUMN id DROP NOT NULL")
        self._raw.execute("TRUNCATE joe_message_stage")
        self._copy_context: Any = None
        self._write_row: Any = None
        self._pending = 0

    def add(self, row: MessageRow) -> None:
        if self._write_row is None:
            # A writer thread sends the rows, so the parser reads on while the server stores.
            self._copy_context = self._raw.copy(
                f"COPY joe_message_stage ({COLUMNS}) FROM STDIN",
                writer=QueuedLibpqWriter(self._raw),
            )
            self._write_row = self._copy_context.__enter__().write_row
        self._write_row(row)
        self.seen += 1
        self._pending += 1
        if self._pending >= self.batch_size:
            self.flush()

    def _end_copy(self) -> None:
        if self._copy_context is not None:
            context, self._copy_context, self._write_row = self._copy_context, None, None
            context.__exit__(None, None, None)

    def flush(self) -> None:
        self._end_copy()
        if not self._pending:
            return
        self._raw.execute(
            f"INSERT INTO ingest_message ({COLUMNS}) SELECT {COLUMNS} FROM joe_message_stage"
            " ON CONFLICT (source_kind, external_id) DO NOTHING"
        )
        self.inserted += self._raw.rowcount
        self._raw.execute("TRUNCATE joe_message_stage")
        self._pending = 0

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
