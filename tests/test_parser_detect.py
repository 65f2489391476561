"""Export kind detection: each app's files are recognised, everything else gets a clear refusal."""

from __future__ import annotations

import datetime as dt
import importlib
import json
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from ingest.parsers.detect import PARSERS, detect_kind, is_signal_backup, load_parser
from ingest.parsers.records import ExportError
from tests.builders.discord import author, build_discord, dc
from tests.builders.imessage import build_chat_db
from tests.builders.messenger import build_messenger, fb
from tests.builders.signal_desktop import build_sigexport, sig
from tests.builders.slack import build_slack
from tests.builders.telegram import Chat, build_telegram, tg
from tests.builders.whatsapp import build_whatsapp

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "samples"
FIXTURE = Path(__file__).parent / "fixtures" / "slack"


WHEN = dt.datetime(2024, 1, 1, 9, tzinfo=dt.UTC)
TG_CHAT = [Chat(1, "A", messages=[tg("A", 1, "x")])]
DC_MSG = dc("1", author("1", "a"), "x")
FB_THREAD = {"A": (["A"], [fb("A", "x")])}
SIG_CHAT = {"A": [sig(WHEN, "A", "x")]}
WA_LINES = [(WHEN, "A", "x")]

BUILDERS = {
    "slack zip": (
        lambda p: build_slack(p / "s.zip", users={"U1": "A"}, channels={"g": [("U1", "x")]}),
        "slack",
    ),
    "slack folder": (lambda p: FIXTURE, "slack"),
    "whatsapp txt": (lambda p: build_whatsapp(p / "c.txt", WA_LINES), "whatsapp"),
    "whatsapp ios txt": (
        lambda p: build_whatsapp(p / "c.txt", WA_LINES, platform="ios"),
        "whatsapp",
    ),
    "whatsapp zip": (lambda p: build_whatsapp(p / "c.zip", WA_LINES, platform="ios"), "whatsapp"),
    "telegram json": (lambda p: build_telegram(p / "result.json", TG_CHAT), "telegram"),
    "telegram 2020": (
        lambda p: build_telegram(p / "result.json", TG_CHAT, style="2020"),
        "telegram",
    ),
    "telegram account": (
        lambda p: build_telegram(p / "result.json", TG_CHAT, me=(1, "A", "B")),
        "telegram",
    ),
    "telegram zip": (lambda p: build_telegram(p / "t.zip", TG_CHAT), "telegram"),
    "discord json": (lambda p: build_discord(p / "d.json", [DC_MSG]), "discord"),
    "discord zip": (lambda p: build_discord(p / "d.zip", channels={"g": [DC_MSG]}), "discord"),
    "messenger json": (lambda p: build_messenger(p / "message_1.json", FB_THREAD), "messenger"),
    "messenger zip": (lambda p: build_messenger(p / "f.zip", FB_THREAD), "messenger"),
    "sigexport folder": (lambda p: build_sigexport(p / "sig", SIG_CHAT), "signal_desktop"),
    "sigexport zip": (lambda p: build_sigexport(p / "sig.zip", SIG_CHAT), "signal_desktop"),
    "imessage db": (
        lambda p: build_chat_db(p / "chat.db", {"handle": [{"ROWID": 1, "id": "a"}]}),
        "imessage",
    ),
}


@pytest.mark.parametrize("case", BUILDERS)
def test_each_app_is_recognised(tmp_path: Path, case: str) -> None:
    make, kind = BUILDERS[case]
    assert detect_kind(make(tmp_path)) == kind


@pytest.mark.parametrize("name", ["synthetic-v0.backup", "synthetic-v1.backup"])
def test_signal_backups_by_their_header_frame(name: str) -> None:
    path = SAMPLES / "signal" / name
    if not path.exists():
        pytest.skip("shared samples are not available")
    assert detect_kind(path) == "signal"


def test_signal_header_check() -> None:
    header = (56).to_bytes(4, "big") + b"\x0a\x36\x0a\x10" + b"\x00" * 16
    assert is_signal_backup(header)
    assert not is_signal_backup(b"\x00\x00\x00\x38\x0a\x36\x12\x10")
    assert not is_signal_backup(b"PK\x03\x04")


@pytest.mark.parametrize(
    "sample",
    [
        "whatsapp/chat-miner_test_ddmmyy_24hrs.txt",
        "whatsapp/chat-miner_test_ios-bracket_mmddyy_24hrs.txt",
        "whatsapp/chat-miner_test_mmddyyyy_12hrs.txt",
        "whatsapp/chat-miner_test_yyyymmdd_24hrs.txt",
        "whatsapp/synthetic_ios_24h_lrm.txt",
        "whatsapp/synthetic_android_us_12h_nnbsp.txt",
        "telegram/tg2md_result.json",
        "telegram/tg2md_result_2020-old-from_id-int.json",
        "telegram/chat-miner_test_batch_export.json",
        "facebook/chat-miner_instagram_test_export.json",
        "facebook/synthetic_messenger_message_1_mojibake.json",
        "slack/slack-export-viewer_testarchive.zip",
    ],
)
def test_shared_samples(sample: str) -> None:
    path = SAMPLES / sample
    if not path.exists():
        pytest.skip("shared samples are not available")
    expected = {"facebook": "messenger"}.get(sample.split("/")[0], sample.split("/")[0])
    assert detect_kind(path) == expected


