"""Signal Desktop history exported by signal-export (``sigexport``).

sigexport writes one folder per conversation, named after the contact or group with only letters
and digits kept (``AliceSmith/``), holding ``chat.md`` and, by default, ``data.json``: one JSON
object per line with ``date`` (ISO, the exporting computer's local time, read in the ``timezone``
option), ``sender`` ("Me" for your own messages), ``body``, ``quote``, ``sticker``,
``attachments``, ``deleted``, ``call``. ``data.json`` is read when present, else ``chat.md``
(``[YYYY-MM-DD HH:MM:SS] Sender: body`` with quotes, reactions and files inlined as markdown).
Upload the export folder as a zip, the folder, or a single chat's file.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import re
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import ExitStack
from functools import partial
from pathlib import Path
from typing import IO, Any

from .archive import Archive, Limits, existing, open_archive, time_zone
from .records import (
    ConversationRecord,
    ExportError,
    IdentityRecord,
    MessageRecord,
    Progress,
    ProgressCallback,
    Record,
    SkippedRecord,
    owner_key,
)

SELF = "Me"
NO_SENDER = "No-Sender"
_RECENT = 5000  # messages remembered per chat to resolve quotes
_NEAR = 200  # of those, how many a partial quote is looked for in
_MD_HEADER = re.compile(r"^\[(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})\] (.+?): ?(.*)$")
_MD_REACTIONS = re.compile(r"\n\(- .* -\)$")
_MD_STICKER = re.compile(r"\n\(\( .* \)\)$")
_MD_FILE = re.compile(r"!?\[[^\]]*\]\(\.{0,2}/?(media|exported_stickers)/[^)]*\)\s*")
_MD_QUOTE = re.compile(r"^\n*(> .*\n?)+\n*")
_CALL = re.compile(r"^(Incoming|Outgoing|Missed) .*call")
_TITLE_LENGTH = 255  # a conversation's title is stored this long at most
# A lone chat file's own name, as signal-export writes it or as a browser or file manager saves
# it a second time: "data (1).json", "data-2.json", "data copy.json". No chat is called that.
_GENERIC_NAME = re.compile(r"(data|chat)(?: ?\(\d+\)|[-_ ]\d+| copy(?: \d+)?)?", re.IGNORECASE)


def _md_messages(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """chat.md back into data.json-like dicts."""
    current: dict[str, Any] | None = None
    for line in lines:
        match = _MD_HEADER.match(line)
        if match:
            if current:
                yield current
            current = {"date": match[1], "sender": match[2], "body": match[3]}
        elif current is not None:
            current["body"] += "\n" + line
    if current:
        yield current


def _md_body(msg: dict[str, Any]) -> dict[str, Any]:
    body = msg["body"].rstrip()
    if body == "(This message was deleted)":
        return {**msg, "deleted": True, "body": ""}
    body = _MD_REACTIONS.sub("", body)
    sticker = bool(_MD_STICKER.search(body))
    body = _MD_STICKER.sub("", body)
    files = _MD_FILE.findall(body)
    body = _MD_FILE.sub("", body)
    quote = _MD_QUOTE.match(body)  # the quoted message someone replied to
    body = body[quote.end() :] if quote else body
    return {**msg, "body": body, "attachments": files, "sticker": sticker,
            "quote": quote.group(0) if quote else ""}  # fmt: skip


class _Chat:
    def __init__(
        self, opener: Callable[[], IO[bytes]], folder: str, member: str, tz: dt.tzinfo
    ) -> None:
        self.opener = opener
        self.folder = folder
        self.unnamed = ""  # a lone data.json's own name, when its folder is not known
        self.own_name = ""  # that file's name as uploaded ("data (1)")
        self.member = member
        self.tz = tz

    def rows(self) -> Iterator[dict[str, Any]]:
        with self.opener() as raw:
            text = io.TextIOWrapper(raw, encoding="utf-8-sig")
            try:
                if self.member.endswith(".md"):
                    for msg in _md_messages(line.rstrip("\n") for line in text):
                        yield _md_body(msg)
                    return
                for number, line in enumerate(text, 1):
                    if line.strip():
                        yield self._json_line(line, number)
            except UnicodeDecodeError as exc:
                raise ExportError(f"{self.member} is not UTF-8 text.") from exc

    def _json_line(self, line: str, number: int) -> dict[str, Any]:
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ExportError(
                f"{self.member} is not valid signal-export JSON: line {number} is cut or damaged."
            ) from exc
        if not isinstance(row, dict):
            raise ExportError(f"{self.member} is not valid signal-export JSON: line {number}.")
        return row

    def record(
        self,
        row: dict[str, Any],
        seen: dict[str, Any],
        recent: OrderedDict[str, str],
        me: str = SELF,
    ) -> Iterator[Record]:
        body = str(row.get("body") or "").strip()
        if row.get("deleted"):
            yield SkippedRecord("deleted")
            return
        if row.get("call") or row.get("missed") or _CALL.match(body):
            yield SkippedRecord("system")
            return
        if not body:
            media = row.get("attachments") or row.get("sticker")
            yield SkippedRecord("media-only" if media else "empty")
            return
        try:
            local = dt.datetime.fromisoformat(str(row["date"]))
        except (KeyError, ValueError):
            yield SkippedRecord("invalid")
            return
        sent_at = local.replace(tzinfo=local.tzinfo or self.tz).astimezone(dt.UTC)
        # Its id takes a time without a zone as written, whatever zone it is read in (as UTC,
        # as every import did before the zone could be chosen: the same ids as then).
        stamp = (
            sent_at.isoformat()
            if local.tzinfo is not None
            else local.replace(tzinfo=dt.UTC).isoformat()
        )
        sender = str(row.get("sender") or NO_SENDER)
        if sender == NO_SENDER:
            # sigexport could not tell who wrote it (carderne/signal-export#46: groups upgraded
            # to "new groups"); one made-up person speaking for several would mislead the model.
            yield SkippedRecord("no-sender")
            return
        if stamp != seen.get("stamp"):
            seen.clear()
            seen["stamp"] = stamp
        n = seen[sender] = seen.get(sender, -1) + 1
        who = me if sender == SELF else sender
        seed = f"{self.folder}|{stamp}|{who}|{n}".encode()
        external_id = hashlib.sha1(seed, usedforsecurity=False).hexdigest()[:24]
        # sigexport keeps only the quoted text, so a reply points at the latest earlier message
        # with that text, among the last few thousand of the chat.
        reply_to = _quoted(recent, _quote_key(row.get("quote")))
        key = _quote_key(body)
        recent.pop(key, None)
        recent[key] = external_id
        if len(recent) > _RECENT:
            recent.popitem(last=False)
        yield MessageRecord(
            external_id=external_id,
            conversation_id=self.folder,
            identity_id=sender,
            sent_at=sent_at,
            text=body,
            reply_to=reply_to,
        )


def _quote_key(text: Any) -> str:
    """A message's text as a quote of it shows it: no "> " prefixes, backticks or outer space."""
    if not isinstance(text, str):
        return ""
    lines = (line.removeprefix(">").strip() for line in text.strip().splitlines())
    return "\n".join(line for line in lines if line).replace("`", "")


