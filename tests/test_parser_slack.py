"""Slack export parser: the hand-made fixture, the real sample, builder-made variants, bad input."""

from __future__ import annotations

import datetime as dt
import json
import tracemalloc
import zipfile
from pathlib import Path

import pytest

from ingest.parsers import slack
from ingest.parsers.detect import detect_kind
from ingest.parsers.records import (
    ConversationRecord,
    IdentityRecord,
    MessageRecord,
    Progress,
    SkippedRecord,
)
from tests.builders.checks import (
    check_contract,
    conversations,
    identities,
    messages,
    skipped,
)
from tests.builders.slack import Conversation, User, build_slack, msg, synthetic_stream

FIXTURE = Path(__file__).parent / "fixtures" / "slack"
SAMPLE = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "samples"
    / "slack"
    / "slack-export-viewer_testarchive.zip"
)
PEOPLE = {"U1": "Alice", "U2": "Bob"}
# The first bytes of a zip whose download stopped half way.
FIXTURE_ZIP_HEAD = b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + b"\x00" * 40


def parse(path: Path, **options: object) -> list:
    return check_contract(slack.parse(str(path), **options))


def texts(path: Path, **options: object) -> list[str]:
    return [m.text for m in messages(parse(path, **options))]


def one_text(tmp_path: Path, text: str, **options: object) -> str:
    export = build_slack(tmp_path / "e.zip", users=PEOPLE, channels={"general": [("U1", text)]})
    [message] = messages(parse(export, **options))
    return message.text


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


# --- The hand-made fixture, record by record -------------------------------------------------


def test_fixture_reads_as_a_story() -> None:
    records = parse(FIXTURE)
    assert records == [
        IdentityRecord(
            "U0ALICE01", "Ali", extra={"username": "alice", "real_name": "Alice Martin"}
        ),
        IdentityRecord(
            "U0BOB0001", "Bob Stone", extra={"username": "bob", "real_name": "Bob Stone"}
        ),
        IdentityRecord("U0CAROL01", "carol", extra={"username": "carol", "real_name": ""}),
        ConversationRecord("C0GENERAL", "#general", is_group=True),
        SkippedRecord("system"),  # carol joined
        MessageRecord(
            "C0GENERAL:1709283660.000200",
            "C0GENERAL",
            "U0ALICE01",
            utc(2024, 3, 1, 9, 1, 0, 200),
            "Morning @Bob Stone! Plans for #general?",
        ),
        MessageRecord(
            "C0GENERAL:1709283720.000300",
            "C0GENERAL",
            "U0BOB0001",
            utc(2024, 3, 1, 9, 2, 0, 300),
            "Fish & chips at the pub, @here",
            reply_to="C0GENERAL:1709283660.000200",
        ),
        MessageRecord(
            "C0GENERAL:1709283780.000400",
            "C0GENERAL",
            "U0CAROL01",
            utc(2024, 3, 1, 9, 3, 0, 400),
            "count me in",
        ),
        SkippedRecord("bot"),
        SkippedRecord("media-only"),
        MessageRecord(
            "C0GENERAL:1709370060.000200",
            "C0GENERAL",
            "U0BOB0001",
            utc(2024, 3, 2, 9, 1, 0, 200),
            "1 < 2 > 0",
        ),
        ConversationRecord("D0DM00001", "Ali, Bob Stone", is_group=False),
        MessageRecord(
            "D0DM00001:1709290000.000100",
            "D0DM00001",
            "U0BOB0001",
            utc(2024, 3, 1, 10, 46, 40, 100),
            "psst, bring cash",
        ),
    ]


def test_fixture_with_bots_keeps_the_bot_as_a_bot_identity() -> None:
    records = parse(FIXTURE, include_bots=True)
    bot = next(r for r in identities(records) if r.is_bot)
    assert bot.display_name == "Giphy"
    [gif] = [m for m in messages(records) if m.identity_id == bot.external_id]
    assert gif.text == "https://giphy.com/fish.gif"
    assert records.index(bot) < records.index(gif)


def test_zip_and_folder_give_the_same_records(tmp_path: Path) -> None:
    archive = tmp_path / "fixture.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for file in sorted(FIXTURE.rglob("*.json")):
            z.write(file, file.relative_to(FIXTURE).as_posix())
    assert parse(archive) == parse(FIXTURE)


