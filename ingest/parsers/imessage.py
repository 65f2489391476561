"""iMessage history from a Mac's ``~/Library/Messages/chat.db`` (SQLite), opened read-only.

Tables used: ``message``, ``handle`` (phone numbers and e-mail addresses), ``chat`` (with
``display_name`` for named groups) and the ``chat_message_join``/``chat_handle_join`` tables.
Columns differ between macOS versions, so the query is built from the columns that exist. Dates
count from 2001-01-01, in seconds before macOS 10.13 and nanoseconds after. Since macOS Ventura
``text`` is often empty and the words live in ``attributedBody``, an NSArchiver "typedstream".

chat.db holds no names, only handles; pass ``names={"+15551234567": "Ann"}`` to name people and
``self_name`` for the owner (the ``is_self`` identity, id "me"). A zip of the Messages folder is
read too: its chat.db (and chat.db-wal) are copied to a temporary folder, as SQLite needs a file.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from .archive import Limits, is_zip, open_archive
from .records import (
    ConversationRecord,
    ExportError,
    IdentityRecord,
    MessageRecord,
    Progress,
    ProgressCallback,
    Record,
    SkippedRecord,
)

APPLE_EPOCH = dt.datetime(2001, 1, 1, tzinfo=dt.UTC)
SELF_ID = "me"
_OBJECT = "\ufffc"  # where an attachment sits in the text
# Tapbacks in databases without associated_message_type: 'Loved “…”'.
_TAPBACK = re.compile(
    r"^(Loved|Liked|Disliked|Laughed at|Emphasized|Questioned|Reacted .{1,8} to) “.*”$", re.S
)
_OPTIONAL = (
    "guid",
    "attributedBody",
    "item_type",
    "associated_message_type",
    "cache_has_attachments",
    "thread_originator_guid",
    "date_retracted",
)


def apple_time(value: int | float) -> dt.datetime:
    """Apple-epoch seconds (before macOS 10.13) or nanoseconds (after) as aware UTC."""
    seconds = value / 1e9 if abs(value) > 1e11 else value
    return APPLE_EPOCH + dt.timedelta(seconds=seconds)


def typedstream_text(blob: bytes | None) -> str:
    """The NSString inside an ``attributedBody`` typedstream, or "" if there is none.

    After the class name "NSString" come a few type bytes ending in "+" and then the length:
    one byte, or 0x81 and two little-endian bytes, or 0x82 and four."""
    if not blob:
        return ""
    start = blob.find(b"NSString")
    if start < 0:
        return ""
    plus = blob.find(b"\x84\x01+", start)
    if plus < 0:
        return ""
    pos = plus + 3
    marker = blob[pos] if pos < len(blob) else 0
    if marker == 0x81:
        length, pos = int.from_bytes(blob[pos + 1 : pos + 3], "little"), pos + 3
    elif marker == 0x82:
        length, pos = int.from_bytes(blob[pos + 1 : pos + 5], "little"), pos + 5
    else:
        length, pos = marker, pos + 1
    return blob[pos : pos + length].decode("utf-8", errors="replace")


def _connect(path: Path) -> sqlite3.Connection:
    if path.is_dir():
        path = path / "chat.db"
    if not path.is_file():
        raise ExportError(f"The export {path.name} could not be found.")
    with path.open("rb") as head:
        if head.read(16) != b"SQLite format 3\x00":
            raise ExportError(f"{path.name} is not an iMessage chat.db: it is not a database.")
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    missing = {"message", "handle", "chat", "chat_message_join"} - tables
    if missing:
        db.close()
        raise ExportError(
            f"{path.name} is a database but not an iMessage chat.db: it has no "
            f"{', '.join(sorted(missing))} table."
        )
    return db


def _columns(db: sqlite3.Connection, table: str) -> set[str]:
    return {r[1] for r in db.execute(f"PRAGMA table_info({table})")}


def _skip_reason(row: Mapping[str, Any], text: str) -> str | None:
    if row.get("item_type"):
        return "system"  # renamed group, member added or left, ...
    if 2000 <= (row.get("associated_message_type") or 0) < 4000 or _TAPBACK.match(text):
        return "reaction"
    if row.get("date_retracted"):
        return "deleted"  # unsent
    if not text.replace(_OBJECT, "").strip():
        has_attachment = row.get("cache_has_attachments") or _OBJECT in text
        return "media-only" if has_attachment else "empty"
    return None


def parse(
    path: str,
    *,
    progress: ProgressCallback | None = None,
    names: Mapping[str, str] | None = None,
    self_name: str = "Me",
    limits: Limits | None = None,
    **options: Any,
) -> Iterator[Record]:
    """Stream the records of an iMessage chat.db (the file, a folder or a zip holding it)."""
    with ExitStack() as stack:
        source = Path(path)
        if is_zip(source):
            source = stack.enter_context(_unzipped(source, limits))
        yield from _parse(source, Path(path).name, progress, names or {}, self_name)


@contextmanager
def _unzipped(path: Path, limits: Limits | None) -> Iterator[Path]:
    """chat.db (and its write-ahead log, which holds the newest messages) copied out of the zip.

    SQLite reads only files, so this is the one parser that writes a member to disk: into a
    private temporary folder, removed when the parse ends. The zip's size limits apply."""
    with open_archive(path, limits) as archive, TemporaryDirectory(prefix="joe-imessage-") as tmp:
        found = sorted((m for m in archive.members if m.rsplit("/", 1)[-1] == "chat.db"), key=len)
        if not found:
            raise ExportError(
                f"{path.name} holds no chat.db. Zip the Messages folder from ~/Library/Messages, "
                "or upload chat.db itself."
            )
        for suffix in ("", "-wal"):
            member = found[0] + suffix
            if member in archive.members:
                with archive.open(member) as src, open(Path(tmp, "chat.db" + suffix), "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
        yield Path(tmp, "chat.db")


def _parse(
    path: Path,
    label: str,
    progress: ProgressCallback | None,
    names: Mapping[str, str],
    self_name: str,
) -> Iterator[Record]:
    db = _connect(path)
    try:
        total = db.execute("SELECT COUNT(*) FROM message").fetchone()[0]
        if not total:
            raise ExportError(f"{label} contains no messages.")
        handles = {r["ROWID"]: str(r["id"]) for r in db.execute("SELECT ROWID, id FROM handle")}
        yield IdentityRecord(SELF_ID, self_name, is_self=True)
        for handle in dict.fromkeys(handles.values()):  # one person can have several rows
            yield IdentityRecord(handle, names.get(handle, handle))
        chats: dict[int, str] = {}
        yield from _conversations(db, handles, names, chats)

        message_columns = _columns(db, "message")
        chosen = ["m." + c for c in _OPTIONAL if c in message_columns]
        # Walk chat_message_join in its primary key's order (chat, then message) and look each
        # message up by ROWID: neither needs a sort or an automatic index, which SQLite would
        # build in memory, growing with the database. Records come chat by chat.
        query = (
            "SELECT m.ROWID, m.text, m.date, m.is_from_me, m.handle_id, j.chat_id, "
            f"{', '.join(chosen) or 'NULL AS guid'} FROM chat_message_join j "
            "JOIN message m ON m.ROWID = j.message_id ORDER BY j.chat_id, j.message_id"
        )
        state = Progress(done=0, total=total, unit="messages")
        for row in map(dict, db.execute(query)):
            state.done += 1
            if progress and state.done % 1000 == 0:
                progress(state)
            yield from _message(row, handles, chats)
        for _ in range(max(total - state.done, 0)):  # messages of no chat
            yield SkippedRecord("invalid")
        state.done = total
        if progress:
            progress(state)
    finally:
        db.close()


def _conversations(
    db: sqlite3.Connection,
    handles: dict[int, str],
    names: Mapping[str, str],
    chats: dict[int, str],
) -> Iterator[ConversationRecord]:
    """Each chat, keyed by its guid (the same on every device); fills ``chats`` (ROWID -> id)."""
    members: dict[int, list[str]] = {}
    if "chat_handle_join" in {r[0] for r in db.execute("SELECT name FROM sqlite_master")}:
        for r in db.execute("SELECT chat_id, handle_id FROM chat_handle_join"):
            if r["handle_id"] in handles:
                members.setdefault(r["chat_id"], []).append(handles[r["handle_id"]])
    columns = _columns(db, "chat")
    title_column = "display_name" if "display_name" in columns else "NULL"
    guid_column = "guid" if "guid" in columns else "NULL"
    query = f"SELECT ROWID, chat_identifier, {title_column} AS title, {guid_column} AS guid"
    for chat in db.execute(query + " FROM chat ORDER BY ROWID"):
        people = members.get(chat["ROWID"], [])
        title = chat["title"] or ", ".join(names.get(p, p) for p in people)
        chats[chat["ROWID"]] = str(chat["guid"] or f"chat{chat['ROWID']}")
        yield ConversationRecord(
            chats[chat["ROWID"]],
            title or str(chat["chat_identifier"] or chat["ROWID"]),
            is_group=len(people) > 1,
        )


def _message(
    row: dict[str, Any], handles: dict[int, str], chats: dict[int, str]
) -> Iterator[Record]:
    text = row["text"] or typedstream_text(row.get("attributedBody"))
    reason = _skip_reason(row, text)
    if reason:
        yield SkippedRecord(reason)
        return
    if row["chat_id"] not in chats or (not row["is_from_me"] and row["handle_id"] not in handles):
        yield SkippedRecord("invalid")  # a message of no chat or of an unknown handle
        return
    sender = SELF_ID if row["is_from_me"] else handles[row["handle_id"]]
    parent = row.get("thread_originator_guid")
    yield MessageRecord(
        external_id=str(row.get("guid") or f"rowid{row['ROWID']}"),
        conversation_id=chats[row["chat_id"]],
        identity_id=sender,
        sent_at=apple_time(row["date"] or 0),
        text=text.replace(_OBJECT, "").strip(),
        reply_to=str(parent) if parent else None,
    )
