"""Telegram Desktop "Export chat history" in machine-readable JSON (``result.json``).

Two shapes: one chat (``{"name", "type", "id", "messages": [...]}``) or the whole account
(``{"personal_information": {...}, "chats": {"list": [chat, ...]}, "left_chats": {...}}``). The
file can be gigabytes, so it is walked with ``JsonStream`` one message at a time. ``text`` is a
string or a list of strings and entity objects; ``from_id`` is ``"user123"`` (``123`` before 2021);
``date_unixtime`` (UTC) exists since 2021, before that only ``date`` in the exporting computer's
local time, read in the ``timezone`` option.

Forwarded messages are someone else's words: skipped as "forwarded" unless
``include_forwarded=True``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import OrderedDict
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import IO, Any

from .archive import JsonStream, Limits, existing, open_archive, time_zone
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

_ONE_TO_ONE = {"personal_chat", "bot_chat", "saved_messages"}
# Telegram numbers the messages of one-to-one chats and basic groups per account: Alice's export
# and Bob's give one message two ids there (supergroups and channels number them per chat). In
# such a chat a message is known by what both exports share: the chat, the second, the sender
# and its place among that sender's messages of that second; a one-to-one chat by its two people.
_PER_ACCOUNT_IDS = {"personal_chat", "bot_chat", "private_group", "saved_messages"}
_REPLY_MEMORY = 20_000  # message ids remembered per such chat, for replies (memory stays flat)
_MEDIA_KEYS = ("photo", "file", "media_type", "sticker_emoji", "poll", "contact_information",
               "location_information", "live_location_period_seconds")  # fmt: skip


def flatten_text(text: Any) -> str:
    """Telegram's text: a string, or a list of strings and ``{"type", "text"}`` entities."""
    if isinstance(text, str):
        return text
    if isinstance(text, list):
        return "".join(p if isinstance(p, str) else str(p.get("text", "")) for p in text)
    return ""


# Rich messages (2026): the text lives in a tree of blocks, each with its own inline runs and
# possibly child blocks, while "text" is empty. Keys that hold a block's own words, and keys
# that hold child blocks; unknown block types are read through these, so nothing is dropped
# just because Telegram adds a type.
_RICH_OWN_TEXT = ("title", "text", "caption", "credit")
_RICH_CHILDREN = ("blocks", "items", "tasks", "rows", "cells", "children")


def flatten_rich(rich: Any) -> str:
    """The words of a ``rich_message``: one line per block, inline formatting dropped."""
    lines: list[str] = []

    def inline(node: Any) -> str:
        if isinstance(node, str):
            return node
        if isinstance(node, list):
            return "".join(inline(part) for part in node)
        if isinstance(node, dict):
            return inline(node.get("text", node.get("texts", "")))
        return ""

    def block(node: Any, depth: int) -> None:
        if depth > 32:  # a malformed or hostile tree
            return
        if isinstance(node, list):
            for child in node:
                block(child, depth + 1)
        elif isinstance(node, str):
            lines.append(node)
        elif isinstance(node, dict):
            for key in _RICH_OWN_TEXT:
                if key in node:
                    lines.append(inline(node[key]))
            for key in _RICH_CHILDREN:
                if key in node:
                    block(node[key], depth + 1)

    block(rich.get("blocks", []) if isinstance(rich, dict) else rich, 0)
    return "\n".join(line.strip() for line in lines if line and line.strip())


def user_id(raw: Any) -> str:
    """ "user123" stays; the pre-2021 integer 123 becomes "user123"."""
    if isinstance(raw, int):
        return f"user{raw}"
    return str(raw)


# Before 2021 Telegram Desktop wrote its own peer ids: a user's or chat's number with its kind in
# bit 32 (users) or 33 (basic groups, supergroups, channels); a chat's "id" always, a sender's
# "from_id" since senders could be channels. Since then "id" is the bare number and "from_id"
# says the kind in words ("user123", "channel123"). Read the old way, one chat had two ids.
_USER_SHIFT, _CHAT_SHIFT = 1 << 32, 2 << 32
_BARE = 0xFFFFFFFF
_USER_KINDS = {"personal_chat", "bot_chat", "saved_messages"}
_ERA_PEEK = 1000  # messages read ahead at most to tell a chat's era
# Users' numbers passed 2**32 (64-bit ids) after this; the pre-2021 layout was gone before it. A
# chat the corpus holds under a number of 2**32 or more, with a message from before this, is a
# pre-2021 export's chat (of the user with the bare number), never a 64-bit user's.
USERS_PAST_2_32 = dt.datetime(2021, 9, 1, tzinfo=dt.UTC)


