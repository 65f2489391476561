"""Telegram Desktop JSON parser: single chats, account exports, both eras, bad files."""

from __future__ import annotations

import datetime as dt
import json
import zipfile
from pathlib import Path

import pytest

from ingest.parsers import telegram
from ingest.parsers.records import ConversationRecord, ExportError, IdentityRecord, Progress
from tests.builders.checks import (
    check_contract,
    conversations,
    identities,
    messages,
    skipped,
    zip_with,
)
from tests.builders.telegram import Chat, build_telegram, service, tg

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "samples" / "telegram"
needs_samples = pytest.mark.skipif(not SAMPLES.exists(), reason="shared samples are not available")


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


def parse(path: Path, **options: object) -> list:
    return check_contract(telegram.parse(str(path), **options))


def one_chat(tmp_path: Path, *msgs: dict, style: str = "2021", **options: object) -> list:
    path = build_telegram(
        tmp_path / "result.json", [Chat(42, "Friends", messages=msgs)], style=style
    )
    return parse(path, **options)


# --- Samples ------------------------------------------------------------------------------------

TG2MD_TEXTS = [
    "test text post",
    "photo with text",
    "italic\n\nbold\n\nunderline\n\nstrikethrough\n\nmonospace",
    "italic in text\n\nitalic on whole line",
    "bold in text\nbold below\n\nnormal text\n\nbold with one line gap\nnormal text",
    "multiline\nbold\n\ntext",
    "monospace with one baktick\n\nmultiline\nmonospace",
    "text link\n\nexample.com\n\nexample@example.com",
    "bold italic",
]


@needs_samples
def test_tg2md_2021_export() -> None:
    records = parse(SAMPLES / "tg2md_result.json")
    assert conversations(records) == [ConversationRecord("1292077344", "test", is_group=True)]
    assert identities(records) == [IdentityRecord("channel1292077344", "test")]
    found = messages(records)
    assert [m.text for m in found][:9] == TG2MD_TEXTS
    assert [m.text for m in found][9:] == [
        "тестирование utf-8.",
        "test file other than sound",
        "multiple photos",
        "test text file",
    ]
    assert found[0].external_id == "1292077344:2"
    assert found[0].sent_at == utc(2020, 11, 12, 12, 54, 7)
    assert skipped(records) == {"system": 1, "media-only": 5}


@needs_samples
def test_tg2md_2020_export_with_integer_ids_and_no_unixtime() -> None:
    records = parse(SAMPLES / "tg2md_result_2020-old-from_id-int.json", timezone="Europe/Berlin")
    # 9882011936 is Telegram Desktop's pre-2021 peer id: channel 1292077344 with bit 33 set.
    assert identities(records) == [IdentityRecord("channel1292077344", "test")]
    found = messages(records)
    assert [m.text for m in found] == TG2MD_TEXTS
    assert found[0].sent_at == utc(2020, 11, 12, 11, 54, 7)  # 12:54 in Berlin
    assert skipped(records) == {"system": 1, "media-only": 3}


@needs_samples
def test_a_pre_2021_export_and_a_newer_one_of_a_chat_share_its_ids() -> None:
    """The same channel exported in 2020 and in 2021: the old layout wrote the chat's and the
    sender's ids with their kind in bit 33, so every shared message had two ids (doubled)."""
    old = parse(SAMPLES / "tg2md_result_2020-old-from_id-int.json")
    new = parse(SAMPLES / "tg2md_result.json")

    assert conversations(old) == conversations(new)
    assert identities(old) == identities(new)
    new_ids = {m.text: (m.external_id, m.identity_id) for m in messages(new)}
    assert [(m.external_id, m.identity_id) for m in messages(old)] == [
        new_ids[m.text] for m in messages(old)
    ]


@needs_samples
def test_a_chat_imported_under_its_pre_2021_id_keeps_it() -> None:
    """Imported before the old layout was read this way, the chat's messages are held as
    "9882011936:<n>": re-importing the old export, or importing a newer one, finds them."""
    held = {"9882011936"}  # the corpus's numbered chats
    old = parse(SAMPLES / "tg2md_result_2020-old-from_id-int.json", numbered_chats=held)
    new = parse(SAMPLES / "tg2md_result.json", numbered_chats=held)

    assert [c.external_id for c in conversations(old)] == ["9882011936"]
    assert [c.external_id for c in conversations(new)] == ["9882011936"]
    assert messages(old)[0].external_id == messages(new)[0].external_id == "9882011936:2"
    assert identities(old) == [IdentityRecord("user9882011936", "test")]  # as imported then


