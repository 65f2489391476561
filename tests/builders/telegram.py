"""Build Telegram Desktop JSON exports (result.json) for one chat or a whole account.

    chat = Chat(1, "Friends", "private_group", [tg("Ann", 101, "hi"), tg("Ben", 102, "yo")])
    build_telegram(tmp_path / "result.json", [chat])                 # single chat
    build_telegram(tmp_path / "export.zip", [chat, other], me=(101, "Ann", "A."))  # account

Messages get ids and one-minute-apart dates when they have none. ``style`` picks the era: "2021"
(string ``from_id``, ``date_unixtime``) or "2020" (integer ``from_id``, local ``date`` only).
Messages are written one at a time, so big exports stream.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

START = dt.datetime(2024, 1, 1, 9, 0, tzinfo=dt.UTC)


@dataclass
class Chat:
    id: int
    name: str | None
    type: str = "private_group"
    messages: Iterable[dict[str, Any]] = field(default_factory=list)


def tg(sender: str | None, sender_id: int, text: Any, **fields: Any) -> dict[str, Any]:
    """A text message from ``sender`` (``None`` for a deleted account)."""
    return {"type": "message", "from": sender, "from_id": sender_id, "text": text, **fields}


def service(actor: str, actor_id: int, action: str, **fields: Any) -> dict[str, Any]:
    return {"type": "service", "actor": actor, "actor_id": actor_id, "action": action,
            "text": "", **fields}  # fmt: skip


def _finish(msg: dict[str, Any], ids: Iterable[int], style: str,
            zone: dt.tzinfo = dt.UTC) -> dict[str, Any]:  # fmt: skip
    msg = dict(msg)
    n = msg.setdefault("id", next(iter(ids)))
    when = msg.pop("when", START + dt.timedelta(minutes=n))
    # The local time of the exporting computer (in ``zone``: UTC unless a test says otherwise).
    msg["date"] = when.astimezone(zone).replace(tzinfo=None).isoformat()
    for key in ("from_id", "actor_id"):
        if isinstance(msg.get(key), int):
            msg[key] = msg[key] if style == "2020" else f"user{msg[key]}"
    if style != "2020":
        msg["date_unixtime"] = str(int(when.timestamp()))
        text = msg.get("text")
        entities = [{"type": "plain", "text": p} if isinstance(p, str) else p for p in text] \
            if isinstance(text, list) else [{"type": "plain", "text": text}]  # fmt: skip
        msg["text_entities"] = entities
    # Key order as Telegram writes it: id, type, date first.
    head = {k: msg.pop(k) for k in ("id", "type", "date", "date_unixtime") if k in msg}
    return {**head, **msg}


def _write_chat(out: IO[bytes], chat: Chat, style: str, indent: str,
                zone: dt.tzinfo = dt.UTC) -> None:  # fmt: skip
    ids = itertools.count(1)
    head = {"name": chat.name, "type": chat.type, "id": chat.id}
    out.write(json.dumps(head, ensure_ascii=False)[:-1].encode() + b', "messages": [')
    for i, msg in enumerate(chat.messages):
        line = json.dumps(_finish(msg, ids, style, zone), ensure_ascii=False)
        out.write(((",\n" if i else "\n") + indent + line).encode())
    out.write(b"\n" + indent.encode() + b"]}")


def write_export(out: IO[bytes], chats: list[Chat], *, me: tuple[int, str, str] | None,
                 style: str, zone: dt.tzinfo = dt.UTC) -> None:  # fmt: skip
    if me is None:
        [chat] = chats
        _write_chat(out, chat, style, " ", zone)
        return
    user_id, first, last = me
    info = {"user_id": user_id, "first_name": first, "last_name": last, "phone_number": "+1 555"}
    out.write(b'{"about": "Here is the data you requested.", "personal_information": ')
    out.write(json.dumps(info).encode() + b', "chats": {"about": "chats", "list": [')
    for i, chat in enumerate(chats):
        out.write(b",\n" if i else b"\n")
        _write_chat(out, chat, style, "  ", zone)
    out.write(b'\n]}, "left_chats": {"about": "left", "list": []}, "frequent_contacts": {}}')


def build_telegram(
    target: Path,
    chats: list[Chat],
    *,
    me: tuple[int, str, str] | None = None,
    style: str = "2021",
    html: bool = False,
    zone: dt.tzinfo = dt.UTC,
) -> Path:
    """Write result.json (``target`` ending in .json), or a folder or zip holding it; local
    times (``date``) as a computer in ``zone`` writes them."""
    if target.suffix == ".json":
        with target.open("wb") as out:
            write_export(out, chats, me=me, style=style, zone=zone)
        return target
    inner = "ChatExport_2024-01-01/" + ("messages.html" if html else "result.json")
    if target.suffix == ".zip":
        with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as z, z.open(inner, "w") as out:
            if html:
                out.write(b"<html></html>")
            else:
                write_export(out, chats, me=me, style=style, zone=zone)
        return target
    (target / inner).parent.mkdir(parents=True)
    with (target / inner).open("wb") as out:
        write_export(out, chats, me=me, style=style, zone=zone)
    return target
