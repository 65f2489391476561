"""signal-export (Signal Desktop) parser: data.json and chat.md, message kinds, bad files."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from ingest.parsers import signal_desktop
from ingest.parsers.records import ConversationRecord, ExportError, IdentityRecord
from tests.builders.checks import check_contract, conversations, identities, messages, skipped
from tests.builders.signal_desktop import build_sigexport, sig

T0 = dt.datetime(2024, 3, 1, 18, 0)


def at(minutes: int) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def parse(path: Path, **options: object) -> list:
    return check_contract(signal_desktop.parse(str(path), **options))


CHATS = {
    "AliceSmith": [
        sig(at(0), "AliceSmith", "dinner tonight?"),
        sig(at(1), "Me", "yes!\nwhere?"),
        sig(at(2), "AliceSmith", "the usual", quote="\n\n> where?\n\n"),
        sig(at(3), "AliceSmith", "", attachments=[{"name": "menu.jpg", "path": "media/menu.jpg"}]),
        sig(at(4), "Me", "", sticker="👍"),
        sig(at(5), "AliceSmith", "", deleted=True),
        sig(at(6), "Me", "Outgoing voice call (accepted, 3m 2s)"),
        sig(at(7), "Me", "nice", reactions=[("AliceSmith", "❤️")]),
    ],
    "HikingClub": [sig(at(10), "AliceSmith", "trail at 8"), sig(at(11), "BobJones", "ok")],
}
TEXTS = ["dinner tonight?", "yes!\nwhere?", "the usual", "nice", "trail at 8", "ok"]


@pytest.mark.parametrize("json_output", [True, False], ids=["data.json", "chat.md"])
def test_a_whole_export(tmp_path: Path, json_output: bool) -> None:
    path = build_sigexport(tmp_path / "signal", CHATS, json_output=json_output)
    records = parse(path, self_name="Sam")
    assert identities(records) == [
        IdentityRecord("AliceSmith", "AliceSmith"),
        IdentityRecord("Me", "Sam", is_self=True),
        IdentityRecord("BobJones", "BobJones"),
    ]
    assert conversations(records) == [
        ConversationRecord("AliceSmith", "AliceSmith", is_group=False),
        ConversationRecord("HikingClub", "HikingClub", is_group=True),
    ]
    assert [m.text for m in messages(records)] == TEXTS
    assert skipped(records) == {"media-only": 2, "deleted": 1, "system": 1}


def test_zip_and_timezone(tmp_path: Path) -> None:
    path = build_sigexport(tmp_path / "signal.zip", CHATS)
    records = parse(path, timezone="America/New_York")
    assert [m.text for m in messages(records)] == TEXTS
    assert messages(records)[0].sent_at == dt.datetime(2024, 3, 1, 23, 0, tzinfo=dt.UTC)


def test_a_single_chat_file(tmp_path: Path) -> None:
    build_sigexport(tmp_path / "signal", CHATS)
    for name in ("data.json", "chat.md"):
        records = parse(tmp_path / "signal" / "HikingClub" / name)
        assert [m.text for m in messages(records)] == ["trail at 8", "ok"]
        assert conversations(records)[0].external_id == "HikingClub"


def test_ids_are_stable_and_distinct(tmp_path: Path) -> None:
    same = [sig(at(0), "Me", "a"), sig(at(0), "Me", "b")]
    first = messages(parse(build_sigexport(tmp_path / "a", {"X": same})))
    again = messages(parse(build_sigexport(tmp_path / "b", {"X": same}, json_output=False)))
    assert len({m.external_id for m in first}) == 2
    assert [m.external_id for m in first] == [m.external_id for m in again]


def test_damaged_json_line(tmp_path: Path) -> None:
    path = build_sigexport(tmp_path / "signal", {"X": [sig(at(0), "Me", "a")]})
    with (path / "X" / "data.json").open("a") as out:
        out.write('{"date": "2024-03-01T18:01:00", "sender": "Me", "bo\n')
    with pytest.raises(ExportError) as error:
        parse(path)
    assert str(error.value) == (
        "X/data.json is not valid signal-export JSON: line 2 is cut or damaged."
    )


def test_folder_without_conversations(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ExportError) as error:
        parse(tmp_path / "empty")
    assert str(error.value) == (
        "empty holds no signal-export conversations (folders with data.json or chat.md)."
    )


def test_export_without_messages(tmp_path: Path) -> None:
    path = build_sigexport(tmp_path / "signal", {"X": []})
    with pytest.raises(ExportError) as error:
        parse(path)
    assert str(error.value) == "This signal-export output contains no messages."


@pytest.mark.parametrize("json_output", [True, False], ids=["data.json", "chat.md"])
def test_quotes_become_replies(tmp_path: Path, json_output: bool) -> None:
    # sigexport keeps only the quoted text (create.py: "\n\n> {text}\n\n", lines joined by "> ").
    chat = [
        sig(at(0), "AliceSmith", "`dinner` tonight?"),  # sigexport drops backticks from bodies
        sig(at(1), "Me", "yes!\nwhere?"),
        sig(at(2), "AliceSmith", "the usual", quote="\n\n> yes!\n> where?\n\n"),
        sig(at(3), "Me", "ok", quote="\n\n> `dinner` tonight?\n\n"),  # but not from quotes
        sig(at(4), "AliceSmith", "see you", quote="\n\n> where?\n\n"),  # part of a message
        sig(at(5), "Me", "hm", quote="\n\n> something long gone\n\n"),
    ]
    path = build_sigexport(tmp_path / "signal", {"AliceSmith": chat}, json_output=json_output)
    found = messages(parse(path))
    ids = {m.text: m.external_id for m in found}
    assert [(m.text, m.reply_to) for m in found] == [
        ("dinner tonight?", None),
        ("yes!\nwhere?", None),
        ("the usual", ids["yes!\nwhere?"]),
        ("ok", ids["dinner tonight?"]),
        ("see you", ids["yes!\nwhere?"]),
        ("hm", None),
    ]


def test_messages_without_a_known_sender_are_skipped(tmp_path: Path) -> None:
    # carderne/signal-export#46: after a group moved to "new groups", sigexport wrote
    # "No-Sender" for everyone but the owner; one made-up speaker would mix several people.
    chat = [
        sig(at(0), "No-Sender", "who am I"),
        sig(at(1), "Me", "hi"),
        sig(at(2), "AliceSmith", "hello"),
    ]
    records = parse(build_sigexport(tmp_path / "signal", {"Group": chat}))
    assert [i.external_id for i in identities(records)] == ["Me", "AliceSmith"]
    assert [m.text for m in messages(records)] == ["hi", "hello"]
    assert skipped(records) == {"no-sender": 1}


def test_ids_do_not_change_with_the_zone_the_times_are_read_in(tmp_path: Path) -> None:
    path = build_sigexport(tmp_path / "sig.zip", {"Chat": [sig(at(0), "Bo", "hi")]})
    [utc_read] = messages(parse(path))
    [berlin_read] = messages(parse(path, timezone="Europe/Berlin"))
    assert berlin_read.sent_at != utc_read.sent_at
    assert berlin_read.external_id == utc_read.external_id