def test_a_one_to_one_chat_is_not_taken_for_an_old_id(tmp_path: Path) -> None:
    """Users' numbers now pass 2**32, where pre-2021 ids of one-to-one chats began: a chat with
    user 101 is not the chat the corpus holds with user 2**32 + 101."""
    path = build_telegram(
        tmp_path / "result.json", [Chat(101, "Ann", "personal_chat", [tg("Ann", 101, "hi")])]
    )
    records = parse(path, numbered_chats={str(2**32 + 101)})
    assert [c.external_id for c in conversations(records)] == ["101"]


def test_pre_2021_ids_of_groups_and_their_senders(tmp_path: Path) -> None:
    """Built exports of both layouts: a supergroup's messages meet (the old one's ids carry bit
    33, an anonymous admin writes as the group, a user as their number or with bit 32). A basic
    group's messages are known by content and time: its old id is read as today's too (one
    held under its old id keeps it: tests/test_telegram_eras.py)."""
    big, basic = 1_300_000_000, 777
    said = [tg("Ann", 101, "hi", id=1), tg("Big group", 0, "as the group", id=2),
            tg("Ben", 102, "hey", id=3)]  # fmt: skip

    def export(name: str, style: str, ids: tuple[int, int], senders: tuple) -> list:
        msgs = [{**m, "from_id": s} for m, s in zip(said, senders, strict=True)]
        chats = [Chat(ids[0], "Big group", "private_supergroup", msgs),
                 Chat(ids[1], "Old group", "private_group", msgs)]  # fmt: skip
        return parse(build_telegram(tmp_path / name, chats, me=(101, "Ann", "A"), style=style))

    old = export("old.json", "2020", (big | 2 << 32, basic | 2 << 32),
                 (101, big | 2 << 32, 102 | 1 << 32))  # fmt: skip
    new = export("new.json", "2021", (big, basic), (101, f"channel{big}", 102))

    def keyed(records: list) -> list[tuple]:
        return [(m.conversation_id, m.external_id, m.identity_id) for m in messages(records)]

    assert (
        keyed(old)[:3]
        == keyed(new)[:3]
        == [
            (str(big), f"{big}:1", "user101"),
            (str(big), f"{big}:2", f"channel{big}"),
            (str(big), f"{big}:3", "user102"),
        ]
    )
    assert [c.external_id for c in conversations(old)] == [str(big), str(basic)]
    assert [c.external_id for c in conversations(new)] == [str(big), str(basic)]


@needs_samples
def test_chat_miner_minimal_account_export() -> None:
    records = parse(SAMPLES / "chat-miner_test_batch_export.json")
    assert [(m.identity_id, m.text, m.sent_at) for m in messages(records)] == [
        ("name:Author 1", "Minimal Message", utc(2018, 12, 5, 10, 39, 10)),
        ("name:Author 2", "Link:https://telegram.org/", utc(2018, 12, 5, 10, 49, 24)),
    ]


# --- Shapes and eras ------------------------------------------------------------------------------


@pytest.mark.parametrize("style", ["2021", "2020"])
def test_text_as_string_or_entities(tmp_path: Path, style: str) -> None:
    entities = [
        "see ",
        {"type": "link", "text": "https://a.example"},
        " and ask ",
        {"type": "mention_name", "text": "Ben", "user_id": 102},
        {"type": "custom_emoji", "text": "🎉", "document_id": "x"},
    ]
    records = one_chat(tmp_path, tg("Ann", 101, "plain"), tg("Ann", 101, entities), style=style)
    assert [m.text for m in messages(records)] == [
        "plain",
        "see https://a.example and ask Ben🎉",
    ]
    assert [i.external_id for i in identities(records)] == ["user101"]  # "user101" or 101