def _quoted(recent: OrderedDict[str, str], quote: str) -> str | None:
    """The id of the message ``quote`` shows: the same text, else the newest of the last
    ``_NEAR`` messages that holds the text (a quote of a long message can be shortened)."""
    if not quote:
        return None
    if quote in recent:
        return recent[quote]
    for n, (text, external_id) in enumerate(reversed(recent.items())):
        if n >= _NEAR:
            break
        if quote in text:
            return external_id
    return None


def _second(date: Any) -> str:
    """A signal-export date to the second, as data.json ("2024-03-01T09:00:00.123000") and
    chat.md ("2024-03-01 09:00:00") both write it; "" if it is none."""
    try:
        return dt.datetime.fromisoformat(str(date)).replace(microsecond=0).isoformat()
    except ValueError:
        return ""


def _lone_groups(known_chats: Collection[str]) -> dict[str, str]:
    """The corpus's groups imported from a lone file ("data 2024-03-01T09:00:00"), by the
    second their first message was written."""
    groups: dict[str, str] = {}
    for chat_id in sorted(known_chats, reverse=True):  # two of one second: the same one wins
        name, _, started = chat_id.partition(" ")
        if name.lower() in ("data", "chat") and _second(started):
            groups[_second(started)] = chat_id
    return groups


def _lone_group(
    chat: _Chat, started: str, held: list[str], others: list[str], known_chats: Mapping[str, str]
) -> str:
    """A group's lone file's conversation. signal-export writes no group id or name into it, so
    it is known by the file's name and when its first message was written; but the group
    the corpus holds from an earlier file of it, if this one holds that file's first message
    and everyone who spoke in it: a longer export (Signal Desktop holds what it received since
    it was linked, so a later export can start earlier), its chat.md, or the file saved again
    as "data (1).json". (Its first second alone is not enough: a message sent to two groups at
    once is in both.)"""
    own = f"{chat.unnamed} {started}".strip()
    if chat.own_name.lower() not in ("data", "chat") and chat.own_name in known_chats:
        return chat.own_name  # "data (1).json" was imported as a group called "data (1)"
    if own in known_chats:
        return own
    speakers = set(others)
    same = [c for c in held if _people(known_chats[c]) <= speakers]
    return min(same, key=lambda c: _second(c.partition(" ")[2])) if same else own


def _people(title: str) -> set[str]:
    """Who spoke in a lone group, as its title lists them (the last name may be cut short)."""
    people = title.split(", ")
    return set(people[:-1] if len(title) >= _TITLE_LENGTH else people)


