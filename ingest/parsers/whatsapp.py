"""WhatsApp "Export chat" text files (.txt, or the .zip with media that holds one).

Every message starts a line with a date and time whose layout depends on the phone's platform and
locale: Android ``12/31/23, 9:15 PM - Name: text``, iOS ``[31/12/2023, 21:15:02] Name: text``, with
any date order, 12- or 24-hour clocks and invisible direction marks. Lines that do not start with a
date continue the previous message. The file is read twice, streaming: once to settle the date
order (a file with no day above 12 is resolved by which order keeps the messages chronological)
and to collect the senders, once to yield the records.

Times carry no zone; they are read in the ``timezone`` option (an IANA name, default UTC).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .archive import Limits, existing, is_zip, open_archive, time_zone
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

_MARKS = "\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\ufeff"
_SPACES = "\u202f\u00a0\u2009"
# Chinese, Japanese and Korean phones write the morning/afternoon marker before the time.
_CJK_AM = ("上午", "午前", "오전")
_CJK_PM = ("下午", "午後", "오후")
_CJK_MARKER = "|".join(_CJK_AM + _CJK_PM)
# The start of a message line, shared with detect.py: an optional bracket, a date whose parts may
# be followed by a space and the last by a dot (Korean "2020. 1. 15."), an optional word between
# date and time (French "à"), an optional CJK marker, then the time.
LINE_START = (
    rf"[{_MARKS}]*\[?(?P<date>\d{{1,4}}[./-] ?\d{{1,2}}[./-] ?\d{{1,4}})\.?,?\s+(?:à\s+)?"
    rf"(?P<pre>{_CJK_MARKER})?\s*(?P<time>\d{{1,2}}[:.]\d{{2}}(?:[:.]\d{{2}})?)"
)
_HEADER = re.compile(
    rf"^{LINE_START}[\s{_SPACES}]*"
    r"(?P<ampm>[AaPp]\.?\s?[Mm]\.?)?\]?(?P<sep>\s[-\u2013]\s|:?\s)(?P<rest>.*)$"
)
_MEDIA_WORDS = re.compile(
    r"^(image|video|audio|sticker|gif|document|contact card|photo|imagen|vídeo|video|"
    r"audio|documento|bild|foto|datei|immagine|imagem|vidéo|photo|fichier)\s+"
    r"(omitted|omitid[oa]|weggelassen|omess[oa]|ocultad[oa]|omis|absente?)$",
    re.I,
)
_DELETED = {
    "this message was deleted",
    "you deleted this message",
    "este mensaje fue eliminado",
    "se eliminó este mensaje",
    "eliminaste este mensaje",
    "diese nachricht wurde gelöscht",
    "du hast diese nachricht gelöscht",
    "ce message a été supprimé",
    "vous avez supprimé ce message",
    "questo messaggio è stato eliminato",
    "hai eliminato questo messaggio",
    "mensagem apagada",
    "esta mensagem foi apagada",
    "você apagou esta mensagem",
    "dit bericht is verwijderd",
}
# iOS writes its notices as if the chat itself sent them ("Hiking Club: Messages and calls are
# ..."), marked with a left-to-right mark that some exports lose. Without the mark, a line whose
# sender is the chat's own name and whose text is one of these notices is still a notice. Only
# whole, unmistakable sentences: in a one-to-one chat that name is the other person's.
_NOTICE = re.compile(
    r"(?:Messages and calls are end-to-end encrypted\b"
    r"|Messages to this (?:group|chat) are now secured with end-to-end encryption\b"
    r"|.+ created group [\"“]"
    r"|.+ changed (?:the subject (?:from .+ )?to [\"“]|this group[’']s icon|the group description)"
    r"|.+ (?:joined using this group[’']s invite link|deleted this group[’']s icon)$"
    r"|Your security code with .+ changed\b"
    r"|Disappearing messages were turned (?:on|off)\b|.+ turned (?:on|off) disappearing messages"
    r"|This (?:chat|group) is with a business account\b"
    r"|Missed (?:group )?(?:voice|video) call$)",
    re.IGNORECASE,
)
# Android appends this to an edited message; the text before it is the final text.
_EDITED = re.compile(
    r"\s*<(this message was edited|se editó este mensaje\.?|"
    r"diese nachricht wurde bearbeitet\.?|ce message a été modifié)>$",
    re.I,
)
_FILE_ATTACHED = re.compile(
    r"^\S.*\.\w{2,5}\s+\((file attached|archivo adjunto|Datei angehängt|"
    r"fichier joint|file allegato|arquivo anexado)\)$",
    re.I,
)
_TITLE_PREFIX = re.compile(
    r"^(WhatsApp Chat (with|-) |Chat de WhatsApp con |WhatsApp-Chat mit |"
    r"Discussion WhatsApp avec |Chat WhatsApp con |Conversa do WhatsApp com )",
    re.I,
)


@dataclass
class _Layout:
    """What the first pass learned about the file."""

    order: str = ""  # "dmy", "mdy" or "ymd"
    senders: dict[str, None] = field(default_factory=dict)  # insertion-ordered set
    lines: int = 0


@dataclass
class _Message:
    stamp: tuple[str, str, str | None]
    rest: str
    continuation: list[str] = field(default_factory=list)


_NO_MARKS = {ord(c): None for c in _MARKS}
_SEPARATORS_ONLY = dict.fromkeys(map(ord, "0123456789 "), None)  # "1/20/24" -> "//"
_DIGITS_AND_SPACES = re.compile(r"[\d ]+")  # \d as the header reads it: "٢٠/١/٢٤" too


def _clean(text: str) -> str:
    return text.translate(_NO_MARKS).strip()


def _sender_name(raw: str) -> str:
    # "~ Carol" (with a narrow space) is how WhatsApp shows someone not in your contacts.
    return _clean(raw).lstrip("~").strip(" " + _SPACES)


def _split(rest: str) -> tuple[str | None, str]:
    """("Name", "text") for a message, (None, text) for a system line."""
    sender, sep, body = rest.partition(": ")
    if not sep:  # "Name:." or "Name:" with nothing after the colon's usual space
        sender, sep, body = rest.partition(":")
        if body[:1].isdigit():
            return None, rest
    if not sep or any(q in sender for q in '"“”«»') or len(sender) > 80:
        return None, rest
    return _sender_name(sender), body


def _line_layout(line: str, match: re.Match[str]) -> tuple[bool, str, bool, bool]:
    """How a message line is laid out: bracket, the date's separators ("//"), 12-hour clock, dash.
    Every line of one export has the same, so a message that starts a line of its own with
    a date and time ("2024-03-05 18:00 train leaves") is not taken for a new message."""
    date = match["date"]
    return (
        "[" in line[: match.start("date")],
        date.translate(_SEPARATORS_ONLY) if date.isascii() else _DIGITS_AND_SPACES.sub("", date),
        bool(match["pre"] or match["ampm"]),
        "-" in match["sep"] or "\u2013" in match["sep"],
    )


def _date_parts(date: str) -> tuple[int, int, int]:
    a, b, c = (int(x) for x in re.findall(r"\d+", date))
    return a, b, c


class _Reader:
    def __init__(self, path: Path, limits: Limits | None, tz: dt.tzinfo, name: str) -> None:
        self.path = path
        self.name = name  # the file's name as the person chose it (an upload's is not path's)
        self.limits = limits
        self.tz = tz
        stem = Path(name).stem
        self.title = _TITLE_PREFIX.sub("", stem).strip() or stem
        self.size = 0
        self._raw: IO[bytes] | None = None

    @contextmanager
    def lines(self) -> Iterator[Iterator[str]]:
        """The chat's lines, from the .txt, or the .txt inside the zip or the unpacked folder
        (at its top, or one folder down when the folder was zipped again)."""
        if self.path.is_file() and not is_zip(self.path):
            self.size = self.path.stat().st_size
            with self.path.open("rb") as raw:
                yield self._decode(raw, self.path.name)
            return
        with open_archive(self.path, self.limits) as archive:
            texts = sorted(
                (m for m in archive.members if m.endswith(".txt") and m.count("/") <= 1),
                key=lambda m: (m.count("/"), m.rsplit("/", 1)[-1] != "_chat.txt", m),
            )
            if not texts:
                raise ExportError(f"{self.path.name} holds no WhatsApp chat (.txt) file.")
            member = texts[0]
            name = member.rsplit("/", 1)[-1]
            if name != "_chat.txt":
                self.title = _TITLE_PREFIX.sub("", name[:-4]).strip() or self.title
            elif self.path.is_dir() or "/" in member:  # iOS: the folder or zip is named for it
                folder = member.rsplit("/", 1)[0] if "/" in member else self.name
                self.title = _TITLE_PREFIX.sub("", Path(folder).stem).strip() or self.title
            self.size = archive.size(member)
            with archive.open(member) as raw:
                yield self._decode(raw, member)

    def position(self) -> int:
        """Bytes of the chat read so far (to the text reader's last chunk)."""
        try:
            return min(self._raw.tell(), self.size) if self._raw is not None else 0
        except (OSError, ValueError):  # closed, or a stream that cannot say
            return 0

    def _decode(self, raw: IO[bytes], label: str) -> Iterator[str]:
        self._raw = raw
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline=None)
        try:
            for line in text:
                yield line.rstrip("\n")
        except UnicodeDecodeError as exc:
            raise ExportError(
                f"{label} is not UTF-8 text; export the chat again from WhatsApp."
            ) from exc

    def messages(self, lines: Iterator[str]) -> Iterator[_Message]:
        current: _Message | None = None
        layout = None  # the first line's; a line laid out otherwise is part of a message
        for line in lines:
            match = _HEADER.match(line)
            if match is not None:
                shape = _line_layout(line, match)
                if layout is None:
                    layout = shape
                elif shape != layout:
                    match = None  # laid out otherwise: a line of the message before
            if match is not None:
                if current:
                    yield current
                stamp = (match["date"], match["time"], match["pre"] or match["ampm"])
                current = _Message(stamp, match["rest"])
            elif current:
                current.continuation.append(line)
            elif _clean(line):
                raise ExportError(
                    f"{self.path.name} is not a WhatsApp chat export: its first line does not "
                    "start with a date and time."
                )
        if current:
            yield current

    def survey(self, progress: ProgressCallback | None = None) -> _Layout:
        """The first pass: who speaks, the date order. It reports the bytes it has read: a big
        chat's page shows it moving before the messages are counted."""
        layout = _Layout()
        day_first = month_first = False
        previous: dict[str, tuple[int, int, int] | None] = {"dmy": None, "mdy": None}
        backwards = {"dmy": 0, "mdy": 0}
        twelve_hour = False
        with self.lines() as lines:
            for message in self.messages(lines):
                layout.lines += 1
                if progress and layout.lines % 5000 == 0:
                    progress(Progress(done=self.position(), total=self.size, unit="bytes"))
                a, b, c = _date_parts(message.stamp[0])
                if a > 31:
                    layout.order = "ymd"
                day_first |= a > 12
                month_first |= b > 12
                for order, key in (("dmy", (c, b, a)), ("mdy", (c, a, b))):
                    if previous[order] and key < previous[order]:  # type: ignore[operator]
                        backwards[order] += 1
                    previous[order] = key
                sender, _, _ = _interpret(message, self.title)
                if sender is not None:
                    layout.senders.setdefault(sender)
                twelve_hour |= message.stamp[2] is not None
        if not layout.lines:
            raise ExportError(f"{self.path.name} contains no messages.")
        if not layout.order:
            if day_first and month_first:
                raise ExportError(
                    f"{self.path.name} mixes day-first and month-first dates, so its dates "
                    "cannot be read."
                )
            if day_first or month_first:
                layout.order = "dmy" if day_first else "mdy"
            elif backwards["dmy"] != backwards["mdy"]:
                layout.order = min(backwards, key=backwards.__getitem__)
            else:  # one day only: US phones are the ones with a 12-hour clock
                layout.order = "mdy" if twelve_hour else "dmy"
        return layout

    def sent_at(self, stamp: tuple[str, str, str | None], order: str) -> dt.datetime:
        return self.wall_clock(stamp, order).replace(tzinfo=self.tz).astimezone(dt.UTC)

    def wall_clock(self, stamp: tuple[str, str, str | None], order: str) -> dt.datetime:
        """The date and time as the phone wrote them (no zone)."""
        a, b, c = _date_parts(stamp[0])
        year, month, day = {"ymd": (a, b, c), "dmy": (c, b, a), "mdy": (c, a, b)}[order]
        year += 2000 if year < 100 else 0
        parts = [int(x) for x in re.split(r"[:.]", stamp[1])]
        hour, minute, second = parts[0], parts[1], parts[2] if len(parts) > 2 else 0
        if stamp[2]:
            pm = stamp[2].lower().startswith("p") or stamp[2] in _CJK_PM
            hour = hour % 12 + (12 if pm else 0)
        try:
            return dt.datetime(year, month, day, hour, minute, second)
        except ValueError:
            raise ExportError(
                f"{self.path.name} has a message dated {stamp[0]} {stamp[1]}, which is not a "
                "date joe can read; export the chat again from WhatsApp."
            ) from None


