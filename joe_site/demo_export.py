"""Build the demo's Slack export from real chat messages (the MIT-licensed chitchat-dataset).

The 6-8 most active senders get friendly names; the real timestamps are kept; each two-person
conversation lands in a channel or in the pair's DM, so the demo has both. The result is an
ordinary Slack export zip that goes through the real Slack importer.
"""

from __future__ import annotations

import json
import zipfile
from collections import Counter, defaultdict
from datetime import UTC, datetime
from importlib.util import find_spec
from pathlib import Path

FRIENDLY_NAMES = ["Alice", "Bob", "Chloé", "Dev", "Emeka", "Fatima", "Gus", "Hana"]
CHANNELS = ["general", "random", "weekend-plans", "music"]


def dataset_path() -> Path:
    spec = find_spec("chitchat_dataset")
    if spec is None or spec.origin is None:
        raise RuntimeError("chitchat-dataset is not installed (bin/setup installs it)")
    return Path(spec.origin).parent / "dataset.json"


def build_demo_export(
    path: Path, *, speakers: int = 8, max_conversations: int | None = None
) -> dict[str, int]:
    """Write a Slack export zip to ``path`` and return what it holds."""
    if not 2 <= speakers <= len(FRIENDLY_NAMES):
        raise ValueError(f"speakers must be between 2 and {len(FRIENDLY_NAMES)}")
    data = json.loads(dataset_path().read_text())
    senders: Counter[str] = Counter(
        u["sender"] for conv in data.values() for turn in conv["messages"] for u in turn
    )
    top = [sender for sender, _ in senders.most_common(speakers)]
    user_ids = {sender: f"U{index:08d}" for index, sender in enumerate(top, start=1)}
    names = dict(zip(top, FRIENDLY_NAMES, strict=False))

    # conversation folder -> day -> messages
    folders: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    dms: dict[frozenset[str], str] = {}
    kept = 0
    for conv_id, conv in sorted(data.items(), key=lambda item: item[1]["start"]):
        people = {u["sender"] for turn in conv["messages"] for u in turn}
        if not people <= user_ids.keys() or len(people) < 2:
            continue
        if max_conversations is not None and kept >= max_conversations:
            break
        kept += 1
        # Every third conversation of a pair stays private (their DM); the rest go to a channel.
        pair = frozenset(people)
        if hash_of(conv_id) % 3 == 0:
            folder = dms.setdefault(pair, f"D{len(dms) + 1:08d}")
        else:
            folder = CHANNELS[hash_of(conv_id) % len(CHANNELS)]
        for turn in conv["messages"]:
            for utterance in turn:
                sent = datetime.fromisoformat(utterance["timestamp"].replace("Z", "+00:00"))
                ts = f"{sent.astimezone(UTC).timestamp():.6f}"
                folders[folder][sent.strftime("%Y-%m-%d")].append(
                    {
                        "type": "message",
                        "user": user_ids[utterance["sender"]],
                        "text": slack_escape(utterance["text"]),
                        "ts": ts,
                    }
                )

    users = [
        {
            "id": user_ids[sender],
            "name": names[sender].lower(),
            "real_name": names[sender],
            "profile": {"display_name": names[sender], "real_name": names[sender]},
            "is_bot": False,
        }
        for sender in top
    ]
    all_members = [u["id"] for u in users]
    channels = [
        {"id": f"C{index:08d}", "name": name, "members": all_members, "created": 1525000000}
        for index, name in enumerate(CHANNELS, start=1)
        if name in folders
    ]
    dm_list = [
        {"id": folder, "members": sorted(user_ids[s] for s in pair), "created": 1525000000}
        for pair, folder in dms.items()
    ]
    total = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".partial")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("users.json", json.dumps(users, indent=1))
        zf.writestr("channels.json", json.dumps(channels, indent=1))
        zf.writestr("dms.json", json.dumps(dm_list, indent=1))
        for folder, days in folders.items():
            for day, messages in sorted(days.items()):
                messages.sort(key=lambda m: float(m["ts"]))
                _dedupe_ts(messages)
                total += len(messages)
                zf.writestr(f"{folder}/{day}.json", json.dumps(messages, indent=1))
    tmp.replace(path)
    return {"speakers": len(users), "conversations": kept, "messages": total}


def slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def hash_of(text: str) -> int:
    # Stable across runs (unlike hash()), so re-running the demo builds the same export.
    return int.from_bytes(text.encode()[:8].ljust(8, b"\0"), "little") % 1_000_003


def _dedupe_ts(messages: list[dict]) -> None:
    """Slack's ts is unique per channel; the dataset has same-second messages, so nudge them."""
    seen: set[str] = set()
    for message in messages:
        ts = float(message["ts"])
        while f"{ts:.6f}" in seen:
            ts += 0.000001
        message["ts"] = f"{ts:.6f}"
        seen.add(message["ts"])
