"""Messenger / Instagram JSON parser: mojibake, split files, message kinds, bad input."""

from __future__ import annotations

import datetime as dt
import json
import zipfile
from pathlib import Path

import pytest

from ingest.parsers import messenger
from ingest.parsers.detect import detect_kind
from ingest.parsers.records import ConversationRecord, ExportError, IdentityRecord
from tests.builders.checks import check_contract, conversations, identities, messages, skipped
from tests.builders.messenger import build_messenger, e2ee_thread, fb

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "samples" / "facebook"
needs_samples = pytest.mark.skipif(not SAMPLES.exists(), reason="shared samples are not available")


def parse(path: Path, **options: object) -> list:
    return check_contract(messenger.parse(str(path), **options))


@needs_samples
def test_mojibake_sample_reads_as_intended() -> None:
    records = parse(SAMPLES / "synthetic_messenger_message_1_mojibake.json")
    assert identities(records) == [
        IdentityRecord("Zoë Exámple", "Zoë Exámple"),
        IdentityRecord("Bob Example", "Bob Example"),
    ]
    assert conversations(records) == [
        ConversationRecord("inbox/zoeexample_1234567890", "Zoë Exámple", is_group=False)
    ]
    assert [m.text for m in messages(records)] == [
        "On my way 🚗 – 5 min",
        "Café at 10? It’s on me",
        "Hi Bob 👋",
    ]
    assert messages(records)[-1].sent_at == dt.datetime(2023, 11, 14, 22, 13, 20, tzinfo=dt.UTC)
    assert skipped(records) == {"media-only": 1}


@needs_samples
def test_instagram_sample_without_participants() -> None:
    records = parse(SAMPLES / "chat-miner_instagram_test_export.json")
    assert [(m.identity_id, m.text) for m in messages(records)] == [
        ("John Doe", "Hello Jane!"),
        ("Jane Doe", "Hello John!"),
    ]


def test_a_zip_with_several_threads_and_split_files(tmp_path: Path) -> None:
    threads = {
        "Zoë": (["Zoë", "Me"], [fb("Zoë", f"msg {i} ✓") for i in range(5)]),
        "Hiking Club": (["Zoë", "Me", "Bob"], [fb("Bob", "trail?"), fb("Zoë", "yes")]),
    }
    path = build_messenger(tmp_path / "facebook.zip", threads, per_file=2)
    records = parse(path)
    assert [(c.title, c.is_group) for c in conversations(records)] == [
        ("Hiking Club", True),
        ("Zoë", False),
    ]
    zoe = [m.text for m in messages(records) if m.conversation_id.endswith("zoë_1234567890")]
    assert sorted(zoe) == [f"msg {i} ✓" for i in range(5)]
    assert [i.external_id for i in identities(records)] == ["Zoë", "Me", "Bob"]
    assert parse(build_messenger(tmp_path / "folder", threads, per_file=2)) == records


def test_message_kinds(tmp_path: Path) -> None:
    msgs = [
        fb("Ann", "hello"),
        fb("Ann", "Ann sent a photo.", photos=[{"uri": "p.jpg"}]),
        fb("Ann", None, sticker={"uri": "s.png"}),
        fb("Ann", "look", photos=[{"uri": "p.jpg"}]),
        fb("Ann", "https://a.example", share={"link": "https://a.example"}),
        fb("Ann", "oops", is_unsent=True),
        fb("Ann", "Ann started a video call.", type="Call", call_duration=10),
        fb("Ann", "You are now connected on Messenger"),
        fb("Ann", "Ann named the group Hikers."),
        fb("Ann", None),
    ]
    records = parse(build_messenger(tmp_path / "m.zip", {"Ann": (["Ann", "Me"], msgs)}))
    assert sorted(m.text for m in messages(records)) == ["hello", "look"]
    assert skipped(records) == {"media-only": 3, "deleted": 1, "system": 3, "empty": 1}


def test_ids_are_stable_across_re_exports(tmp_path: Path) -> None:
    msgs = [fb("Ann", "one"), fb("Ann", "two")]
    first = parse(build_messenger(tmp_path / "a.zip", {"Ann": (["Ann"], msgs)}))
    again = parse(build_messenger(tmp_path / "b.zip", {"Ann": (["Ann"], [*msgs, fb("Ann", "3")])}))
    assert {m.external_id for m in messages(first)} < {m.external_id for m in messages(again)}