def test_rich_messages_are_read_block_by_block(tmp_path: Path) -> None:
    """2026's rich messages keep their words in a block tree and leave "text" empty
    (mlomb/chat-analytics#142: other tools crash or read them as empty). The shape follows the
    Bot API's: headings, paragraphs of inline runs, nested quotes, lists and checklists; a block
    type we have never seen is still read through its text and children."""
    rich = {
        "blocks": [
            {"type": "heading", "size": 2, "text": "Trip plan"},
            {"type": "paragraph", "text": ["we leave ", {"type": "bold", "text": "friday"}, "!"]},
            {"type": "blockquote", "blocks": [{"type": "paragraph", "text": "bring snacks"}]},
            {"type": "list", "items": [{"text": "tent"}, {"blocks": [{"text": "stove"}]}]},
            {"type": "checklist", "title": "todo", "tasks": [{"text": "book train"}]},
            {"type": "photo", "caption": {"type": "italic", "text": "the lake"}},
            {"type": "from_the_future", "children": [{"text": ["still ", "read"]}]},
            {"type": "divider"},
        ]
    }
    records = one_chat(
        tmp_path,
        tg("Ann", 101, "", rich_message=rich),
        tg("Ann", 101, "", rich_message={"blocks": [{"type": "divider"}]}, photo="p.jpg"),
        tg("Ann", 101, "plain text wins", rich_message={"blocks": [{"text": "ignored"}]}),
    )

    assert [m.text for m in messages(records)] == [
        "Trip plan\nwe leave friday!\nbring snacks\ntent\nstove\ntodo\nbook train\n"
        "the lake\nstill read",
        "plain text wins",
    ]
    assert skipped(records) == {"media-only": 1}


def test_a_hostile_rich_message_tree_ends(tmp_path: Path) -> None:
    deep: dict = {"text": "too deep to read"}
    for _ in range(200):
        deep = {"blocks": [deep]}
    records = one_chat(tmp_path, tg("Ann", 101, "", rich_message={"blocks": [deep]}))
    assert not messages(records)
    assert skipped(records) == {"empty": 1}


def test_replies_link_to_their_parent(tmp_path: Path) -> None:
    path = build_telegram(
        tmp_path / "result.json",
        [
            Chat(
                42,
                "Club",
                "private_supergroup",
                [
                    tg("Ann", 101, "question", id=7),
                    tg("Ben", 102, "answer", id=8, reply_to_message_id=7),
                ],
            )
        ],
    )
    assert [(m.external_id, m.reply_to) for m in messages(parse(path))] == [
        ("42:7", None),
        ("42:8", "42:7"),
    ]
    # A basic group numbers messages per account: the reply finds its parent's own id.
    found = messages(
        one_chat(
            tmp_path,
            tg("Ann", 101, "question", id=7),
            tg("Ben", 102, "answer", id=8, reply_to_message_id=7),
            tg("Ben", 102, "to something older", id=9, reply_to_message_id=3),
        )
    )
    assert found[1].reply_to == found[0].external_id != found[1].external_id
    assert found[2].reply_to is None  # not in this export: no link rather than a wrong one


def test_two_friends_account_exports_share_their_chats_ids(tmp_path: Path) -> None:
    """Telegram numbers one-to-one chats' and basic groups' messages per account, and names a
    one-to-one chat by the other person: two friends' exports gave each shared message two
    ids (doubled on import). A supergroup's numbers are the chat's own."""
    day = dt.datetime(2024, 3, 1, 9, tzinfo=dt.UTC)

    def at(minute: int, second: int = 0) -> dt.datetime:
        return day + dt.timedelta(minutes=minute, seconds=second)

    def chats(offset: int, other: int) -> list[Chat]:
        said = [  # the same messages, numbered from another start in each account
            tg("Ann", 101, "hi", id=offset + 1, when=at(0)),
            tg("Ben", 102, "hey", id=offset + 2, when=at(0)),
            tg("Ben", 102, "same second", id=offset + 3, when=at(0)),
            tg("Ann", 101, "later", id=offset + 4, when=at(5), reply_to_message_id=offset + 2),
        ]
        return [
            Chat(other, "them", "personal_chat", said),
            Chat(777, "Old group", "private_group", said),
            Chat(888, "Big group", "private_supergroup", [tg("Ann", 101, "yo", id=5)]),
        ]

    ann = parse(build_telegram(tmp_path / "a.json", chats(0, 102), me=(101, "Ann", "A")))
    ben = parse(build_telegram(tmp_path / "b.json", chats(500, 101), me=(102, "Ben", "B")))

    def keyed(records: list) -> list[tuple]:
        return [(m.conversation_id, m.external_id, m.reply_to) for m in messages(records)]

    assert keyed(ann) == keyed(ben)
    assert [c.external_id for c in conversations(ann)] == ["dm:user101:user102", "777", "888"]
    ids = [m.external_id for m in messages(ann)]
    assert len(set(ids)) == len(ids)  # two messages of one sender in one second stay two
    assert messages(ann)[3].reply_to == messages(ann)[1].external_id


