"""Reading conversations out of a replayed Signal Android database, whatever its version.

Signal's schema changed a lot over the years; the names this module looks for, oldest first:

* messages: ``sms`` + ``mms`` tables, merged into ``message`` in database version 174. In ``mms``
  before v166, ``date`` is the sent date and ``msg_box`` the type; in ``sms`` ``date`` is the
  *received* date and ``date_sent`` always exists. The sender column is ``address`` (before v166),
  ``recipient_id``, then ``from_recipient_id`` (v185; before it, outgoing rows name the chat's
  recipient and the owner is implied by the type).
* attachments: ``part`` (``mid``, ``ct``) became ``attachment`` (``message_id``, ``content_type``)
  in v215.
* recipients: ``uuid``/``phone``/``system_display_name``/``signal_profile_name`` became
  ``aci``/``e164``/``system_joined_name``/``profile_given_name`` around v200.
* threads: ``thread_recipient_id`` became ``recipient_id`` in v166.

Message types pack a base type in the low 5 bits and flags above (Signal's ``MessageTypes``).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field

from ingest.parsers.records import (
    ConversationRecord,
    IdentityRecord,
    MessageRecord,
    Record,
    SkippedRecord,
)

# The tables and columns read below, under every name they had, and each table's row id (an
# INSERT OR REPLACE is matched on it); the replay skips every other table and leaves out every
# other column (real message rows have about 50 columns, we keep 19). The attachment's content
# type is kept too, though only LongTextRows reads it, from the statements.
# fmt: off
_MESSAGE_COLUMNS = frozenset(
    {
        "_id", "thread_id", "date_sent", "date", "date_received", "type", "msg_box",
        "from_recipient_id", "recipient_id", "address", "body", "quote_id", "quote_author",
        "remote_deleted", "latest_revision_id", "original_message_id", "story_type", "is_story",
        "parent_story_id",
    }
)
_ATTACHMENT_COLUMNS = frozenset({"_id", "mid", "message_id", "ct", "content_type", "quote"})
READ_COLUMNS: dict[str, frozenset[str]] = {
    "recipient": frozenset(
        {
            "_id", "aci", "uuid", "e164", "phone", "group_id", "nickname_joined_name",
            "system_joined_name", "system_display_name", "profile_joined_name",
            "profile_given_name", "signal_profile_name", "profile_family_name", "username",
        }
    ),
    "thread": frozenset({"_id", "recipient_id", "thread_recipient_id", "recipient_ids"}),
    "groups": frozenset({"_id", "group_id", "title"}),
    "sms": _MESSAGE_COLUMNS,
    "mms": _MESSAGE_COLUMNS,
    "message": _MESSAGE_COLUMNS,
    "part": _ATTACHMENT_COLUMNS,
    "attachment": _ATTACHMENT_COLUMNS,
    "mention": frozenset({"_id", "message_id", "range_start", "range_length", "recipient_id"}),
}
# fmt: on
KEPT_TABLES = frozenset(READ_COLUMNS)

BASE_TYPE_MASK = 0x1F
BASE_INBOX_TYPE = 20
BASE_DRAFT_TYPE = 27
# Outbox, sending, sent, sent-failed, pending fallbacks, and outgoing audio/video calls.
OUTGOING_TYPES = frozenset({21, 22, 23, 24, 25, 26, 2, 11})
# Flags that make a row an event rather than something a person wrote: key exchange and safety
# number changes, session ends, group updates/leaves, disappearing-message timer changes, and
# messages that could not be decrypted.
KEY_EXCHANGE_BITS = 0x8000 | 0x4000 | 0x2000 | 0x200
END_SESSION_BIT = 0x400000
GROUP_BITS = 0x10000 | 0x20000 | 0x40000
ENCRYPTION_BITS = 0x20000000 | 0x10000000 | 0x08000000 | 0x04000000 | 0x02000000
SYSTEM_BITS = KEY_EXCHANGE_BITS | END_SESSION_BIT | GROUP_BITS | ENCRYPTION_BITS
SPECIAL_TYPES_MASK = 0xF00000000  # payments, gift badges, spam reports, request accepted...
SPECIAL_TYPE_STORY_REACTION = 0x100000000

MENTION = "\ufffc"
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass(slots=True)
class Account:
    """The phone's owner, as the backup's key-values (or, in old backups, preferences) say."""

    aci: str | None = None
    e164: str | None = None
    release_channel: str | None = None  # recipient id of Signal's own announcements chat

    def note_key_value(self, key: str, value: str) -> None:
        if key == "account.aci" and value:
            self.aci = _plain_aci(value)
        elif key == "account.e164" and value:
            self.e164 = value
        elif key == "releasechannel.recipient_id" and value:
            self.release_channel = value

    def note_preference(self, key: str, value: str) -> None:
        if key == "pref_local_uuid" and value:
            self.aci = self.aci or _plain_aci(value)
        elif key == "pref_local_number" and value:
            self.e164 = self.e164 or value


@dataclass(frozen=True, slots=True)
class Person:
    """A recipient row: one person, or a group (then ``external_id`` starts with "group:")."""

    external_id: str
    name: str
    is_group: bool = False
    is_self: bool = False
    extra: dict = field(default_factory=dict)

    def identity(self) -> IdentityRecord:
        return IdentityRecord(self.external_id, self.name, is_self=self.is_self, extra=self.extra)


def classify(message_type: int) -> str | None:
    """The skip reason for a row of this type, or None for a message someone wrote."""
    base = message_type & BASE_TYPE_MASK
    # Below the inbox type are calls, "joined Signal", profile and number changes, etc.
    if base < BASE_INBOX_TYPE or base == BASE_DRAFT_TYPE or message_type & SYSTEM_BITS:
        return "system"
    special = message_type & SPECIAL_TYPES_MASK
    if special == SPECIAL_TYPE_STORY_REACTION:
        return "story"
    return "system" if special else None


def render_mentions(text: str, mentions: list[tuple[int, int, str]]) -> str:
    """Replace each mention placeholder range by "@Name".

    Ranges count UTF-16 code units (they come from Java strings), so the work is done on the
    UTF-16 encoding, right to left so earlier offsets stay valid.
    """
    units = text.encode("utf-16-le")
    for start, length, name in sorted(mentions, reverse=True):
        if start < 0 or length <= 0 or 2 * (start + length) > len(units):
            continue
        units = units[: 2 * start] + f"@{name}".encode("utf-16-le") + units[2 * (start + length) :]
    return units.decode("utf-16-le", errors="replace")


def read_records(db: sqlite3.Connection, account: Account) -> Iterator[Record]:
    """Yield records for every message row, each preceded by its identity and conversation."""
    reader = _Reader(db, account)
    yield from reader.records()


class _Reader:
    def __init__(self, db: sqlite3.Connection, account: Account) -> None:
        self.db = db
        self._unnamed: set[int] = set()  # recipients without any name, only a number or nothing
        self.tables = {
            r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")
        }
        self.group_titles: dict[str, str] = {}
        if "groups" in self.tables and {"group_id", "title"} <= self.columns("groups"):
            rows = self.db.execute("SELECT group_id, title FROM groups")
            self.group_titles = {group: title for group, title in rows if group and title}
        self.people = self._load_people()
        self.by_e164 = {
            p.extra["phone"]: rid for rid, p in self.people.items() if "phone" in p.extra
        }
        self.me = self._find_self(account)
        self.bot_threads: set[int] = set()  # Signal's release notes: announcements, not chat
        self.threads = self._load_threads(account)
        for table, column in (("mention", "message_id"), (self._attachment_table(), None)):
            if table in self.tables:
                column = column or self._attachment_message_column()
                db.execute(f"CREATE INDEX IF NOT EXISTS joe_{table} ON {table} ({column})")

    # -- loading the small tables ------------------------------------------------------------

    def columns(self, table: str) -> set[str]:
        return {row[1] for row in self.db.execute(f"PRAGMA table_info({table})")}

    def _load_people(self) -> dict[int, Person]:
        if "recipient" not in self.tables:
            return {}
        have = self.columns("recipient")

        def pick(*names: str) -> str:
            return next((n for n in names if n in have), "NULL")

        rows = self.db.execute(
            "SELECT _id, {}, {}, {}, {}, {}, {}, {}, {}, {} FROM recipient".format(  # noqa: S608
                pick("aci", "uuid"),
                pick("e164", "phone"),
                pick("group_id"),
                pick("nickname_joined_name"),
                pick("system_joined_name", "system_display_name"),
                pick("profile_joined_name"),
                pick("profile_given_name", "signal_profile_name"),
                pick("profile_family_name"),
                pick("username"),
            )
        )
        people: dict[int, Person] = {}
        for rid, aci, e164, group_id, nickname, system, joined, given, family, username in rows:
            if group_id:
                people[rid] = self._group(group_id)
                continue
            profile = " ".join(part for part in (given, family) if part)
            # Signal's own order: your nickname for them, your contacts' name, their profile.
            name = _first(nickname, system, joined, profile, username)
            if name is None:
                self._unnamed.add(rid)
            extra = {k: v for k, v in (("aci", _plain_aci(aci)), ("phone", e164)) if v}
            if aci:
                external_id = f"aci:{_plain_aci(aci)}"
            elif e164:
                external_id = f"e164:{e164}"
            else:
                external_id = f"recipient:{rid}"
            people[rid] = Person(external_id, name or e164 or _unknown(external_id), extra=extra)
        return people

    def _find_self(self, account: Account) -> Person:
        rid = next(
            (
                rid
                for rid, p in self.people.items()
                if (account.aci and p.extra.get("aci") == account.aci)
                or (account.e164 and p.extra.get("phone") == account.e164)
            ),
            None,
        )
        if (
            rid is None
            and "message" in self.tables
            and "from_recipient_id" in self.columns("message")
        ):
            # Since database v185 outgoing rows name their sender: the owner.
            outgoing = ",".join(str(t) for t in OUTGOING_TYPES)
            row = self.db.execute(
                f"SELECT from_recipient_id FROM message WHERE (type & {BASE_TYPE_MASK}) "  # noqa: S608
                f"IN ({outgoing}) LIMIT 1"
            ).fetchone()
            rid = row[0] if row else None
        person = self.people.get(rid) if rid is not None else None
        if person is None:
            # No recipient row for the owner (old backups): their own ids still identify them.
            extra = {k: v for k, v in (("aci", account.aci), ("phone", account.e164)) if v}
            if account.aci:
                return Person(f"aci:{account.aci}", "Me", is_self=True, extra=extra)
            if account.e164:
                return Person(f"e164:{account.e164}", "Me", is_self=True, extra=extra)
            return Person("self", "Me", is_self=True)
        name = "Me" if rid in self._unnamed else person.name
        me = Person(person.external_id, name, is_self=True, extra=person.extra)
        self.people[rid] = me
        return me

    def _load_threads(self, account: Account) -> dict[int, ConversationRecord]:
        if "thread" not in self.tables:
            return {}
        have = self.columns("thread")
        candidates = ("recipient_id", "thread_recipient_id", "recipient_ids")  # newest first
        column = next((c for c in candidates if c in have), None)
        if column is None:
            return {}
        threads: dict[int, ConversationRecord] = {}
        release_channel = _as_int(account.release_channel)
        for tid, rid in self.db.execute(f"SELECT _id, {column} FROM thread"):  # noqa: S608
            if release_channel is not None and _as_int(rid) == release_channel:
                self.bot_threads.add(tid)
            person = self._lookup(rid)
            if person is None:
                threads[tid] = ConversationRecord(f"thread:{tid}", "Unknown chat", is_group=False)
            elif person.is_group:
                threads[tid] = ConversationRecord(person.external_id, person.name, is_group=True)
            else:
                title = "Note to Self" if person.is_self else person.name
                threads[tid] = ConversationRecord(f"chat:{person.external_id}", title, False)
        return threads

    def _attachment_table(self) -> str:
        return "attachment" if "attachment" in self.tables else "part"

    def _attachment_message_column(self) -> str:
        return "message_id" if "message_id" in self.columns(self._attachment_table()) else "mid"

    # -- messages ----------------------------------------------------------------------------

    def _select(self, table: str) -> str:
        """A SELECT over one message table, with the same result columns whatever the schema."""
        have = self.columns(table)

        def pick(*names: str, default: str = "NULL") -> str:
            return next((f"m.{n}" for n in names if n in have), default)

        # In sms, "date" is the received date; in mms/message before v166 it is the sent date.
        sent = pick("date_sent") if table == "sms" else pick("date_sent", "date")
        received = pick("date_received", "date") if table == "sms" else pick("date_received")
        media = "0"
        long_text = "NULL"
        if table != "sms":
            long_text = "(SELECT body FROM joe_long_text WHERE message_id = m._id)"
            attachments = self._attachment_table()
            if attachments in self.tables:
                not_quote = (
                    " AND coalesce(a.quote, 0) = 0" if "quote" in self.columns(attachments) else ""
                )
                media = (
                    f"EXISTS (SELECT 1 FROM {attachments} a "
                    f"WHERE a.{self._attachment_message_column()} = m._id{not_quote})"
                )
        if "original_message_id" in have:
            # An edit is placed and identified by its original's timestamp, as Signal does.
            sent = (
                f"coalesce((SELECT o.{sent[2:]} FROM {table} o "
                f"WHERE o._id = m.original_message_id), {sent})"
            )
        return (
            f"SELECT '{table}' AS source, m._id AS id, m.thread_id, {sent} AS sent, {received}, "
            f"{pick('type', 'msg_box', default='0')}, "
            f"{pick('from_recipient_id', 'recipient_id', 'address')}, {pick('body')}, "
            f"{pick('quote_id', default='0')}, {pick('quote_author')}, "
            f"{pick('remote_deleted', default='0')}, {pick('latest_revision_id')}, "
            f"{pick('story_type', 'is_story', default='0')}, "
            f"{pick('parent_story_id', default='0')}, "
            f"{long_text}, {media} FROM {table} m"
        )

    def records(self) -> Iterator[Record]:
        sources = [t for t in ("message",) if t in self.tables] or [
            t for t in ("sms", "mms") if t in self.tables
        ]
        query = " UNION ALL ".join(self._select(t) for t in sources) + " ORDER BY sent, source, id"
        seen_people: set[str] = set()
        seen_chats: set[str] = set()
        for row in self.db.execute(query):
            (source, mid, thread_id, sent, received, message_type, sender, body, quote_id,
             quote_author, deleted, newer_revision, story, story_parent,
             long_text, has_media) = row  # fmt: skip
            if newer_revision is not None:
                yield SkippedRecord("edited")  # an older revision of an edited message
                continue
            if thread_id in self.bot_threads:
                yield SkippedRecord("bot")
                continue
            # A story, or a reply under one in a group's story; a direct reply (negative
            # parent, Signal's ParentStoryId.DirectReply) is a message in the 1:1 chat.
            if story or (story_parent or 0) > 0:
                yield SkippedRecord("story")
                continue
            reason = classify(message_type or 0)
            if reason is None and deleted:
                reason = "deleted"
            if isinstance(body, bytes):  # SQLite keeps whatever type the backup bound
                body = body.decode("utf-8", errors="replace")
            text = long_text if long_text else body or ""
            if reason is None and MENTION in text and source != "sms":
                text = render_mentions(text, self._mentions(mid))
            if reason is None and not text.strip():
                reason = "media-only" if has_media else "empty"
            if reason is not None:
                yield SkippedRecord(reason)
                continue
            outgoing = (message_type & BASE_TYPE_MASK) in OUTGOING_TYPES
            author = self.me if outgoing else self._person(sender)
            conversation = self.threads.get(thread_id) or ConversationRecord(
                f"thread:{thread_id}", "Unknown chat", is_group=False
            )
            if author.external_id not in seen_people:
                seen_people.add(author.external_id)
                yield author.identity()
            if conversation.external_id not in seen_chats:
                seen_chats.add(conversation.external_id)
                yield conversation
            # Signal dedupes on (author, sent timestamp); a row without one falls back to
            # when it arrived.
            when = sent if sent and sent > 0 else received or 0
            yield MessageRecord(
                external_id=f"{author.external_id}:{when}",
                conversation_id=conversation.external_id,
                identity_id=author.external_id,
                sent_at=_utc(when),
                text=text,
                reply_to=self._reply_to(quote_id, quote_author),
            )

    def _group(self, group_id: str) -> Person:
        return Person(f"group:{group_id}", self.group_titles.get(group_id, "Unnamed group"), True)

    def _lookup(self, recipient: object) -> Person | None:
        """The person or group a recipient column names, if the backup knows it."""
        rid = _as_int(recipient)
        if rid is None and isinstance(recipient, str):
            # Before database v~50 (2019) rows named people by number and groups by group id.
            rid = self.by_e164.get(recipient)
            if rid is None and recipient.startswith("+"):
                return Person(f"e164:{recipient}", recipient, extra={"phone": recipient})
            if rid is None and recipient.startswith("__"):
                return self._group(recipient)
        return self.people.get(rid) if rid is not None else None

    def _person(self, recipient: object) -> Person:
        external_id = f"recipient:{recipient}"
        return self._lookup(recipient) or Person(external_id, _unknown(external_id))

    def _mentions(self, message_id: int) -> list[tuple[int, int, str]]:
        if "mention" not in self.tables:
            return []
        rows = self.db.execute(
            "SELECT range_start, range_length, recipient_id FROM mention WHERE message_id = ?",
            (message_id,),
        )
        return [(start, length, self._person(rid).name) for start, length, rid in rows]

    def _reply_to(self, quote_id: int | None, quote_author: object) -> str | None:
        if not quote_id or quote_id <= 0 or quote_author in (None, 0, "0", ""):
            return None
        return f"{self._person(quote_author).external_id}:{quote_id}"


def _unknown(external_id: str) -> str:
    """A label for someone with no name and no number (an ACI, or only their row): from the id
    they are stored under, so it is theirs alone and the same on every import. Several plain
    "Unknown" could not be told apart, and would have been taken for one person elsewhere."""
    kind, _, value = external_id.partition(":")
    return f"Unknown (…{value[-4:]})" if kind == "aci" else f"Unknown (#{value})"


def _first(*names: str | None) -> str | None:
    """The first name that is not empty or blank, stripped."""
    return next((n.strip() for n in names if n and n.strip()), None)


def _as_int(value: object) -> int | None:
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _plain_aci(value: str | None) -> str | None:
    """An ACI as a bare lower-case UUID (some versions prefix service ids with "ACI:")."""
    if not value:
        return None
    value = value.strip().lower()
    return value[4:] if value.startswith("aci:") else value


def _utc(milliseconds: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(milliseconds=milliseconds)
