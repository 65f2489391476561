"""Slack export parser on bad input: every refusal, with its exact message."""

from __future__ import annotations

import datetime as dt
import json
import zipfile
from pathlib import Path

import pytest

from ingest.parsers import slack
from ingest.parsers.archive import Limits
from ingest.parsers.records import ExportError
from tests.builders.checks import check_contract, messages, skipped, zip_with
from tests.builders.slack import User, build_slack, msg

PEOPLE = {"U1": "Alice", "U2": "Bob"}
# The first bytes of a zip whose download stopped half way.
FIXTURE_ZIP_HEAD = b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + b"\x00" * 40


def parse(path: Path, **options: object) -> list:
    return check_contract(slack.parse(str(path), **options))


def texts(path: Path, **options: object) -> list[str]:
    return [m.text for m in messages(parse(path, **options))]


# --- Bad input: every message exactly --------------------------------------------------------


def test_malformed_json_is_reported_with_its_file_and_place(tmp_path: Path) -> None:
    export = build_slack(
        tmp_path / "e.zip",
        users=PEOPLE,
        extra_files={"general/2024-01-01.json": '[{"type": "message", "text": "hi"'},
    )
    with pytest.raises(ExportError) as error:
        parse(export)
    assert str(error.value) == (
        "general/2024-01-01.json is not valid JSON (Expecting ',' delimiter at line 1, "
        "column 34); the export may be incomplete."
    )


def test_json_that_is_not_utf8_is_reported(tmp_path: Path) -> None:
    latin1 = '[{"type": "message", "user": "U1", "text": "café", "ts": "1.0"}]'.encode("latin-1")
    export = build_slack(
        tmp_path / "e.zip", users=PEOPLE, extra_files={"general/2024-01-01.json": latin1}
    )
    with pytest.raises(ExportError) as error:
        parse(export)
    assert str(error.value) == (
        "general/2024-01-01.json is not UTF-8 text (bad byte at position 47); the export may be "
        "damaged or re-saved in another encoding."
    )


def test_a_utf8_bom_is_tolerated(tmp_path: Path) -> None:
    users = "\ufeff" + json.dumps([User("U1", "alice", "Alice").to_json()])
    export = build_slack(
        tmp_path / "e.zip",
        channels={"general": [("U1", "hi")]},
        extra_files={"users.json": users.encode()},
    )
    assert texts(export) == ["hi"]


def test_zip_without_users_json(tmp_path: Path) -> None:
    export = build_slack(
        tmp_path / "e.zip", users=PEOPLE, channels={"general": [("U1", "hi")]}, omit=["users.json"]
    )
    with pytest.raises(ExportError) as error:
        parse(export)
    assert str(error.value) == (
        "e.zip is not a Slack export: it has no users.json. Upload the zip that Slack's export "
        "page gave you, unchanged."
    )


def test_export_without_any_conversation_folder(tmp_path: Path) -> None:
    export = build_slack(tmp_path / "e.zip", users=PEOPLE)
    with pytest.raises(ExportError) as error:
        parse(export)
    assert str(error.value) == ("e.zip contains no messages: its conversation folders are missing.")


def test_export_whose_day_files_are_all_empty(tmp_path: Path) -> None:
    export = build_slack(
        tmp_path / "e.zip", users=PEOPLE, extra_files={"general/2024-01-01.json": "[]"}
    )
    with pytest.raises(ExportError) as error:
        parse(export)
    assert str(error.value) == "e.zip contains no messages: every day file is empty."


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("users.json", '{"U1": "Alice"}', "users.json in e.zip should be a list of objects."),
        ("channels.json", "[1, 2]", "channels.json in e.zip should be a list of objects."),
        (
            "general/2024-01-01.json",
            '{"messages": []}',
            "general/2024-01-01.json in e.zip should be a list of messages.",
        ),
    ],
)
def test_files_with_the_wrong_shape(tmp_path: Path, name: str, content: str, expected: str) -> None:
    export = build_slack(
        tmp_path / "e.zip",
        users=PEOPLE,
        channels={"general": [("U1", "hi")]},
        extra_files={name: content},
    )
    with pytest.raises(ExportError) as error:
        parse(export)
    assert str(error.value) == expected