def old_user_id(raw: Any) -> str:
    """A pre-2021 integer sender as the sender is known today ("user123", "channel123")."""
    if isinstance(raw, int) and raw >= _CHAT_SHIFT:
        return f"channel{raw & _BARE}"
    if isinstance(raw, int) and raw >= _USER_SHIFT:
        return f"user{raw & _BARE}"
    return user_id(raw)


def _old_era(msg: Any) -> bool | None:
    """Whether a message is in the pre-2021 layout (integer sender), if it tells."""
    if not isinstance(msg, dict):
        return None
    if msg.get("date_unixtime"):
        return False
    sender = msg.get("from_id", msg.get("actor_id"))
    if isinstance(sender, bool) or sender is None:
        return None
    return isinstance(sender, int)


class _Parser:
    def __init__(
        self,
        tz: dt.tzinfo,
        include_forwarded: bool,
        label: str,
        numbered_chats: Collection[str] = (),
        old_chats: Collection[str] = (),
    ) -> None:
        self.tz = tz
        self.include_forwarded = include_forwarded
        self.label = label
        self.numbered_chats = numbered_chats
        self.old_chats = old_chats
        self.sender_id = user_id  # how this chat's senders are named (old_user_id: pre-2021)
        self.unix_stamps = False  # a pre-2021 one-to-one chat's ids use its Unix time as read
        self.self_id = ""
        self.announced: set[str] = set()
        self.chats = 0
        self.seen_messages = 0

    def sent_at(self, msg: dict[str, Any]) -> dt.datetime:
        if msg.get("date_unixtime"):
            return dt.datetime.fromtimestamp(int(msg["date_unixtime"]), tz=dt.UTC)
        local = dt.datetime.fromisoformat(str(msg["date"]))
        return local.replace(tzinfo=local.tzinfo or self.tz).astimezone(dt.UTC)

    @staticmethod
    def stamp(msg: dict[str, Any], sent_at: dt.datetime) -> str:
        """The time that goes into an id: a local time as written, whatever zone it is read in
        (as UTC, as every import did before the zone could be chosen)."""
        if msg.get("date_unixtime"):
            return sent_at.isoformat()
        local = dt.datetime.fromisoformat(str(msg["date"]))
        return local.replace(tzinfo=local.tzinfo or dt.UTC).astimezone(dt.UTC).isoformat()

    def chat(self, js: JsonStream, tick: Any) -> Iterator[Record]:
        """One chat object of an account export; the stream is on its opening brace."""
        meta: dict[str, Any] = {}
        for key in js.items():
            if key == "messages" and js.kind() == "array":
                yield from self.messages(js, meta, tick)
            elif js.kind() == "scalar":
                meta[key] = js.value()

    def messages(self, js: JsonStream, meta: dict[str, Any], tick: Any) -> Iterator[Record]:
        """A chat's messages array, after the chat's name, type and id were read into meta."""
        self.chats += 1
        kind = str(meta.get("type") or "")
        # Read ahead to the first message that tells the era (its ids depend on it).
        ahead: list[Any] = []
        rest = js.elements()
        old = None
        for _ in rest:
            ahead.append(js.value())
            old = _old_era(ahead[-1])
            if old is not None or len(ahead) >= _ERA_PEEK:
                break
        number = meta.get("id")
        meta = {**meta, "id": self.chat_number(number, kind, bool(old))}
        chat_id, per_account = self.chat_key(meta, kind)
        if self.unix_stamps:
            held, _ = self.chat_key({**meta, "id": number}, kind)
            if held in self.old_chats:
                # Imported under its pre-2021 id before (its ids from the time as written):
                # it keeps that id and those ids, so re-importing the old export adds nothing.
                self.unix_stamps, self.sender_id = False, user_id
                chat_id = held
        title = meta.get("name") or ("Saved Messages" if kind == "saved_messages" else chat_id)
        yield ConversationRecord(chat_id, str(title), is_group=kind not in _ONE_TO_ONE)
        ids = _ContentIds(chat_id) if per_account else None
        for msg in ahead:
            self.seen_messages += 1
            yield from self.message(chat_id, msg, ids)
            tick()
        for _ in rest:
            msg = js.value()
            self.seen_messages += 1
            yield from self.message(chat_id, msg, ids)
            tick()

    def chat_key(self, meta: dict[str, Any], kind: str) -> tuple[str, bool]:
        """The chat's id, and whether its messages are known by content (_PER_ACCOUNT_IDS)."""
        chat_id = str(meta.get("id") or meta.get("name") or f"chat{self.chats}")
        per_account = kind in _PER_ACCOUNT_IDS and meta.get("id") is not None
        if chat_id in self.numbered_chats:
            # Imported before such chats were known by their content: it keeps Telegram's
            # numbers, or re-importing the same account's export would double it.
            per_account = False
        if per_account and kind in ("personal_chat", "bot_chat") and self.self_id:
            # The same chat in the other person's export: named by both people, in one order.
            chat_id = "dm:" + ":".join(sorted((self.self_id, user_id(meta["id"]))))
        return chat_id, per_account

    def chat_number(self, number: Any, kind: str, old: bool) -> Any:
        """The chat's id as a 2021+ export writes it (the bare number), and how its senders are
        named; unless the corpus holds the chat under the id a pre-2021 export gave it
        (imported before such exports were read this way): then it keeps that id, so that
        re-importing it adds nothing and a newer export of it joins it.

        Basic groups, whose messages Telegram numbers per account, keep their pre-2021 ids:
        they are known by content and time, and pre-2021 exports have no Unix time. A one-to-one
        chat's ids take the Unix time of its local dates, read in the import's zone, so that a
        newer export of it joins it (messages() keeps the old id for one the corpus holds).
        """
        self.sender_id = old_user_id if old else user_id
        self.unix_stamps = False
        if not isinstance(number, int) or isinstance(number, bool):
            return number
        user_chat = kind in _USER_KINDS and _USER_SHIFT <= number < _CHAT_SHIFT
        if old and user_chat and str(number) not in self.numbered_chats:
            # A user's chat, its kind in bit 32 (no user's number passed 2**32 then): the
            # user's number, and ids from the Unix time of its local dates as read, as a
            # newer export of it gives them, so the two meet.
            self.unix_stamps = True
            return number & _BARE
        if old and number >= _USER_SHIFT:
            if kind in _PER_ACCOUNT_IDS or str(number) in self.numbered_chats:
                self.sender_id = user_id
                return number
            return number & _BARE
        # Not a one-to-one chat's: users' numbers now pass 2**32, where the old ids began.
        legacy = number | _CHAT_SHIFT
        if not old and kind not in _USER_KINDS and number <= _BARE:
            return legacy if str(legacy) in self.numbered_chats else number
        return number

    def message(self, chat_id: str, msg: Any, ids: _ContentIds | None = None) -> Iterator[Record]:
        if not isinstance(msg, dict):
            yield SkippedRecord("invalid")
            return
        if msg.get("type") != "message":
            yield SkippedRecord("system")  # joins, pins, calls, title changes...
            return
        if msg.get("forwarded_from") is not None and not self.include_forwarded:
            yield SkippedRecord("forwarded")
            return
        text = flatten_text(msg.get("text")).strip()
        if not text and msg.get("rich_message"):
            text = flatten_rich(msg["rich_message"])
        if not text:
            has_media = any(k in msg for k in _MEDIA_KEYS)
            yield SkippedRecord("media-only" if has_media else "empty")
            return
        try:
            sent_at = self.sent_at(msg)
        except (KeyError, ValueError, TypeError, OverflowError):
            yield SkippedRecord("invalid")
            return
        name = msg.get("from") or "Deleted Account"
        raw_sender = msg.get("from_id")
        sender = self.sender_id(raw_sender) if raw_sender is not None else f"name:{name}"
        if sender not in self.announced:
            self.announced.add(sender)
            yield IdentityRecord(sender, str(name), is_self=sender == self.self_id)
        reply = msg.get("reply_to_message_id")
        reply_to = f"{chat_id}:{reply}" if reply is not None else None
        if msg.get("id") is None:  # minimal hand-made exports have no ids
            seed = f"{chat_id}|{self.stamp(msg, sent_at)}|{sender}|{text}".encode()
            external_id = (
                f"{chat_id}:h" + hashlib.sha1(seed, usedforsecurity=False).hexdigest()[:16]
            )
        elif ids is not None:
            # New ids: the raw Unix time where the export has it (both friends' exports do).
            stamp = msg.get("date_unixtime") or (
                int(sent_at.timestamp()) if self.unix_stamps else self.stamp(msg, sent_at)
            )
            external_id = ids.of(msg["id"], str(stamp), sender)
            reply_to = ids.known(reply) if reply is not None else None
        else:
            external_id = f"{chat_id}:{msg['id']}"
        yield MessageRecord(
            external_id=external_id,
            conversation_id=chat_id,
            identity_id=sender,
            sent_at=sent_at,
            text=text,
            reply_to=reply_to,
        )