def test_rezipped_export_with_a_top_folder_is_read(tmp_path: Path) -> None:
    flat = build_slack(tmp_path / "flat.zip", users=PEOPLE, channels={"general": [("U1", "hi")]})
    nested = build_slack(
        tmp_path / "nested.zip",
        users=PEOPLE,
        channels={"general": [("U1", "hi")]},
        root="My Workspace Slack export",
    )
    assert parse(nested) == parse(flat)


# --- The real 2016 export ----------------------------------------------------------------------


@pytest.mark.skipif(not SAMPLE.exists(), reason="shared samples are not available")
def test_real_export_from_2016() -> None:
    records = parse(SAMPLE)
    assert [(i.external_id, i.display_name) for i in identities(records)] == [
        ("U0BMYT2FL", "abilinski"),
        ("U0BMS113R", "doubledeez"),
        ("U0BMQB6JE", "hamza"),
        ("U0BMM2FEH", "heroeshannibal"),
    ]
    assert identities(records)[0].extra["real_name"] == "Harry Potter"
    assert [c.title for c in conversations(records)] == ["#enrique", "#traveling-sailor"]
    assert len(messages(records)) == 50  # one of them a comment on a file
    # 8 joins, 3 bot_add; 94 GitHub bot posts; 3 uploads with no comment
    assert skipped(records) == {"system": 11, "bot": 94, "media-only": 3}
    first = messages(records)[0]
    assert first.text.startswith("@abilinski: Created an issue for a setup.py")
    assert first.sent_at == utc(2016, 1, 15, 5, 55, 52, 6)


@pytest.mark.skipif(not SAMPLE.exists(), reason="shared samples are not available")
def test_real_export_bots_become_identities_with_their_attachment_text() -> None:
    records = parse(SAMPLE, include_bots=True)
    bots = [i for i in identities(records) if i.is_bot]
    assert {b.external_id for b in bots} == {"B0JL6RASU", "B0VJZKVHC", "B0JL6UFSL"}
    bot_messages = [m for m in messages(records) if m.identity_id.startswith("B")]
    assert len(bot_messages) == 94
    assert "Implement killTask; resolves #20" in "\n".join(m.text for m in bot_messages)


# --- Text markup ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("hi <@U2>", "hi @Bob"),
        ("hi <@U2|bobby>", "hi @Bob"),  # the users.json name wins over a stale label
        ("hi <@U9|ghost>", "hi @ghost"),  # unknown user: the label
        ("hi <@U9>", "hi @U9"),
        ("see <#CGENERAL|general>", "see #general"),
        ("see <#CGENERAL>", "see #general"),
        ("<!here> <!channel> <!everyone>", "@here @channel @everyone"),
        ("<!here|@here> lunch", "@here lunch"),
        ("ping <!subteam^S123|@devs>", "ping @devs"),
        ("on <!date^1392734382^{date}|Feb 18, 2014>", "on Feb 18, 2014"),
        ("read <https://example.com/a?b=1&amp;c=2|this>", "read this"),
        ("read <https://example.com/a?b=1&amp;c=2>", "read https://example.com/a?b=1&c=2"),
        ("mail <mailto:a@example.com|a@example.com>", "mail a@example.com"),
        ("Tom &amp; Jerry &lt;3 &gt;:(", "Tom & Jerry <3 >:("),
        ("literal &amp;lt;", "literal &lt;"),
        ("  padded \n", "padded"),
    ],
)
def test_markup_becomes_plain_text(tmp_path: Path, raw: str, expected: str) -> None:
    assert one_text(tmp_path, raw) == expected


# --- Message kinds -------------------------------------------------------------------------------


def test_threads_link_replies_to_their_parent(tmp_path: Path) -> None:
    parent = msg("U1", "question?", "1700000000.000100", thread_ts="1700000000.000100")
    reply = msg("U2", "answer", "1700000060.000200", thread_ts="1700000000.000100")
    broadcast = msg(
        "U2", "also here", "1700000070.000300", thread_ts="1700000000.000100",
        subtype="thread_broadcast",
    )  # fmt: skip
    export = build_slack(
        tmp_path / "e.zip", users=PEOPLE, channels={"general": [parent, reply, broadcast]}
    )
    found = messages(parse(export))
    assert [(m.external_id, m.reply_to) for m in found] == [
        ("CGENERAL:1700000000.000100", None),
        ("CGENERAL:1700000060.000200", "CGENERAL:1700000000.000100"),
        ("CGENERAL:1700000070.000300", "CGENERAL:1700000000.000100"),
    ]


