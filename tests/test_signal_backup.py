"""Signal backup parser: writer round trips, the shared samples, the fixture, and every bad input.

The writer (tests/signal_writer.py) encrypts its own SQLite databases, so these tests need no
Django and no network: run them with ``pytest -p no:django tests/test_signal_backup.py``.
"""

from __future__ import annotations

import datetime as dt
import re
import tempfile
import tracemalloc
from collections import Counter
from pathlib import Path

import pytest

from ingest.parsers import signal_backup, signal_pb2
from ingest.parsers.records import (
    ConversationRecord,
    ExportError,
    IdentityRecord,
    MessageRecord,
    Progress,
    Record,
)
from ingest.parsers.signal_backup import parse
from ingest.parsers.signal_replay import sql_parameters
from ingest.parsers.signal_schema import READ_COLUMNS
from tests.builders.checks import check_contract, conversations, identities, messages, skipped
from tests.signal_writer import (
    DEFAULT_PASSPHRASE,
    FIXTURE_MESSAGES,
    GROUP,
    GROUP_ID,
    Msg,
    generate_messages,
    write_backup,
    write_frames,
)

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "samples" / "signal"
FIXTURE = Path(__file__).parent / "fixtures" / "signal" / "tiny.backup"
SAMPLE_PASSPHRASE = "000001111122222333334444455555"

ME = "aci:aaaaaaaa-0000-4000-8000-000000000001"
ALICE = "aci:aaaaaaaa-0000-4000-8000-000000000002"
BOB = "aci:aaaaaaaa-0000-4000-8000-000000000003"  # written upper case: ids are lower case
CAROL = "e164:+15550100004"
DAVE = "recipient:5"  # neither ACI nor phone number: the row id is all there is
HIKING = f"group:{GROUP_ID}"

WRONG_PASSPHRASE = "Wrong passphrase: the backup could not be decrypted with it."
NOT_A_BACKUP = "This file is not a Signal backup: it does not start with a Signal backup header."
NOT_30_DIGITS = (
    "The passphrase must be the 30 digits Signal showed when backups were turned on "
    "(spaces are ignored)."
)


def corrupted(frame: int) -> str:
    return (
        f"The backup is corrupted at frame {frame}: its checksum does not match, so the file was "
        "damaged after Signal wrote it."
    )


def truncated(frame: int) -> str:
    return (
        f"The backup file is incomplete: it stops in frame {frame}, before Signal's end marker. "
        "Copy or upload the whole file again."
    )


def parse_all(path: Path, passphrase: str = DEFAULT_PASSPHRASE, **kwargs) -> list[Record]:
    return check_contract(parse(path, passphrase=passphrase, **kwargs))


def error_of(path: Path, passphrase: str = DEFAULT_PASSPHRASE) -> str:
    with pytest.raises(ExportError) as caught:
        list(parse(path, passphrase=passphrase))
    return str(caught.value)


# -- round trips through the writer -----------------------------------------------------------

