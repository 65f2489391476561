"""An import's progress, written to its Export row while the import's transaction is still open.

The import runs in one transaction, so its own connection cannot publish progress: nothing it
writes is visible before the commit. A side thread with its own connection writes the row (at
most every ``interval`` seconds) and reads back whether someone asked to cancel.

SQLite (the embedded demo setup) has one writer at a time, and the open import holds it, so there
progress and cancel requests travel through the cache instead; the export page overlays them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from django.core.cache import cache
from django.db import DatabaseError, connection
from django.utils import timezone

from ingest.models import Export
from ingest.parsers.records import Progress

log = logging.getLogger(__name__)

INTERVAL = 0.5  # seconds between writes to the row
MB = 1024 * 1024


class ImportCancelled(Exception):
    """Someone pressed Cancel: the import stops and its transaction rolls back."""


@dataclass(frozen=True, slots=True)
class ImportProgress:
    done: int
    total: int
    unit: str  # "bytes", "frames" or "files", as the parser counts
    messages: int  # message records read so far, new or duplicate

    @property
    def note(self) -> str:
        if not self.total:
            return f"{self.messages:,} messages found"
        if self.unit == "bytes":
            # MB of 1,048,576 bytes, as Django's filesizeformat shows the file's size elsewhere.
            where = f"{self.done / MB:,.1f} of {self.total / MB:,.1f} MB read"
            if not self.messages:
                # A Signal backup's messages are counted once the whole file has been read.
                return where
        else:
            where = f"{self.done:,} of {self.total:,} {self.unit} read"
        return f"{where} · {self.messages:,} messages found"


class ProgressReporter:
    """Feed it the parser's Progress and the running message count (``messages``, then
    ``report()``); it persists them, throttled. Use as a context manager; every report raises
    ImportCancelled once someone asked to cancel.
    """

    def __init__(
        self,
        export: Export,
        *,
        callback: Callable[[ImportProgress], None] | None = None,
        interval: float = INTERVAL,
    ) -> None:
        self.export_id = export.pk
        self.callback = callback
        self.interval = interval
        self.position = Progress()
        self.messages = 0
        self.cancelled = threading.Event()
        self._last = 0.0
        self._pending: Future | None = None
        if connection.vendor == "sqlite":
            # A cancel of an earlier attempt of this export must not stop this one (a retry
            # within the key's hour would be cancelled at its first report).
            cache.delete(_cancel_key(self.export_id))
        # SQLite has one writer at a time: the open import transaction would block these writes.
        self._executor = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="import-progress")
            if connection.vendor != "sqlite"
            else None
        )

    def parser_progress(self, progress: Progress) -> None:
        """The callback given to the parser."""
        self.position = Progress(progress.done, progress.total, progress.unit)
        self.report()

    def snapshot(self) -> ImportProgress:
        p = self.position
        return ImportProgress(p.done, p.total, p.unit, self.messages)

    def report(self, *, force: bool = False) -> None:
        self.check()
        now = time.monotonic()
        if not force and now - self._last < self.interval:
            return
        self._last = now
        snapshot = self.snapshot()
        if self.callback is not None:
            self.callback(snapshot)
        if self._executor is None:
            publish(self.export_id, snapshot)
            if cache.get(_cancel_key(self.export_id)):
                self.cancelled.set()
                self.check()
        elif self._pending is None or self._pending.done():
            self._pending = self._executor.submit(self._write, snapshot)

    def check(self) -> None:
        if self.cancelled.is_set():
            raise ImportCancelled

    def _write(self, snapshot: ImportProgress) -> None:
        try:
            Export.objects.filter(pk=self.export_id).update(
                progress_done=snapshot.done,
                progress_total=snapshot.total,
                progress_note=snapshot.note[:200],
                heartbeat_at=timezone.now(),  # the worker is alive (services.cancel_import)
            )
            if Export.objects.filter(pk=self.export_id, cancel_requested=True).exists():
                self.cancelled.set()
        except DatabaseError as error:
            # Progress is a courtesy; the import itself must not fail because of it.
            log.warning("Could not record the progress of export %s: %s", self.export_id, error)

    def stop(self) -> None:
        """Wait for the last write and close the side thread's connection."""
        if self._executor is not None:
            executor, self._executor = self._executor, None
            executor.submit(_close_own_connection)
            executor.shutdown(wait=True)

    def __enter__(self) -> ProgressReporter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _progress_key(export_id: int) -> str:
    return f"ingest:progress:{export_id}"


def _cancel_key(export_id: int) -> str:
    return f"ingest:cancel:{export_id}"


def publish(export_id: int, snapshot: ImportProgress) -> None:
    cache.set(_progress_key(export_id), (snapshot.done, snapshot.total, snapshot.note), 3600)


def request_cancel_via_cache(export_id: int) -> None:
    cache.set(_cancel_key(export_id), True, 3600)


def overlay_live_progress(export: Export) -> Export:
    """Show the progress a running import published to the cache (SQLite only: elsewhere the row
    itself is current)."""
    if export.is_active and connection.vendor == "sqlite":
        live = cache.get(_progress_key(export.pk))
        if live:
            export.progress_done, export.progress_total, export.progress_note = live
    return export


def _close_own_connection() -> None:
    # Resolved in the thread that runs it: each thread has its own connection.
    connection.close()