@pytest.mark.parametrize(
    "subtype",
    [
        "channel_join",
        "channel_leave",
        "channel_topic",
        "channel_purpose",
        "channel_name",
        "channel_archive",
        "group_join",
        "group_leave",
        "group_topic",
        "group_purpose",
        "pinned_item",
        "bot_add",
        "bot_remove",
        "reminder_add",
        "huddle_thread",
        "file_comment",
    ],
)
def test_events_are_skipped_as_system(tmp_path: Path, subtype: str) -> None:
    event = msg("U1", "<@U1> did something", subtype=subtype)
    export = build_slack(
        tmp_path / "e.zip", users=PEOPLE, channels={"general": [event, ("U2", "hi")]}
    )
    records = parse(export)
    assert skipped(records) == {"system": 1}
    assert [m.text for m in messages(records)] == ["hi"]


def test_a_comment_on_a_file_is_its_commenters_words(tmp_path: Path) -> None:
    """Before 2019 a file comment was a file_comment message with generated text (the file's
    owner may be someone else); the comment and its author are in ``comment``."""
    event = msg(
        "U2", "<@U1> commented on <@U2>'s file <https://x.slack.com/files/F1|map>: see &lt;3",
        "1700000000.000100", subtype="file_comment",
        comment={"id": "Fc1", "user": "U1", "comment": "see &lt;3 <@U2>"},
    )  # fmt: skip
    export = build_slack(tmp_path / "e.zip", users=PEOPLE, channels={"general": [event]})
    assert [(m.identity_id, m.text) for m in messages(parse(export))] == [("U1", "see <3 @Bob")]


def test_bots_are_skipped_unless_asked_for(tmp_path: Path) -> None:
    users = [User("U1", "alice", "Alice"), User("UBOT", "standup", "Standup Bot", is_bot=True)]
    channel = [
        msg("U1", "hi"),
        {"type": "message", "subtype": "bot_message", "bot_id": "B1", "username": "CI",
         "text": "build passed"},
        msg("UBOT", "what did you do yesterday?", bot_id="B2"),
        msg("USLACKBOT", "Reminder: lunch"),
    ]  # fmt: skip
    export = build_slack(tmp_path / "e.zip", users=users, channels={"general": channel})
    plain = parse(export)
    assert texts(export) == ["hi"]
    assert skipped(plain) == {"bot": 3}
    assert [i.external_id for i in identities(plain)] == ["U1"]

    with_bots = parse(export, include_bots=True)
    assert [(m.identity_id, m.text) for m in messages(with_bots)] == [
        ("U1", "hi"),
        ("B1", "build passed"),
        ("UBOT", "what did you do yesterday?"),
        ("USLACKBOT", "Reminder: lunch"),
    ]
    assert [(i.external_id, i.display_name, i.is_bot) for i in identities(with_bots)] == [
        ("U1", "Alice", False),
        ("UBOT", "Standup Bot", True),
        ("B1", "CI", True),
        ("USLACKBOT", "USLACKBOT", True),
    ]


def test_edits_keep_the_final_text_and_deletions_are_counted(tmp_path: Path) -> None:
    channel = [
        msg("U1", "final wording", "1700000000.000100", edited={"user": "U1", "ts": "1700000100"}),
        msg("U2", "typo", "1700000010.000200"),
        {"type": "message", "subtype": "message_changed", "ts": "1700000020.000300",
         "message": {"type": "message", "user": "U2", "text": "fixed", "ts": "1700000010.000200",
                     "edited": {"user": "U2", "ts": "1700000020"}}},
        msg("U1", "oops", "1700000030.000400"),
        {"type": "message", "subtype": "message_deleted", "ts": "1700000040.000500",
         "deleted_ts": "1700000030.000400"},
        {"type": "message", "subtype": "tombstone", "user": "USLACKBOT",
         "text": "This message was deleted.", "ts": "1700000050.000600", "hidden": True},
    ]  # fmt: skip
    export = build_slack(tmp_path / "e.zip", users=PEOPLE, channels={"general": channel})
    records = parse(export)
    assert [(m.identity_id, m.text) for m in messages(records)] == [
        ("U1", "final wording"),
        ("U2", "fixed"),
    ]
    assert skipped(records) == {"system": 2, "deleted": 2}


