"""A message row as PostgreSQL's ``ingest_message`` takes it, and its binary COPY encoding.

No Django here: the Slack worker processes (``ingest.parsers.slack_workers``) build rows and
their COPY bytes without a database connection, and the loader writes those bytes as they are.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import TYPE_CHECKING, NamedTuple

import psycopg
from psycopg import adapt, pq

# psycopg's own row encoder (C in psycopg[binary]); the module is internal, but the function is
# the one ``Copy.write_row`` calls, so bytes made here are exactly what write_row would send.
from psycopg._copy_base import format_row_binary

if TYPE_CHECKING:
    from ingest.parsers.records import MessageRecord

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
# COPY's binary format: psycopg packs each row in C and the server parses no text (ints and
# timestamps cost a quarter of what the text format costs on both ends).
COLUMN_TYPES = ["int8", "int8", "int8", "varchar", "varchar", "timestamptz", "text", "varchar"]
# The binary COPY stream's header (signature, flags, no extension) and trailer, as
# PostgreSQL's documentation of COPY gives them.
BINARY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
BINARY_TRAILER = b"\xff\xff"


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


# Explicit direction formatting (embeddings, overrides, isolates): a chat name carrying one (a
# prank's right-to-left override) reverses the text around it wherever the name is shown: "AI
# parody of nnA dna ...". Names never need them: the script's own direction still shows.
DIRECTION_CONTROLS = dict.fromkeys(
    [*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C], None
)  # and the marks (LRM, RLM, ALM): invisible, and a name of marks alone shows as nothing


def clean_name(name: str) -> str:
    """A person's name as joe shows it: clean text without direction controls."""
    return clean_text(name).translate(DIRECTION_CONTROLS).strip()


def clean_id(external_id: str) -> str:
    """An id that fits its column; an over-long one keeps a prefix and a hash of the whole."""
    external_id = clean_text(external_id)
    if len(external_id) <= MAX_ID_LENGTH:
        return external_id
    digest = hashlib.sha256(external_id.encode()).hexdigest()
    return f"{external_id[: MAX_ID_LENGTH - 65]}#{digest}"


def message_row(
    conversation_id: int, identity_id: int, export_id: int, kind: str, record: MessageRecord
) -> tuple:
    """The row a parser's message becomes once its ids are known, in MessageRow's order (the
    one place that says so: the importing process and the Slack worker processes both build
    rows here). A plain tuple: a named one costs a million-message import half a second."""
    reply_to = record.reply_to
    return (
        conversation_id,
        identity_id,
        export_id,
        kind,
        clean_id(record.external_id),
        record.sent_at,
        clean_text(record.text),
        clean_id(reply_to) if reply_to else "",
    )


class RowPacker:
    """Encodes rows for a binary COPY into ``ingest_message`` (COLUMNS, in that order), with
    no connection: the bytes of many rows, without the stream's header and trailer."""

    def __init__(self) -> None:
        self._tx = adapt.Transformer()
        types = psycopg.adapters.types
        self._tx.set_dumper_types([types.get_oid(t) for t in COLUMN_TYPES], pq.Format.BINARY)
        self.buffer = bytearray()
        self.rows = 0

    def pack(self, row: MessageRow | tuple) -> None:
        format_row_binary(row, self._tx, self.buffer)
        self.rows += 1

    def take(self) -> tuple[bytes, int]:
        """The rows packed so far (bytes, count), and an empty packer."""
        data, rows = bytes(self.buffer), self.rows
        self.buffer.clear()
        self.rows = 0
        return data, rows
