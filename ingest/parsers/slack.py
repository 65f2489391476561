"""Slack workspace export (the zip from "Export data", or that zip unpacked).

Layout: ``users.json`` (``org_users.json`` from Enterprise Grid); ``channels.json``,
``groups.json`` (private channels), ``dms.json`` and ``mpims.json`` when the plan exports them; and
one folder per conversation holding one ``YYYY-MM-DD.json`` array of messages per day. Channel,
private-channel and group-DM folders are named after the conversation, DM folders after its id.
Day files are read one at a time, so memory stays bounded by the largest day, not the export; a
conversation's day files are first scanned for edit and deletion events, which can come days after
the message they change.

A message's ``external_id`` is ``<conversation id>:<ts>``: Slack's ``ts`` is unique within a
conversation and never changes, so re-exports deduplicate.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .archive import Archive, Limits, open_archive, parse_json_bytes
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

_DAY_FILE = re.compile(r"^([^/]+)/(\d{4}-\d{2}-\d{2})\.json$")
_MARKUP = re.compile(r"<([^<>]*)>")
# Before 2019 a file upload's text was generated: "<@U1|bob> uploaded a file: <url|name> and
# commented: nice". Only the comment is the person's words.
_OLD_UPLOAD = re.compile(
    r"^<@[^>]+> (?:uploaded|shared) a file: <[^>]*>(?: and commented: (?P<comment>.*))?$", re.S
)
# Subtypes that are a person talking; every other subtype is an event (join, topic, pin...).
_SPOKEN = {None, "", "thread_broadcast", "reply_broadcast", "me_message", "file_share"}
_BOT_SUBTYPES = {"bot_message"}
_DELETED_SUBTYPES = {"tombstone"}  # a thread parent deleted after it got replies
_SPECIAL = {"here": "@here", "channel": "@channel", "everyone": "@everyone"}
_SLACKBOT = "USLACKBOT"
_USER_FILES = ("users.json", "org_users.json")
# Edit and deletion events as raw bytes, to find the day files that hold any without parsing all.
_EVENT_MARKERS = (b'"message_changed"', b'"message_deleted"')


@dataclass(frozen=True, slots=True)
class _Conversation:
    folder: str
    external_id: str
    title: str
    is_group: bool


@dataclass(frozen=True, slots=True)
class _User:
    name: str
    is_bot: bool


def display_name(user: dict[str, Any]) -> str:
    """profile.display_name, else the real name, else the username (as Slack shows people)."""
    profile = user.get("profile") or {}
    return (
        profile.get("display_name")
        or user.get("real_name")
        or profile.get("real_name")
        or user.get("name")
        or str(user.get("id", "unknown"))
    ).strip()


def render_text(
    text: str, users: dict[str, _User], channels: dict[str, str], memo: dict[str, str] | None = None
) -> str:
    """Slack's mrkdwn markup to plain text: mentions to names, links to their labels.

    ``memo`` remembers what each markup target became (the same people and channels come up
    over and over); it must be dropped when ``users`` or ``channels`` change."""
    if "<" not in text and "&" not in text:
        return text  # most messages: no markup at all
    if "<" in text:
        known = memo if memo is not None else {}

        def replace(match: re.Match[str]) -> str:
            inner = match[1]
            rendered = known.get(inner)
            if rendered is None:
                rendered = _render_markup(inner, users, channels)
                if len(known) < _MEMO_SIZE:
                    known[inner] = rendered
            return rendered

        text = _MARKUP.sub(replace, text)
    # Slack escapes only these three; &amp; last so "&amp;lt;" stays "&lt;".
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


_MEMO_SIZE = 100_000  # markup targets remembered per export (links rarely repeat)


def _render_markup(inner: str, users: dict[str, _User], channels: dict[str, str]) -> str:
    """What one ``<...>`` markup (its inside) shows as."""
    target, _, label = inner.partition("|")
    if target.startswith("@"):
        user = users.get(target[1:])
        return "@" + (user.name if user else label.lstrip("@") or target[1:])
    if target.startswith("#"):
        return "#" + (label or channels.get(target[1:], target[1:]))
    if target.startswith("!"):
        command = target[1:].split("^", 1)[0]
        if command in _SPECIAL:
            return _SPECIAL[command]
        return label or ("@" + command if command else "")  # subteam, date: the fallback
    return label or target.removeprefix("mailto:")


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_timedelta = dt.timedelta


def parse_ts(ts: Any) -> dt.datetime:
    """Slack's "1452845865.000008" to an aware UTC datetime, without float rounding."""
    seconds, _, fraction = (ts if type(ts) is str else str(ts)).partition(".")
    if len(fraction) != 6:  # Slack writes six digits; anything else is padded or cut to six
        if fraction and not fraction.isdigit():
            raise ValueError(f"bad ts {ts!r}")
        fraction = fraction[:6].ljust(6, "0")
    digits = seconds + fraction
    if not seconds or not digits.isdigit():
        raise ValueError(f"bad ts {ts!r}")
    try:
        return _EPOCH + _timedelta(0, 0, int(digits))  # one int() instead of two
    except OverflowError:
        raise ValueError(f"bad ts {ts!r}") from None