@pytest.mark.parametrize(
    ("name", "content", "why"),
    [
        ("notes.txt", b"shopping list\nmilk\n", "its contents match none of the supported apps."),
        ("empty.txt", b"", "it is empty."),
        ("data.json", b'{"hello": "world"}', "its contents match none of the supported apps."),
        ("photo.jpg", b"\xff\xd8\xff\xe0JFIF", "its contents match none of the supported apps."),
    ],
)  # fmt: skip
def test_unknown_files_are_refused(tmp_path: Path, name: str, content: bytes, why: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ExportError) as error:
        detect_kind(path)
    assert str(error.value) == f"This file is not an export joe can read: {why}"


def test_other_databases_and_zips_are_refused(tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE notes (body TEXT)")
    with pytest.raises(ExportError) as error:
        detect_kind(db)
    assert str(error.value) == (
        "This file is not an export joe can read: it is a database, but not an iMessage chat.db."
    )
    archive = tmp_path / "holiday.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("beach.jpg", b"\xff\xd8")
    with pytest.raises(ExportError) as error:
        detect_kind(archive)
    assert str(error.value) == (
        "This file is not an export joe can read: the zip holds no chat export that joe recognises."
    )


def test_a_slack_export_without_its_users_is_read_as_slack_to_say_so(tmp_path: Path) -> None:
    path = build_slack(
        tmp_path / "slack.zip",
        users={"U1": "Alice"},
        channels={"general": [("U1", "hi")]},
        omit=["users.json"],
    )

    assert detect_kind(path) == "slack"
    with pytest.raises(ExportError) as error:
        list(load_parser("slack")(path))
    assert str(error.value).startswith("slack.zip is not a Slack export: it has no users.json.")


def test_a_zip_cut_short_is_called_incomplete_not_foreign(tmp_path: Path) -> None:
    whole = build_slack(
        tmp_path / "slack.zip", users={"U1": "Alice"}, channels={"c": [("U1", "hi")]}
    )
    cut = tmp_path / "cut.zip"
    cut.write_bytes(whole.read_bytes()[:600])  # a download that stopped early

    with pytest.raises(ExportError) as error:
        detect_kind(cut)

    assert str(error.value) == (
        "This zip file is incomplete: its download or upload was cut short. Download the export "
        "again and upload the whole file."
    )


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ExportError) as error:
        detect_kind(tmp_path / "gone.zip")
    assert str(error.value) == "The export gone.zip could not be found."


def test_every_kind_has_a_parser_path() -> None:
    assert set(PARSERS) == {"slack", "signal", "whatsapp", "telegram", "discord",
                            "signal_desktop", "messenger", "imessage"}  # fmt: skip
    assert PARSERS["signal"] == "ingest.parsers.signal_backup.parse"
    for kind, dotted in PARSERS.items():
        if kind != "signal":
            module = importlib.import_module(dotted.rpartition(".")[0])
            assert load_parser(kind) is module.parse


def test_detection_does_not_import_the_signal_backup_parser() -> None:
    code = (
        "import sys, ingest.parsers.detect as d; "
        "d.detect_kind('tests/fixtures/slack'); "
        "print('ingest.parsers.signal_backup' in sys.modules)"
    )
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr


# --- Every shared sample, and the shapes people upload: file, folder, zip -------------------------


def test_every_shared_sample_is_covered() -> None:
    """A new file in the shared samples must be added to the lists above or below."""
    if not SAMPLES.exists():
        pytest.skip("shared samples are not available")
    listed = set(SAMPLE_FILES) | {"signal/synthetic-v0.backup", "signal/synthetic-v1.backup"}
    found = {
        p.relative_to(SAMPLES).as_posix()
        for p in SAMPLES.rglob("*")
        if p.is_file() and p.name != "README.md"
        and not p.relative_to(SAMPLES).as_posix().startswith(("imessage/", "signal/synthetic-v1.e"))
    }  # fmt: skip
    assert found <= listed, sorted(found - listed)


SAMPLE_FILES = {
    "whatsapp/chat-miner_test_ddmmyy_24hrs.txt": "whatsapp",
    "whatsapp/chat-miner_test_ios-bracket_mmddyy_24hrs.txt": "whatsapp",
    "whatsapp/chat-miner_test_mmddyy_24hrs.txt": "whatsapp",
    "whatsapp/chat-miner_test_mmddyyyy_12hrs.txt": "whatsapp",
    "whatsapp/chat-miner_test_yyyymmdd_24hrs.txt": "whatsapp",
    "whatsapp/synthetic_ios_24h_lrm.txt": "whatsapp",
    "whatsapp/synthetic_android_us_12h_nnbsp.txt": "whatsapp",
    "telegram/tg2md_result.json": "telegram",
    "telegram/tg2md_result_2020-old-from_id-int.json": "telegram",
    "telegram/chat-miner_test_batch_export.json": "telegram",
    "facebook/chat-miner_instagram_test_export.json": "messenger",
    "facebook/synthetic_messenger_message_1_mojibake.json": "messenger",
    "slack/slack-export-viewer_testarchive.zip": "slack",
}
# Where each sample sits when the app's export is unpacked (WhatsApp: the zip's text file).
IN_EXPORT = {
    "whatsapp": "WhatsApp Chat with Friends/WhatsApp Chat with Friends.txt",
    "telegram": "ChatExport_2024-01-01/result.json",
    "messenger": "your_activity_across_facebook/messages/inbox/friends_123/message_1.json",
}


