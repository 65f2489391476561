"""Build iMessage chat.db files (SQLite) with the macOS schema's relevant tables and columns.

``build_chat_db(path, tables)`` takes row dumps ``{"message": [...], "handle": [...], ...}`` like
the shared samples' ``mock_chat_db_tables/*.json``: ids may be strings (they are mapped to integer
ROWIDs), and an ``attributedBody`` of ``"base64:..."`` is stored as the decoded blob.
``legacy=True`` leaves out the columns newer macOS versions added. ``typedstream(text)`` makes an
attributedBody blob the way Messages writes it.
"""

from __future__ import annotations

import base64
import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE handle (ROWID INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL,
    country TEXT, service TEXT NOT NULL DEFAULT 'iMessage', uncanonicalized_id TEXT);
CREATE TABLE chat (ROWID INTEGER PRIMARY KEY AUTOINCREMENT, guid TEXT, style INTEGER,
    chat_identifier TEXT, service_name TEXT, display_name TEXT);
CREATE TABLE message (ROWID INTEGER PRIMARY KEY AUTOINCREMENT, guid TEXT, text TEXT,
    handle_id INTEGER DEFAULT 0, service TEXT, date INTEGER, is_from_me INTEGER DEFAULT 0,
    attributedBody BLOB, item_type INTEGER DEFAULT 0, cache_has_attachments INTEGER DEFAULT 0
    {modern});
CREATE TABLE chat_message_join (chat_id INTEGER, message_id INTEGER, message_date INTEGER
    DEFAULT 0, PRIMARY KEY (chat_id, message_id));
CREATE TABLE chat_handle_join (chat_id INTEGER, handle_id INTEGER, UNIQUE(chat_id, handle_id));
CREATE TABLE attachment (ROWID INTEGER PRIMARY KEY AUTOINCREMENT, guid TEXT, filename TEXT,
    mime_type TEXT);
CREATE TABLE message_attachment_join (message_id INTEGER, attachment_id INTEGER);
"""
MODERN = """, associated_message_type INTEGER DEFAULT 0, associated_message_guid TEXT,
    thread_originator_guid TEXT, date_retracted INTEGER DEFAULT 0, date_edited INTEGER DEFAULT 0"""
# Which columns of which table hold ids of which table's rows.
REFERENCES = {
    ("message", "handle_id"): "handle",
    ("chat_message_join", "chat_id"): "chat",
    ("chat_message_join", "message_id"): "message",
    ("chat_handle_join", "chat_id"): "chat",
    ("chat_handle_join", "handle_id"): "handle",
    ("message_attachment_join", "message_id"): "message",
    ("message_attachment_join", "attachment_id"): "attachment",
}
ORDER = ("handle", "chat", "attachment", "message", "chat_message_join", "chat_handle_join",
         "message_attachment_join")  # fmt: skip


def typedstream(text: str) -> bytes:
    """An attributedBody blob holding ``text``, shaped like the ones Messages stores."""
    data = text.encode()
    if len(data) < 0x80:
        length = bytes([len(data)])
    elif len(data) < 0x10000:
        length = b"\x81" + len(data).to_bytes(2, "little")
    else:
        length = b"\x82" + len(data).to_bytes(4, "little")
    return (
        b"\x04\x0bstreamtyped\x81\xe8\x03\x84\x01@\x84\x84\x84\x19NSMutableAttributedString\x00"
        b"\x84\x84\x12NSAttributedString\x00\x84\x84\x08NSObject\x00\x85\x92\x84\x84\x84\x08"
        b"NSString\x01\x95\x84\x01+" + length + data + b"\x86\x84\x02iI\x01" + b"\x86\x86"
    )


def _value(table: str, column: str, value: Any, ids: dict[str, dict[Any, int]]) -> Any:
    target = REFERENCES.get((table, column))
    if target and value not in (0, None):
        return ids[target].setdefault(value, len(ids[target]) + 1)
    if isinstance(value, str) and value.startswith("base64:"):
        return base64.b64decode(value[len("base64:") :])
    if isinstance(value, bool):
        return int(value)
    return value


def build_chat_db(
    path: Path, tables: Mapping[str, Sequence[Mapping[str, Any]]], *, legacy: bool = False
) -> Path:
    db = sqlite3.connect(path)
    db.executescript(SCHEMA.format(modern="" if legacy else MODERN))
    ids: dict[str, dict[Any, int]] = {t: {} for t in ORDER}
    for table in ORDER:
        for row in tables.get(table, ()):
            values = dict(row)
            if "ROWID" in values:
                values["ROWID"] = ids[table].setdefault(values["ROWID"], len(ids[table]) + 1)
            values = {k: _value(table, k, v, ids) for k, v in values.items()}
            if table in ("message", "chat") and "guid" not in values:
                values["guid"] = f"{table}-guid-{values.get('ROWID')}"
            columns = ", ".join(values)
            marks = ", ".join("?" for _ in values)
            db.execute(f"INSERT INTO {table} ({columns}) VALUES ({marks})", list(values.values()))
    db.commit()
    db.close()
    return path
