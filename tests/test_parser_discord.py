"""DiscordChatExporter JSON parser: authors, replies, bots, system messages, bad files."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from ingest.parsers import discord
from ingest.parsers.records import ConversationRecord, ExportError, IdentityRecord
from tests.builders.checks import check_contract, conversations, identities, messages, skipped
from tests.builders.discord import author, build_discord, dc

ANN = author("111", "ann_s", nickname="Ann")
BEN = author("222", "ben")
BOT = author("999", "MEE6", bot=True)


def parse(path: Path, **options: object) -> list:
    return check_contract(discord.parse(str(path), **options))


def test_a_channel_with_replies_and_nicknames(tmp_path: Path) -> None:
    path = build_discord(
        tmp_path / "general.json",
        [dc("1", ANN, "anyone up for games?"), dc("2", BEN, "me!", reply_to="1")],
    )
    records = parse(path)
    assert conversations(records) == [ConversationRecord("10", "Friends #general", is_group=True)]
    assert identities(records) == [
        IdentityRecord("111", "Ann", extra={"username": "ann_s", "discriminator": "0000"}),
        IdentityRecord("222", "ben", extra={"username": "ben", "discriminator": "0000"}),
    ]
    assert [(m.external_id, m.text, m.reply_to) for m in messages(records)] == [
        ("1", "anyone up for games?", None),
        ("2", "me!", "1"),
    ]
    assert messages(records)[0].sent_at == dt.datetime(2024, 1, 1, 9, 1, tzinfo=dt.UTC)


def test_timestamps_with_offsets_become_utc(tmp_path: Path) -> None:
    msg = dc("1", ANN, "hi", timestamp="2024-01-01T10:00:00.123+02:00")
    [m] = messages(parse(build_discord(tmp_path / "c.json", [msg])))
    assert m.sent_at == dt.datetime(2024, 1, 1, 8, 0, 0, 123000, tzinfo=dt.UTC)


def test_bots_and_system_messages(tmp_path: Path) -> None:
    msgs = [
        dc("1", ANN, "hi"),
        dc("2", BOT, "GG Ann, you just advanced to level 3!"),
        dc("3", BEN, "Ben joined the server.", type="GuildMemberJoin"),
        dc("4", ANN, "Ann pinned a message.", type="ChannelPinnedMessage"),
        dc("5", ANN, "", type="Call"),
        dc("6", ANN, "", attachments=[{"id": "a", "url": "cat.png", "fileName": "cat.png"}]),
        dc("7", ANN, "", stickers=[{"id": "s", "name": "wave"}]),
        dc("8", ANN, "   "),
    ]
    path = build_discord(tmp_path / "c.json", msgs)
    records = parse(path)
    assert skipped(records) == {"bot": 1, "system": 3, "media-only": 2, "empty": 1}
    with_bots = parse(path, include_bots=True)
    assert [i.is_bot for i in identities(with_bots)] == [False, True]
    assert len(messages(with_bots)) == 2


def test_direct_messages(tmp_path: Path) -> None:
    path = build_discord(
        tmp_path / "dm.json", [dc("1", ANN, "psst")], guild="Direct Messages", name="ben",
        kind="DirectTextChat",
    )  # fmt: skip
    assert conversations(parse(path)) == [ConversationRecord("10", "ben", is_group=False)]


def test_a_zip_of_channels_shares_identities(tmp_path: Path) -> None:
    channels = {"general": [dc("1", ANN, "a")], "memes": [dc("2", ANN, "b"), dc("3", BEN, "c")]}
    records = parse(build_discord(tmp_path / "server.zip", channels=channels))
    assert [c.title for c in conversations(records)] == ["Friends #general", "Friends #memes"]
    assert [i.external_id for i in identities(records)] == ["111", "222"]


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("c.json", '{"guild": {}, "messages": []}',
         "c.json is not a DiscordChatExporter JSON export: it has no channel and messages."),
        ("c.json", "[]",
         "c.json is not a DiscordChatExporter JSON export: it has no channel and messages."),
        ("c.json", '{"guild": {}, "channel": {"id": "1"}, "messages": []}',
         "c.json contains no messages."),
        ("c.json", '{"guild": {}, "channel": {"id": "1"}, "messages": [{"id": "1"',
         "c.json is not valid JSON (the file ends too early); the export may be incomplete."),
        ("c.html", "<html></html>",
         "c.html is a DiscordChatExporter HTML export; export again with the JSON format."),
    ],
)  # fmt: skip
def test_bad_files(tmp_path: Path, name: str, content: str, expected: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ExportError) as error:
        parse(path)
    assert str(error.value) == expected


def test_a_file_cut_short_while_exporting(tmp_path: Path) -> None:
    # Tyrrrz/DiscordChatExporter#413: an export interrupted (a full disk) leaves a cut JSON file.
    path = build_discord(tmp_path / "general.json", [dc(str(i), ANN, "hi") for i in range(1, 50)])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ExportError) as error:
        parse(path)
    assert str(error.value) == (
        "general.json is not valid JSON (the file ends too early); the export may be incomplete."
    )
