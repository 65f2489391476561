"""Discord channels exported by DiscordChatExporter in its JSON format.

One file per channel: ``{"guild", "channel", "dateRange", "exportedAt", "messages": [...]}``;
upload one file, or a zip or folder of them. Messages are streamed with ``JsonStream``. Discord ids
(snowflakes) are unique across Discord, so a message's id is its external id. DiscordChatExporter
already renders mentions in ``content`` as ``@name``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from .archive import JsonStream, Limits, existing, open_archive
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

_SPOKEN = {"Default", "Reply", 0, 19}  # names since 2.x, numbers in the oldest exports
_ONE_TO_ONE = {"DirectTextChat", 1}
_MEDIA_KEYS = ("attachments", "stickers", "embeds")


def author_name(author: dict[str, Any]) -> str:
    """The server nickname when set (what friends see), else the account's name."""
    return str(author.get("nickname") or author.get("name") or author.get("id") or "unknown")


class _Channel:
    def __init__(self, label: str, include_bots: bool, announced: set[str]) -> None:
        self.label = label
        self.include_bots = include_bots
        self.announced = announced
        self.id = ""
        self.count = 0

    def read(self, js: JsonStream) -> Iterator[Record]:
        if js.kind() != "object":
            raise self._not_discord()
        guild: dict[str, Any] = {}
        channel: dict[str, Any] = {}
        for key in js.items():
            if key == "guild":
                guild = js.value() or {}
            elif key == "channel":
                channel = js.value() or {}
            elif key == "messages" and js.kind() == "array":
                if not channel.get("id"):
                    raise self._not_discord()
                yield self._conversation(guild, channel)
                for _ in js.elements():
                    self.count += 1
                    yield from self.message(js.value())
        if not self.id:
            raise self._not_discord()

    def _not_discord(self) -> ExportError:
        return ExportError(
            f"{self.label} is not a DiscordChatExporter JSON export: it has no channel and "
            "messages."
        )

    def _conversation(self, guild: dict[str, Any], channel: dict[str, Any]) -> ConversationRecord:
        self.id = str(channel["id"])
        name = str(channel.get("name") or self.id)
        guild_name = str(guild.get("name") or "")
        if channel.get("type") in _ONE_TO_ONE or guild_name in ("", "Direct Messages"):
            title = name
        else:
            title = f"{guild_name} #{name}"
        return ConversationRecord(self.id, title, is_group=channel.get("type") not in _ONE_TO_ONE)

    def message(self, msg: Any) -> Iterator[Record]:
        if not isinstance(msg, dict) or not isinstance(msg.get("author"), dict):
            yield SkippedRecord("invalid")
            return
        author = msg["author"]
        if msg.get("type", "Default") not in _SPOKEN:
            yield SkippedRecord("system")  # joins, pins, calls, thread and name changes
            return
        is_bot = bool(author.get("isBot"))
        if is_bot and not self.include_bots:
            yield SkippedRecord("bot")
            return
        text = str(msg.get("content") or "").strip()
        if not text:
            media = any(msg.get(k) for k in _MEDIA_KEYS)
            yield SkippedRecord("media-only" if media else "empty")
            return
        try:
            sent_at = dt.datetime.fromisoformat(str(msg["timestamp"])).astimezone(dt.UTC)
        except (KeyError, ValueError):
            yield SkippedRecord("invalid")
            return
        author_id = str(author.get("id"))
        if author_id not in self.announced:
            self.announced.add(author_id)
            extra = {
                "username": author.get("name", ""),
                "discriminator": author.get("discriminator", ""),
            }
            yield IdentityRecord(author_id, author_name(author), is_bot=is_bot, extra=extra)
        reference = msg.get("reference") or {}
        parent = reference.get("messageId")
        yield MessageRecord(
            external_id=str(msg["id"]),
            conversation_id=self.id,
            identity_id=author_id,
            sent_at=sent_at,
            text=text,
            reply_to=str(parent) if parent else None,
        )


def _files(path: Path, limits: Limits | None) -> Iterator[tuple[str, IO[bytes]]]:
    if path.is_file() and path.suffix.lower() == ".html":
        raise ExportError(
            f"{path.name} is a DiscordChatExporter HTML export; export again with the JSON format."
        )
    if path.is_file() and path.suffix.lower() != ".zip":
        with path.open("rb") as stream:
            yield path.name, stream
        return
    with open_archive(path, limits) as archive:
        names = [m for m in archive.members if m.lower().endswith(".json")]
        if not names:
            raise ExportError(f"{path.name} holds no DiscordChatExporter .json files.")
        for name in names:
            with archive.open(name) as stream:
                yield name, stream


def parse(
    path: str,
    *,
    progress: ProgressCallback | None = None,
    include_bots: bool = False,
    limits: Limits | None = None,
    **options: Any,
) -> Iterator[Record]:
    """Stream the records of DiscordChatExporter JSON: one channel file, a zip or a folder."""
    p = existing(path)
    announced: set[str] = set()
    state = Progress(unit="files")
    total = 0
    for label, stream in _files(p, limits):
        channel = _Channel(label, include_bots, announced)
        yield from channel.read(JsonStream(stream, label))
        total += channel.count
        state.done += 1
        if progress:
            progress(state)
    if not total:
        raise ExportError(f"{p.name} contains no messages.")