T = 1_700_000_000_000
LONG = "Long story short: " + "we walked, it rained, we laughed. " * 120
CURATED = [
    Msg("alice", "alice", T + 1_000, "Morning! Still on for Saturday? 🏔"),
    Msg("alice", "me", T + 2_000, "Yes.\nTrailhead at 8."),
    Msg("alice", "alice", T + 3_000, "Great", quote=("me", T + 2_000)),
    Msg("alice", "alice", T + 4_000, kind="call"),
    Msg("alice", "alice", T + 5_000, kind="key-change"),
    Msg("alice", "alice", T + 6_000, deleted=True),
    Msg("alice", "alice", T + 7_000, media=b"\xff\xd8" + b"jpeg" * 300),
    Msg("alice", "me", T + 8_000, "look at this view", media=b"\xff\xd8" + b"jpeg" * 50),
    Msg("alice", "alice", T + 9_000, "  \n "),
    Msg("bob", "bob", T + 10_000, "hi from bob"),
    Msg("bob", "bob", T + 11_000, "CgIIAQ==", kind="profile-change"),
    Msg(GROUP, "bob", T + 12_000, "CgIIAQ==", kind="group-update"),
    # Mention ranges count UTF-16 units: the emoji before them takes two.
    Msg(
        GROUP,
        "carol",
        T + 13_000,
        "🎉 \ufffc and \ufffc, coffee?",
        mentions=((3, 1, "me"), (9, 1, "bob")),
    ),  # fmt: skip
    Msg(GROUP, "me", T + 14_000, long_text=LONG),
    Msg(GROUP, "dave", T + 15_000, "no number, no ACI"),
    Msg(GROUP, "alice", T + 16_000, kind="timer"),
    Msg(GROUP, "alice", T + 17_000, "a story post", kind="story"),
    Msg(GROUP, "bob", T + 18_000, "paid you back", kind="payment"),
    Msg(GROUP, "alice", T + 20_000, "about that long one", quote=("me", T + 14_000)),
    Msg("signal", "signal", T + 21_000, "Signal now has a new feature!"),  # release notes
]
EDITED = Msg(GROUP, "me", T + 19_000, "See you tehre", edits=("See you thre", "See you there"))

EXPECTED = [
    (ALICE, "chat:" + ALICE, T + 1_000, "Morning! Still on for Saturday? 🏔", None),
    (ME, "chat:" + ALICE, T + 2_000, "Yes.\nTrailhead at 8.", None),
    (ALICE, "chat:" + ALICE, T + 3_000, "Great", f"{ME}:{T + 2_000}"),
    (ME, "chat:" + ALICE, T + 8_000, "look at this view", None),
    (BOB, "chat:" + BOB, T + 10_000, "hi from bob", None),
    (CAROL, HIKING, T + 13_000, "🎉 @Sam Owner and @Bob, coffee?", None),
    (ME, HIKING, T + 14_000, LONG, None),
    (DAVE, HIKING, T + 15_000, "no number, no ACI", None),
    (ALICE, HIKING, T + 20_000, "about that long one", f"{ME}:{T + 14_000}"),
]
EXPECTED_SKIPS = {"system": 6, "deleted": 1, "media-only": 1, "empty": 1, "story": 1, "bot": 1}


def as_tuples(records: list[Record]) -> list[tuple]:
    return [
        (m.identity_id, m.conversation_id, int(m.sent_at.timestamp() * 1000), m.text, m.reply_to)
        for m in messages(records)
    ]


@pytest.mark.parametrize("version", [0, 1])
@pytest.mark.parametrize("schema", ["message", "sms_mms"])
def test_round_trip(tmp_path, schema, version):
    msgs = CURATED + ([EDITED] if schema == "message" else [])
    info = write_backup(tmp_path / "b.backup", version=version, schema=schema, messages=msgs)
    records = parse_all(info.path, passphrase="00000 11111 22222 33333 44444 55555")

    edited = [(ME, HIKING, T + 19_000, "See you there", None)] if schema == "message" else []
    expected = sorted(EXPECTED + edited, key=lambda e: e[2])
    assert as_tuples(records) == expected
    assert [m.external_id for m in messages(records)] == [f"{e[0]}:{e[2]}" for e in expected]
    assert skipped(records) == Counter(EXPECTED_SKIPS) + Counter(
        {"edited": 2} if schema == "message" else {}
    )
    people = {i.external_id: (i.display_name, i.is_self) for i in identities(records)}
    assert people == {
        ME: ("Sam Owner", True),
        ALICE: ("Alice L. (contacts)", False),
        BOB: ("Bob", False),
        CAROL: ("carol.42", False),
        DAVE: ("Dave", False),
    }
    assert set(conversations(records)) == {
        ConversationRecord("chat:" + ALICE, "Alice L. (contacts)", is_group=False),
        ConversationRecord("chat:" + BOB, "Bob", is_group=False),
        ConversationRecord(HIKING, "Hiking Club", is_group=True),
    }
    assert all(m.sent_at.tzinfo is dt.UTC for m in messages(records))