class _ContentIds:
    """Ids for the messages of a chat that Telegram numbers per account (_PER_ACCOUNT_IDS)."""

    def __init__(self, chat_id: str) -> None:
        self.chat_id = chat_id
        self.second = ""
        self.counts: dict[str, int] = {}  # sender -> messages so far in this second
        self.recent: OrderedDict[Any, str] = OrderedDict()  # this export's id -> ours

    def of(self, number: Any, stamp: str, sender: str) -> str:
        if stamp != self.second:
            self.second, self.counts = stamp, {}
        n = self.counts[sender] = self.counts.get(sender, -1) + 1
        seed = f"{self.chat_id}|{stamp}|{sender}|{n}".encode()
        external_id = (
            f"{self.chat_id}:c" + hashlib.sha1(seed, usedforsecurity=False).hexdigest()[:16]
        )
        self.recent[number] = external_id
        if len(self.recent) > _REPLY_MEMORY:
            self.recent.popitem(last=False)
        return external_id

    def known(self, number: Any) -> str | None:
        """The message a reply points at, if it came in this chat lately."""
        return self.recent.get(number)


def _open(path: Path, limits: Limits | None) -> tuple[IO[bytes], int, Any]:
    """The result.json stream, its size, and what to close afterwards."""
    if path.suffix.lower() == ".json" and path.is_file():
        stream = path.open("rb")
        return stream, path.stat().st_size, stream
    archive = open_archive(path, limits)
    candidates = sorted((m for m in archive.members if m.split("/")[-1] == "result.json"), key=len)
    exports = _export_folders(candidates)
    if len(exports) > 1:
        archive.close()
        raise ExportError(
            f"{path.name} holds {len(exports)} Telegram exports ({', '.join(exports)}): "
            "upload each on its own."
        )
    if not candidates:
        html = any(m.split("/")[-1] == "messages.html" for m in archive.members)
        archive.close()
        if html:
            raise ExportError(
                f"{path.name} is a Telegram export in HTML; export again and choose "
                '"Machine-readable JSON" as the format.'
            )
        raise ExportError(f"{path.name} has no result.json, so it is not a Telegram export.")
    return archive.open(candidates[0]), archive.size(candidates[0]), archive