def test_odd_messages_are_skipped_not_fatal(tmp_path: Path) -> None:
    export = build_slack(
        tmp_path / "e.zip",
        users=PEOPLE,
        extra_files={
            "general/2024-01-01.json": json.dumps(
                [
                    "not a message",
                    msg("U1", "no ts"),
                    msg("U1", "bad ts", "yesterday"),
                    msg("U1", "no seconds", ".000200"),
                    msg("U1", "a sign", "-1704067200.000300"),
                    msg("U1", "a letter in the fraction", "1704067200.0004x"),
                    {**msg("U1", "a list for a subtype", "1704067200.000500"), "subtype": ["x"]},
                    msg("U1", "fine", "1704067200.000100"),
                    {**msg("U1", "a number for a ts", "0"), "ts": 1704067201.5},
                    msg("U1", "a short fraction", "1704067202.25"),
                ]  # fmt: skip
            )
        },
    )
    records = parse(export)
    found = messages(records)
    assert [(m.text, m.sent_at) for m in found] == [
        ("fine", dt.datetime(2024, 1, 1, 0, 0, 0, 100, tzinfo=dt.UTC)),
        ("a number for a ts", dt.datetime(2024, 1, 1, 0, 0, 1, 500000, tzinfo=dt.UTC)),
        ("a short fraction", dt.datetime(2024, 1, 1, 0, 0, 2, 250000, tzinfo=dt.UTC)),
    ]
    assert [m.external_id for m in found][1] == "general:1704067201.5"
    assert skipped(records) == {"invalid": 7}


def test_zip_bomb_member_is_refused(tmp_path: Path) -> None:
    bomb = zip_with(
        tmp_path / "bomb.zip",
        {"users.json": "[]", "general/2024-01-01.json": b"[" + b" " * (4 << 20) + b"]"},
    )
    info = zipfile.ZipFile(bomb).getinfo("general/2024-01-01.json")
    ratio = info.file_size / info.compress_size
    with pytest.raises(ExportError) as error:
        parse(bomb)
    assert str(error.value) == (
        f"bomb.zip looks like a zip bomb: general/2024-01-01.json is compressed {ratio:.0f} times "
        "(the limit is 200)."
    )


def test_total_size_limit_is_configurable(tmp_path: Path) -> None:
    export = build_slack(tmp_path / "e.zip", users=PEOPLE, channels={"general": [("U1", "hi")]})
    with pytest.raises(ExportError) as error:
        parse(export, limits=Limits(max_total_bytes=100))
    assert str(error.value) == (
        "e.zip would unpack to more than 100 bytes, the limit for one upload; it looks like a zip "
        "bomb."
    )
    assert texts(export, limits=Limits(max_total_bytes=1 << 20)) == ["hi"]


@pytest.mark.parametrize(
    "evil", ["../evil/2024-01-01.json", "/etc/2024-01-01.json", "general/../../x.json", "C:/x.json"]
)
def test_zip_slip_paths_are_refused(tmp_path: Path, evil: str) -> None:
    archive = zip_with(tmp_path / "slip.zip", {"users.json": "[]", evil: "[]"})
    with pytest.raises(ExportError) as error:
        parse(archive)
    assert str(error.value) == (
        f"slip.zip contains a file with an unsafe path ({evil!r}), so joe will not read it. "
        "Upload the export exactly as the app produced it."
    )


def test_macos_junk_in_a_rezipped_export_is_ignored(tmp_path: Path) -> None:
    export = build_slack(
        tmp_path / "e.zip",
        users=PEOPLE,
        channels={"general": [("U1", "hi")]},
        extra_files={"__MACOSX/general/._2024-01-01.json": b"\x00\x05\x16\x07", ".DS_Store": b"\0"},
    )
    assert texts(export) == ["hi"]


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda p: p / "missing.zip", "The export missing.zip could not be found."),
        (
            lambda p: (p / "notes.txt").write_text("hello") and p / "notes.txt",
            "notes.txt is not a zip file or a folder.",
        ),
        (
            lambda p: (p / "cut.zip").write_bytes(FIXTURE_ZIP_HEAD) and p / "cut.zip",
            "cut.zip is an incomplete zip file (it may be truncated: try downloading it again).",
        ),
    ],
)
def test_not_an_archive(tmp_path: Path, make, expected: str) -> None:
    with pytest.raises(ExportError) as error:
        parse(make(tmp_path))
    assert str(error.value) == expected
