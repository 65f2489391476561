"""Facebook Messenger and Instagram messages from "Download your information" in JSON.

One folder per conversation (``messages/inbox/<name>_<id>/``), each with ``message_1.json``,
``message_2.json``... (newest first). Upload one file, the folder or the whole zip. Facebook writes
text as UTF-8 bytes escaped one byte per ``\\u00XX``, so "é" arrives as "Ã©"; ``fix_mojibake``
turns it back. People have no ids in these files, so a person's id is their (fixed) name.

Chats that moved to end-to-end encryption (2024 on) come from a separate download, one JSON file
per chat named after it: ``{"participants": ["Ann", ...], "threadName", "messages": [{"senderName",
"timestamp" (ms), "text", "type", "media", "reactions", "isUnsent"}]}``. It is read the same way.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .archive import Archive, Limits, existing, open_archive, parse_json_bytes
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

_MESSAGE_FILE = re.compile(r"(^|/)message_(\d+)\.json$")
_E2EE_KEYS = re.compile(rb'"(threadName|senderName)"\s*:')
_MEDIA_KEYS = ("photos", "videos", "gifs", "audio_files", "files", "sticker", "share")
_SYSTEM_TYPES = {"Call", "Subscribe", "Unsubscribe", "Payment", "PlanUpdate"}
_SYSTEM_TEXT = re.compile(
    r"^(You are now connected on Messenger|.* (named the group|changed the group photo|"
    r"set the nickname|set your nickname|created the group|added .* to the group|left the group|"
    r"started a (video )?call|joined the (video )?call)\b.*)$"
)
_ATTACHMENT_TEXT = re.compile(r"^.{1,80} sent (an attachment|a photo|a video|a GIF|a sticker|"
                              r"a voice message|a link|\d+ photos)\.$")  # fmt: skip


def fix_mojibake(text: str) -> str:
    """Undo Facebook's double encoding; text that was not double-encoded is left alone."""
    try:
        return text.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return text


def _thread_files(archive: Archive) -> dict[str, list[str]]:
    """Thread folder -> its message_N.json members, in N order; else, for the end-to-end
    encrypted chats' download, each JSON file that looks like one is its own thread."""
    threads: dict[str, list[tuple[int, str]]] = {}
    for member in archive.members:
        match = _MESSAGE_FILE.search(member)
        if match:
            folder = member[: match.start()] if match.start() else ""
            threads.setdefault(folder, []).append((int(match.group(2)), member))
    if not threads:
        for member in archive.members:
            if member.lower().endswith(".json"):
                with archive.open(member) as stream:
                    if _E2EE_KEYS.search(stream.read(4096)):
                        threads[member.removesuffix(".json")] = [(1, member)]
    return {k: [m for _, m in sorted(v)] for k, v in sorted(threads.items())}


def _e2ee(msg: dict[str, Any]) -> dict[str, Any]:
    """A message of the end-to-end encrypted chats' download (camelCase keys, ``timestamp`` in
    ms, ``media`` for every kind of file) in the keys of the classic export."""
    if "senderName" not in msg and "timestamp_ms" in msg:
        return msg
    return {
        "sender_name": msg.get("senderName"),
        "timestamp_ms": msg.get("timestamp"),
        "content": msg.get("text"),
        "is_unsent": msg.get("isUnsent"),
        "files": msg.get("media"),
        "type": "Generic",
    }


