"""Build Slack workspace exports (zip or folder) from a compact description.

    build_slack(tmp_path / "export.zip",
                users={"U1": "Alice", "U2": User("U2", "bob", display_name="Bobby")},
                channels={"general": [("U1", "hi <@U2>"), msg("U2", "yo", thread_ts=...)]})

A message is ``(user, text)`` or a full Slack message dict (``msg()`` makes one); messages without a
``ts`` get one a minute after the previous. ``channels`` keys are channel names, or
``Conversation`` objects for private channels, DMs and group DMs. For big benchmark exports pass
an iterator of ``(Conversation, message dict)`` as ``stream``, ordered by conversation then time:
each day file is written as soon as the next one starts, so memory stays flat.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._output import ExportWriter

START = dt.datetime(2024, 1, 1, 9, 0, tzinfo=dt.UTC)


@dataclass(frozen=True)
class User:
    id: str
    name: str  # the username ("alice")
    display_name: str = ""
    real_name: str = ""
    is_bot: bool = False

    def to_json(self) -> dict[str, Any]:
        real = self.real_name or self.name
        return {
            "id": self.id,
            "team_id": "T0000000",
            "name": self.name,
            "deleted": False,
            "real_name": real,
            "is_bot": self.is_bot,
            "profile": {"display_name": self.display_name, "real_name": real},
        }


@dataclass(frozen=True)
class Conversation:
    id: str
    name: str
    kind: str = "channel"  # "channel", "group" (private channel), "dm" or "mpim"
    members: tuple[str, ...] = ()

    @property
    def folder(self) -> str:
        return self.id if self.kind == "dm" else self.name

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "created": 1500000000, "members": list(self.members)}
        if self.kind != "dm":
            data["name"] = self.name
        return data


METADATA_FILE = {
    "channel": "channels.json",
    "group": "groups.json",
    "dm": "dms.json",
    "mpim": "mpims.json",
}


def ts_of(when: dt.datetime, seq: int = 0) -> str:
    """A Slack ts string for a datetime (seq makes same-second ts unique)."""
    return f"{int(when.timestamp())}.{seq:06d}"


def msg(user: str, text: str, ts: str | None = None, **fields: Any) -> dict[str, Any]:
    """A plain user message; ``fields`` add or override keys (subtype, thread_ts, files...)."""
    data: dict[str, Any] = {"type": "message", "user": user, "text": text}
    if ts is not None:
        data["ts"] = ts
    data.update(fields)
    return data


@dataclass
class _Clock:
    """Hands out increasing ts values for messages that have none."""

    now: dt.datetime = START
    seq: itertools.count = field(default_factory=lambda: itertools.count(1))

    def next(self) -> str:
        self.now += dt.timedelta(minutes=1)
        return ts_of(self.now, next(self.seq) % 1_000_000)


def _as_message(item: tuple[str, str] | dict[str, Any], clock: _Clock) -> dict[str, Any]:
    message = msg(*item) if isinstance(item, tuple) else dict(item)
    message.setdefault("ts", clock.next())
    return message


def _day(ts: str) -> str:
    return dt.datetime.fromtimestamp(int(ts.split(".")[0]), tz=dt.UTC).date().isoformat()


def _write_days(
    out: ExportWriter, stream: Iterable[tuple[Conversation, dict[str, Any]]]
) -> Iterator[Conversation]:
    """Write day files from an ordered stream; yield each conversation the first time it's seen."""
    current: tuple[str, str] | None = None
    handle = None
    first = True
    written: set[tuple[str, str]] = set()
    seen: set[str] = set()
    try:
        for conv, message in stream:
            key = (conv.folder, _day(message["ts"]))
            if key != current:
                if handle is not None:
                    handle.write(b"\n]")
                    handle.close()
                if key in written:
                    raise ValueError(f"messages for {key} are not contiguous in the stream")
                written.add(key)
                current, first = key, True
                handle = out.open(f"{key[0]}/{key[1]}.json")
                handle.write(b"[\n")
                if conv.id not in seen:
                    seen.add(conv.id)
                    yield conv
            handle.write((b"" if first else b",\n") + json.dumps(message).encode())
            first = False
    finally:
        if handle is not None:
            handle.write(b"\n]")
            handle.close()