def test_forwarded_messages_are_someone_elses_words(tmp_path: Path) -> None:
    msgs = (tg("Ann", 101, "mine"), tg("Ann", 101, "a news story", forwarded_from="News"))
    assert skipped(one_chat(tmp_path, *msgs)) == {"forwarded": 1}
    kept = one_chat(tmp_path, *msgs, include_forwarded=True)
    assert [m.text for m in messages(kept)] == ["mine", "a news story"]


def test_service_media_and_empty_messages_are_skipped(tmp_path: Path) -> None:
    records = one_chat(
        tmp_path,
        service("Ann", 101, "invite_members", members=["Ben"]),
        service("Ann", 101, "pin_message", message_id=3),
        tg("Ann", 101, "", photo="photos/p.jpg"),
        tg("Ann", 101, "", file="stickers/s.webp", media_type="sticker", sticker_emoji="😀"),
        tg("Ann", 101, "", poll={"question": "when?"}),
        tg("Ann", 101, "  "),
        tg("Ann", 101, "words"),
    )
    assert skipped(records) == {"system": 2, "media-only": 3, "empty": 1}
    assert [m.text for m in messages(records)] == ["words"]


def test_deleted_accounts_keep_a_name(tmp_path: Path) -> None:
    records = one_chat(tmp_path, tg(None, 105, "ghost words"))
    assert identities(records) == [IdentityRecord("user105", "Deleted Account")]


def test_chat_types_decide_groups(tmp_path: Path) -> None:
    chats = [
        Chat(1, "Ann", "personal_chat", [tg("Ann", 101, "hi")]),
        Chat(2, None, "saved_messages", [tg("Me", 100, "note")]),
        Chat(3, "Club", "private_supergroup", [tg("Ben", 102, "yo")]),
    ]
    records = parse(build_telegram(tmp_path / "result.json", chats, me=(100, "Me", "Myself")))
    assert conversations(records) == [
        ConversationRecord("dm:user1:user100", "Ann", is_group=False),
        ConversationRecord("2", "Saved Messages", is_group=False),
        ConversationRecord("3", "Club", is_group=True),
    ]
    assert identities(records)[0] == IdentityRecord("user100", "Me Myself", is_self=True)
    assert [m.identity_id for m in messages(records)] == ["user101", "user100", "user102"]


@pytest.mark.parametrize("suffix", [".zip", ""])
def test_the_export_folder_or_its_zip(tmp_path: Path, suffix: str) -> None:
    path = build_telegram(
        tmp_path / f"Telegram{suffix}", [Chat(1, "A", messages=[tg("A", 1, "x")])]
    )
    assert [m.text for m in messages(parse(path))] == ["x"]


def test_progress_reports_bytes(tmp_path: Path) -> None:
    msgs = [tg("Ann", 101, f"message {i}") for i in range(2500)]
    path = build_telegram(tmp_path / "result.json", [Chat(1, "A", messages=msgs)])
    seen: list[Progress] = []
    parse(path, progress=lambda p: seen.append(Progress(p.done, p.total, p.unit)))
    assert [p.unit for p in seen] == ["bytes"] * 3
    assert seen[-1].done == seen[-1].total == path.stat().st_size
    assert 0 < seen[0].done < seen[1].done <= seen[2].done