@pytest.mark.parametrize("version", [0, 1])
def test_the_frame_counter_wraps_like_a_java_int(tmp_path, version):
    """The IV's first 4 bytes count frames and wrap at 2**32, as Java's int does."""
    iv = b"\xff\xff\xff\xfd" + bytes(range(12))
    info = write_backup(tmp_path / "b.backup", version=version, messages=CURATED, iv=iv)
    assert as_tuples(parse_all(info.path)) == EXPECTED


def test_round_trips_agree_across_schemas_and_framings(tmp_path):
    """The same messages give the same records whatever the schema and framing."""
    results = []
    for schema in ("sms_mms", "message"):
        for version in (0, 1):
            path = tmp_path / f"{schema}-{version}.backup"
            msgs = list(generate_messages(300, seed=7, schema="sms_mms"))
            write_backup(path, version=version, schema=schema, messages=msgs)
            results.append(parse_all(path))
    assert all(r == results[0] for r in results[1:])
    assert len(messages(results[0])) > 250


def test_ids_are_stable_across_overlapping_backups(tmp_path):
    """A newer backup of the same phone (other row ids, newer schema) keeps every external id."""
    msgs = list(generate_messages(400, seed=3, schema="sms_mms"))
    old = parse_all(write_backup(tmp_path / "old.backup", schema="sms_mms", version=0,
                                 messages=msgs[:250]).path)  # fmt: skip
    new = parse_all(write_backup(tmp_path / "new.backup", schema="message", version=1,
                                 messages=msgs, first_recipient_id=40, seed=9).path)  # fmt: skip
    old_messages = {m.external_id: m for m in messages(old)}
    new_messages = {m.external_id: m for m in messages(new)}
    assert old_messages and old_messages.keys() < new_messages.keys()
    assert all(new_messages[k] == m for k, m in old_messages.items())
    assert {i.external_id for i in identities(old)} <= {i.external_id for i in identities(new)}


def test_an_edit_keeps_the_original_timestamp_as_its_id(tmp_path):
    once = Msg("alice", "me", T, "draft", edits=("final",))
    twice = Msg("alice", "me", T, "draft", edits=("final", "really final"))
    first = parse_all(write_backup(tmp_path / "1.backup", messages=[once]).path)
    later = parse_all(write_backup(tmp_path / "2.backup", messages=[twice]).path)
    assert [(m.external_id, m.text) for m in messages(first)] == [(f"{ME}:{T}", "final")]
    assert [(m.external_id, m.text) for m in messages(later)] == [(f"{ME}:{T}", "really final")]


@pytest.mark.parametrize("schema", ["message", "sms_mms"])
def test_a_direct_reply_to_a_story_is_a_message_of_the_chat(tmp_path, schema):
    """Signal shows a direct reply to a story (negative parent_story_id) in the 1:1 chat; a
    reply under a group's story (positive) only in that story's replies."""
    msgs = [
        Msg("alice", "alice", T, "my story", kind="story"),
        Msg("alice", "me", T + 1_000, "where is that lake?", story_parent=-1),
        Msg(GROUP, "bob", T + 2_000, "nice view", story_parent=1),
    ]
    records = parse_all(write_backup(tmp_path / "b.backup", schema=schema, messages=msgs).path)
    assert [(m.identity_id, m.conversation_id, m.text) for m in messages(records)] == [
        (ME, "chat:" + ALICE, "where is that lake?")
    ]
    assert skipped(records) == Counter({"story": 2})


