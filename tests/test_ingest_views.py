"""The Exports pages: upload, follow an import, see its summary or its error, retry, delete."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape
from django.utils.text import Truncator

from ingest import forms, services, tasks
from ingest.models import Export, Message
from ingest.parsers.detect import NOT_READABLE
from ingest.parsers.signal_crypto import WRONG_KEY
from ingest.progress import ImportProgress
from joe_site.jobs import JobStatus
from tests.signal_writer import FIXTURE_MESSAGES, write_backup
from tests.test_ingest_support import (
    EMPTY,
    SPACED_PASSPHRASE,
    corpus,
    import_path,
    slack_export,
    use_tmp_upload_dir,
)

pytestmark = pytest.mark.django_db
EXPORTS = reverse("ingest:exports")


@pytest.fixture(autouse=True)
def uploads(settings, tmp_path):
    return use_tmp_upload_dir(settings, tmp_path)


@pytest.fixture
def slack_zip(tmp_path):
    return slack_export(tmp_path / "slack.zip", {"general": [("U1", "hi"), ("U2", "hello")]})


def upload(client, path, headers=None, **fields):
    with path.open("rb") as stream:
        return client.post(EXPORTS, {"file": stream, **fields}, headers=headers or {})


def run_queued(queued):
    for args in queued:
        tasks.import_export(*args)


def test_members_cannot_open_the_exports_pages(member_client):
    assert member_client.get(EXPORTS).status_code == 403
    assert member_client.get(reverse("ingest:speakers")).status_code == 403


def test_upload_form_states_the_size_limit(staff_client, settings):
    settings.JOE_MAX_UPLOAD_BYTES = 5 * 1024**3

    page = staff_client.get(EXPORTS).content.decode()

    assert "Up to 5.0\xa0GB" in page
    assert 'data-max-bytes="5368709120"' in page
    assert 'name="passphrase"' in page and 'name="owner_name"' in page  # shown without JS


def test_uploaded_export_is_stored_hashed_and_queued(
    staff_client, slack_zip, uploads, queued, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(staff_client, slack_zip, keep_file="on")

    export = Export.objects.get()
    assert response.status_code == 302 and response.url == export.get_absolute_url()
    assert (export.kind, export.status, export.keep_file) == ("slack", JobStatus.QUEUED, True)
    assert export.sha256 == hashlib.sha256(slack_zip.read_bytes()).hexdigest()
    assert export.size_bytes == slack_zip.stat().st_size
    assert export.file.path.startswith(str(uploads))
    assert queued == [(export.pk, None)]


@pytest.mark.parametrize("in_memory", [True, False], ids=["small", "streamed-to-disk"])
def test_uploaded_files_are_readable_by_joe_alone(
    staff_client, slack_zip, settings, in_memory, django_capture_on_commit_callbacks
):
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024**2 if in_memory else 16
    with django_capture_on_commit_callbacks(execute=True):
        upload(staff_client, slack_zip)

    path = Path(Export.objects.get().file.path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700  # exports/YYYY/MM, made for it


def test_upload_then_import_shows_the_summary(
    staff_client, slack_zip, queued, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(staff_client, slack_zip)
    run_queued(queued)

    page = staff_client.get(response.url).content.decode()

    assert "Succeeded" in page
    assert 'data-testid="messages-count">2<' in page
    assert "hx-trigger" not in page  # the polling stopped
    assert "Nothing was left out." in page


def test_a_file_that_is_no_export_shows_why_on_its_page(staff_client, tmp_path, queued):
    notes = tmp_path / "notes.txt"
    notes.write_text("shopping: milk, eggs")

    response = upload(staff_client, notes)

    export = Export.objects.get()
    page = staff_client.get(response.url).content.decode()
    assert export.status == JobStatus.FAILED and not export.has_file
    assert NOT_READABLE.format(why="its contents match none of the supported apps.") in page
    assert 'class="error-box"' in page
    assert queued == [] and corpus() == EMPTY


def test_a_wrong_passphrase_shows_on_the_export_page(
    staff_client, tmp_path, queued, django_capture_on_commit_callbacks
):
    path = tmp_path / "signal-2024.backup"
    write_backup(path, messages=FIXTURE_MESSAGES)
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(staff_client, path, passphrase="1" * 30)
    run_queued(queued)

    page = staff_client.get(response.url).content.decode()

    assert WRONG_KEY in page
    assert "Try again" in page  # the file is kept for a retry with the right passphrase
    assert corpus() == EMPTY


def test_a_cut_off_backup_is_not_offered_a_retry(
    staff_client, tmp_path, queued, django_capture_on_commit_callbacks
):
    path = tmp_path / "signal-2024.backup"
    write_backup(path, messages=FIXTURE_MESSAGES)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(staff_client, path, passphrase=SPACED_PASSPHRASE)
    run_queued(queued)

    page = staff_client.get(response.url).content.decode()

    assert "The backup file is incomplete" in page and "upload the whole file again" in page
    assert "Try again" not in page  # the same file would stop at the same frame
    assert corpus() == EMPTY


def test_failed_signal_import_can_retry_with_the_right_passphrase(
    staff_client, tmp_path, queued, django_capture_on_commit_callbacks
):
    path = tmp_path / "signal.backup"
    write_backup(path, messages=FIXTURE_MESSAGES)
    with django_capture_on_commit_callbacks(execute=True):
        upload(staff_client, path, passphrase="1" * 30)
    run_queued(queued)
    export = Export.objects.get()
    queued.clear()

    with django_capture_on_commit_callbacks(execute=True):
        staff_client.post(
            reverse("ingest:export_retry", args=[export.pk]), {"passphrase": SPACED_PASSPHRASE}
        )
    run_queued(queued)

    export.refresh_from_db()
    assert export.status == JobStatus.SUCCEEDED, export.error
    assert export.messages_count > 0


def test_signal_backup_needs_its_passphrase(staff_client, tmp_path, queued):
    path = tmp_path / "signal.backup"
    write_backup(path, messages=FIXTURE_MESSAGES)

    response = upload(staff_client, path)

    assert response.status_code == 200
    assert "This is a Signal backup: type the 30-digit passphrase" in response.content.decode()
    assert not Export.objects.exists()


def test_malformed_passphrase_is_refused_before_upload_is_kept(staff_client, tmp_path, queued):
    path = tmp_path / "signal.backup"
    write_backup(path, messages=FIXTURE_MESSAGES)

    response = upload(staff_client, path, passphrase="1234")

    assert "The passphrase must be the 30 digits" in response.content.decode()
    assert "1234" not in response.content.decode()  # never echoed back
    assert not Export.objects.exists()


def test_a_refused_passphrase_comes_back_with_the_signal_fields_shown(
    staff_client, tmp_path, queued
):
    """The file input cannot be filled back: the form says so, and tells the page's script the
    file was a Signal backup so the passphrase field (and its error) stay visible."""
    path = tmp_path / "phone.backup"
    write_backup(path, messages=FIXTURE_MESSAGES)

    body = upload(staff_client, path, passphrase="1234", headers={"HX-Request": "true"})
    body = body.content.decode()

    assert 'data-detected-kind="signal"' in body
    assert forms.CHOOSE_AGAIN in body
    assert f'pattern="{forms.PASSPHRASE_PATTERN}"' in body  # the browser checks it first


def test_too_big_upload_is_refused_with_a_clear_message(staff_client, slack_zip, settings, uploads):
    settings.JOE_MAX_UPLOAD_BYTES = 100

    response = upload(staff_client, slack_zip)

    assert "more than the 100\xa0bytes limit (JOE_MAX_UPLOAD_BYTES)" in response.content.decode()
    assert not Export.objects.exists()
    assert not any(p.is_file() for p in uploads.rglob("*"))


def test_htmx_upload_redirects_the_browser_to_the_export(staff_client, slack_zip, queued):
    response = upload(staff_client, slack_zip, headers={"HX-Request": "true"})

    assert response.status_code == 200
    assert response["HX-Redirect"] == Export.objects.get().get_absolute_url()


def test_htmx_upload_with_errors_gets_the_form_back(staff_client, tmp_path, queued):
    path = tmp_path / "signal.backup"
    write_backup(path, messages=FIXTURE_MESSAGES)

    response = upload(staff_client, path, headers={"HX-Request": "true"})

    body = response.content.decode()
    assert body.lstrip().startswith('<form id="upload-form"')
    assert "<html" not in body
    assert "This is a Signal backup" in body


def test_same_file_uploaded_again_says_so(
    staff_client, slack_zip, queued, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        upload(staff_client, slack_zip)
    run_queued(queued)
    queued.clear()

    with django_capture_on_commit_callbacks(execute=True):
        response = upload(staff_client, slack_zip)
    run_queued(queued)

    page = staff_client.get(response.url).content.decode()
    assert "This file was already imported on" in page
    assert "slack.zip</a>.</p>" in page  # it has run: no forecast, the numbers say what it did
    second = Export.objects.order_by("-pk").first()
    assert (second.messages_count, second.duplicates_count) == (0, 2)
    # What the file holds is not mistaken for what was added.
    assert "new messages</span>" in page
    assert f"conversation{'' if second.conversations_count == 1 else 's'} in the file" in page


def test_a_queued_import_says_what_it_waits_for(staff_client):
    export = Export.objects.create(original_name="x.zip", kind="slack")

    page = staff_client.get(export.get_absolute_url()).content.decode()

    assert "Waiting for the worker" in page and 'data-testid="worker-hint"' in page
    assert "Running it yourself" in page


def test_deleting_warns_when_later_imports_skipped_its_messages(staff_client, tmp_path):
    """Each message belongs to the import that added it first: deleting that one takes the
    messages a later re-upload skipped as duplicates, so the confirmation says which."""
    path = slack_export(tmp_path / "s.zip", {"general": [("U1", "hi"), ("U2", "yo")]})
    first = import_path(path)
    again = import_path(path)
    assert (again.messages_count, again.duplicates_count) == (0, 2)

    url = reverse("ingest:export_delete", args=[first.pk])
    confirmation = staff_client.get(url).content.decode()
    page = staff_client.get(first.get_absolute_url()).content.decode()
    later = staff_client.get(reverse("ingest:export_delete", args=[again.pk])).content.decode()

    assert 'data-testid="delete-overlap"' in confirmation
    assert again.get_absolute_url() in confirmation
    assert "Later imports skipped messages as already imported (s.zip)" in page  # hx-confirm
    assert 'data-testid="delete-overlap"' not in later  # nothing came after it


def test_export_page_polls_while_the_import_runs(staff_client):
    export = Export.objects.create(original_name="big.zip", kind="slack", status=JobStatus.RUNNING)
    export.set_progress(40, 100, note="40 of 100 files read · 12,000 messages found")

    page = staff_client.get(export.get_absolute_url()).content.decode()
    poll = staff_client.get(export.get_absolute_url(), headers={"HX-Request": "true"})

    assert 'hx-trigger="every 1s"' in page
    assert "12,000 messages found" in page and "width: 40%" in page
    assert poll.content.decode().lstrip().startswith('<div id="export-job"')
    assert "<html" not in poll.content.decode()


def test_polling_stops_when_the_import_ends(staff_client, tmp_path):
    export = import_path(slack_export(tmp_path / "s.zip", {"general": [("U1", "hi")]}))

    poll = staff_client.get(export.get_absolute_url(), headers={"HX-Request": "true"})

    assert "hx-trigger" not in poll.content.decode()
    assert 'data-testid="summary"' in poll.content.decode()


def test_summary_lists_what_was_left_out(staff_client, tmp_path):
    path = slack_export(
        tmp_path / "s.zip",
        {"general": [("U1", "hi"), {"user": "U1", "text": "", "subtype": "channel_join"}]},
    )
    export = import_path(path)

    page = staff_client.get(export.get_absolute_url()).content.decode()

    assert 'data-testid="skipped"' in page and "<td>system</td><td>1</td>" in page
    assert 'data-testid="date-range"' in page


def test_delete_asks_for_confirmation_naming_the_message_count(staff_client, tmp_path):
    export = import_path(
        slack_export(tmp_path / "s.zip", {"general": [("U1", "hi"), ("U2", "yo")]})
    )

    page = staff_client.get(reverse("ingest:export_delete", args=[export.pk])).content.decode()

    assert "Delete it and its 2 messages" in page
    assert Message.objects.count() == 2


def test_without_javascript_delete_opens_a_clean_confirmation_url(staff_client, tmp_path):
    """The 'Delete export…' button was a GET form with no fields: it opened .../delete/?."""
    export = import_path(slack_export(tmp_path / "s.zip", {"general": [("U1", "hi")]}))
    url = reverse("ingest:export_delete", args=[export.pk])

    page = staff_client.get(export.get_absolute_url()).content.decode()

    assert f'<a class="button danger" href="{url}" hx-post="{url}"' in page
    assert 'method="get"' not in page
    assert "Delete it and its 1 message" in staff_client.get(url).content.decode()


def test_delete_removes_the_export_and_its_messages(staff_client, tmp_path):
    export = import_path(
        slack_export(tmp_path / "s.zip", {"general": [("U1", "hi"), ("U2", "yo")]})
    )

    response = staff_client.post(reverse("ingest:export_delete", args=[export.pk]), follow=True)

    assert "Deleted s.zip and its 2 messages." in response.content.decode()
    assert corpus() == EMPTY and not Export.objects.exists()


def test_htmx_delete_redirects_to_the_list(staff_client, tmp_path):
    export = import_path(slack_export(tmp_path / "s.zip", {"general": [("U1", "hi")]}))

    response = staff_client.post(
        reverse("ingest:export_delete", args=[export.pk]), headers={"HX-Request": "true"}
    )

    assert response["HX-Redirect"] == EXPORTS


@pytest.fixture
def deletions(monkeypatch):
    """The deletions the pages hand to the worker, as export ids, instead of a worker."""
    calls = []
    monkeypatch.setattr(tasks.delete_export, "delay", calls.append)
    monkeypatch.setattr(services, "INLINE_DELETE_MAX_MESSAGES", 1)
    return calls


def test_a_big_export_is_deleted_on_the_worker_while_its_page_follows(
    staff_client, tmp_path, deletions, django_capture_on_commit_callbacks
):
    export = import_path(
        slack_export(tmp_path / "s.zip", {"general": [("U1", "hi"), ("U2", "yo")]})
    )
    url = reverse("ingest:export", args=[export.pk])
    confirmation = staff_client.get(reverse("ingest:export_delete", args=[export.pk]))
    assert "the worker does it" in confirmation.content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(reverse("ingest:export_delete", args=[export.pk]))

    assert response.url == url and deletions == [export.pk]
    page = staff_client.get(url).content.decode()
    assert "Deleting s.zip and its 2 messages on the worker" in page
    assert 'data-testid="deleting"' in page and 'data-testid="worker-hint"' in page
    assert 'hx-trigger="every 1s"' in page  # the page follows it
    assert "Delete export" not in page and Message.objects.count() == 2
    rows = staff_client.get(EXPORTS).content.decode()
    assert 'data-testid="row-deleting"' in rows

    with django_capture_on_commit_callbacks(execute=True):
        tasks.delete_export(export.pk)  # what the worker runs

    assert corpus() == EMPTY and not Export.objects.exists()
    poll = staff_client.get(url, headers={"HX-Request": "true"})
    assert poll["HX-Redirect"] == EXPORTS
    assert "Deleted s.zip and its 2 messages." in staff_client.get(EXPORTS).content.decode()
    # Without JavaScript the page reloads itself and lands on the list, saying so too.
    response = staff_client.get(url, follow=True)
    assert response.redirect_chain == [(EXPORTS, 302)]
    assert "Deleted s.zip and its 2 messages." in response.content.decode()
    missing = reverse("ingest:export", args=[export.pk + 1000])
    assert staff_client.get(missing).status_code == 404  # never was: "not found" as usual


def test_a_deletion_no_worker_has_begun_can_be_withdrawn(staff_client, tmp_path, deletions):
    export = import_path(slack_export(tmp_path / "s.zip", {"general": [("U1", "a"), ("U2", "b")]}))
    staff_client.post(reverse("ingest:export_delete", args=[export.pk]))
    keep = reverse("ingest:export_keep", args=[export.pk])

    response = staff_client.post(keep, follow=True)

    assert "s.zip stays: its deletion was withdrawn." in response.content.decode()
    assert "Delete export" in response.content.decode()
    export.refresh_from_db()
    assert not export.is_deleting
    tasks.delete_export(export.pk)  # the queued task, when a worker gets to it
    assert Message.objects.count() == 2

    Export.objects.filter(pk=export.pk).update(
        delete_requested_at=timezone.now(), delete_started_at=timezone.now()
    )
    response = staff_client.post(keep, follow=True)
    assert "already begun deleting it" in response.content.decode()
    assert Export.objects.get(pk=export.pk).is_deleting


def test_a_second_click_on_delete_lands_on_the_list(
    staff_client, tmp_path, django_capture_on_commit_callbacks
):
    export = import_path(slack_export(tmp_path / "s.zip", {"general": [("U1", "hi")]}))
    delete = reverse("ingest:export_delete", args=[export.pk])
    with django_capture_on_commit_callbacks(execute=True):
        staff_client.post(delete)

    response = staff_client.post(delete, follow=True)

    assert response.redirect_chain == [(EXPORTS, 302)]
    assert "Deleted s.zip and its 1 message." in response.content.decode()


def test_a_queued_import_is_not_deleted(staff_client):
    export = Export.objects.create(original_name="x.zip")  # queued

    response = staff_client.post(reverse("ingest:export_delete", args=[export.pk]), follow=True)

    assert services.STILL_QUEUED in response.content.decode()
    assert Export.objects.exists()


def test_on_sqlite_deleting_while_another_import_runs_says_to_wait(staff_client, tmp_path):
    from django.db import connection

    if connection.vendor != "sqlite":
        pytest.skip("PostgreSQL hands such a deletion to the worker (tests/test_ingest_tasks.py)")
    export = import_path(slack_export(tmp_path / "s.zip", {"general": [("U1", "hi")]}))
    Export.objects.create(original_name="other.zip", status=JobStatus.RUNNING)

    response = staff_client.post(reverse("ingest:export_delete", args=[export.pk]), follow=True)

    assert escape(services.WAIT_FOR_IMPORT) in response.content.decode()
    assert Message.objects.count() == 1


def test_asking_again_requeues_a_deletion_no_worker_has_begun(
    staff_client, tmp_path, deletions, django_capture_on_commit_callbacks
):
    export = import_path(slack_export(tmp_path / "s.zip", {"general": [("U1", "a"), ("U2", "b")]}))
    delete = reverse("ingest:export_delete", args=[export.pk])
    with django_capture_on_commit_callbacks(execute=True):
        staff_client.post(delete)
        staff_client.post(delete)  # the first one may have been lost with its broker
    assert deletions == [export.pk, export.pk]

    began = timezone.now()
    Export.objects.filter(pk=export.pk).update(delete_started_at=began)
    page = staff_client.get(reverse("ingest:export", args=[export.pk])).content.decode()
    assert "Ask the worker again" in page and "Keep it after all" not in page
    with django_capture_on_commit_callbacks(execute=True):
        staff_client.post(delete)  # a worker began, and may have been killed since
    assert deletions == [export.pk, export.pk, export.pk]
    export.refresh_from_db()
    assert export.delete_started_at == began and Message.objects.count() == 2


def test_a_deletion_on_the_worker_says_when_it_started(staff_client, tmp_path):
    export = import_path(slack_export(tmp_path / "s.zip", {"general": [("U1", "hi")]}))
    started = timezone.now()
    Export.objects.filter(pk=export.pk).update(
        delete_requested_at=started, delete_started_at=started
    )

    page = staff_client.get(reverse("ingest:export", args=[export.pk])).content.decode()

    assert f"(it began {timezone.localtime(started):%-d %b, %H:%M:%S})" in page
    assert 'data-testid="worker-hint"' not in page


def test_a_failed_deletion_shows_why_and_can_be_asked_again(staff_client, tmp_path, monkeypatch):
    export = import_path(slack_export(tmp_path / "s.zip", {"general": [("U1", "hi")]}))
    Export.objects.filter(pk=export.pk).update(delete_requested_at=timezone.now())

    def broken(export):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(services, "_delete", broken)
    with pytest.raises(RuntimeError):
        tasks.delete_export(export.pk)

    page = staff_client.get(reverse("ingest:export", args=[export.pk])).content.decode()
    assert "The export could not be deleted." in page
    assert escape(services.DELETE_FAILED) in page and "disk on fire" not in page
    assert 'data-testid="row-delete-failed"' in staff_client.get(EXPORTS).content.decode()
    assert "Delete export" in page and 'data-testid="deleting"' not in page
    assert Message.objects.count() == 1

    monkeypatch.undo()
    response = staff_client.post(reverse("ingest:export_delete", args=[export.pk]), follow=True)
    assert "Deleted s.zip and its 1 message." in response.content.decode()
    assert not Export.objects.exists()


def test_the_deletion_task_leaves_an_export_no_longer_marked(tmp_path):
    export = import_path(slack_export(tmp_path / "s.zip", {"general": [("U1", "hi")]}))

    tasks.delete_export(export.pk)  # nobody asked (or it was dealt with already)
    tasks.delete_export(export.pk + 1000)  # gone

    assert Export.objects.filter(pk=export.pk, delete_started_at=None).exists()


def test_a_running_import_is_not_deleted(staff_client):
    export = Export.objects.create(original_name="x.zip", status=JobStatus.RUNNING)

    response = staff_client.post(reverse("ingest:export_delete", args=[export.pk]), follow=True)

    assert services.STILL_RUNNING in response.content.decode()
    assert Export.objects.exists()


def test_a_queued_import_can_be_cancelled(staff_client):
    export = Export.objects.create(original_name="x.zip")

    staff_client.post(reverse("ingest:export_cancel", args=[export.pk]))

    export.refresh_from_db()
    assert export.status == JobStatus.CANCELLED


def test_exports_list_shows_each_import(staff_client, tmp_path, django_assert_max_num_queries):
    for n in range(3):
        import_path(slack_export(tmp_path / f"e{n}.zip", {"general": [("U1", f"hi {n}")]}))

    with django_assert_max_num_queries(6):
        page = staff_client.get(EXPORTS).content.decode()

    assert page.count('data-testid="export-row"') == 3


def test_the_admin_lists_long_messages_shortened(staff_client, tmp_path):
    long = "word " * 2000
    import_path(slack_export(tmp_path / "s.zip", {"general": [("U1", long), ("U2", "short")]}))

    page = staff_client.get(reverse("admin:ingest_message_changelist")).content.decode()

    stored = Message.objects.get(text__startswith="word").text
    assert "short" in page and stored not in page
    assert Truncator(stored).chars(120) in page


@pytest.mark.parametrize(
    ("done", "total", "unit", "messages", "note"),
    [
        (3 * 2**20, 26 * 2**20, "bytes", 0, "3.0 of 26.0 MB read"),  # MB as filesizeformat's
        (3 * 2**20, 26 * 2**20, "bytes", 1234, "3.0 of 26.0 MB read · 1,234 messages found"),
        (3, 10, "files", 0, "3 of 10 files read · 0 messages found"),
    ],
)
def test_progress_notes(done, total, unit, messages, note):
    assert ImportProgress(done, total, unit, messages).note == note


def test_the_same_file_again_with_bots_says_it_adds_their_messages(
    staff_client, slack_zip, queued, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        upload(staff_client, slack_zip)
    run_queued(queued)

    with django_capture_on_commit_callbacks(execute=True):
        response = upload(staff_client, slack_zip, include_bots="on")  # still queued: a forecast

    page = staff_client.get(response.url).content.decode()
    assert (
        "importing it again adds only the bots' messages, which that import left out, and "
        "messages deleted since."
    ) in page


def test_an_export_uploaded_before_another_does_not_call_that_one_earlier(staff_client, slack_zip):
    first = import_path(slack_zip, sha256="abc")
    later = import_path(slack_zip, sha256="abc")

    assert later.earlier_import() == first
    assert first.earlier_import() is None  # the later one is no "earlier import" of it