# --- Bad files -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"name": "A", "messages": [{"id": 1,', "result.json is not valid JSON ("),
        ("[1, 2]", "result.json is not a Telegram export: it is not a JSON object."),
        ('{"about": "x"}', "result.json is not a Telegram export: it has no messages list."),
        ('{"name": "A", "type": "personal_chat", "id": 1, "messages": []}',
         "result.json contains no messages."),
    ],
)  # fmt: skip
def test_broken_files(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "result.json"
    path.write_text(content)
    with pytest.raises(ExportError) as error:
        parse(path)
    assert str(error.value).startswith(expected)


def test_truncated_file_message(tmp_path: Path) -> None:
    path = tmp_path / "result.json"
    path.write_text('{"name": "A", "type": "personal_chat", "id": 1, "messages": [{"id": 1')
    with pytest.raises(ExportError) as error:
        parse(path)
    assert str(error.value) == (
        "result.json is not valid JSON (the file ends too early); the export may be incomplete."
    )


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "result.json"
    path.write_bytes(json.dumps({"name": "Zoë"}, ensure_ascii=False).encode("latin-1"))
    with pytest.raises(ExportError) as error:
        parse(path)
    assert str(error.value) == "result.json is not UTF-8 text."


def test_html_export_is_explained(tmp_path: Path) -> None:
    path = build_telegram(tmp_path / "Telegram.zip", [], html=True)
    with pytest.raises(ExportError) as error:
        parse(path)
    assert str(error.value) == (
        'Telegram.zip is a Telegram export in HTML; export again and choose "Machine-readable '
        'JSON" as the format.'
    )


def test_a_zip_of_two_exports_is_refused_not_half_read(tmp_path: Path) -> None:
    """Two exports zipped together (a chat exported in 2020 and again now) were read as the
    first one alone, the other left out without a word."""
    old = build_telegram(tmp_path / "old.json", [Chat(1, "A", messages=[tg("A", 1, "old")])])
    new = build_telegram(tmp_path / "new.json", [Chat(1, "A", messages=[tg("A", 1, "new")])])
    path = zip_with(
        tmp_path / "Telegram.zip",
        {"ChatExport_2020-05-01/result.json": old.read_bytes(),
         "ChatExport_2024-01-01/result.json": new.read_bytes()},
    )  # fmt: skip
    with pytest.raises(ExportError) as error:
        parse(path)
    assert str(error.value) == (
        "Telegram.zip holds 2 Telegram exports (ChatExport_2020-05-01, ChatExport_2024-01-01): "
        "upload each on its own."
    )


def test_a_file_called_result_json_sent_in_a_chat_is_not_another_export(tmp_path: Path) -> None:
    chat = build_telegram(tmp_path / "r.json", [Chat(1, "A", messages=[tg("A", 1, "see file")])])
    path = zip_with(
        tmp_path / "Telegram.zip",
        {"ChatExport_2024-01-01/result.json": chat.read_bytes(),
         "ChatExport_2024-01-01/files/result.json": b"{}"},
    )  # fmt: skip
    assert [m.text for m in messages(parse(path))] == ["see file"]


def test_zip_without_result_json(tmp_path: Path) -> None:
    path = tmp_path / "x.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("photos/p.jpg", b"\xff")
    with pytest.raises(ExportError) as error:
        parse(path)
    assert str(error.value) == "x.zip has no result.json, so it is not a Telegram export."


def test_a_one_to_one_chat_in_account_exports_of_both_eras_shares_its_ids(tmp_path: Path) -> None:
    """The 2020 account export wrote the chat with user 102 as 4294967398 and its senders as
    numbers (102 with bit 32, or bare): it is the chat a newer export names by both people."""
    said = [tg("Ann", 101, "hi", id=1), tg("Ben", 102 | 1 << 32, "hey", id=2)]
    old = build_telegram(
        tmp_path / "old.json",
        [Chat(102 | 1 << 32, "Ben", "personal_chat", said)],
        me=(101, "Ann", "A"),
        style="2020",
    )
    today = [{**m, "from_id": m["from_id"] & 0xFFFFFFFF} for m in said]
    new = build_telegram(
        tmp_path / "new.json", [Chat(102, "Ben", "personal_chat", today)], me=(101, "Ann", "A")
    )

    def keyed(records: list) -> list[tuple]:
        return [(m.conversation_id, m.external_id, m.identity_id) for m in messages(records)]

    assert keyed(parse(old)) == keyed(parse(new))
    assert {m.conversation_id for m in messages(parse(old))} == {"dm:user101:user102"}
