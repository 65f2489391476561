"""Tell which chat app an uploaded file or folder came from, by looking at a few bytes of it.

``detect_kind(path)`` names the kind; ``PARSERS`` maps each kind to the dotted path of its parse
function, and ``load_parser(kind)`` imports it only then (the Signal backup parser pulls in
protobuf and cryptography, which most uploads never need).
"""

from __future__ import annotations

import importlib
import re
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

from .archive import Archive, is_zip, open_archive
from .records import ExportError, Record
from .whatsapp import LINE_START as WHATSAPP_LINE_START

PARSERS: dict[str, str] = {
    "slack": "ingest.parsers.slack.parse",
    "signal": "ingest.parsers.signal_backup.parse",
    "whatsapp": "ingest.parsers.whatsapp.parse",
    "telegram": "ingest.parsers.telegram.parse",
    "discord": "ingest.parsers.discord.parse",
    "signal_desktop": "ingest.parsers.signal_desktop.parse",
    "messenger": "ingest.parsers.messenger.parse",
    "imessage": "ingest.parsers.imessage.parse",
}

NOT_READABLE = "This file is not an export joe can read: {why}"
_HEAD = 64 * 1024
_SQLITE_MAGIC = b"SQLite format 3\x00"
_ZIP_MAGIC = b"PK\x03\x04"
INCOMPLETE_ZIP = (
    "This zip file is incomplete: its download or upload was cut short. Download the export "
    "again and upload the whole file."
)
# A WhatsApp line starts with a date and a time, optionally in brackets (iOS) and after LRM marks.
_WHATSAPP_LINE = re.compile("^" + WHATSAPP_LINE_START, re.M)
_SIGEXPORT_MD_LINE = re.compile(r"^\[\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\] [^:\n]+: ", re.M)
_SIGEXPORT_MD_END = re.compile(r"  \r?\n\r?\n\[\d{4}-\d{2}-\d{2} ")
_MESSENGER_FILE = re.compile(r"(^|/)message_\d+\.json$")
_SLACK_LISTS = {"channels.json", "groups.json", "dms.json", "mpims.json"}
_SLACK_DAY = re.compile(r"(^|/)[^/]+/\d{4}-\d{2}-\d{2}\.json$")


def load_parser(kind: str) -> Callable[..., Iterator[Record]]:
    """The parse function for ``kind``, imported on first use."""
    module, _, name = PARSERS[kind].rpartition(".")
    return getattr(importlib.import_module(module), name)


def is_signal_backup(head: bytes) -> bool:
    """A Signal Android backup starts with a 4-byte length and a plaintext header frame:
    BackupFrame{header(1): Header{iv(1): 16 bytes, salt(2): 32 bytes, version(3)}}."""
    if len(head) < 8:
        return False
    frame_length = int.from_bytes(head[:4], "big")
    inner_length = head[5]
    return (
        20 <= frame_length <= 1024
        and head[4] == 0x0A  # field 1 (header), length-delimited
        and inner_length == frame_length - 2
        and head[6:8] == b"\x0a\x10"  # iv: field 1, 16 bytes
    )


def _json_kind(head: str) -> str | None:
    def has(key: str) -> bool:
        return re.search(rf'"{key}"\s*:', head) is not None

    if has("guild") and has("channel") and has("messages"):
        return "discord"
    if has("sender_name") or (has("participants") and has("timestamp_ms")):
        return "messenger"
    if has("senderName") and (has("threadName") or has("participants")):
        return "messenger"  # the end-to-end encrypted chats' download
    if has("personal_information") or (has("chats") and has("list")):
        return "telegram"
    if has("messages") and (has("from_id") or has("date_unixtime") or has("actor_id")):
        return "telegram"
    if has("messages") and re.search(r'"type"\s*:\s*"(personal_chat|\w+_group|\w+_channel)"', head):
        return "telegram"
    first_line = head.split("\n", 1)[0]
    if has("sender") and has("body") and has("date") and first_line.rstrip().endswith("}"):
        return "signal_desktop"  # sigexport's data.json: one JSON object per line
    return None


