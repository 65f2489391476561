"""iMessage chat.db parser: the sample tables, typedstream bodies, dates, schema variants."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import zipfile
from pathlib import Path

import pytest

from ingest.parsers import imessage
from ingest.parsers.detect import detect_kind
from ingest.parsers.records import ConversationRecord, ExportError, IdentityRecord
from tests.builders.checks import check_contract, conversations, identities, messages, skipped
from tests.builders.imessage import build_chat_db, typedstream

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "samples" / "imessage"
TABLES = SAMPLES / "mock_chat_db_tables"

ANN, BEN = "+15550000001", "ben@example.com"
NS = 1_000_000_000


def parse(path: Path, **options: object) -> list:
    return check_contract(imessage.parse(str(path), **options))


def db_with(tmp_path: Path, msgs: list[dict], *, legacy: bool = False, group: bool = False) -> Path:
    handles = [{"ROWID": "ann", "id": ANN}, {"ROWID": "ben", "id": BEN}]
    chat = {"ROWID": "c", "guid": "iMessage;+;chat1", "chat_identifier": "chat1",
            "display_name": "Hikers" if group else ""}  # fmt: skip
    members = ["ann", "ben"] if group else ["ann"]
    rows = [{"ROWID": f"m{i}", "date": (i + 1) * 60 * NS, "is_from_me": 0, "handle_id": "ann",
             **m} for i, m in enumerate(msgs)]  # fmt: skip
    return build_chat_db(
        tmp_path / "chat.db",
        {
            "handle": handles,
            "chat": [chat],
            "message": rows,
            "chat_message_join": [{"chat_id": "c", "message_id": r["ROWID"]} for r in rows],
            "chat_handle_join": [{"chat_id": "c", "handle_id": h} for h in members],
        },
        legacy=legacy,
    )


@pytest.fixture
def sample_db(tmp_path: Path) -> Path:
    if not TABLES.exists():
        pytest.skip("shared samples are not available")
    tables = {f.stem: json.loads(f.read_text()) for f in TABLES.glob("*.json")}
    return build_chat_db(tmp_path / "chat.db", tables)


def test_the_sample_database(sample_db: Path) -> None:
    records = parse(sample_db, names={"+12234567890": "Jane"}, self_name="John")
    assert identities(records)[:3] == [
        IdentityRecord("me", "John", is_self=True),
        IdentityRecord("+12123456789", "+12123456789"),
        IdentityRecord("+12234567890", "Jane"),
    ]
    assert [(c.title, c.is_group) for c in conversations(records)] == [
        ("+12123456789", False),
        ("Jane", False),
        ("thomas.riverstone@example.com", False),
        ("Group Chat", True),
    ]
    found = messages(records)
    assert len(found) == 28
    # 9 tapbacks (one of them only in attributedBody), one attachment-only message
    assert skipped(records) == {"reaction": 9, "media-only": 1}
    first = min(found, key=lambda m: m.sent_at)  # records come chat by chat
    assert first.text == "Hey John! What's up? 👊"
    assert first.sent_at == dt.datetime(2024, 1, 7, 23, 11, 40, 437000, tzinfo=dt.UTC)
    hello = next(m for m in found if m.text == "Hello everyone!")
    assert (hello.identity_id, hello.conversation_id) == ("me", "chat-guid-4")


def test_text_from_attributed_body_when_text_is_empty(tmp_path: Path) -> None:
    long = "word " * 60
    path = db_with(
        tmp_path,
        [
            {"text": None, "attributedBody": typedstream("from the typedstream ✓")},
            {"text": "", "attributedBody": typedstream(long)},
        ],
    )
    assert [m.text for m in messages(parse(path))] == ["from the typedstream ✓", long.strip()]


def test_typedstream_lengths() -> None:
    for text in ("short", "x" * 200, "y" * 70_000):
        assert imessage.typedstream_text(typedstream(text)) == text
    assert imessage.typedstream_text(b"garbage") == ""
    assert imessage.typedstream_text(None) == ""


def test_seconds_and_nanoseconds_dates() -> None:
    assert imessage.apple_time(0) == dt.datetime(2001, 1, 1, tzinfo=dt.UTC)
    assert imessage.apple_time(600_000_000) == dt.datetime(2020, 1, 6, 10, 40, tzinfo=dt.UTC)
    assert imessage.apple_time(600_000_000 * NS) == imessage.apple_time(600_000_000)


def test_legacy_schema_in_seconds(tmp_path: Path) -> None:
    path = db_with(tmp_path, [{"text": "old mac", "date": 300_000_000}], legacy=True)
    [m] = messages(parse(path))
    assert m.sent_at == dt.datetime(2010, 7, 5, 5, 20, tzinfo=dt.UTC)


def test_message_kinds_and_replies(tmp_path: Path) -> None:
    path = db_with(
        tmp_path,
        [
            {"guid": "p1", "text": "question"},
            {"guid": "r1", "text": "answer", "is_from_me": 1, "handle_id": 0,
             "thread_originator_guid": "p1"},
            {"text": "Loved “question”", "associated_message_type": 2000},
            {"text": "\ufffc", "cache_has_attachments": 1},
            {"text": "look \ufffc", "cache_has_attachments": 1},
            {"text": None, "item_type": 2},
            {"text": "", "date_retracted": 5},
            {"text": "  "},
        ],
        group=True,
    )  # fmt: skip
    records = parse(path)
    assert [(m.external_id, m.identity_id, m.text, m.reply_to) for m in messages(records)] == [
        ("p1", ANN, "question", None),
        ("r1", "me", "answer", "p1"),
        ("message-guid-5", ANN, "look", None),
    ]
    assert skipped(records) == {
        "reaction": 1,
        "media-only": 1,
        "system": 1,
        "deleted": 1,
        "empty": 1,
    }
    assert conversations(records) == [ConversationRecord("iMessage;+;chat1", "Hikers", True)]


def test_a_folder_holding_chat_db(tmp_path: Path) -> None:
    db_with(tmp_path, [{"text": "hi"}])
    assert [m.text for m in messages(parse(tmp_path))] == ["hi"]


def test_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "chat.db"
    path.write_text("hello")
    with pytest.raises(ExportError) as error:
        parse(path)
    assert str(error.value) == "chat.db is not an iMessage chat.db: it is not a database."


def test_another_database(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE message (id INTEGER)")
    with pytest.raises(ExportError) as error:
        parse(path)
    assert str(error.value) == (
        "other.db is a database but not an iMessage chat.db: it has no chat, chat_message_join, "
        "handle table."
    )


def test_empty_database(tmp_path: Path) -> None:
    path = db_with(tmp_path, [])
    with pytest.raises(ExportError) as error:
        parse(path)
    assert str(error.value) == "chat.db contains no messages."


def zip_of_messages_folder(tmp_path: Path, db: Path, *, wal: bool = False) -> Path:
    archive = tmp_path / "Messages.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        z.write(db, "Messages/chat.db")
        if wal:
            z.write(db.with_name("chat.db-wal"), "Messages/chat.db-wal")
        z.writestr("Messages/Attachments/ab/00/photo.jpeg", b"\xff\xd8")
    return archive


def test_a_zip_of_the_messages_folder(tmp_path: Path) -> None:
    db = db_with(tmp_path, [{"text": "hi"}, {"text": "yo", "is_from_me": 1}])
    archive = zip_of_messages_folder(tmp_path, db)
    assert detect_kind(archive) == "imessage"
    assert [(m.identity_id, m.text) for m in messages(parse(archive))] == [
        (ANN, "hi"),
        ("me", "yo"),
    ]


def test_a_zip_keeps_the_newest_messages_from_the_write_ahead_log(tmp_path: Path) -> None:
    # ReagentX/imessage-exporter#637: recent messages live in chat.db-wal until a checkpoint;
    # copying chat.db alone loses them.
    db = db_with(tmp_path, [{"text": "old"}])
    conn = sqlite3.connect(db)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA wal_autocheckpoint=0")
        conn.execute("INSERT INTO message (guid, text, date, handle_id) VALUES ('g2', 'new', ?, 1)",
                     (600 * NS,))  # fmt: skip
        conn.execute("INSERT INTO chat_message_join (chat_id, message_id) VALUES (1, 2)")
        conn.commit()
        archive = zip_of_messages_folder(tmp_path, db, wal=True)
    finally:
        conn.close()
    assert [m.text for m in messages(parse(archive))] == ["old", "new"]


def test_a_zip_without_chat_db(tmp_path: Path) -> None:
    archive = tmp_path / "Messages.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("Messages/Attachments/photo.jpeg", b"\xff\xd8")
    with pytest.raises(ExportError) as error:
        parse(archive)
    assert str(error.value) == (
        "Messages.zip holds no chat.db. Zip the Messages folder from ~/Library/Messages, or "
        "upload chat.db itself."
    )
