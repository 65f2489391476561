"""The records every export parser yields, and the error it raises for bad input.

A parser is a function ``parse(path, *, progress=None, **options) -> Iterator[Record]``. It streams:
memory must not grow with the export's size. Records come in any order, but an ``IdentityRecord`` or
``ConversationRecord`` is always yielded before the first message that refers to it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple


class ExportError(Exception):
    """Bad input. The message is a sentence meant for the upload page and the logs."""


def owner_key(external_id: str, owner_name: str) -> str:
    """The owner's id in an export that calls every owner "me" (iMessage, signal-export): that
    id plus their name, spaces and case aside, so two friends' exports make two people and one
    friend's next export finds them again."""
    return f"{external_id}:{' '.join(owner_name.split()).casefold()}"


@dataclass(frozen=True, slots=True)
class IdentityRecord:
    """One person as the source knows them (Slack user id, Signal recipient id, phone...)."""

    external_id: str
    display_name: str
    is_bot: bool = False
    is_self: bool = False  # the owner of the export (Signal: the phone the backup came from)
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ConversationRecord:
    external_id: str
    title: str
    is_group: bool = True


class MessageRecord(NamedTuple):
    """One text message. ``external_id`` is unique within its source kind (the dedup key).

    (A named tuple, like SkippedRecord: parsers make one per message, and it is the cheapest
    immutable record Python builds.)
    """

    external_id: str
    conversation_id: str
    identity_id: str
    sent_at: dt.datetime  # timezone-aware, UTC
    text: str
    reply_to: str | None = None  # external_id of the parent message (threads, quotes)


class SkippedRecord(NamedTuple):
    """Something the parser saw and deliberately left out, counted per reason for the summary."""

    reason: str  # short, stable: "system", "bot", "empty", "media-only", "deleted", ...


class NoticeRecord(NamedTuple):
    """Something the import page should say about the file (once per export, in words)."""

    text: str


Record = IdentityRecord | ConversationRecord | MessageRecord | SkippedRecord | NoticeRecord


@dataclass(slots=True)
class Progress:
    """Where a parse is. Parsers update it; the caller decides how often to persist it."""

    done: int = 0
    total: int = 0
    unit: str = "bytes"  # "bytes", "frames" or "files"


ProgressCallback = Callable[[Progress], None]
