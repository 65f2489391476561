"""What a failed import says and keeps: the uploaded file's own name, and no file that no retry
will ever read."""

from __future__ import annotations

import os
import re
import zipfile
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from ingest import services, tasks
from ingest.forms import PASSPHRASE_PATTERN
from ingest.models import Export
from joe_site.jobs import SEND_FAILED, JobStatus
from tests.signal_writer import FIXTURE_MESSAGES, write_backup
from tests.test_ingest_support import (
    EMPTY,
    PASSPHRASE,
    corpus,
    slack_export,
    stored_export,
    upload,
    use_tmp_upload_dir,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def uploads(settings, tmp_path):
    return use_tmp_upload_dir(settings, tmp_path)


def test_an_error_names_the_uploaded_file_not_its_name_in_storage(tmp_path):
    path = tmp_path / "slack.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("channels.json", "[]")  # no users.json
    stored_export(path)  # an earlier upload of a file of the same name
    export = stored_export(path, kind="slack")
    assert export.file.name.rsplit("/", 1)[-1] != "slack.zip"  # the storage renamed it

    export = services.import_export(export_id=export.pk)

    assert export.status == JobStatus.FAILED
    assert export.error.startswith("slack.zip is not a Slack export: it has no users.json.")
    assert not export.can_retry and not export.has_file  # no retry can read it


@pytest.mark.parametrize(
    ("name", "content", "kind"),
    [
        ("result.json", '{"name": "Chat", "messages": [', "telegram"),  # malformed JSON
        ("photo.jpg", "\xff\xd8\xff\xe0 not a chat", ""),  # not an export at all
        ("signal.backup", "not a backup", "signal"),
    ],
)
def test_a_file_no_retry_can_read_is_not_offered_a_retry_nor_kept(
    tmp_path, staff_client, name, content, kind
):
    path = tmp_path / name
    path.write_text(content)
    export = stored_export(path, kind=kind)

    export = services.import_export(export_id=export.pk, passphrase=PASSPHRASE)

    assert export.status == JobStatus.FAILED and export.error
    assert not export.can_retry and not export.has_file
    page = staff_client.get(export.get_absolute_url()).content.decode()
    assert "Try again" not in page and "Import again" not in page
    assert "Importing this file again would fail the same way, so joe has deleted it." in page


@pytest.mark.parametrize(
    ("members", "says"),
    [
        ({"../../evil.json": "[]", "users.json": "[]"}, "contains a file with an unsafe path"),
        ({"users.json": "[]", "general/2020-01-01.json": "[" + " " * 2_000_000 + "]"}, "zip bomb"),
    ],
)
def test_a_refused_zip_is_named_as_staff_chose_it_not_by_its_temporary_name(
    tmp_path, staff_client, members, says
):
    path = tmp_path / "our-workspace.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)

    export = upload(staff_client, path)

    assert export.status == JobStatus.FAILED
    assert export.error.startswith("our-workspace.zip ") and says in export.error
    assert ".upload" not in export.error
    assert not export.can_retry and not export.has_file  # refused again on every retry


def test_a_damaged_backup_is_not_kept_for_a_retry_that_cannot_help(tmp_path):
    path = tmp_path / "signal.backup"
    write_backup(path, messages=FIXTURE_MESSAGES)
    path.write_bytes(path.read_bytes()[:-100])  # cut short
    export = stored_export(path, kind="signal")
    stored = export.file.path

    export = services.import_export(export_id=export.pk, passphrase=PASSPHRASE)

    assert export.status == JobStatus.FAILED
    assert export.error.startswith("The backup file is incomplete")
    assert not export.can_retry and not export.has_file
    assert not Export.objects.get(pk=export.pk).file
    assert not os.path.exists(stored)


@pytest.mark.parametrize("kind", ["signal", "slack"])
def test_an_empty_export_fails_saying_so_whatever_its_app(tmp_path, kind):
    if kind == "signal":
        path = tmp_path / "signal.backup"
        write_backup(path, messages=[])  # every table, no row
    else:
        path = slack_export(tmp_path / "slack.zip", {"general": []})

    export = services.import_export(export_id=stored_export(path).pk, passphrase=PASSPHRASE)

    assert (export.kind, export.status, export.messages_count) == (kind, JobStatus.FAILED, 0)
    assert export.error.startswith(f"{path.name} contains no messages")
    assert corpus() == EMPTY
    assert not export.can_retry and not export.has_file


def test_a_wrong_passphrase_keeps_the_file_for_the_retry(tmp_path):
    path = tmp_path / "signal.backup"
    write_backup(path, messages=FIXTURE_MESSAGES)
    export = stored_export(path, kind="signal")

    export = services.import_export(export_id=export.pk, passphrase="9" * 30)

    assert export.status == JobStatus.FAILED and export.can_retry and export.has_file


def test_the_retry_asks_for_the_passphrase_as_the_upload_does(tmp_path, staff_client):
    path = tmp_path / "signal.backup"
    write_backup(path, messages=FIXTURE_MESSAGES)
    export = services.import_export(
        export_id=stored_export(path, kind="signal").pk, passphrase="9" * 30
    )

    html = staff_client.get(export.get_absolute_url()).content.decode()

    field = re.search(r'<input type="password" name="passphrase"[^>]*>', html).group()
    assert 'inputmode="numeric"' in field and f'pattern="{PASSPHRASE_PATTERN}"' in field
    assert 'title="The 30 digits Signal showed' in field


def test_a_damaged_backup_the_admin_asked_to_keep_is_kept(tmp_path):
    path = tmp_path / "signal.backup"
    write_backup(path, messages=FIXTURE_MESSAGES)
    path.write_bytes(path.read_bytes()[:-100])
    export = stored_export(path, kind="signal", keep_file=True)

    export = services.import_export(export_id=export.pk, passphrase=PASSPHRASE)

    assert export.status == JobStatus.FAILED and export.has_file


def test_a_file_read_as_the_wrong_kind_can_be_retried_as_another(
    tmp_path, staff_client, queued, django_capture_on_commit_callbacks
):
    path = slack_export(tmp_path / "slack.zip", {"general": [("U1", "hi")]})
    export = services.import_export(export_id=stored_export(path, kind="whatsapp").pk)
    assert export.status == JobStatus.FAILED and export.can_retry
    assert export.error.endswith(
        "It looks like a Slack export instead: pick that kind and import it again."
    )
    url = reverse("ingest:export_retry", args=[export.pk])
    page = staff_client.get(export.get_absolute_url()).content.decode()
    assert 'name="kind"' in page and "Read it as" in page

    refused = staff_client.post(url, {"kind": "signal"})  # a Signal backup needs its passphrase
    assert refused.status_code == 200 and queued == []
    with django_capture_on_commit_callbacks(execute=True):
        staff_client.post(url, {"kind": ""})  # detect automatically

    export.refresh_from_db()
    assert (export.kind, export.status, queued) == ("slack", JobStatus.QUEUED, [(export.pk, None)])
    export = services.import_export(export_id=export.pk)
    assert export.status == JobStatus.SUCCEEDED and export.messages_count == 1


def test_an_import_the_queue_would_not_take_waits_saying_so(
    tmp_path, monkeypatch, django_capture_on_commit_callbacks
):
    """It is sent again once the queue is back (tests/test_jobs_lost_messages.py)."""
    from kombu.exceptions import OperationalError

    def broker_down(*args, **kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(tasks.import_export, "apply_async", broker_down)
    export = stored_export(slack_export(tmp_path / "s.zip", {"general": [("U1", "hi")]}))

    with django_capture_on_commit_callbacks(execute=True):
        services.queue_import(export=export)

    export.refresh_from_db()
    assert (export.status, export.error) == (JobStatus.QUEUED, "")
    assert export.progress_note == SEND_FAILED and export.waits_for_queue


def test_files_of_old_failed_imports_are_deleted_unless_kept(tmp_path, settings, staff_client):
    settings.JOE_FAILED_UPLOAD_DAYS = 7
    path = slack_export(tmp_path / "s.zip", {"general": [("U1", "hi")]})
    long_ago = timezone.now() - timedelta(days=8)
    old = stored_export(path, status=JobStatus.FAILED, finished_at=long_ago)
    kept = stored_export(path, status=JobStatus.CANCELLED, finished_at=long_ago, keep_file=True)
    recent = stored_export(
        path, status=JobStatus.FAILED, finished_at=timezone.now(), error=services.QUEUE_DOWN
    )
    done = stored_export(path, status=JobStatus.SUCCEEDED, finished_at=long_ago, keep_file=True)
    page = staff_client.get(recent.get_absolute_url()).content.decode()
    until = (recent.finished_at + timedelta(days=7)).strftime("%-d %b %Y")

    assert services.expire_failed_uploads() == 1

    assert [Export.objects.get(pk=e.pk).has_file for e in (old, kept, recent, done)] == [
        False, True, True, True,
    ]  # fmt: skip
    assert f"The file is still on the server, until {until}" in page


def test_the_worker_deletes_them_after_each_import(tmp_path, settings):
    settings.JOE_FAILED_UPLOAD_DAYS = 7
    path = slack_export(tmp_path / "s.zip", {"general": [("U1", "hi")]})
    old = stored_export(
        path, status=JobStatus.FAILED, finished_at=timezone.now() - timedelta(days=30)
    )
    fresh = stored_export(path)

    tasks.import_export(fresh.pk)

    assert not Export.objects.get(pk=old.pk).has_file
    assert Export.objects.get(pk=fresh.pk).status == JobStatus.SUCCEEDED