@pytest.mark.parametrize("schema", ["message", "sms_mms"])
def test_owner_without_key_values(tmp_path, schema):
    """Without the owner's ACI/number in the backup, v185+ rows still name the sender; older
    ones fall back to a "self" identity."""
    msgs = [Msg("alice", "alice", T, "hi"), Msg("alice", "me", T + 1, "hello")]
    info = write_backup(tmp_path / "b.backup", schema=schema, messages=msgs, owner_hint=False)
    me = [i for i in identities(parse_all(info.path)) if i.is_self]
    if schema == "message":
        assert [(i.external_id, i.display_name) for i in me] == [(ME, "Sam Owner")]
    else:
        assert [(i.external_id, i.display_name) for i in me] == [("self", "Me")]


def test_a_pre_2019_backup_names_people_by_number(tmp_path):
    """Before the recipient table, rows held phone numbers and group ids as text."""
    frames = [
        "CREATE TABLE thread (_id INTEGER PRIMARY KEY, recipient_ids TEXT)",
        "CREATE TABLE sms (_id INTEGER PRIMARY KEY, thread_id INTEGER, address TEXT, "
        "date INTEGER, date_sent INTEGER, type INTEGER, body TEXT)",
        ("INSERT INTO thread VALUES (?, ?)", [1, "+15550100002"]),
        ("INSERT INTO sms VALUES (?,?,?,?,?,?,?)", [1, 1, "+15550100002", T + 9, T, 20, "hi"]),
        (
            "INSERT INTO sms VALUES (?,?,?,?,?,?,?)",
            [2, 1, "+15550100002", T + 99, T + 90, 23, "yo"],
        ),
    ]
    owner = signal_pb2.BackupFrame()
    owner.preference.file, owner.preference.key = "SecureSMS-Preferences", "pref_local_number"
    owner.preference.value = "+15550100001"
    info = write_frames(tmp_path / "b.backup", [*map(statement_frame, frames), owner])
    records = parse_all(info.path)
    assert [(i.external_id, i.display_name, i.is_self) for i in identities(records)] == [
        ("e164:+15550100002", "+15550100002", False),
        ("e164:+15550100001", "Me", True),
    ]
    assert conversations(records) == [
        ConversationRecord("chat:e164:+15550100002", "+15550100002", is_group=False)
    ]
    assert [(m.external_id, m.text) for m in messages(records)] == [
        (f"e164:+15550100002:{T}", "hi"),
        (f"e164:+15550100001:{T + 90}", "yo"),
    ]


def statement_frame(statement: str | tuple[str, list]) -> signal_pb2.BackupFrame:
    sql, params = (statement, []) if isinstance(statement, str) else statement
    frame = signal_pb2.BackupFrame()
    frame.statement.statement = sql
    for value in params:
        if isinstance(value, int):
            frame.statement.parameters.add(integerParameter=value)
        else:
            frame.statement.parameters.add(stringParamter=value)
    return frame


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def test_sql_parameters():
    """Each parameter kind, and Java's negative longs, which Signal writes as uint64 bits."""
    statement = signal_pb2.SqlStatement(statement="INSERT INTO t VALUES (?,?,?,?,?,?,?,?)")
    for fields in (
        {"stringParamter": "x"},
        {"integerParameter": 7},
        {"integerParameter": 0},
        {"doubleParameter": 1.5},
        {"blobParameter": b"\x00\x01"},
        {"blobParameter": b""},
        {"stringParamter": ""},
        {"nullparameter": True},
    ):
        statement.parameters.add(**fields)
    assert sql_parameters(statement.parameters) == ["x", 7, 0, 1.5, b"\x00\x01", b"", "", None]
    assert sql_parameters(statement.parameters, [7, 0]) == [None, "x"]

    # On the wire, as Signal's uint64 field carries them: -1, -2**63, 2**63 - 1.
    wire = b""
    for bits in (2**64 - 1, 2**63, 2**63 - 1):
        parameter = b"\x10" + _varint(bits)  # field 2 (integerParameter), varint
        wire += b"\x12" + _varint(len(parameter)) + parameter  # field 2 (parameters)
    parsed = signal_pb2.SqlStatement.FromString(wire)
    assert sql_parameters(parsed.parameters) == [-1, -(2**63), 2**63 - 1]
    # ...and a negative number we write goes out as those same bits.
    written = signal_pb2.SqlStatement()
    written.parameters.add(integerParameter=-1)
    assert written.SerializeToString() == b"\x12\x0b\x10" + b"\xff" * 9 + b"\x01"


