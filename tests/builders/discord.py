"""Build DiscordChatExporter JSON exports (one file per channel).

    build_discord(tmp_path / "general.json", [dc("1", ann, "hi"), dc("2", ben, "yo", reply_to="1")])

``author(id, name, nickname=None, bot=False)`` makes the author objects. Messages stream to disk.
"""

from __future__ import annotations

import datetime as dt
import json
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO, Any

START = dt.datetime(2024, 1, 1, 9, 0, tzinfo=dt.UTC)


def author(id: str, name: str, nickname: str | None = None, bot: bool = False) -> dict[str, Any]:
    return {
        "id": id,
        "name": name,
        "discriminator": "0000",
        "nickname": nickname or name,
        "color": None,
        "isBot": bot,
        "roles": [],
        "avatarUrl": "https://cdn.example/a.png",
    }


def dc(id: str, who: dict[str, Any], content: str, *, reply_to: str | None = None,
       type: str | None = None, **fields: Any) -> dict[str, Any]:  # fmt: skip
    msg: dict[str, Any] = {
        "id": id,
        "type": type or ("Reply" if reply_to else "Default"),
        "timestamp": (START + dt.timedelta(minutes=int(id))).isoformat(),
        "timestampEdited": None,
        "isPinned": False,
        "content": content,
        "author": who,
        "attachments": [],
        "embeds": [],
        "stickers": [],
        "reactions": [],
        "mentions": [],
    }
    if reply_to:
        msg["reference"] = {"messageId": reply_to, "channelId": "10", "guildId": "1"}
    msg.update(fields)
    return msg


def write_channel(out: IO[bytes], msgs: Iterable[dict[str, Any]], *, channel_id: str = "10",
                  name: str = "general", guild: str = "Friends",
                  kind: str = "GuildTextChat") -> None:  # fmt: skip
    head = {
        "guild": {"id": "1", "name": guild, "iconUrl": ""},
        "channel": {"id": channel_id, "type": kind, "categoryId": None, "category": None,
                    "name": name, "topic": None},
        "dateRange": {"after": None, "before": None},
        "exportedAt": "2024-06-01T00:00:00+00:00",
    }  # fmt: skip
    out.write(json.dumps(head, indent=2)[:-2].encode() + b',\n  "messages": [')
    count = 0
    for count, msg in enumerate(msgs, 1):
        out.write((",\n    " if count > 1 else "\n    ").encode() + json.dumps(msg).encode())
    out.write(f'\n  ],\n  "messageCount": {count}\n}}'.encode())


def build_discord(target: Path, msgs: Iterable[dict[str, Any]] = (), *,
                  channels: Mapping[str, Iterable[dict[str, Any]]] | None = None,
                  **channel: Any) -> Path:  # fmt: skip
    """One channel file (``.json``), or a zip of ``channels`` (name -> messages)."""
    if target.suffix == ".json":
        with target.open("wb") as out:
            write_channel(out, msgs, **channel)
        return target
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as z:
        for i, (name, channel_msgs) in enumerate((channels or {}).items()):
            with z.open(f"Friends - {name} [{100 + i}].json", "w") as out:
                write_channel(out, channel_msgs, channel_id=str(100 + i), name=name)
    return target