def _classify(body: str) -> str | None:
    """The skip reason for a body that is not words, or None."""
    clean = _clean(body)
    bare = clean.rstrip(".").lower()
    if bare in _DELETED:
        return "deleted"
    if (
        (clean.startswith("<") and clean.endswith(">"))  # <Media omitted>, <attached: x.jpg>
        or _MEDIA_WORDS.match(clean)
        or _FILE_ATTACHED.match(clean)
        or clean == "null"  # a view-once photo
    ):
        return "media-only"
    if body.lstrip(_SPACES + " ").startswith("\u200e"):
        return "system"  # iOS marks its own notices (calls, security codes) with a LRM
    return None


def _interpret(message: _Message, title: str) -> tuple[str | None, str | None, str]:
    """(sender, skip reason, text) of one message; sender is None for a system line.
    ``title`` is the chat's name, which iOS gives as the sender of its notices."""
    sender, first = _split(message.rest)
    if sender is None:
        return None, "system", ""
    if sender == title and not message.continuation and _NOTICE.match(_clean(first)):
        return None, "system", ""
    body = _EDITED.sub("", "\n".join([first, *message.continuation]).rstrip())
    reason = _classify(body if message.continuation else first)
    if reason is None and message.continuation and _FILE_ATTACHED.match(_clean(first)):
        body = "\n".join(message.continuation)  # the caption under the file name
    text = _clean(body)
    if reason == "system":
        return None, reason, ""
    return sender, reason or (None if text else "empty"), text