# -- narrowing: only the columns the schema reader reads are stored ------------------------


@pytest.mark.parametrize("schema", ["message", "sms_mms"])
def test_narrowed_replay_reads_what_the_full_one_does(tmp_path, monkeypatch, schema):
    msgs = CURATED + ([EDITED] if schema == "message" else [])
    msgs += list(generate_messages(400, seed=5, schema=schema))
    info = write_backup(tmp_path / "b.backup", schema=schema, messages=msgs)
    narrowed = parse_all(info.path)
    monkeypatch.setattr(signal_backup, "NARROW", False)
    assert parse_all(info.path) == narrowed
    assert len(messages(narrowed)) > 300


def test_the_replayed_tables_hold_only_the_columns_read(tmp_path, monkeypatch):
    seen: dict[str, list[str]] = {}
    read_records = signal_backup.read_records

    def spy(db, account):
        for table in ("message", "attachment", "recipient", "thread", "mention", "groups"):
            seen[table] = [row[1] for row in db.execute(f"PRAGMA table_info({table})")]
        yield from read_records(db, account)

    monkeypatch.setattr(signal_backup, "read_records", spy)
    parse_all(write_backup(tmp_path / "b.backup", messages=CURATED).path)
    assert seen["message"] == [
        "_id", "date_sent", "date_received", "thread_id", "from_recipient_id", "type", "body",
        "quote_id", "quote_author", "remote_deleted", "story_type", "parent_story_id",
        "latest_revision_id", "original_message_id",
    ]  # fmt: skip
    assert seen["attachment"] == ["_id", "message_id", "content_type", "quote"]
    assert "snippet" not in seen["thread"]
    # recipient has UNIQUE (pni) and groups UNIQUE (recipient_id), columns we do not read:
    # narrowed, those constraints could not hold, so these small tables stay whole rather than
    # accept rows the app's own database would refuse.
    assert "pni" in seen["recipient"] and "wallpaper" in seen["recipient"]
    assert "active" in seen["groups"]
    whole = {"recipient", "groups"}
    narrowed = {table: columns for table, columns in seen.items() if table not in whole}
    assert all(set(columns) <= READ_COLUMNS[table] for table, columns in narrowed.items())


def test_statements_that_name_their_columns_are_narrowed_too(tmp_path):
    """Signal writes "INSERT INTO t VALUES (...)" in table order; a statement naming its
    columns (in any order, quoted or not, OR REPLACE) is mapped by name; one whose parameter
    count does not match is skipped alone, and the rest of the backup still imports."""
    create = (
        "CREATE TABLE sms (_id INTEGER PRIMARY KEY, thread_id INTEGER, address TEXT, "
        "date INTEGER, date_sent INTEGER, type INTEGER, body TEXT, junk BLOB, read INTEGER "
        "DEFAULT 0)"
    )
    frames = [
        "CREATE TABLE thread (_id INTEGER PRIMARY KEY, recipient_ids TEXT, snippet TEXT)",
        create,
        ("INSERT INTO thread VALUES (?, ?, ?)", [1, "+15550100002", "snip"]),
        (
            'INSERT OR REPLACE INTO "sms" (body, "junk", _id, thread_id, address, date_sent, '
            "type) VALUES (?, ?, ?, ?, ?, ?, ?)",
            ["named", "x" * 50, 1, 1, "+15550100002", T, 20],
        ),
        (
            "INSERT INTO sms VALUES (?,?,?,?,?,?,?,?,?)",
            [2, 1, "+15550100002", T + 9, T + 5, 20, "positional", "y", 1],
        ),  # fmt: skip
        ("INSERT INTO sms VALUES (?,?,?)", [3, 1, "+15550100002"]),  # wrong count: skipped
        ("INSERT INTO sms (junk) VALUES (?)", ["only junk"]),  # nothing we read: a bare row
    ]
    records = parse_all(write_frames(tmp_path / "b.backup", map(statement_frame, frames)).path)
    assert [(m.sent_at, m.text) for m in messages(records)] == [
        (dt.datetime.fromtimestamp(T / 1000, dt.UTC), "named"),
        (dt.datetime.fromtimestamp((T + 5) / 1000, dt.UTC), "positional"),
    ]


