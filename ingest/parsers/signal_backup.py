"""Parser for Signal Android on-device backups (``signal-YYYY-MM-DD-HHMMSS.backup``).

A backup is an encrypted stream of frames (see ``signal_crypto``): the app's SQLite database as SQL
statements with parameters, interleaved with attachment payloads, preferences and key-values. We
replay the statements for the few tables that hold conversations into a temporary SQLite database
on disk (deleted at the end; see ``signal_replay``, which for big files runs the replay in a
second process beside the decryption), keep only the attachment payloads that are long message
texts, and then read the messages back out with ``signal_schema``. Memory stays flat whatever the
file size: one frame is held at a time and everything else lives in the temporary database.

Usage::

    for record in parse("signal.backup", passphrase="12345 67890 ..."):
        ...
"""

from __future__ import annotations

import logging
import os
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from ingest.parsers.records import ExportError, Progress, ProgressCallback, Record
from ingest.parsers.signal_crypto import FrameReader, normalize_passphrase
from ingest.parsers.signal_replay import ChildReplay, LocalReplay, LongTextRows, is_kept
from ingest.parsers.signal_schema import Account, read_records

__all__ = ["parse"]

log = logging.getLogger(__name__)

# Signal caps long messages far below this; a bigger "text" attachment is not worth holding.
MAX_LONG_TEXT = 4 * 1024 * 1024
PROGRESS_INTERVAL = 0.2  # seconds
# Store only the columns signal_schema reads (False: every column, as the backup has them).
NARROW = True
# From this size on the replay runs in a child process, beside the decryption (it costs a
# process start, about 0.1 s, and saves about a third of the parse).
CHILD_REPLAY_MIN_BYTES = 8 * 1024 * 1024

NO_MESSAGES = "This Signal backup holds no message tables, so there is nothing to import."


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
        copy = Path(tmp) / "backup.sqlite"
        account = _replay(stream, passphrase, copy, progress)
        db = sqlite3.connect(copy, isolation_level=None)
        try:
            if not {"message", "sms", "mms"} & _tables(db):
                raise ExportError(NO_MESSAGES)
            yield from read_records(db, account)
        finally:
            db.close()


def _replay(
    stream: BinaryIO, passphrase: str, copy: Path, progress: ProgressCallback | None
) -> Account:
    """Replay every frame into a database at ``copy``; return what they say about the owner."""
    reader = FrameReader(stream, passphrase)
    total = reader.file_size
    account = Account()
    long_texts = LongTextRows()
    kept: dict[str, bool] = {}  # statement text -> is it about a table we read?
    replay = _start_replay(copy, total)
    last_report = time.monotonic()
    try:
        for frame in reader:
            if frame.HasField("statement"):
                statement = frame.statement
                sql = statement.statement
                keep = kept.get(sql)
                if keep is None:
                    keep = is_kept(sql)
                    if len(kept) < 10_000:  # INSERT templates repeat; CREATEs don't
                        kept[sql] = keep
                if keep:  # other tables (sessions, keys...) never leave this process
                    long_texts.note(statement, sql)
                    replay.statement(frame, reader.plaintext)
            elif frame.HasField("attachment"):
                attachment = frame.attachment
                message_id = long_texts.message_of(attachment.rowId)
                if message_id is not None and attachment.length <= MAX_LONG_TEXT:
                    text = reader.read_payload().decode("utf-8", errors="replace")
                    replay.long_text(message_id, text)
            elif frame.HasField("keyValue"):
                value = frame.keyValue
                account.note_key_value(
                    value.key,
                    value.stringValue or (str(value.longValue) if value.longValue else ""),
                )
            elif frame.HasField("preference"):
                account.note_preference(frame.preference.key, frame.preference.value)
            if progress is not None and time.monotonic() - last_report >= PROGRESS_INTERVAL:
                last_report = time.monotonic()
                progress(Progress(done=reader.position, total=total, unit="bytes"))
        failures = replay.finish()
    except BaseException:
        replay.abort()
        raise
    if failures:
        log.warning("Signal backup: %d SQL statements could not be replayed", failures)
    if progress is not None:
        progress(Progress(done=total, total=total, unit="bytes"))
    return account


def _start_replay(copy: Path, file_size: int) -> LocalReplay | ChildReplay:
    """Replay in a child process when the backup is big and a second core can run it."""
    if file_size >= CHILD_REPLAY_MIN_BYTES and _cpus() > 1:
        try:
            return ChildReplay(copy, narrow=NARROW)
        except OSError:
            log.warning("Signal backup: could not start a replay process", exc_info=True)
    return LocalReplay(copy, narrow=NARROW)


def _cpus() -> int:
    """The CPUs this process may run on (all of them where the OS cannot say)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _tables(db: sqlite3.Connection) -> set[str]:
    return {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