def test_uploads_without_words_are_media_only(tmp_path: Path) -> None:
    photo = {"id": "F1", "name": "cat.jpg", "mimetype": "image/jpeg"}
    channel = [
        msg("U1", "", subtype="file_share", files=[photo]),
        msg("U1", "look at this cat", subtype="file_share", files=[photo]),
        msg("U2", "", files=[photo]),  # newer exports drop the subtype
        msg("U2", "<@U2> uploaded a file: <https://x.slack.com/files/cat.jpg|cat>",
            subtype="file_share", upload=True, file=photo),
        msg("U2", "<@U2|bob> uploaded a file: <https://x.slack.com/files/dog.jpg|dog> and "
            "commented: my dog", subtype="file_share", file=photo),
        msg("U1", "", attachments=[{"fallback": "link preview"}]),
        msg("U1", "   "),
    ]  # fmt: skip
    export = build_slack(tmp_path / "e.zip", users=PEOPLE, channels={"general": channel})
    records = parse(export)
    assert texts(export) == ["look at this cat", "my dog"]
    assert skipped(records) == {"media-only": 4, "empty": 1}


def test_names_fall_back_from_display_name_to_real_name_to_username(tmp_path: Path) -> None:
    users = [
        User("U1", "alice", display_name="Ali", real_name="Alice Martin"),
        User("U2", "bob", real_name="Bob Stone"),
        {"id": "U3", "name": "carol"},  # an old export: no profile at all
    ]
    raw_users = [u if isinstance(u, dict) else u.to_json() for u in users]
    export = build_slack(
        tmp_path / "e.zip",
        channels={"general": [("U1", "hi")]},
        extra_files={"users.json": json.dumps(raw_users)},
    )
    assert [i.display_name for i in identities(parse(export))] == ["Ali", "Bob Stone", "carol"]


def test_a_stranger_from_a_shared_channel_is_named_from_the_message(tmp_path: Path) -> None:
    channel = [
        msg("UEXT", "hello from the other org",
            user_profile={"real_name": "Erin External", "display_name": "erin", "name": "erin.e"}),
        msg("UGHOST", "who am I"),
    ]  # fmt: skip
    export = build_slack(tmp_path / "e.zip", users=PEOPLE, channels={"general": channel})
    records = parse(export)
    assert [(i.external_id, i.display_name) for i in identities(records)][2:] == [
        ("UEXT", "erin"),
        ("UGHOST", "UGHOST"),
    ]


def test_private_channels_dms_and_group_dms(tmp_path: Path) -> None:
    channels = {
        Conversation("G1", "secret-plans", kind="group", members=("U1", "U2")): [("U1", "shh")],
        Conversation("D1", "", kind="dm", members=("U2", "U1")): [("U2", "hey you")],
        Conversation("M1", "mpdm-alice--bob-1", kind="mpim", members=("U1", "U2")): [("U1", "yo")],
        "general": [("U1", "hi all")],
    }
    export = build_slack(tmp_path / "e.zip", users=PEOPLE, channels=channels)
    records = parse(export)
    assert [(c.external_id, c.title, c.is_group) for c in conversations(records)] == [
        ("CGENERAL", "#general", True),
        ("G1", "#secret-plans", True),
        ("M1", "Alice, Bob", True),
        ("D1", "Alice, Bob", False),
    ]
    assert {m.conversation_id: m.text for m in messages(records)} == {
        "CGENERAL": "hi all",
        "G1": "shh",
        "M1": "yo",
        "D1": "hey you",
    }


def test_a_folder_missing_from_channels_json_is_still_read(tmp_path: Path) -> None:
    export = build_slack(
        tmp_path / "e.zip",
        users=PEOPLE,
        channels={"random": [("U1", "stray")]},
        extra_files={"channels.json": "[]"},
    )
    records = parse(export)
    assert conversations(records) == [ConversationRecord("random", "#random", True)]
    assert texts(export) == ["stray"]


def test_ids_are_stable_across_re_exports(tmp_path: Path) -> None:
    channel = [msg("U1", "one", "1700000000.000100"), msg("U2", "two", "1700000001.000200")]
    first = build_slack(tmp_path / "a.zip", users=PEOPLE, channels={"general": channel})
    again = build_slack(
        tmp_path / "b",
        users={"U2": "Bob", "U1": "Alice"},
        channels={"general": channel, "random": [("U1", "new")]},
    )
    ids = {m.external_id for m in messages(parse(first))}
    assert ids == {"CGENERAL:1700000000.000100", "CGENERAL:1700000001.000200"}
    assert ids < {m.external_id for m in messages(parse(again))}


