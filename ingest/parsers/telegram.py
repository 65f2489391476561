"""Telegram Desktop "Export chat history" in machine-readable JSON (``result.json``).

Two shapes: one chat (``{"name", "type", "id", "messages": [...]}``) or the whole account
(``{"personal_information": {...}, "chats": {"list": [chat, ...]}, "left_chats": {...}}``). The
file can be gigabytes, so it is walked with ``JsonStream`` one message at a time. ``text`` is a
string or a list of strings and entity objects; ``from_id`` is ``"user123"`` (``123`` before 2021);
``date_unixtime`` (UTC) exists since late 2021; before that only ``date``, in the exporting
computer's local time with no offset, read in the ``timezone`` option for ``sent_at``.

Ids of messages Telegram numbers per account (one-to-one chats, basic groups) never depend on the
zone an import reads local times in: they take ``date_unixtime`` where the export has it, and
otherwise the local time as written (read as UTC). Where the corpus already holds the chat, a
message it holds under another reading of its time (the Unix time of its local date in some
zone: a newer export's, or what an import before this made) keeps that id, found by the
message's sender and text (``held_messages``), so exports of one chat from both layouts, and the
same export imported twice in two zones, meet. The corpus is asked only as far as needed: the
messages read ahead, by their ids under the usual reading; all the chat's words only when some
are held under another reading.

Forwarded messages are someone else's words: skipped as "forwarded" unless
``include_forwarded=True``.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import re
import zoneinfo
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterator, Mapping
from pathlib import Path
from typing import IO, Any, NamedTuple, Protocol

from .archive import JsonStream, Limits, existing, open_archive, time_zone
from .records import (
    ConversationRecord,
    ExportError,
    IdentityRecord,
    MessageRecord,
    NoticeRecord,
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
# says the kind in words ("user123", "channel123"). Read the old way, one chat had two ids. Which
# layout a chat is in is read from its messages (an integer sender: the old one), never from dates.
_USER_SHIFT, _CHAT_SHIFT = 1 << 32, 2 << 32
_BARE = 0xFFFFFFFF
_USER_KINDS = {"personal_chat", "bot_chat", "saved_messages"}
_ERA_PEEK = 1000  # messages read ahead at most to tell a chat's era
# Messages of a chat the corpus holds read ahead at most, to learn how the corpus keyed them.
_MATCH_PEEK = 20_000
_ZONE_SAMPLE = 200  # messages found under no usual reading, tried in every zone
# Zones that agree on those messages' dates, told apart by their offsets on up to this many days
# across the held chat; at most _ZONE_RULES sets of rules among them are kept, tried in turn.
_ZONE_PROBES = 1000
_ZONE_RULES = 4
# Messages read ahead not held under the chat's usual reading, at most, that are looked for under
# the others by their ids (an edit, a message the held export lacked); more, and the chat's
# words are read whole (another layout, another zone: its messages need them all).
_FEW_LEFT = 50
# Held messages' times were read in some zone, local times are at most 14 hours from UTC.
_SPAN_MARGIN = dt.timedelta(days=2)
_PEER = re.compile(r"(user|channel|chat)(\d+)")

Reading = Callable[[dict[str, Any]], str]
# Held messages' words by id: those of the ids asked for that the corpus holds.
Lookup = Callable[[Collection[str]], Mapping[str, str]]


class HeldChat(Protocol):
    """What the corpus holds of one chat, read only as far as the parser asks."""

    def texts(self, ids: Collection[str]) -> Mapping[str, str]:
        """The words of the messages held under these ids (those held)."""
        ...

    def all_texts(self) -> Mapping[str, str]:
        """Every held message's words, by id."""
        ...

    def span(self) -> tuple[dt.datetime, dt.datetime] | None:
        """The first and last held message's times (None: none held)."""
        ...

    def senders(self) -> set[str]:
        """The ids of the held messages' senders."""
        ...


def old_user_id(raw: Any) -> str:
    """A pre-2021 integer sender as the sender is known today ("user123", "channel123")."""
    if isinstance(raw, int) and raw >= _CHAT_SHIFT:
        return f"channel{raw & _BARE}"
    if isinstance(raw, int) and raw >= _USER_SHIFT:
        return f"user{raw & _BARE}"
    return user_id(raw)