def _chats(archive: Archive, fallback: str) -> list[tuple[str, str]]:
    """(conversation folder, file to read) pairs, data.json preferred over chat.md."""
    found: dict[str, str] = {}
    for member in archive.members:
        folder, _, name = member.rpartition("/")
        if name == "data.json" or (name == "chat.md" and folder not in found):
            found[folder] = member
    return [(folder.rsplit("/", 1)[-1] or fallback, m) for folder, m in sorted(found.items())]


def parse(
    path: str,
    *,
    progress: ProgressCallback | None = None,
    timezone: str = "UTC",
    self_name: str = SELF,
    limits: Limits | None = None,
    file_name: str = "",
    shared_me_chats: Collection[str] = (),
    known_chats: Mapping[str, str] | None = None,
    **options: Any,
) -> Iterator[Record]:
    """Stream the records of a signal-export output: zip, folder, or one data.json/chat.md.
    ``file_name``: the name it was uploaded under; an upload's folder on the server is no
    chat's name. ``shared_me_chats``: chats the corpus holds with the owner's messages under
    the plain "Me" (imported before owners were told apart): they keep those ids.
    ``known_chats``: the chats the corpus holds (id: title), where a lone group's file finds
    its group."""
    tz = time_zone(timezone)
    p = existing(path)
    with ExitStack() as stack:
        if p.is_file() and p.suffix.lower() in (".json", ".md"):
            folder = Path(file_name).stem if file_name else p.parent.name or p.stem
            chat = _Chat(partial(p.open, "rb"), folder, p.name, tz)
            generic = _GENERIC_NAME.fullmatch(folder)
            if generic:
                # An uploaded data.json or chat.md: a one-to-one chat is named by the other
                # person (below), a group keeps the file's name.
                chat.folder, chat.unnamed, chat.own_name = "", generic[1], folder
            chats = [chat]
        else:
            archive = stack.enter_context(open_archive(p, limits))
            chats = [
                _Chat(partial(archive.open, member), folder, member, tz)
                for folder, member in _chats(archive, Path(file_name or p.name).stem)
            ]
        if not chats:
            raise ExportError(
                f"{p.name} holds no signal-export conversations (folders with data.json or "
                "chat.md)."
            )
        yield from _records(chats, self_name, progress, shared_me_chats, known_chats or {})


def _records(
    chats: list[_Chat],
    self_name: str,
    progress: ProgressCallback | None,
    shared_me_chats: Collection[str] = (),
    known_chats: Mapping[str, str] | None = None,
) -> Iterator[Record]:
    known_chats = known_chats or {}
    lone_groups = _lone_groups(known_chats)
    announced: set[str] = set()
    state = Progress(done=0, total=len(chats), unit="files")
    count = 0
    for chat in chats:
        # First pass: who speaks, so identities and the group flag come before messages.
        senders: dict[str, None] = {}
        started = ""  # when the chat's first message was written
        held: list[str] = []  # lone groups of the corpus whose first message this file holds
        for r in chat.rows():
            started = started or str(r.get("date") or "")
            senders[str(r.get("sender") or NO_SENDER)] = None
            if lone_groups and not chat.folder:
                group = lone_groups.get(_second(r.get("date")))
                if group is not None:
                    held.append(group)
        senders.pop(NO_SENDER, None)
        for sender in senders:
            if sender not in announced:
                announced.add(sender)
                is_self = sender == SELF
                yield IdentityRecord(sender, self_name if is_self else sender, is_self=is_self)
        others = [s for s in senders if s != SELF]
        title = chat.folder
        if not chat.folder:
            # signal-export names a one-to-one chat's folder after the other person: the same
            # name (and so the same ids) as that chat in a whole export. A group's title is not
            # in its file, and who has spoken changes: it is known by the file's name and when
            # its first message was written, which stay put (every group's file is called
            # data.json: the name alone made one conversation of them all), and shows its people.
            chat.folder = (
                others[0]
                if len(others) == 1
                else _lone_group(chat, started, held, others, known_chats)
            )
            title = chat.folder if len(others) == 1 else ", ".join(sorted(others)) or chat.folder
        # The owner's messages are told apart by their name: every export calls its owner "Me",
        # and two friends' exports may hold a chat of one name with messages of the same second.
        # A chat imported before then keeps its ids, or a re-import would double the owner's.
        me = (
            SELF
            if self_name == SELF or chat.folder in shared_me_chats
            else owner_key(SELF, self_name)
        )
        yield ConversationRecord(chat.folder, title, is_group=len(others) > 1)
        seen: dict[str, Any] = {}
        recent: OrderedDict[str, str] = OrderedDict()
        for row in chat.rows():
            count += 1
            yield from chat.record(row, seen, recent, me)
        state.done += 1
        if progress:
            progress(state)
    if not count:
        raise ExportError("This signal-export output contains no messages.")
