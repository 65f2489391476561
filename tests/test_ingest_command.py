"""`manage.py ingest PATH`: the same import in a terminal, with the same summary."""

from __future__ import annotations

import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from ingest.models import Export, Message
from ingest.parsers.signal_crypto import NOT_30_DIGITS, WRONG_KEY
from joe_site.jobs import JobStatus
from tests.signal_writer import FIXTURE_MESSAGES, write_backup
from tests.test_ingest_support import EMPTY, PASSPHRASE, corpus, slack_export

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[1]


def ingest(*args: str) -> str:
    out = StringIO()
    call_command("ingest", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_command_imports_a_slack_folder_in_place(tmp_path):
    folder = slack_export(
        tmp_path / "slack", {"general": [("U1", "hi"), ("U2", "yo")]}, as_zip=False
    )

    output = ingest(str(folder))

    assert "Importing slack (Slack export)" in output
    assert "2 new messages in 1 conversation from 2 people" in output
    assert "0 duplicates already imported" in output
    assert folder.is_dir()  # read in place, never deleted
    export = Export.objects.get()
    assert (export.status, export.keep_file) == (JobStatus.SUCCEEDED, True)


def test_command_imports_a_signal_backup_with_a_passphrase_file(tmp_path):
    backup = tmp_path / "signal.backup"
    write_backup(backup, messages=FIXTURE_MESSAGES)
    secret = tmp_path / "passphrase.txt"
    secret.write_text(PASSPHRASE + "\n")

    output = ingest(str(backup), "--passphrase-file", str(secret), "--owner-name", "Sam")

    assert "new messages" in output and Message.objects.exists()
    assert PASSPHRASE not in output


def test_command_refuses_a_mistyped_passphrase_before_making_an_export(tmp_path):
    backup = tmp_path / "signal.backup"
    write_backup(backup, messages=FIXTURE_MESSAGES)
    secret = tmp_path / "passphrase.txt"
    secret.write_text("12345\n")

    with pytest.raises(CommandError) as error:
        ingest(str(backup), "--passphrase-file", str(secret))

    assert str(error.value) == NOT_30_DIGITS
    assert not Export.objects.exists()


def test_command_says_when_a_file_was_imported_before(tmp_path):
    path = slack_export(tmp_path / "s.zip", {"general": [("U1", "hi")]})
    ingest(str(path))

    output = ingest(str(path))

    assert "This file was already imported on" in output
    assert "0 new messages; the file holds 1 conversation from 1 person" in output
    assert "1 duplicate already imported" in output


def test_command_reports_bad_input_and_fails(tmp_path):
    backup = tmp_path / "signal.backup"
    write_backup(backup, messages=FIXTURE_MESSAGES)
    secret = tmp_path / "passphrase.txt"
    secret.write_text("1" * 30)

    with pytest.raises(CommandError, match=WRONG_KEY):
        ingest(str(backup), "--passphrase-file", str(secret))

    assert corpus() == EMPTY


def test_command_refuses_a_path_that_does_not_exist(tmp_path):
    with pytest.raises(CommandError, match="does not exist"):
        ingest(str(tmp_path / "nope.zip"))


def test_command_exits_non_zero_with_the_message(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("nothing to see")

    result = subprocess.run(
        [sys.executable, "manage.py", "ingest", str(notes)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )

    assert result.returncode == 1
    assert "This file is not an export joe can read" in result.stderr


def test_command_asks_whose_chat_db_it_is_before_making_an_export(tmp_path):
    from tests.test_ingest_all_sources import owner_chat_db

    path = owner_chat_db(tmp_path / "chat.db", "hi")
    with pytest.raises(CommandError, match="calls its owner “me”.*Pass --owner-name NAME."):
        ingest(str(path))
    assert not Export.objects.exists()

    ingest(str(path), "--owner-name", "Dana")
    assert Message.objects.get(text="hi").identity.display_name == "Dana"


def test_local_times_are_read_in_the_zone_given_else_the_sites(tmp_path, settings):
    """WhatsApp writes the phone's local time with no zone: it was read as UTC whatever the
    site's TIME_ZONE, and neither the page nor the command could say otherwise."""
    import datetime as dt

    from tests.builders.whatsapp import build_whatsapp

    nine = dt.datetime(2024, 1, 1, 9, 0)  # nine in the morning on the phone
    settings.TIME_ZONE = "Europe/Berlin"
    first = build_whatsapp(tmp_path / "WhatsApp Chat with Bo.txt", [(nine, "Al", "morning")])
    ingest(str(first))
    assert Message.objects.get(text="morning").sent_at == dt.datetime(2024, 1, 1, 8, tzinfo=dt.UTC)

    second = build_whatsapp(tmp_path / "WhatsApp Chat with Cy.txt", [(nine, "Al", "hello")])
    ingest(str(second), "--timezone", "America/New_York")
    assert Message.objects.get(text="hello").sent_at == dt.datetime(2024, 1, 1, 14, tzinfo=dt.UTC)

    with pytest.raises(CommandError, match="'Mars/Olympus' is not a time zone joe knows"):
        ingest(str(second), "--timezone", "Mars/Olympus")