def parse(
    path: str,
    *,
    progress: ProgressCallback | None = None,
    timezone: str = "UTC",
    limits: Limits | None = None,
    file_name: str = "",
    **options: Any,
) -> Iterator[Record]:
    """Stream the records of one WhatsApp chat export (.txt or .zip). ``file_name``: the name
    it was uploaded under, which names the chat (default: the name of ``path``)."""
    tz = time_zone(timezone)
    p = existing(path)
    reader = _Reader(p, limits, tz, file_name or p.name)
    layout = reader.survey(progress)
    for name in layout.senders:
        yield IdentityRecord(name, name)
    conversation_id = reader.title
    yield ConversationRecord(conversation_id, reader.title, is_group=len(layout.senders) > 2)
    state = Progress(done=0, total=layout.lines, unit="messages")
    minute: dt.datetime | None = None
    repeats: dict[str, int] = {}  # per sender, within the current timestamp only
    with reader.lines() as lines:
        for message in reader.messages(lines):
            state.done += 1
            if progress and state.done % 1000 == 0:
                progress(state)
            sender, reason, text = _interpret(message, reader.title)
            if sender is None or reason:
                yield SkippedRecord(reason or "system")
                continue
            wall = reader.wall_clock(message.stamp, layout.order)
            sent_at = wall.replace(tzinfo=tz).astimezone(dt.UTC)
            if wall != minute:
                minute, repeats = wall, {}
            # The n-th message of a sender within one timestamp keeps its id on re-export. The
            # id takes the time as the phone wrote it, whatever zone it is read in (written as
            # UTC, as every import did before the zone could be chosen: the same ids as then).
            n = repeats[sender] = repeats.get(sender, -1) + 1
            stamp = wall.replace(tzinfo=dt.UTC).isoformat()
            digest = hashlib.sha1(
                f"{conversation_id}|{stamp}|{sender}|{n}".encode(),
                usedforsecurity=False,
            ).hexdigest()[:20]
            yield MessageRecord(digest, conversation_id, sender, sent_at, text)
    if progress:
        progress(state)