def test_progress_counts_day_files(tmp_path: Path) -> None:
    day = 86_400
    channel = [msg("U1", f"day {i}", f"{1700000000 + i * day}.000100") for i in range(3)]
    export = build_slack(tmp_path / "e.zip", users=PEOPLE, channels={"general": channel})
    seen: list[tuple[int, int, str]] = []

    def record(p: Progress) -> None:
        seen.append((p.done, p.total, p.unit))

    parse(export, progress=record)
    assert seen == [(1, 3, "files"), (2, 3, "files"), (3, 3, "files")]


def test_unknown_options_are_ignored(tmp_path: Path) -> None:
    export = build_slack(tmp_path / "e.zip", users=PEOPLE, channels={"general": [("U1", "hi")]})
    assert texts(export, passphrase="irrelevant") == ["hi"]


def _peak_memory(path: Path) -> int:
    tracemalloc.start()
    try:
        count = sum(1 for r in slack.parse(str(path)) if isinstance(r, MessageRecord))
        return tracemalloc.get_traced_memory()[1] if count else 0
    finally:
        tracemalloc.stop()


def test_memory_does_not_grow_with_the_export(tmp_path: Path) -> None:
    small_users, small = synthetic_stream(2_000, channels=5, per_day=100)
    big_users, big = synthetic_stream(20_000, channels=5, per_day=100)
    small_zip = build_slack(tmp_path / "small.zip", users=small_users, stream=small)
    big_zip = build_slack(tmp_path / "big.zip", users=big_users, stream=big)
    assert len(messages(slack.parse(str(big_zip)))) == 20_000
    # Ten times the messages, about the same peak: one day file at a time, nothing accumulated.
    assert _peak_memory(big_zip) < _peak_memory(small_zip) * 1.5 + 200_000


# --- Variants reported on other tools' issue trackers ---------------------------------------


def test_enterprise_grid_export_with_org_users_json(tmp_path: Path) -> None:
    # hfaran/slack-export-viewer#224: Enterprise Grid exports have org_users.json, no users.json.
    export = build_slack(
        tmp_path / "grid.zip",
        users=PEOPLE,
        channels={"general": [("U1", "hi <@U2>")]},
        users_file="org_users.json",
    )
    records = parse(export)
    assert [(i.external_id, i.display_name) for i in identities(records)] == [
        ("U1", "Alice"),
        ("U2", "Bob"),
    ]
    assert [m.text for m in messages(records)] == ["hi @Bob"]
    assert detect_kind(export) == "slack"


def test_an_edit_or_deletion_filed_in_a_later_day_file(tmp_path: Path) -> None:
    # hfaran/slack-export-viewer#135 (edits in exports): an edit made after midnight is an event
    # in the next day's file, yet the message keeps its final text and no duplicate appears.
    late = utc(2024, 1, 1, 23, 50).timestamp()
    channel = [
        msg("U1", "see you at 8", f"{late:.0f}.000100"),
        msg("U2", "oops wrong chat", f"{late + 60:.0f}.000200"),
        {"type": "message", "subtype": "message_changed", "ts": f"{late + 900:.0f}.000300",
         "message": {"type": "message", "user": "U1", "text": "see you at 9",
                     "ts": f"{late:.0f}.000100", "edited": {"user": "U1"}}},
        {"type": "message", "subtype": "message_deleted", "ts": f"{late + 960:.0f}.000400",
         "deleted_ts": f"{late + 60:.0f}.000200"},
        msg("U2", "ok", f"{late + 1000:.0f}.000500"),
    ]  # fmt: skip
    export = build_slack(tmp_path / "e.zip", users=PEOPLE, channels={"general": channel})
    with zipfile.ZipFile(export) as z:
        assert sorted(n for n in z.namelist() if n.startswith("general/")) == [
            "general/2024-01-01.json",
            "general/2024-01-02.json",
        ]
    records = parse(export)
    assert [(m.external_id, m.text) for m in messages(records)] == [
        (f"CGENERAL:{late:.0f}.000100", "see you at 9"),
        (f"CGENERAL:{late + 1000:.0f}.000500", "ok"),
    ]
    assert skipped(records) == {"system": 2, "deleted": 1}
