"""Build signal-export (sigexport) output folders or zips: ``<Chat>/chat.md`` and ``data.json``.

    build_sigexport(tmp_path / "signal", {"AliceSmith": [sig(when, "AliceSmith", "hi"), ...]})

Both files are written the way sigexport writes them (its ``Message.to_md`` and ``dict_str``):
dates in local time without a zone, a body ending in two spaces, "Me" for your own messages.
"""

from __future__ import annotations

import datetime as dt
import json
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any


def sig(when: dt.datetime, sender: str, body: str, **fields: Any) -> dict[str, Any]:
    return {
        "date": when.replace(tzinfo=None),
        "sender": sender,
        "body": body.replace("`", "") + "  ",  # as sigexport's create_message writes it
        "quote": "",
        "sticker": None,
        "reactions": [],
        "attachments": [],
        "deleted": False,
        "call": False,
        "missed": False,
        **fields,
    }


def to_md(msg: dict[str, Any]) -> str:
    date = msg["date"].strftime("%Y-%m-%d %H:%M:%S")
    if msg["deleted"]:
        return f"[{date}] {msg['sender']}: (This message was deleted)\n"
    body = msg["body"]
    if msg["reactions"]:
        body += "\n(- " + ", ".join(f"{n}: {e}" for n, e in msg["reactions"]) + " -)"
    if msg["sticker"]:
        body += "\n(( " + msg["sticker"] + " ))"
    for att in msg["attachments"]:
        body += (
            "!" if att["path"].endswith(".jpg") else ""
        ) + f"[{att['name']}](./{att['path']})  "
    return f"[{date}] {msg['sender']}: {msg['quote']}{body}\n"


def to_json_line(msg: dict[str, Any]) -> str:
    return json.dumps({**msg, "date": msg["date"].isoformat()}, ensure_ascii=False)


def chat_files(msgs: Sequence[dict[str, Any]], *, json_output: bool = True) -> dict[str, str]:
    files = {"chat.md": "".join(to_md(m) + "\n" for m in msgs)}
    if json_output:
        files["data.json"] = "".join(to_json_line(m) + "\n" for m in msgs)
    return files


def build_sigexport(
    target: Path, chats: Mapping[str, Sequence[dict[str, Any]]], *, json_output: bool = True
) -> Path:
    """A folder, or a zip (``.zip``) of it."""
    members = {
        f"{chat}/{name}": content
        for chat, msgs in chats.items()
        for name, content in chat_files(msgs, json_output=json_output).items()
    }
    if target.suffix == ".zip":
        with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as z:
            for name, content in members.items():
                z.writestr(f"signal-export/{name}", content)
            z.writestr("signal-export/style.css", "body {}")
        return target
    for name, content in members.items():
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        (target / name).write_text(content, encoding="utf-8")
    return target


def stream_sigexport(target: Path, chat: str, msgs: Iterable[dict[str, Any]]) -> Path:
    """One chat's folder (``chat.md`` and ``data.json``) written message by message, for
    benchmarks: memory stays flat however many messages ``msgs`` yields."""
    folder = target / chat
    folder.mkdir(parents=True, exist_ok=True)
    with (
        (folder / "chat.md").open("w", encoding="utf-8") as md,
        (folder / "data.json").open("w", encoding="utf-8") as data,
    ):
        for msg in msgs:
            md.write(to_md(msg) + "\n")
            data.write(to_json_line(msg) + "\n")
    return target
