"""Imports on a real Celery worker: progress on the row, the passphrase kept secret, crashes."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from celery.signals import before_task_publish
from django.apps import apps
from django.core.cache import cache
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from ingest import passphrases, services, tasks
from ingest.models import Export, Message
from ingest.parsers import signal_backup
from ingest.parsers.records import Progress
from ingest.progress import ImportCancelled, ProgressReporter
from joe_site.jobs import HEARTBEAT_STALE, JobStatus
from tests.builders.slack import build_slack, synthetic_stream
from tests.builders.waiting import wait_for
from tests.signal_writer import FIXTURE_MESSAGES, write_backup
from tests.test_ingest_support import (
    EMPTY,
    PASSPHRASE,
    SPACED_PASSPHRASE,
    corpus,
    import_path,
    slack_export,
    stored_export,
    use_tmp_upload_dir,
    worker_env,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def uploads(settings, tmp_path):
    return use_tmp_upload_dir(settings, tmp_path)


def finished(export_id: int) -> bool:
    return not Export.objects.get(pk=export_id).is_active


@pytest.mark.django_db(transaction=True)
def test_uploaded_export_is_imported_by_the_worker(staff_client, tmp_path, celery_worker_on_redis):
    path = slack_export(tmp_path / "team.zip", {"general": [("U1", "hi"), ("U2", "yo")]})
    with path.open("rb") as stream:
        response = staff_client.post(reverse("ingest:exports"), {"file": stream})
    export = Export.objects.get()

    assert wait_for(lambda: finished(export.pk))

    page = staff_client.get(response.url).content.decode()
    export.refresh_from_db()
    assert export.status == JobStatus.SUCCEEDED, export.error
    assert 'data-testid="messages-count">2<' in page
    assert export.progress_note == "1 of 1 files read · 2 messages found"


@pytest.mark.django_db(transaction=True)
def test_signal_passphrase_is_never_stored_logged_or_sent(
    staff_client, tmp_path, caplog, celery_worker_on_redis, monkeypatch
):
    caplog.set_level(logging.DEBUG)
    # The replay runs in a child process, as it does for big backups: that process is fed
    # decrypted frames only, and its log and database go with the temporary folder.
    children = []

    class Recorded(signal_backup.ChildReplay):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            children.append(self)

    monkeypatch.setattr(signal_backup, "CHILD_REPLAY_MIN_BYTES", 0)
    monkeypatch.setattr(signal_backup, "_cpus", lambda: 2)
    monkeypatch.setattr(signal_backup, "ChildReplay", Recorded)
    published = []  # (task args, the whole message as text)

    def record(sender=None, body=None, headers=None, **kwargs):
        published.append((body[0], repr((body, headers))))

    before_task_publish.connect(record, weak=False)
    path = tmp_path / "signal.backup"
    write_backup(path, messages=FIXTURE_MESSAGES)
    try:
        with path.open("rb") as stream:
            staff_client.post(
                reverse("ingest:exports"),
                {"file": stream, "passphrase": SPACED_PASSPHRASE, "owner_name": "Sam"},
            )
        export = Export.objects.get()
        assert wait_for(lambda: finished(export.pk))
    finally:
        before_task_publish.disconnect(record)

    export.refresh_from_db()
    assert export.status == JobStatus.SUCCEEDED, export.error
    assert [child._process.returncode for child in children] == [0]
    secrets = (PASSPHRASE, SPACED_PASSPHRASE)
    [(args, message)] = published
    assert not any(s in message for s in secrets)
    assert not any(s in caplog.text for s in secrets)
    for model in apps.get_models():
        for row in model._base_manager.values_list():
            assert not any(s in str(row) for s in secrets), model
    export_id, key = args
    assert export_id == export.pk
    assert passphrases.read(key) is None  # discarded when the task ended


@pytest.mark.django_db
def test_the_passphrase_is_encrypted_in_the_cache():
    key = passphrases.stash(PASSPHRASE)

    raw = cache.get("ingest:passphrase:" + key)
    assert PASSPHRASE.encode() not in raw
    assert passphrases.read(key) == PASSPHRASE
    passphrases.discard(key)
    assert passphrases.read(key) is None


@pytest.mark.django_db
def test_an_expired_passphrase_fails_the_import_with_a_sentence(tmp_path):
    path = tmp_path / "signal.backup"
    write_backup(path, messages=FIXTURE_MESSAGES)
    export = stored_export(path, kind="signal")

    tasks.import_export(export.pk, "no-such-key")

    export.refresh_from_db()
    assert (export.status, export.error) == (JobStatus.FAILED, services.SIGNAL_KEY_GONE)


@pytest.mark.django_db
def test_running_the_task_twice_imports_once(tmp_path):
    export = stored_export(slack_export(tmp_path / "s.zip", {"general": [("U1", "hi")]}))

    tasks.import_export(export.pk)
    tasks.import_export(export.pk)

    export.refresh_from_db()
    assert (export.status, export.messages_count, Message.objects.count()) == ("succeeded", 1, 1)


@pytest.mark.django_db
def test_a_deleted_export_is_skipped(tmp_path):
    export = stored_export(slack_export(tmp_path / "s.zip", {"general": [("U1", "hi")]}))
    Export.objects.filter(pk=export.pk).delete()  # after its task was queued

    tasks.import_export(export.pk)

    assert corpus() == EMPTY


@pytest.mark.django_db
def test_an_export_being_deleted_is_not_imported(tmp_path):
    export = stored_export(slack_export(tmp_path / "s.zip", {"general": [("U1", "hi")]}))
    Export.objects.filter(pk=export.pk).update(delete_requested_at=timezone.now())

    tasks.import_export(export.pk)

    assert corpus() == EMPTY and Export.objects.get(pk=export.pk).status == JobStatus.QUEUED


@pytest.mark.django_db
def test_importing_again_clears_an_old_deletion_error(tmp_path):
    export = stored_export(
        slack_export(tmp_path / "s.zip", {"general": [("U1", "hi")]}),
        status=JobStatus.FAILED,
        delete_error=services.DELETE_FAILED,
    )

    services.queue_import(export=export)

    assert Export.objects.get(pk=export.pk).delete_error == ""


@pytest.mark.django_db(transaction=True)
def test_progress_is_written_while_the_import_transaction_is_open():
    export = Export.objects.create(original_name="x", status=JobStatus.RUNNING)

    with ProgressReporter(export, interval=0) as reporter:
        reporter.messages = 1234
        reporter.parser_progress(Progress(3, 10, "files"))

    export.refresh_from_db()
    assert (export.progress_done, export.progress_total) == (3, 10)
    assert export.progress_note == "3 of 10 files read · 1,234 messages found"


@pytest.mark.django_db(transaction=True)
def test_a_cancel_request_reaches_the_running_import():
    export = Export.objects.create(original_name="x", status=JobStatus.RUNNING)
    Export.objects.filter(pk=export.pk).update(cancel_requested=True)

    reporter = ProgressReporter(export, interval=0)
    reporter.report()
    reporter.stop()  # waits for the side thread, which read the request

    with pytest.raises(ImportCancelled):
        reporter.report()


def children_of(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found.update(int(c) for c in (task / "children").read_text().split())
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("workers", ["0", "2"], ids=["one process", "two parsing processes"])
def test_a_worker_killed_mid_import_leaves_nothing_and_the_retry_imports_all(tmp_path, workers):
    if workers != "0" and connection.vendor != "postgresql":
        pytest.skip("parsing processes: PostgreSQL only")
    people, stream = synthetic_stream(60_000, channels=4)
    export = stored_export(build_slack(tmp_path / "big.zip", users=people, stream=stream))
    env = worker_env(tmp_path, JOE_INGEST_WORKERS=workers, JOE_INGEST_PARALLEL_MIN_BYTES="0")
    code = (
        "import django; django.setup();"
        "from ingest.tasks import import_export;"
        f"import_export({export.pk})"
    )
    worker = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env)
    try:
        assert wait_for(lambda: Export.objects.get(pk=export.pk).progress_done > 0, 120)
        parsers = children_of(worker.pid)
        worker.send_signal(signal.SIGKILL)
        worker.wait(30)
    finally:
        if worker.poll() is None:
            worker.kill()

    assert len(parsers) == int(workers)
    # Parsing processes whose importer died stop at their next write (a broken pipe).
    assert wait_for(lambda: not any(alive(pid) for pid in parsers), 30)
    export.refresh_from_db()
    assert export.status == JobStatus.RUNNING  # what the broker redelivers
    assert corpus() == EMPTY

    # The broker redelivers it after its visibility timeout (a day): by then the killed worker's
    # heartbeat is long stale (a fresh one is a worker still at it: tests/test_double_delivery.py).
    Export.objects.filter(pk=export.pk).update(heartbeat_at=timezone.now() - HEARTBEAT_STALE * 2)
    tasks.import_export(export.pk)  # the redelivered task

    export.refresh_from_db()
    assert export.status == JobStatus.SUCCEEDED, export.error
    assert export.messages_count == Message.objects.count() == 60_000


@pytest.mark.django_db(transaction=True)
def test_a_deletion_that_would_wait_for_an_import_runs_on_the_worker(
    staff_client, tmp_path, celery_worker_on_redis
):
    if connection.vendor != "postgresql":
        pytest.skip("the import lock is PostgreSQL's")
    import psycopg

    export = import_path(slack_export(tmp_path / "s.zip", {"general": [("U1", "hi")]}))
    url = reverse("ingest:export", args=[export.pk])
    db = connection.settings_dict
    # Another import holds the lock: here, a second connection taking it as an import would.
    with psycopg.connect(
        host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432, user=db["USER"],
        dbname=db["NAME"], autocommit=True,
    ) as other:  # fmt: skip
        other.execute("SELECT pg_advisory_lock(%s)", [services._IMPORT_LOCK])

        response = staff_client.post(reverse("ingest:export_delete", args=[export.pk]))

        assert response.url == url  # not deleted while the page waited: handed to the worker
        assert wait_for(lambda: Export.objects.get(pk=export.pk).delete_started_at is not None)
        page = staff_client.get(url).content.decode()
        assert "(it began" in page and "it waits for that one first" in page
        assert Message.objects.count() == 1
        other.execute("SELECT pg_advisory_unlock(%s)", [services._IMPORT_LOCK])

    assert wait_for(lambda: not Export.objects.filter(pk=export.pk).exists())
    assert corpus() == EMPTY
    assert staff_client.get(url, headers={"HX-Request": "true"})["HX-Redirect"] == reverse(
        "ingest:exports"
    )