@pytest.mark.parametrize("shape", ["file", "folder", "zip"])
@pytest.mark.parametrize("sample", sorted(SAMPLE_FILES))
def test_every_shared_sample_in_every_shape(tmp_path: Path, sample: str, shape: str) -> None:
    path = SAMPLES / sample
    if not path.exists():
        pytest.skip("shared samples are not available")
    kind = SAMPLE_FILES[sample]
    if path.suffix == ".zip":  # the Slack sample is a zip: also try it unpacked
        if shape == "folder":
            with zipfile.ZipFile(path) as z:
                z.extractall(tmp_path / "export")
            path = tmp_path / "export"
    elif shape != "file":
        inner = IN_EXPORT[kind].replace(".txt", ".txt" if path.suffix == ".txt" else path.suffix)
        target = tmp_path / "export"
        (target / inner).parent.mkdir(parents=True)
        (target / inner).write_bytes(path.read_bytes())
        path = target
        if shape == "zip":
            path = tmp_path / "export.zip"
            with zipfile.ZipFile(path, "w") as z:
                z.write(target / inner, inner)
    assert detect_kind(path) == kind
    # The detected parser reads it.
    assert any(True for _ in load_parser(kind)(str(path)))


@pytest.mark.parametrize("shape", ["file", "folder", "zip"])
def test_the_imessage_sample_tables_as_chat_db(tmp_path: Path, shape: str) -> None:
    tables_dir = SAMPLES / "imessage" / "mock_chat_db_tables"
    if not tables_dir.exists():
        pytest.skip("shared samples are not available")
    tables = {f.stem: json.loads(f.read_text()) for f in tables_dir.glob("*.json")}
    (tmp_path / "Messages").mkdir()
    path = build_chat_db(tmp_path / "Messages" / "chat.db", tables)
    if shape == "folder":
        path = path.parent
    elif shape == "zip":
        path = tmp_path / "Messages.zip"
        with zipfile.ZipFile(path, "w") as z:
            z.write(tmp_path / "Messages" / "chat.db", "Messages/chat.db")
    assert detect_kind(path) == "imessage"
    assert any(True for _ in load_parser("imessage")(str(path)))


def test_another_apps_text_export_is_refused() -> None:
    # The signal sample's expected-output folder is a different tool's text rendering, not an
    # export joe reads; it must be refused with a sentence, not misread as WhatsApp.
    folder = SAMPLES / "signal" / "synthetic-v1.expected-exporttxt"
    if not folder.exists():
        pytest.skip("shared samples are not available")
    for path in [*folder.iterdir(), folder]:
        with pytest.raises(ExportError) as error:
            detect_kind(path)
        assert str(error.value).startswith("This file is not an export joe can read: ")
        assert str(error.value).endswith(".")


@pytest.mark.parametrize(
    ("shape", "kind"),
    [
        ("whatsapp folder", "whatsapp"),
        ("discord folder", "discord"),
        ("signal_desktop single chat.md", "signal_desktop"),
        ("signal_desktop single data.json", "signal_desktop"),
        ("telegram folder", "telegram"),
        ("messenger folder", "messenger"),
        ("slack rezipped with a top folder", "slack"),
    ],
)
def test_uploaded_shapes(tmp_path: Path, shape: str, kind: str) -> None:
    if shape == "whatsapp folder":
        path = tmp_path / "WhatsApp Chat with Ann"
        path.mkdir()
        build_whatsapp(path / "WhatsApp Chat with Ann.txt", WA_LINES)
        (path / "IMG-20240101-WA0001.jpg").write_bytes(b"\xff\xd8")
    elif shape == "discord folder":
        path = tmp_path / "discord"
        path.mkdir()
        build_discord(path / "Friends - general [10].json", [DC_MSG])
    elif shape.startswith("signal_desktop single"):
        build_sigexport(tmp_path / "sig", SIG_CHAT)
        path = tmp_path / "sig" / "A" / shape.rsplit(" ", 1)[-1]
    elif shape == "telegram folder":
        path = build_telegram(tmp_path / "tg", TG_CHAT)
    elif shape == "messenger folder":
        path = build_messenger(tmp_path / "fb", FB_THREAD)
    else:
        path = build_slack(tmp_path / "s.zip", users={"U1": "A"}, channels={"g": [("U1", "x")]},
                           root="slack-export")  # fmt: skip
    assert detect_kind(path) == kind
    assert any(True for _ in load_parser(kind)(str(path)))
