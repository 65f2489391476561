"""Build Facebook Messenger / Instagram "Download your information" JSON exports.

    build_messenger(tmp_path / "facebook.zip", {"Zoë & co": (["Zoë", "Bob"], [
        fb("Zoë", "Café?"), fb("Bob", "", photos=[{"uri": "p.jpg"}])])}, per_file=2)

Text is written the way Facebook does it: UTF-8 bytes escaped one per ``\\u00XX`` (mojibake).
Messages are given oldest first and written newest first, ``per_file`` to a message_N.json.
"""

from __future__ import annotations

import datetime as dt
import json
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

START = dt.datetime(2024, 1, 1, 9, 0, tzinfo=dt.UTC)


def mojibake(text: str) -> str:
    return text.encode("utf-8").decode("latin-1")


def fb(sender: str, content: str | None, **fields: Any) -> dict[str, Any]:
    msg: dict[str, Any] = {"sender_name": sender, **fields}
    if content is not None:
        msg["content"] = content
    return msg


def _encode(value: Any) -> Any:
    if isinstance(value, str):
        return mojibake(value)
    if isinstance(value, list):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    return value


def thread_files(
    slug: str, title: str, people: Sequence[str], msgs: Sequence[dict[str, Any]], per_file: int
) -> dict[str, str]:
    """{"message_1.json": json, ...} for one conversation."""
    stamped = []
    for i, msg in enumerate(msgs):
        msg = dict(msg)
        when = msg.pop("when", START + dt.timedelta(minutes=i))
        msg.setdefault("timestamp_ms", int(when.timestamp() * 1000))
        msg.setdefault("type", "Generic")
        stamped.append(_encode(msg))
    newest_first = stamped[::-1]
    files = {}
    for n, start in enumerate(range(0, max(len(newest_first), 1), per_file), 1):
        data = {
            "participants": [{"name": mojibake(p)} for p in people],
            "messages": newest_first[start : start + per_file],
            "title": mojibake(title),
            "is_still_participant": True,
            "thread_path": f"inbox/{slug}",
            "thread_type": "RegularGroup" if len(people) > 2 else "Regular",
        }
        files[f"message_{n}.json"] = json.dumps(data, indent=2)  # ASCII-escaped, as Facebook does
    return files


def build_messenger(
    target: Path,
    threads: Mapping[str, tuple[Sequence[str], Sequence[dict[str, Any]]]],
    *,
    per_file: int = 10_000,
    root: str = "your_activity_across_facebook/messages/inbox",
) -> Path:
    """A zip (``.zip``), a folder, or one message_1.json (``.json``, first thread only)."""
    members: dict[str, str] = {}
    for title, (people, msgs) in threads.items():
        slug = "".join(c for c in title.lower() if c.isalnum()) + "_1234567890"
        for name, data in thread_files(slug, title, people, msgs, per_file).items():
            members[f"{root}/{slug}/{name}"] = data
    if target.suffix == ".json":
        target.write_text(next(iter(members.values())))
    elif target.suffix == ".zip":
        with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as z:
            for name, data in members.items():
                z.writestr(name, data)
    else:
        for name, data in members.items():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            (target / name).write_text(data)
    return target


def stream_thread(
    folder: Path,
    title: str,
    people: Sequence[str],
    msgs: Iterable[dict[str, Any]],
    *,
    total: int,
    per_file: int = 10_000,
) -> Path:
    """One thread's message_N.json files from ``total`` messages given oldest first, written one
    file at a time (message_1.json holds the newest), for benchmarks."""
    folder.mkdir(parents=True, exist_ok=True)
    files = max(-(-total // per_file), 1)
    chunk: list[dict[str, Any]] = []
    number = files
    # The newest file holds the remainder, so the oldest ones are full.
    first_size = total - per_file * (files - 1)
    size = per_file if files > 1 else first_size
    for i, msg in enumerate(msgs):
        chunk.append(msg)
        if len(chunk) == size or i == total - 1:
            when = START + dt.timedelta(minutes=i - len(chunk) + 1)
            stamped = []
            for j, m in enumerate(chunk):
                m = dict(m)
                m.setdefault(
                    "timestamp_ms", int((when + dt.timedelta(minutes=j)).timestamp() * 1000)
                )
                m.setdefault("type", "Generic")
                stamped.append(_encode(m))
            data = {
                "participants": [{"name": mojibake(p)} for p in people],
                "messages": stamped[::-1],
                "title": mojibake(title),
                "thread_path": f"inbox/{folder.name}",
            }
            (folder / f"message_{number}.json").write_text(json.dumps(data))
            number -= 1
            chunk = []
            size = first_size if number == 1 else per_file
    return folder


def e2ee_thread(title: str, people: Sequence[str], msgs: Sequence[dict[str, Any]]) -> str:
    """One chat of the end-to-end encrypted chats' download ("Download secure storage"), oldest
    first, as JSON text: camelCase keys, plain UTF-8. Messages are ``fb()`` dicts; a ``media``
    list or ``isUnsent`` is passed through."""
    out = []
    for i, msg in enumerate(msgs):
        when = msg.get("when", START + dt.timedelta(minutes=i))
        media = msg.get("media") or []
        out.append({
            "isUnsent": bool(msg.get("isUnsent")),
            "media": media,
            "reactions": [],
            "senderName": msg["sender_name"],
            "text": msg.get("content") or "",
            "timestamp": int(when.timestamp() * 1000),
            "type": "media" if media else "text",
        })  # fmt: skip
    return json.dumps({"participants": list(people), "threadName": title, "messages": out},
                      ensure_ascii=False, indent=2)  # fmt: skip