class _Thread:
    def __init__(self, folder: str, fallback_title: str) -> None:
        self.folder = folder
        self.fallback_title = fallback_title
        self.id = ""
        self.stamp = -1
        self.repeats: dict[str, int] = {}  # per sender, within the current millisecond only

    def header(self, data: dict[str, Any], announced: set[str]) -> Iterator[Record]:
        names = [
            fix_mojibake(str(p.get("name", "") if isinstance(p, dict) else p))
            for p in data.get("participants") or ()
        ]
        path = str(data.get("thread_path") or self.folder or self.fallback_title)
        self.id = path.removeprefix("messages/").strip("/") or self.fallback_title
        title = fix_mojibake(str(data.get("title") or data.get("threadName") or ""))
        title = title or ", ".join(names)
        for name in names:
            if name and name not in announced:
                announced.add(name)
                yield IdentityRecord(name, name)
        is_group = len(names) > 2 or data.get("thread_type") == "RegularGroup"
        yield ConversationRecord(self.id, title or self.fallback_title, is_group=is_group)

    def message(self, msg: Any, announced: set[str]) -> Iterator[Record]:
        if isinstance(msg, dict):
            msg = _e2ee(msg)
        if not isinstance(msg, dict) or not isinstance(msg.get("timestamp_ms"), int):
            yield SkippedRecord("invalid")
            return
        if msg.get("is_unsent"):
            yield SkippedRecord("deleted")
            return
        text = fix_mojibake(str(msg.get("content") or "")).strip()
        if msg.get("type") in _SYSTEM_TYPES or _SYSTEM_TEXT.match(text):
            yield SkippedRecord("system")
            return
        media = any(msg.get(k) for k in _MEDIA_KEYS)
        if media and _ATTACHMENT_TEXT.match(text):
            text = ""  # "Ann sent a photo." is Facebook's words, not Ann's
        if msg.get("share") and text == str(msg["share"].get("link", "")):
            text = ""
        if not text:
            yield SkippedRecord("media-only" if media else "empty")
            return
        sender = fix_mojibake(str(msg.get("sender_name") or "Facebook user"))
        if sender not in announced:
            announced.add(sender)
            yield IdentityRecord(sender, sender)
        stamp = int(msg["timestamp_ms"])
        # Messages sent in the same millisecond by the same person are told apart by order.
        if stamp != self.stamp:
            self.stamp, self.repeats = stamp, {}
        n = self.repeats[sender] = self.repeats.get(sender, -1) + 1
        seed = f"{self.id}|{stamp}|{sender}|{n}".encode()
        yield MessageRecord(
            external_id=hashlib.sha1(seed, usedforsecurity=False).hexdigest()[:24],
            conversation_id=self.id,
            identity_id=sender,
            sent_at=dt.datetime.fromtimestamp(stamp / 1000, tz=dt.UTC),
            text=text,
        )


def _read(path: Path, limits: Limits | None) -> Iterator[tuple[str, str, Any]]:
    """(thread folder, label, parsed JSON) for each message file, thread by thread."""
    if path.is_file() and path.suffix.lower() == ".json":
        yield "", path.name, parse_json_bytes(path.read_bytes(), path.name)
        return
    with open_archive(path, limits) as archive:
        threads = _thread_files(archive)
        if not threads:
            if any(re.search(r"(^|/)message_\d+\.html$", m) for m in archive.members):
                raise ExportError(
                    f"{path.name} is a Facebook export in HTML; request your information again "
                    'with the format set to "JSON".'
                )
            raise ExportError(f"{path.name} has no Messenger or Instagram message_1.json files.")
        for folder, members in threads.items():
            for member in members:
                yield folder, member, archive.read_json(member)


def parse(
    path: str,
    *,
    progress: ProgressCallback | None = None,
    limits: Limits | None = None,
    file_name: str = "",
    **options: Any,
) -> Iterator[Record]:
    """Stream the records of Messenger/Instagram JSON: one message_N.json, a folder or a zip.
    ``file_name``: the name it was uploaded under (default: the name of ``path``)."""
    p = existing(path)
    stem = Path(file_name or p.name).stem  # names a thread that has no folder or thread_path
    announced: set[str] = set()
    state = Progress(unit="files")
    thread: _Thread | None = None
    count = 0
    for folder, label, data in _read(p, limits):
        if not isinstance(data, dict) or not isinstance(data.get("messages"), list):
            raise ExportError(f"{label} is not a Messenger export: it has no messages list.")
        if thread is None or thread.folder != folder:
            thread = _Thread(folder, folder.rsplit("/", 1)[-1] or stem)
            yield from thread.header(data, announced)
        for msg in data["messages"]:
            count += 1
            yield from thread.message(msg, announced)
        state.done += 1
        if progress:
            progress(state)
    if not count:
        raise ExportError(f"{p.name} contains no messages.")