class _SlackExport:
    """One parse: the lookup tables it needs and the ids it has already announced."""

    def __init__(self, archive: Archive, include_bots: bool) -> None:
        self.archive = archive
        self.include_bots = include_bots
        self.users_file = "users.json"
        self.prefix = self._find_root()
        self.users: dict[str, _User] = {}
        self.people: set[str] = set()  # the users that are not bots
        self.channel_names: dict[str, str] = {}
        self.announced: set[str] = set()
        self.rendered: dict[str, str] = {}  # render_text's memo: users and channels are read first

    def _find_root(self) -> str:
        # Someone who unzips and re-zips the export often adds one folder level on top.
        # Enterprise Grid exports call it org_users.json (hfaran/slack-export-viewer#224).
        candidates = [
            (m.rsplit("/", 1)[0] + "/" if "/" in m else "", m.rsplit("/", 1)[-1])
            for m in self.archive.members
            if m.rsplit("/", 1)[-1] in _USER_FILES and m.count("/") <= 1
        ]
        if not candidates:
            raise ExportError(
                f"{self.archive.name} is not a Slack export: it has no users.json. Upload the zip "
                "that Slack's export page gave you, unchanged."
            )
        prefix, self.users_file = min(candidates, key=lambda c: (len(c[0]), c[1] != "users.json"))
        return prefix

    def _list(self, name: str, *, required: bool = False) -> list[dict[str, Any]]:
        member = self.prefix + name
        if member not in self.archive.members:
            if required:
                raise ExportError(f"{self.archive.name} has no {name}.")
            return []
        data = self.archive.read_json(member)
        if not isinstance(data, list) or not all(isinstance(x, dict) for x in data):
            raise ExportError(f"{name} in {self.archive.name} should be a list of objects.")
        return data

    def identities(self) -> Iterator[IdentityRecord]:
        for user in self._list(self.users_file, required=True):
            user_id = str(user.get("id") or "")
            if not user_id:
                continue
            is_bot = bool(user.get("is_bot")) or user_id == _SLACKBOT
            name = display_name(user)
            self.users[user_id] = _User(name, is_bot)
            if is_bot:
                self.people.discard(user_id)  # users.json may list an id twice
            else:
                self.people.add(user_id)
            if is_bot and not self.include_bots:
                continue
            self.announced.add(user_id)
            profile = user.get("profile") or {}
            real_name = user.get("real_name") or profile.get("real_name") or ""
            extra = {"username": user.get("name", ""), "real_name": real_name}
            yield IdentityRecord(user_id, name, is_bot=is_bot, extra=extra)

    def conversations(self) -> list[_Conversation]:
        found: list[_Conversation] = []
        for kind in ("channels.json", "groups.json"):
            for c in self._list(kind):
                name = str(c.get("name") or c.get("id") or "")
                self.channel_names[str(c.get("id"))] = name
                found.append(_Conversation(name, str(c.get("id") or name), "#" + name, True))
        for kind, is_group in (("mpims.json", True), ("dms.json", False)):
            for c in self._list(kind):
                conv_id = str(c.get("id") or c.get("name") or "")
                members = [self.users[m].name for m in c.get("members") or [] if m in self.users]
                title = ", ".join(sorted(members)) or str(c.get("name") or conv_id)
                folder = conv_id if kind == "dms.json" else str(c.get("name") or conv_id)
                found.append(_Conversation(folder, conv_id, title, is_group))
        return found

    def day_files(self) -> dict[str, list[str]]:
        days: dict[str, list[str]] = {}
        for member in self.archive.members:
            if member.startswith(self.prefix):
                match = _DAY_FILE.match(member[len(self.prefix) :])
                if match:
                    days.setdefault(match.group(1), []).append(member)
        return days

    def _sender(self, msg: dict[str, Any], is_bot: bool) -> tuple[str, IdentityRecord | None]:
        """The sender's id, and an IdentityRecord for them if they were not announced yet."""
        user_id = str(msg.get("user") or msg.get("bot_id") or "")
        if is_bot and msg.get("bot_id") and user_id not in self.users:
            user_id = str(msg["bot_id"])
        if user_id in self.announced:
            return user_id, None
        self.announced.add(user_id)
        profile = msg.get("user_profile") or msg.get("bot_profile") or {}
        known = self.users.get(user_id)
        name = (
            (known.name if known else "")
            or (msg.get("username") if is_bot else "")
            or profile.get("display_name")
            or profile.get("real_name")
            or profile.get("name")
            or user_id
        )
        return user_id, IdentityRecord(user_id, str(name), is_bot=is_bot)

    def day(self, member: str, data: bytes | None = None) -> list[Any]:
        day = parse_json_bytes(
            data if data is not None else self.archive.read_bytes(member), member
        )
        if not isinstance(day, list):
            raise ExportError(f"{member} in {self.archive.name} should be a list of messages.")
        return day

    def events(self, members: list[str]) -> tuple[dict[str, dict[str, Any]], set[str]]:
        """Edits (ts -> final message) and deleted ts of one conversation, from all its days.

        Some exporters (and old official exports) store edits and deletions as events after the
        message, often in a later day file when the edit came after midnight. Only the day files
        whose bytes mention such an event are parsed here, so memory holds the events, not the
        conversation."""
        edits: dict[str, dict[str, Any]] = {}
        deleted: set[str] = set()
        for member in members:
            data = self.archive.read_bytes(member)
            if not any(marker in data for marker in _EVENT_MARKERS):
                continue
            for msg in self.day(member, data):
                if isinstance(msg, dict) and msg.get("subtype") == "message_changed":
                    new = msg.get("message")
                    if isinstance(new, dict) and new.get("ts"):
                        edits[str(new["ts"])] = new
                elif isinstance(msg, dict) and msg.get("subtype") == "message_deleted":
                    deleted.add(str(msg.get("deleted_ts")))
        return edits, deleted

    def messages(
        self,
        conv: _Conversation,
        member: str,
        edits: dict[str, dict[str, Any]],
        deleted: set[str],
    ) -> Iterator[Record]:
        message = self.message
        for msg in self.day(member):
            record = message(conv, msg, edits, deleted)
            if type(record) is tuple:  # a sender seen for the first time, then the message
                yield from record
            else:
                yield record

    def message(
        self,
        conv: _Conversation,
        msg: Any,
        edits: dict[str, dict[str, Any]],
        deleted: set[str],
    ) -> Record | tuple[IdentityRecord, MessageRecord]:
        # This runs once per message of the export: the checks are ordered for the common
        # case (a person's message, no subtype, no markup) and kept inline.
        if type(msg) is not dict:
            return _INVALID
        get = msg.get
        ts = get("ts", "")
        if type(ts) is not str:
            ts = str(ts)
        subtype = get("subtype")
        if subtype is not None and type(subtype) is not str:
            return _INVALID
        if subtype in _DELETED_SUBTYPES or ts in deleted:
            return _DELETED
        if ts in edits:
            msg = {**msg, **edits[ts], "subtype": subtype}
            get = msg.get
        if (subtype not in _SPOKEN and subtype not in _BOT_SUBTYPES) or get("hidden"):
            msg = _file_comment(msg) if subtype == "file_comment" else None
            if msg is None:
                return _SYSTEM
            get, subtype = msg.get, None
        user_field = get("user")
        if subtype is None and type(user_field) is str and user_field in self.people:
            is_bot = False  # a listed person's plain message: what the checks below would say
        else:
            user = self.users.get(user_field if type(user_field) is str else str(user_field))
            is_bot = (
                subtype in _BOT_SUBTYPES
                or (user is not None and user.is_bot)
                or user_field == _SLACKBOT
                or (not user_field and bool(get("bot_id")))
            )
            if is_bot and not self.include_bots:
                return _BOT
            if not user_field and not get("bot_id"):
                return _SYSTEM
        try:
            sent_at = parse_ts(ts)
        except ValueError:
            return _INVALID
        raw = get("text") or ""
        if type(raw) is not str:
            raw = str(raw)
        if raw.startswith("<@"):
            old_upload = _OLD_UPLOAD.match(raw)
            if old_upload:
                raw = old_upload.group("comment") or ""
        if is_bot and not raw.strip():
            # Integrations (GitHub, CI...) put their whole message in attachments.
            parts = [a.get("text") or a.get("fallback") for a in get("attachments") or ()]
            raw = "\n".join(p for p in parts if isinstance(p, str) and p)
        if "<" in raw or "&" in raw:
            raw = render_text(raw, self.users, self.channel_names, self.rendered)
        text = raw.strip()
        if not text:
            has_media = get("files") or get("file") or get("attachments")
            return _MEDIA_ONLY if has_media or subtype == "file_share" else _EMPTY
        if not is_bot and type(user_field) is str and user_field in self.announced:
            sender, new_identity = user_field, None  # what _sender says, without the call
        else:
            sender, new_identity = self._sender(msg, is_bot)
        thread = get("thread_ts")
        if thread and type(thread) is not str:
            thread = str(thread)
        conversation_id = conv.external_id
        record = MessageRecord(
            f"{conversation_id}:{ts}",
            conversation_id,
            sender,
            sent_at,
            text,
            f"{conversation_id}:{thread}" if thread and thread != ts else None,
        )
        return (new_identity, record) if new_identity is not None else record