def legacy_senders(holds: Collection[str]) -> Callable[[Any], str]:
    """Senders as imports named them in a chat kept under its pre-2021 id (``holds``: its
    senders' ids): the integer as the old export wrote it ("user4294967397" for user 101 with
    bit 32, or "user101" from exports older still); today's "user101" turned back into
    whichever the chat holds."""

    def sender(raw: Any) -> str:
        if isinstance(raw, int):
            return user_id(raw)
        match = _PEER.fullmatch(str(raw))
        if match and int(match[2]) <= _BARE:
            shift = _USER_SHIFT if match[1] == "user" else _CHAT_SHIFT
            old = f"user{int(match[2]) | shift}"
            return old if old in holds or match[1] != "user" else f"user{match[2]}"
        return str(raw)

    return sender


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


# How a message's time goes into its id (where Telegram numbers messages per account), never
# the zone an import reads local times in: the export's Unix time where it has one; in the
# pre-2021 layout, the Unix time of the local time read as UTC (the computer's zone is not in the
# file; this is what a newer export gives when the computer was on UTC, and what imports gave
# with the default TIME_ZONE); in a 2021 export with no Unix time yet, the local time as written
# (ISO, read as UTC), as such exports always were.
def unix_reading(msg: dict[str, Any]) -> str:
    return str(msg["date_unixtime"])


def written_reading(msg: dict[str, Any]) -> str:
    local = dt.datetime.fromisoformat(str(msg["date"]))
    return local.replace(tzinfo=local.tzinfo or dt.UTC).astimezone(dt.UTC).isoformat()


def zone_reading(tz: dt.tzinfo, fold: int = 0) -> Reading:
    """The Unix time of the local time in ``tz``: a newer export's time, if ``tz`` is where the
    computer was, and what imports of pre-2021 one-to-one chats took for a while (in the
    import's zone); only ever used to find a message the corpus already holds. ``fold=1``: the
    second pass of a local time the clocks go through twice (the hour repeated when they go
    back); a local time that happens once has no such reading (ValueError)."""

    def reading(msg: dict[str, Any]) -> str:
        local = dt.datetime.fromisoformat(str(msg["date"]))
        if fold and (local.tzinfo is not None or not _repeated(local, tz)):
            raise ValueError("a local time that happens once")
        return str(int(local.replace(tzinfo=local.tzinfo or tz, fold=fold).timestamp()))

    reading.zone = getattr(tz, "key", str(tz))  # type: ignore[attr-defined]
    reading.tz = tz  # type: ignore[attr-defined]
    reading.fold = fold  # type: ignore[attr-defined]
    return reading


def _repeated(local: dt.datetime, tz: dt.tzinfo) -> bool:
    """Whether this local time happens twice in ``tz`` (PEP 495: its first pass has the larger
    offset; in a skipped hour the first reading has the smaller)."""
    first, second = (
        local.replace(tzinfo=tz).utcoffset(),
        local.replace(tzinfo=tz, fold=1).utcoffset(),
    )
    return first is not None and second is not None and first > second


def _with_repeats(readings: list[Reading]) -> list[Reading]:
    """These readings, each zone's followed by the reading of the second pass of its repeated
    local times (tried only for a message sent in such an hour)."""
    out: list[Reading] = []
    for reading in readings:
        out.append(reading)
        tz = getattr(reading, "tz", None)
        if tz is not None and not getattr(reading, "fold", 0) and tz is not dt.UTC:
            out.append(zone_reading(tz, fold=1))
    return out


UTC_READING = zone_reading(dt.UTC)


def content_key(chat_id: str, stamp: str, sender: str, n: int) -> str:
    seed = f"{chat_id}|{stamp}|{sender}|{n}".encode()
    return f"{chat_id}:c" + hashlib.sha1(seed, usedforsecurity=False).hexdigest()[:16]


@functools.cache
def _zone_names() -> tuple[str, ...]:
    return tuple(sorted(zoneinfo.available_timezones()))


def _same_text(held: str | None, text: str) -> bool:
    if held is None:
        return False
    from ingest.rows import clean_text  # the text as rows store it

    return held == clean_text(text)