def build_slack(
    target: Path,
    *,
    users: Mapping[str, str | User] | Sequence[User] = (),
    channels: Mapping[str | Conversation, Sequence[tuple[str, str] | dict[str, Any]]] | None = None,
    stream: Iterable[tuple[Conversation, dict[str, Any]]] = (),
    as_zip: bool | None = None,
    extra_files: Mapping[str, bytes | str] | None = None,
    omit: Iterable[str] = (),
    root: str = "",
    users_file: str = "users.json",
) -> Path:
    """Write the export to ``target`` (a zip when it ends in .zip, unless ``as_zip`` says).

    ``extra_files`` adds or replaces raw files (for malformed variants), ``omit`` drops metadata
    files such as "users.json", ``root`` nests everything under one folder (a re-zipped export),
    ``users_file`` renames users.json ("org_users.json" in an Enterprise Grid export).
    """
    as_zip = target.suffix == ".zip" if as_zip is None else as_zip
    if isinstance(users, Mapping):
        user_list = [u if isinstance(u, User) else User(k, k.lower(), u) for k, u in users.items()]
    else:
        user_list = list(users)
    clock = _Clock()
    given: list[tuple[Conversation, dict[str, Any]]] = []
    for key, messages in (channels or {}).items():
        conv = key if isinstance(key, Conversation) else Conversation(f"C{key.upper()}", key)
        given.extend((conv, _as_message(m, clock)) for m in messages)
        if not messages:
            given.append((conv, {}))  # a conversation with no day files, kept for metadata
    extra = dict(extra_files or {})
    omitted = set(omit)
    with ExportWriter(target, as_zip=as_zip, root=root) as out:
        out.replaced = set(extra)
        conversations = list(_write_days(out, [g for g in given if g[1]]))
        conversations += [c for c, m in given if not m and c not in conversations]
        conversations += list(_write_days(out, stream))
        metadata: dict[str, list[dict[str, Any]]] = {users_file: [u.to_json() for u in user_list]}
        for conv in conversations:
            metadata.setdefault(METADATA_FILE[conv.kind], []).append(conv.to_json())
        metadata.setdefault("channels.json", [])
        for name, data in metadata.items():
            if name not in omitted and name not in extra:
                out.write(name, json.dumps(data, indent=1))
        out.replaced = set()
        for name, raw in extra.items():
            out.write(name, raw)
    return target


def synthetic_stream(
    n_messages: int, *, channels: int = 10, users: int = 20, per_day: int = 400
) -> tuple[list[User], Iterator[tuple[Conversation, dict[str, Any]]]]:
    """Users and an ordered message stream for benchmarks: ``n_messages`` spread over channels,
    ``per_day`` per channel per day, every tenth a thread reply, some with mentions and links."""
    people = [User(f"U{i:08d}", f"user{i}", f"User {i}") for i in range(users)]
    convs = [Conversation(f"C{i:08d}", f"channel-{i}") for i in range(channels)]

    def generate() -> Iterator[tuple[Conversation, dict[str, Any]]]:
        per_channel = -(-n_messages // channels)
        produced = 0
        for conv in convs:
            parent = None
            for i in range(min(per_channel, n_messages - produced)):
                day, slot = divmod(i, per_day)
                when = START + dt.timedelta(days=day, seconds=slot * 60)
                ts = ts_of(when, i % 1_000_000)
                who = people[(i * 7) % users].id
                text = f"message {i} in {conv.name} for <@{people[i % users].id}> &amp; co"
                message = msg(who, text, ts)
                if i % 10 == 0:
                    parent = ts
                elif parent is not None and i % 10 == 5:
                    message["thread_ts"] = parent
                yield conv, message
                produced += 1

    return people, generate()