# -- the fixture and the shared samples -------------------------------------------------------


def test_fixture():
    records = parse_all(FIXTURE, passphrase=SAMPLE_PASSPHRASE)
    start = FIXTURE_MESSAGES[0].sent - 60_000
    assert as_tuples(records) == [
        (ALICE, "chat:" + ALICE, start + 60_000, "Are we still on for Saturday? 🏔", None),
        (ME, "chat:" + ALICE, start + 120_000, "Yes!\nTrailhead at 8.", None),
        (ALICE, "chat:" + ALICE, start + 180_000, "Great", f"{ME}:{start + 120_000}"),
        (BOB, HIKING, start + 240_000, "Who brings coffee, @Sam Owner?", None),
        (ME, HIKING, start + 300_000, "I do ☕☕", None),
        (ME, HIKING, start + 540_000, "A long story. " * 200, None),
    ]
    assert skipped(records) == {"edited": 1, "deleted": 1, "system": 1, "media-only": 1}


def test_fixture_is_what_the_writer_writes(tmp_path):
    written = write_backup(tmp_path / "tiny.backup", messages=FIXTURE_MESSAGES).path
    assert written.read_bytes() == FIXTURE.read_bytes(), "regenerate it: see its README"


def read_expected_export(folder: Path) -> dict[str, list[tuple[dt.datetime, str, str]]]:
    """The independent decoder's text rendering: "[Nov 14, 2023 22:13:21] <Name> text", with
    continuation lines, per "Title (_idN).txt"."""
    chats = {}
    for path in folder.glob("*.txt"):
        title = re.sub(r" \(_id\d+\)$", "", path.stem)
        lines: list[tuple[dt.datetime, str, str]] = []
        for line in path.read_text(encoding="utf-8").splitlines():
            head = re.match(r"\[(\w{3} \d+, \d{4} \d\d:\d\d:\d\d)\] <([^>]+)> (.*)", line)
            if head:
                when = dt.datetime.strptime(head[1], "%b %d, %Y %H:%M:%S").replace(tzinfo=dt.UTC)
                lines.append((when, head[2], head[3]))
            else:
                when, name, text = lines[-1]
                lines[-1] = (when, name, f"{text}\n{line}")
        chats[title] = lines
    return chats


@pytest.mark.parametrize("name", ["synthetic-v0.backup", "synthetic-v1.backup"])
def test_shared_samples_match_the_independent_rendering(name):
    if not (SAMPLES / name).is_file():
        pytest.skip("../shared/samples is not beside this checkout")
    records = parse_all(SAMPLES / name, passphrase="00000 11111 22222 33333 44444 55555")
    expected = read_expected_export(SAMPLES / "synthetic-v1.expected-exporttxt")
    names = {i.external_id: i.display_name for i in identities(records)}
    titles = {c.external_id: c.title for c in conversations(records)}
    assert sorted(titles.values()) == sorted(expected)
    for conversation_id, title in titles.items():
        ours = [m for m in messages(records) if m.conversation_id == conversation_id]
        assert len(ours) == len(expected[title]), title
        for message, (when, name_shown, text) in zip(ours, expected[title], strict=True):
            assert names[message.identity_id] == name_shown
            # The other decoder appends reactions, e.g. " (Alice (contacts): 👍)".
            assert text == message.text or re.fullmatch(
                r" \(.+: \S+\)", text.removeprefix(message.text)
            ), (text, message.text)
            # It shows the received time; ours is the sent time, a second or two earlier.
            lag = when - message.sent_at.replace(microsecond=0)
            assert dt.timedelta(0) <= lag <= dt.timedelta(seconds=2)
    assert skipped(records) == {"edited": 1, "deleted": 1}
    assert [i.display_name for i in identities(records) if i.is_self] == ["Me"]
    long_text = [m.text for m in messages(records) if m.text.startswith("This is a long")]
    assert long_text and len(long_text[0]) > 2000