def test_same_millisecond_messages_get_distinct_ids(tmp_path: Path) -> None:
    when = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    msgs = [fb("Ann", "a", when=when), fb("Ann", "b", when=when)]
    records = parse(build_messenger(tmp_path / "m.zip", {"Ann": (["Ann"], msgs)}))
    assert len({m.external_id for m in messages(records)}) == 2


def test_html_export_is_explained(tmp_path: Path) -> None:
    path = tmp_path / "facebook.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("messages/inbox/ann_1/message_1.html", "<html/>")
    with pytest.raises(ExportError) as error:
        parse(path)
    assert str(error.value) == (
        "facebook.zip is a Facebook export in HTML; request your information again with the "
        'format set to "JSON".'
    )


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            '{"participants": []}',
            "message_1.json is not a Messenger export: it has no messages list.",
        ),
        ('{"messages": []}', "message_1.json contains no messages."),
        (
            '{"messages": [',
            "message_1.json is not valid JSON (Expecting value at line 1, column 15); the export "
            "may be incomplete.",
        ),
    ],
)
def test_bad_files(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "message_1.json"
    path.write_text(content)
    with pytest.raises(ExportError) as error:
        parse(path)
    assert str(error.value) == expected


def test_zip_without_messages(tmp_path: Path) -> None:
    path = tmp_path / "facebook.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("posts/your_posts_1.json", "[]")
    with pytest.raises(ExportError) as error:
        parse(path)
    assert str(error.value) == "facebook.zip has no Messenger or Instagram message_1.json files."


# --- Variants reported on other tools' issue trackers ---------------------------------------


E2EE_CHAT = [
    fb("Zoë", "Café at 5?"),
    fb("Bob", "", media=[{"uri": "./media/1b2c.jpeg"}]),
    fb("Bob", "gone", isUnsent=True),
    fb("Bob", "sure 👍"),
]


def test_end_to_end_encrypted_chats_download(tmp_path: Path) -> None:
    # Yukaii/messenger-JSON-viewer#12 and adurivault/FBMessage#5: chats moved to end-to-end
    # encryption come from a separate download with camelCase keys and no mojibake.
    path = tmp_path / "Zoë_12.json"
    path.write_text(e2ee_thread("Zoë_12", ["Zoë", "Bob"], E2EE_CHAT), encoding="utf-8")
    assert detect_kind(path) == "messenger"
    records = parse(path)
    assert conversations(records) == [ConversationRecord("Zoë_12", "Zoë_12", is_group=False)]
    assert [(m.identity_id, m.text) for m in messages(records)] == [
        ("Zoë", "Café at 5?"),
        ("Bob", "sure 👍"),
    ]
    assert skipped(records) == {"media-only": 1, "deleted": 1}


def test_a_zip_of_end_to_end_encrypted_chats(tmp_path: Path) -> None:
    archive = tmp_path / "messages.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("Zoë_12.json", e2ee_thread("Zoë_12", ["Zoë", "Bob"], E2EE_CHAT))
        z.writestr("Hikers_40.json", e2ee_thread("Hikers", ["Zoë", "Bob", "Cy"], [fb("Cy", "up")]))
        z.writestr("media/1b2c.jpeg", b"\xff\xd8")
    assert detect_kind(archive) == "messenger"
    records = parse(archive)
    assert [(c.title, c.is_group) for c in conversations(records)] == [
        ("Hikers", True),
        ("Zoë_12", False),
    ]
    assert len(messages(records)) == 3


def test_messages_without_a_type(tmp_path: Path) -> None:
    # adurivault/FBMessage#5: 2024 JSON downloads dropped the "type" key from messages.
    path = build_messenger(tmp_path / "message_1.json", {"A": (["A", "B"], [fb("A", "hi")])})
    data = json.loads(path.read_text())
    for msg in data["messages"]:
        del msg["type"]
    path.write_text(json.dumps(data))
    assert [m.text for m in messages(parse(path))] == ["hi"]