def _file_comment(msg: dict[str, Any]) -> dict[str, Any] | None:
    """A pre-2019 comment on a file as the commenter's own message, or None without one.

    Its text is generated ("<@U1> commented on <@U2>'s file <url|name>: nice"); the words and
    their author are in ``comment``."""
    comment = msg.get("comment")
    if type(comment) is not dict or not comment.get("user") or not comment.get("comment"):
        return None
    return {**msg, "user": comment["user"], "text": comment["comment"], "subtype": None}


_INVALID = SkippedRecord("invalid")
_DELETED = SkippedRecord("deleted")
_SYSTEM = SkippedRecord("system")
_BOT = SkippedRecord("bot")
_MEDIA_ONLY = SkippedRecord("media-only")
_EMPTY = SkippedRecord("empty")


def layout(
    archive: Archive, include_bots: bool
) -> tuple[_SlackExport, list[IdentityRecord], list[_Conversation], dict[str, list[str]]]:
    """What an export holds before any message is read: its people (those users.json lists,
    bots only with ``include_bots``), its conversations in reading order, and each
    conversation folder's day files."""
    export = _SlackExport(archive, include_bots)
    identities = list(export.identities())
    conversations = export.conversations()
    days = export.day_files()
    if not days:
        raise ExportError(
            f"{archive.name} contains no messages: its conversation folders are missing."
        )
    known = {c.folder for c in conversations}
    # Folders with no entry in the metadata files are still conversations.
    conversations += [_Conversation(f, f, "#" + f, True) for f in sorted(days) if f not in known]
    return export, identities, conversations, days