class _Entry(NamedTuple):
    """A message that would get a content id: what its id is made of."""

    msg: dict[str, Any]
    sender: str
    n: int
    text: str
    sent_at: dt.datetime


class _Parser:
    def __init__(
        self,
        tz: dt.tzinfo,
        include_forwarded: bool,
        label: str,
        numbered_chats: Collection[str] = (),
        known_chats: Collection[str] = (),
        held_messages: Callable[[str], HeldChat] | None = None,
    ) -> None:
        self.tz = tz
        self.include_forwarded = include_forwarded
        self.label = label
        self.numbered_chats = numbered_chats
        self.known_chats = known_chats
        self.held_messages = held_messages
        self.sender_id = user_id  # how this chat's senders are named (old_user_id: pre-2021)
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
        return written_reading(msg)

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
        ids, notice = None, ""
        if per_account:
            ids, notice = self.content_ids(chat_id, meta, number, kind, bool(old), ahead, js, rest)
            chat_id = ids.chat_id
        title = meta.get("name") or ("Saved Messages" if kind == "saved_messages" else chat_id)
        yield ConversationRecord(chat_id, str(title), is_group=kind not in _ONE_TO_ONE)
        if notice:
            yield NoticeRecord(notice.format(title=title))
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
        named; unless the corpus holds the chat under its pre-2021 id with Telegram's message
        numbers (imported before such exports were read this way): then it keeps that id, so
        that re-importing it adds nothing and a newer export of it joins it. (One held under
        its pre-2021 id with content ids is found by content_ids.)"""
        self.sender_id = old_user_id if old else user_id
        if not isinstance(number, int) or isinstance(number, bool):
            return number
        if old and number >= _USER_SHIFT:
            if str(number) in self.numbered_chats:
                self.sender_id = user_id
                return number
            return number & _BARE
        # Not a one-to-one chat's: users' numbers now pass 2**32, where the old ids began.
        legacy = number | _CHAT_SHIFT
        if not old and kind not in _USER_KINDS and number <= _BARE:
            return legacy if str(legacy) in self.numbered_chats else number
        return number

    @staticmethod
    def legacy_number(number: Any, kind: str, old: bool) -> int | None:
        """The id a pre-2021 export gave this chat (one-to-one or basic group), if any."""
        if not isinstance(number, int) or isinstance(number, bool):
            return None
        if old:
            return number if number >= _USER_SHIFT else None
        if number > _BARE:
            return None
        if kind in _USER_KINDS:
            return number | _USER_SHIFT
        return number | _CHAT_SHIFT if kind == "private_group" else None

    def content_ids(
        self,
        chat_id: str,
        meta: dict[str, Any],
        number: Any,
        kind: str,
        old: bool,
        ahead: list[Any],
        js: JsonStream,
        rest: Iterator[Any],
    ) -> tuple[_ContentIds, str]:
        """The ids of a chat whose messages are known by their content, and a notice for the
        import page (or ""). A chat the corpus holds already (under this id, or under the id a
        pre-2021 export gave it, as imports made before) is read ahead: the messages it holds
        keep the ids they have, whichever reading of their time made them."""
        if any(_has_unix(m) for m in ahead):
            default = unix_reading
        else:
            default = UTC_READING if old else written_reading
        options = [chat_id]
        legacy = self.legacy_number(number, kind, old)
        if legacy is not None:
            legacy_chat, legacy_content = self.chat_key({**meta, "id": legacy}, kind)
            if legacy_chat != chat_id and legacy_content:
                options.insert(0, legacy_chat)
        options = [option for option in options if option in self.known_chats]
        if not options or self.held_messages is None:
            return _ContentIds(chat_id, default), ""
        for _ in rest:
            ahead.append(js.value())
            if len(ahead) >= _MATCH_PEEK:
                break
        notice = ""
        for held_chat in options:
            held = self.held_messages(held_chat)
            senders = self.sender_id if held_chat == chat_id else legacy_senders(held.senders())
            entries = self.entries(ahead, senders)
            readings, matched, span = self.held_readings(held_chat, default, entries, held)
            # Only a chat held under other readings needs the words of all it holds.
            words = held.all_texts() if readings else None
            if held_chat == chat_id:
                return _ContentIds(chat_id, default, readings, words), notice
            if matched:  # imported under its pre-2021 id: it keeps it, and joins the rest there
                self.sender_id = senders
                return _ContentIds(held_chat, default, readings, words), ""
            if span:
                notice = (
                    'The chat "{title}" may already be here from an older export (under the id '
                    "Telegram gave it before 2021): none of its messages could be matched to "
                    "it, so any that are in both exports now appear twice."
                )
        return _ContentIds(chat_id, default), notice

    def entries(self, msgs: list[Any], senders: Callable[[Any], str]) -> list[_Entry]:
        """The messages among ``msgs`` that get content ids, as message() makes them."""
        out: list[_Entry] = []
        places = _Places()
        for msg in msgs:
            text, _ = self.text(msg)
            if not text or msg.get("id") is None:
                continue
            try:
                sent_at = self.sent_at(msg)
            except (KeyError, ValueError, TypeError, OverflowError):
                continue
            raw = msg.get("from_id")
            name = msg.get("from") or "Deleted Account"
            sender = senders(raw) if raw is not None else f"name:{name}"
            out.append(_Entry(msg, sender, places.of(msg, sender), text, sent_at))
        return out

    def held_readings(
        self, chat_id: str, default: Reading, entries: list[_Entry], held: HeldChat
    ) -> tuple[list[Reading], int, int]:
        """Readings of these messages' times other than ``default`` under which the corpus
        holds some of them (the same sender, place in the second and text), in the order
        message ids try them; how many are held under any; and how many fall within the held
        messages' time span. The corpus is asked for these messages' ids under ``default``
        first: where it holds nearly all of them so, the others are looked for by their ids
        too, and the chat's words are read whole only where many are left."""
        span = held.span() if entries else None
        if span is None:
            return [], 0, 0
        low, high = span[0] - _SPAN_MARGIN, span[1] + _SPAN_MARGIN
        inside = [e for e in entries if low <= e.sent_at <= high]
        left, matched = _held_under(chat_id, default, inside, held.texts)
        if not left:
            return [], matched, len(inside)
        lookup: Lookup = held.texts
        if len(left) > _FEW_LEFT:
            words = held.all_texts()
            lookup = lambda _ids: words  # noqa: E731
        usual = [written_reading, UTC_READING]
        if self.tz_key() != "UTC":
            usual.append(zone_reading(self.tz))
        readings: list[Reading] = []
        for reading in (r for r in usual if r is not default):
            left, found = _held_under(chat_id, reading, left, lookup)
            if found:
                readings.append(reading)
                matched += found
        if left:
            # Zones that agree on every message read ahead may part later (one keeps summer
            # time, the other not): all of them are kept, tried in turn.
            for rules in self.zones_holding(chat_id, left, lookup, span):
                found = 0
                for zone in rules:
                    left, some = _held_under(chat_id, zone, left, lookup)
                    found += some
                if found:
                    readings.extend(rules)
                    matched += found
        if readings:
            readings = _with_repeats(readings)
            for reading in readings:
                if getattr(reading, "fold", 0):
                    left, found = _held_under(chat_id, reading, left, lookup)
                    matched += found
        return readings, matched, len(inside)

    def tz_key(self) -> str:
        return getattr(self.tz, "key", str(self.tz))

    def zones_holding(
        self,
        chat_id: str,
        left: list[_Entry],
        lookup: Lookup,
        span: tuple[dt.datetime, dt.datetime],
    ) -> list[list[Reading]]:
        """Zones in which the local times of some of these messages give the ids the corpus
        holds them under (a newer export's Unix times, when the computer was in that zone).
        Zones that agree on every one of these dates are one class; within it, zones whose
        offsets also agree across the held chat's ``span`` are tried once, by one name, and
        those that part there (Europe/Berlin and Africa/Algiers agree all winter) each by
        theirs, the likeliest first."""
        sample = [e for e in left[:: max(1, len(left) // _ZONE_SAMPLE)] if _has_date(e.msg)]
        locals_ = []
        for entry in sample[:_ZONE_SAMPLE]:
            local = dt.datetime.fromisoformat(str(entry.msg["date"]))
            if local.tzinfo is None:
                locals_.append((entry, local))
        if not locals_:
            return []
        classes: dict[tuple[int, ...], list[str]] = {}
        for name in _zone_names():
            try:
                tz = zoneinfo.ZoneInfo(name)
                offsets = tuple(_offset(local, tz) for _, local in locals_)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError, OverflowError):
                continue
            classes.setdefault(offsets, []).append(name)
        keys = {
            offsets: [
                content_key(chat_id, str(_as_utc(local) - offset), entry.sender, entry.n)
                for (entry, local), offset in zip(locals_, offsets, strict=True)
            ]
            for offsets in classes
        }
        held = lookup({key for some in keys.values() for key in some})
        found: list[tuple[int, str]] = []
        for offsets, names in classes.items():
            hits = sum(
                _same_text(held.get(key), entry.text)
                for key, (entry, _) in zip(keys[offsets], locals_, strict=True)
            )
            if hits >= min(2, len(locals_)):
                found.append((-hits, names))
        found.sort(key=lambda f: (f[0], f[1][0]))
        return [
            [zone_reading(zoneinfo.ZoneInfo(name)) for name in self.rules(names, span)]
            for _, names in found[:3]
        ]

    def rules(self, names: list[str], span: tuple[dt.datetime, dt.datetime]) -> list[str]:
        """One name for each set of rules among these zones over ``span`` (their offsets at
        noon, up to _ZONE_PROBES days across it), at most _ZONE_RULES: the import's zone's or
        UTC's first, then those most zones follow."""
        low, high = span[0] - _SPAN_MARGIN, span[1] + _SPAN_MARGIN
        days = max(1, (high - low).days)
        step = max(1, days // _ZONE_PROBES)
        start = low.replace(tzinfo=None, hour=12, minute=0, second=0, microsecond=0)
        probes = [start + dt.timedelta(days=d) for d in range(0, days + 1, step)]
        groups: dict[tuple[int, ...], list[str]] = {}
        for name in names:
            try:
                tz = zoneinfo.ZoneInfo(name)
                offsets = tuple(_offset(probe, tz) for probe in probes)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError, OverflowError):
                continue
            groups.setdefault(offsets, []).append(name)
        mine = self.tz_key()

        def rank(group: list[str]) -> tuple[bool, bool, int, str]:
            return mine not in group, "UTC" not in group, -len(group), group[0]

        chosen = sorted(groups.values(), key=rank)[:_ZONE_RULES]
        return [mine if mine in g else "UTC" if "UTC" in g else g[0] for g in chosen]

    def text(self, msg: Any) -> tuple[str, str]:
        """A message's words, or "" and why it is left out."""
        if not isinstance(msg, dict):
            return "", "invalid"
        if msg.get("type") != "message":
            return "", "system"  # joins, pins, calls, title changes...
        if msg.get("forwarded_from") is not None and not self.include_forwarded:
            return "", "forwarded"
        text = flatten_text(msg.get("text")).strip()
        if not text and msg.get("rich_message"):
            text = flatten_rich(msg["rich_message"])
        if not text:
            has_media = any(k in msg for k in _MEDIA_KEYS)
            return "", "media-only" if has_media else "empty"
        return text, ""

    def message(self, chat_id: str, msg: Any, ids: _ContentIds | None = None) -> Iterator[Record]:
        text, why = self.text(msg)
        if not text:
            yield SkippedRecord(why)
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
            external_id = ids.of(msg["id"], msg, sender, text)
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


def _edited(msg: dict[str, Any]) -> bool:
    return bool(msg.get("edited") or msg.get("edited_unixtime"))


def _has_unix(msg: Any) -> bool:
    return isinstance(msg, dict) and bool(msg.get("date_unixtime"))


def _offset(local: dt.datetime, tz: dt.tzinfo) -> int:
    offset = local.replace(tzinfo=tz).utcoffset()
    return int(offset.total_seconds()) if offset is not None else 0


def _as_utc(local: dt.datetime) -> int:
    return int(local.replace(tzinfo=dt.UTC).timestamp())


def _has_date(msg: dict[str, Any]) -> bool:
    return isinstance(msg.get("date"), str)


def _held_under(
    chat_id: str, reading: Reading, entries: list[_Entry], lookup: Lookup
) -> tuple[list[_Entry], int]:
    """The entries the corpus does not hold under ``reading``, and how many it does."""
    if not entries:
        return [], 0
    keys: list[str] = []
    for entry in entries:
        try:
            keys.append(content_key(chat_id, reading(entry.msg), entry.sender, entry.n))
        except (KeyError, ValueError, TypeError, OverflowError):
            keys.append("")
    held = lookup({key for key in keys if key})
    left = [
        e for e, key in zip(entries, keys, strict=True) if not _same_text(held.get(key), e.text)
    ]
    return left, len(entries) - len(left)


class _Places:
    """A message's place among its sender's messages of the same second (runs of one second, as
    the export lists them)."""

    def __init__(self) -> None:
        self.second: Any = None
        self.counts: dict[str, int] = {}  # sender -> messages so far in this second

    def of(self, msg: dict[str, Any], sender: str) -> int:
        second = msg.get("date_unixtime") or msg.get("date")
        if second != self.second:
            self.second, self.counts = second, {}
        n = self.counts[sender] = self.counts.get(sender, -1) + 1
        return n


class _ContentIds:
    """Ids for the messages of a chat that Telegram numbers per account (_PER_ACCOUNT_IDS): the
    chat, the second (``default``'s reading of it), the sender and its place in that second.
    A message the corpus holds (``held``: its words by id) under ``default`` or another reading
    of its time with the same text keeps that id (one the file marks edited: the id of the
    same sender, second and place under another reading, without the words)."""

    def __init__(
        self,
        chat_id: str,
        default: Reading,
        readings: list[Reading] | None = None,
        held: Mapping[str, str] | None = None,
    ) -> None:
        self.chat_id = chat_id
        self.default = default
        self.readings = readings or []
        self.held = held if self.readings else None
        self.places = _Places()
        self.recent: OrderedDict[Any, str] = OrderedDict()  # this export's id -> ours

    def of(self, number: Any, msg: dict[str, Any], sender: str, text: str) -> str:
        n = self.places.of(msg, sender)
        external_id = content_key(self.chat_id, self.default(msg), sender, n)
        held = self.held
        # A held id is kept with its words only: a local time read as UTC can be the time of
        # another message the chat holds (same sender and place), an hour or two off.
        if held is not None and not _same_text(held.get(external_id), text):
            others: list[str] = []
            for reading in self.readings:
                try:
                    other = content_key(self.chat_id, reading(msg), sender, n)
                except (KeyError, ValueError, TypeError, OverflowError):
                    continue
                if _same_text(held.get(other), text):
                    external_id = other
                    break
                others.append(other)
            else:
                # Edited since the export the corpus holds it from (this file says so): its
                # words differ, its sender, second and place do not.
                candidates = [external_id, *others]
                edited = [key for key in candidates if key in held] if _edited(msg) else []
                if edited:
                    external_id = edited[0]
                elif external_id in held:
                    # Not held, its usual id another's: the first reading's id no message has.
                    free = [other for other in others if other not in held]
                    external_id = free[0] if free else external_id
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
    known_chats: Collection[str] = (),
    held_messages: Callable[[str], HeldChat] | None = None,
    **options: Any,
) -> Iterator[Record]:
    """Stream the records of a Telegram Desktop JSON export (result.json, its folder or zip).
    ``numbered_chats``: ids of chats the corpus holds under Telegram's own message numbers (as
    imported before one-to-one chats and basic groups were known by their content): they keep
    those numbers; one held under its pre-2021 id keeps that id. ``known_chats``: ids of the
    Telegram chats the corpus holds; ``held_messages(chat_id)``: what the corpus holds of one of
    them (``HeldChat``: asked for only as far as needed). A one-to-one chat or basic group held
    (under its id, or the one a pre-2021 export gave it) keeps the ids its messages have.
    ``timezone`` is where the exporting computer was: it places local times (``sent_at``),
    never changes an id."""
    tz = time_zone(timezone)
    p = existing(path)
    stream, size, closer = _open(p, limits)
    with closer:
        label = p.name if p.suffix.lower() == ".json" else f"result.json in {p.name}"
        parser = _Parser(tz, include_forwarded, label, numbered_chats, known_chats, held_messages)
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