def _export_folders(results: list[str]) -> list[str]:
    """The folders of the exports among these result.json files: not those inside another's
    folder, which are files someone sent in a chat ("ChatExport/files/result.json")."""
    folders = [member.rpartition("/")[0] for member in results]

    def inside(folder: str, other: str) -> bool:
        return other != folder and (not other or folder.startswith(other + "/"))

    return [f for f in folders if not any(inside(f, other) for other in folders)]


def parse(
    path: str,
    *,
    progress: ProgressCallback | None = None,
    timezone: str = "UTC",
    include_forwarded: bool = False,
    limits: Limits | None = None,
    numbered_chats: Collection[str] = (),
    old_chats: Collection[str] = (),
    **options: Any,
) -> Iterator[Record]:
    """Stream the records of a Telegram Desktop JSON export (result.json, its folder or zip).
    ``numbered_chats``: ids of chats the corpus holds under Telegram's own message numbers (as
    imported before one-to-one chats and basic groups were known by their content): they keep
    those numbers; one held under its pre-2021 id keeps that id. ``old_chats``: ids of the
    Telegram chats the corpus holds with a message from before ``USERS_PAST_2_32``: a one-to-one
    chat imported from a pre-2021 export under its old id keeps it (and its messages' ids)."""
    tz = time_zone(timezone)
    p = existing(path)
    stream, size, closer = _open(p, limits)
    with closer:
        label = p.name if p.suffix.lower() == ".json" else f"result.json in {p.name}"
        parser = _Parser(tz, include_forwarded, label, numbered_chats, old_chats)
        state = Progress(done=0, total=size, unit="bytes")

        def tick() -> None:
            if progress and parser.seen_messages % 1000 == 0:
                state.done = min(stream.tell(), size)
                progress(state)

        js = JsonStream(stream, label)
        if js.kind() != "object":
            raise ExportError(f"{label} is not a Telegram export: it is not a JSON object.")
        yield from _walk(parser, js, tick)
        if not parser.chats:
            raise ExportError(f"{label} is not a Telegram export: it has no messages list.")
        if not parser.seen_messages:
            raise ExportError(f"{label} contains no messages.")
        if progress:
            state.done = size
            progress(state)


def _walk(parser: _Parser, js: JsonStream, tick: Any) -> Iterator[Record]:
    """The top level: a single chat's keys (name, type, id, messages), or an account export's
    personal_information and chats/left_chats lists."""
    meta: dict[str, Any] = {}
    for key in js.items():
        if key == "personal_information":
            info = js.value()
            if isinstance(info, dict) and info.get("user_id") is not None:
                parser.self_id = user_id(info["user_id"])
                name = " ".join(str(info.get(k) or "") for k in ("first_name", "last_name"))
                parser.announced.add(parser.self_id)
                yield IdentityRecord(parser.self_id, name.strip() or parser.self_id, is_self=True)
        elif key in ("chats", "left_chats") and js.kind() == "object":
            for inner in js.items():
                if inner == "list" and js.kind() == "array":
                    for _ in js.elements():
                        yield from parser.chat(js, tick)
        elif key == "messages" and js.kind() == "array":
            yield from parser.messages(js, meta, tick)
        elif js.kind() == "scalar":
            meta[key] = js.value()