def test_shared_samples_agree():
    if not SAMPLES.is_dir():
        pytest.skip("../shared/samples is not beside this checkout")
    v0 = parse_all(SAMPLES / "synthetic-v0.backup", passphrase=SAMPLE_PASSPHRASE)
    v1 = parse_all(SAMPLES / "synthetic-v1.backup", passphrase=SAMPLE_PASSPHRASE)
    assert v0 == v1


# -- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [0, 1])
def test_wrong_passphrase(tmp_path, version):
    info = write_backup(tmp_path / "b.backup", version=version, messages=CURATED)
    records = parse(info.path, passphrase="00000 11111 22222 33333 44444 55556")
    with pytest.raises(ExportError) as caught:
        next(records)  # before anything is yielded
    assert str(caught.value) == WRONG_PASSPHRASE


@pytest.mark.parametrize(
    "passphrase",
    [
        "",
        "abc",
        "0" * 29,
        "0" * 31,
        "00000 11111 22222 33333 44444 5555x",
        "０" * 30,
        "-" + "1" * 29,
    ],
)
def test_passphrase_must_be_30_digits(tmp_path, passphrase):
    # Checked before the file is even opened: this one does not exist.
    assert error_of(tmp_path / "missing.backup", passphrase) == NOT_30_DIGITS


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"\x00\x00",
        b"Hello, this is a chat export in plain text.\n" * 10,
        b"PK\x03\x04" + bytes(200),
        b"SQLite format 3\x00" + bytes(200),
        b"\x00\x00\x00\x10" + b"\xff" * 16 + bytes(100),  # a length, then no protobuf
        b"\x00\x00\x00\x04\x08\x01\x10\x02" + bytes(100),  # protobuf, but no header
    ],
)
def test_not_a_backup(tmp_path, content):
    path = tmp_path / "x.backup"
    path.write_bytes(content)
    assert error_of(path) == NOT_A_BACKUP


def test_unsupported_header_version(tmp_path):
    info = write_frames(tmp_path / "b.backup", [], header_version=2)
    message = "This Signal backup uses file format version 2, which this site cannot read yet."
    assert error_of(info.path) == message


def test_backup_without_messages(tmp_path):
    frame = statement_frame("CREATE TABLE recipient (_id INTEGER PRIMARY KEY, aci TEXT)")
    info = write_frames(tmp_path / "b.backup", [frame])
    message = "This Signal backup holds no message tables, so there is nothing to import."
    assert error_of(info.path) == message