def _text_kind(head: bytes, name: str = "") -> str | None:
    text = head.decode("utf-8", errors="replace")
    # sigexport's chat.md has the layout of some WhatsApp locales ("[2024-03-01 18:00:00] Ann:
    # hi"), but it is a .md file and ends each message with two spaces and a blank line.
    if _SIGEXPORT_MD_LINE.search(text) and (name.endswith(".md") or _SIGEXPORT_MD_END.search(text)):
        return "signal_desktop"
    if _WHATSAPP_LINE.search(text):  # before JSON: iOS lines start with "[" too
        return "whatsapp"
    if text.lstrip("\ufeff \r\n").startswith(("{", "[")):
        return _json_kind(text)
    return None


def _is_imessage_db(path: Path) -> bool:
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.Error:
        return False
    return {"message", "handle", "chat"} <= tables


def _archive_kind(archive: Archive) -> str | None:
    members = archive.members
    shallow = [m for m in members if m.count("/") <= 1]
    base = {m.rsplit("/", 1)[-1] for m in shallow}
    has_users = "users.json" in base or "org_users.json" in base  # org_: Enterprise Grid
    if has_users and ("channels.json" in base or any(m.count("/") for m in members)):
        return "slack"
    if "result.json" in base:
        return "telegram"
    if any(_MESSENGER_FILE.search(m) for m in members):
        return "messenger"
    if any(m.endswith("/chat.md") or m.endswith("/data.json") for m in members) and not any(
        m.endswith(".txt") for m in shallow
    ):
        return "signal_desktop"
    if "chat.db" in base:
        return "imessage"
    if base & _SLACK_LISTS and any(_SLACK_DAY.search(m) for m in members):
        # Slack's layout without its users.json: the Slack parser says what is missing, where
        # "not an export joe can read" left staff guessing.
        return "slack"
    # Otherwise look inside the first few text files (one chat per file: WhatsApp, Discord,
    # Messenger's end-to-end encrypted chats), shallow ones first.
    texts = [m for m in members if m.endswith((".txt", ".json"))]
    for member in sorted(texts, key=lambda m: m.count("/"))[:20]:
        with archive.open(member) as stream:
            kind = _text_kind(stream.read(_HEAD), member)
        if kind:
            return kind
    return None


def detect_kind(path: str | Path) -> str:
    """One of the keys of ``PARSERS``, or ExportError saying why the upload is not readable."""
    p = Path(path)
    if p.is_dir() or is_zip(p):
        with open_archive(p) as archive:
            kind = _archive_kind(archive)
        if kind:
            return kind
        # Not the file's name: an upload sits under a temporary one the user never chose.
        what = "the folder" if p.is_dir() else "the zip"
        raise ExportError(
            NOT_READABLE.format(why=f"{what} holds no chat export that joe recognises.")
        )
    if not p.is_file():
        raise ExportError(f"The export {p.name} could not be found.")
    with p.open("rb") as stream:
        head = stream.read(_HEAD)
    if is_signal_backup(head):
        return "signal"
    if head.startswith(_ZIP_MAGIC):  # a zip whose end, the directory, is missing
        raise ExportError(INCOMPLETE_ZIP)
    if head.startswith(_SQLITE_MAGIC):
        if _is_imessage_db(p):
            return "imessage"
        raise ExportError(NOT_READABLE.format(why="it is a database, but not an iMessage chat.db."))
    kind = _text_kind(head, p.name) if head else None
    if kind:
        return kind
    why = "it is empty." if not head else "its contents match none of the supported apps."
    raise ExportError(NOT_READABLE.format(why=why))


def parser_for(path: str | Path) -> tuple[str, Callable[..., Iterator[Record]]]:
    """Detect the kind and load its parser in one call."""
    kind = detect_kind(path)
    return kind, load_parser(kind)


__all__ = ["PARSERS", "NOT_READABLE", "detect_kind", "load_parser", "parser_for"]