def day_files(archive: Archive) -> list[str]:
    """The export's day files (members), found as ``layout`` finds them, without reading any."""
    export = _SlackExport(archive, include_bots=False)
    return [m for members in export.day_files().values() for m in members]


EMPTY_DAYS = "{name} contains no messages: every day file is empty."


def parse(
    path: str,
    *,
    progress: ProgressCallback | None = None,
    include_bots: bool = False,
    limits: Limits | None = None,
    **options: Any,
) -> Iterator[Record]:
    """Stream the records of a Slack export (zip or folder) at ``path``.

    ``include_bots``: keep bot messages, with their bots as identities marked ``is_bot``.
    ``limits``: zip-bomb limits (see ``archive.Limits``). Unknown options are ignored.
    """
    with open_archive(path, limits) as archive:
        export, identities, conversations, days = layout(archive, include_bots)
        yield from identities
        state = Progress(done=0, total=sum(len(v) for v in days.values()), unit="files")
        seen_any = False
        for conv in conversations:
            members = sorted(days.get(conv.folder, ()))
            if not members:
                continue
            yield ConversationRecord(conv.external_id, conv.title, conv.is_group)
            edits, deleted = export.events(members)
            for member in members:
                for record in export.messages(conv, member, edits, deleted):
                    seen_any = True
                    yield record
                state.done += 1
                if progress:
                    progress(state)
        if not seen_any:
            raise ExportError(EMPTY_DAYS.format(name=archive.name))