def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("version", [0, 1])
def test_bad_mac_mid_file(tmp_path, version):
    info = write_backup(tmp_path / "b.backup", version=version, messages=CURATED)
    target = info.frames[len(info.frames) // 2]
    flip(info.path, target.offset + 6)  # inside the ciphertext
    assert error_of(info.path) == corrupted(target.number)


@pytest.mark.parametrize("version", [0, 1])
def test_bad_mac_in_the_mac_itself(tmp_path, version):
    info = write_backup(tmp_path / "b.backup", version=version, messages=CURATED)
    target, following = info.frames[10], info.frames[11]
    assert target.kind == "statement" and target.payload_offset is None
    flip(info.path, following.offset - 1)  # the last byte of the target's MAC
    assert error_of(info.path) == corrupted(target.number)


@pytest.mark.parametrize("kind", ["attachment", "avatar"])
def test_skipped_payloads_are_still_verified(tmp_path, kind):
    """Media payloads are not decrypted, but a damaged one is reported, not silently passed."""
    info = write_backup(tmp_path / "b.backup", messages=CURATED)
    target = info.frame(kind)  # the first: the media-only message's image, or the avatar
    assert target.payload_offset is not None
    flip(info.path, target.payload_offset + 5)
    assert error_of(info.path) == corrupted(target.number)


@pytest.mark.parametrize("version", [0, 1])
def test_truncated(tmp_path, version):
    info = write_backup(tmp_path / "b.backup", version=version, messages=CURATED)
    whole = info.path.read_bytes()
    middle = info.frames[len(info.frames) // 2]
    end = info.frame("end")
    payload = info.frame("attachment")
    assert payload.payload_offset is not None
    for cut, frame in [
        (middle.offset + 20, middle),  # inside a frame's body
        (middle.offset + 2, middle),  # inside its length
        (end.offset, end),  # a whole number of frames, but no end marker
        (payload.payload_offset + 3, payload),  # inside an attachment's payload
    ]:
        info.path.write_bytes(whole[:cut])
        assert error_of(info.path) == truncated(frame.number), cut


# -- streaming: progress, memory, temporary files ---------------------------------------------


def test_progress_reports_bytes(tmp_path, monkeypatch):
    monkeypatch.setattr("ingest.parsers.signal_backup.PROGRESS_INTERVAL", 0.0)
    info = write_backup(tmp_path / "b.backup", n_messages=300, seed=1)
    reports: list[Progress] = []
    parse_all(info.path, progress=lambda p: reports.append(Progress(p.done, p.total, p.unit)))
    size = info.path.stat().st_size
    assert len(reports) > 100  # every frame when the interval is zero
    assert {(r.total, r.unit) for r in reports} == {(size, "bytes")}
    assert [r.done for r in reports] == sorted(r.done for r in reports)
    assert reports[-1].done == size


def test_progress_is_throttled(tmp_path):
    info = write_backup(tmp_path / "b.backup", n_messages=2000, seed=1)
    reports: list[Progress] = []
    parse_all(info.path, progress=reports.append)
    assert 1 <= len(reports) < len(info.frames) / 50


def test_temporary_database_is_removed(tmp_path, monkeypatch):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    info = write_backup(tmp_path / "b.backup", messages=CURATED)
    parse_all(info.path)
    assert not list(scratch.iterdir())
    records = parse(info.path, passphrase=DEFAULT_PASSPHRASE)
    next(records)
    assert list(scratch.iterdir())  # in use while the parse is under way
    records.close()  # a caller that stops early
    assert not list(scratch.iterdir())
    flip(info.path, info.frames[-3].offset + 6)
    with pytest.raises(ExportError):
        list(parse(info.path, passphrase=DEFAULT_PASSPHRASE))
    assert not list(scratch.iterdir())


def peak_memory(path: Path) -> tuple[int, int]:
    tracemalloc.start()
    try:
        count = sum(1 for _ in parse(path, passphrase=DEFAULT_PASSPHRASE))
        return count, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.slow
def test_memory_does_not_grow_with_the_backup(tmp_path):
    small = write_backup(tmp_path / "small.backup", n_messages=2_000, seed=2)
    large = write_backup(tmp_path / "large.backup", n_messages=20_000, seed=2)
    small_count, small_peak = peak_memory(small.path)
    large_count, large_peak = peak_memory(large.path)
    assert large_count > 9 * small_count
    assert large_peak < 1.5 * small_peak + 256 * 1024, (small_peak, large_peak)


def test_records_are_plain_values(tmp_path):
    """Records compare and hash by value (the ingest side dedups on them)."""
    info = write_backup(tmp_path / "b.backup", messages=CURATED[:3])
    records = parse_all(info.path)
    assert parse_all(info.path) == records
    assert isinstance(records[0], IdentityRecord)
    assert isinstance(records[-1], MessageRecord)
