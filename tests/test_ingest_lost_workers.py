"""Imports whose worker is gone or whose task was superseded: nothing stuck, nothing stale.

A worker killed mid-import (out of memory, a restart that outlived its grace period) leaves its
task unacknowledged in Redis, which hands it out again only after the visibility timeout (a
day). A worker that starts again under the same name queues such an import at once; a cancel of
an import whose worker went silent takes effect at once. And a task queued before a cancel and a
retry must not run the import with the old attempt's passphrase.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from ingest import passphrases, services, tasks
from ingest.models import Export, Message
from joe_site.jobs import JobStatus
from tests.builders.slack import build_slack, synthetic_stream
from tests.builders.waiting import wait_for
from tests.signal_writer import FIXTURE_MESSAGES, write_backup
from tests.test_ingest_support import (
    EMPTY,
    PASSPHRASE,
    corpus,
    slack_export,
    stored_export,
    use_tmp_upload_dir,
    worker_env,
)

ROOT = Path(__file__).resolve().parents[1]
WRONG_PASSPHRASE = "999991111122222333334444455555"


@pytest.fixture(autouse=True)
def uploads(settings, tmp_path):
    return use_tmp_upload_dir(settings, tmp_path)


def signal_export(tmp_path: Path, **fields) -> Export:
    path = tmp_path / "signal.backup"
    if not path.exists():
        write_backup(path, messages=FIXTURE_MESSAGES)
    return stored_export(path, kind="signal", **fields)


def queued_task(export: Export, captured) -> tuple[str, tuple]:
    """The task id and arguments queue_import sent on commit (captured, not run)."""
    export.refresh_from_db()
    [callback] = captured
    sent = []
    original = tasks.import_export.apply_async
    tasks.import_export.apply_async = lambda args, task_id=None, **_: sent.append((task_id, args))
    try:
        callback()
    finally:
        tasks.import_export.apply_async = original
    [(task_id, args)] = sent
    assert task_id == export.celery_task_id
    return task_id, tuple(args)


@pytest.mark.django_db
def test_a_task_queued_before_a_cancel_and_retry_does_not_run_the_old_attempt(
    tmp_path, django_capture_on_commit_callbacks
):
    export = signal_export(tmp_path)
    with django_capture_on_commit_callbacks() as first:
        services.queue_import(export=export, passphrase=WRONG_PASSPHRASE)
    old_id, old_args = queued_task(export, first)
    services.cancel_import(export)  # while it waits in the queue
    assert export.status == JobStatus.CANCELLED
    with django_capture_on_commit_callbacks() as second:
        services.queue_import(export=export, passphrase=PASSPHRASE)  # "Import again"
    new_id, new_args = queued_task(export, second)
    assert new_id != old_id

    tasks.import_export.apply(args=old_args, task_id=old_id)  # the broker hands it out first

    export.refresh_from_db()
    assert export.status == JobStatus.QUEUED and corpus() == EMPTY
    assert passphrases.read(old_args[1]) is None  # discarded although it did not run

    tasks.import_export.apply(args=new_args, task_id=new_id)

    export.refresh_from_db()
    assert export.status == JobStatus.SUCCEEDED, export.error
    assert export.messages_count > 0
    assert passphrases.read(new_args[1]) is None


@pytest.mark.django_db
def test_a_skipped_task_discards_its_passphrase(tmp_path):
    export = stored_export(slack_export(tmp_path / "s.zip", {"general": [("U1", "hi")]}))
    Export.objects.filter(pk=export.pk).update(status=JobStatus.CANCELLED)
    key = passphrases.stash(PASSPHRASE)

    tasks.import_export(export.pk, key)

    assert passphrases.read(key) is None


@pytest.mark.django_db
def test_cancelling_an_import_whose_worker_went_silent_takes_effect_at_once(tmp_path):
    export = stored_export(slack_export(tmp_path / "s.zip", {"general": [("U1", "hi")]}))
    silent_since = timezone.now() - services.HEARTBEAT_STALE - timedelta(seconds=1)
    Export.objects.filter(pk=export.pk).update(
        status=JobStatus.RUNNING, worker_host="default@gone", heartbeat_at=silent_since
    )
    export.refresh_from_db()

    services.cancel_import(export)

    assert (export.status, export.progress_note) == (JobStatus.CANCELLED, services.WORKER_SILENT)
    assert export.can_retry  # the file is still there
    services.request_delete(export_id=export.pk)  # no longer refused as "still being imported"
    assert not Export.objects.filter(pk=export.pk).exists()


@pytest.mark.django_db
def test_cancelling_an_import_whose_worker_reports_only_asks_it(tmp_path):
    export = stored_export(slack_export(tmp_path / "s.zip", {"general": [("U1", "hi")]}))
    Export.objects.filter(pk=export.pk).update(
        status=JobStatus.RUNNING, worker_host="default@busy", heartbeat_at=timezone.now()
    )
    export.refresh_from_db()

    services.cancel_import(export)

    assert export.status == JobStatus.RUNNING and export.cancel_was_requested()


@pytest.mark.django_db
def test_a_restarted_worker_requeues_only_its_own_interrupted_imports(
    tmp_path, django_capture_on_commit_callbacks
):
    mine = signal_export(tmp_path)
    with django_capture_on_commit_callbacks():
        services.queue_import(export=mine, passphrase=PASSPHRASE)
    mine.refresh_from_db()
    old_id = mine.celery_task_id
    key = passphrases.key_for(mine.pk)
    running = {"status": JobStatus.RUNNING, "heartbeat_at": timezone.now()}
    Export.objects.filter(pk=mine.pk).update(worker_host="default@box", **running)
    theirs = signal_export(tmp_path, worker_host="default@other", **running)
    cancelled = signal_export(tmp_path, worker_host="default@box", **running)
    cancelled.request_cancel()

    with django_capture_on_commit_callbacks() as sent:
        assert services.requeue_interrupted_imports(worker_host="default@box") == [mine.pk]
    new_id, args = queued_task(mine, sent)

    assert (mine.status, mine.progress_note) == (JobStatus.QUEUED, services.INTERRUPTED)
    assert new_id != old_id and args == (mine.pk, key)  # the passphrase the cache still keeps
    assert Export.objects.get(pk=theirs.pk).status == JobStatus.RUNNING
    assert Export.objects.get(pk=cancelled.pk).status == JobStatus.CANCELLED
    tasks.import_export.apply(args=args, task_id=new_id)
    mine.refresh_from_db()
    assert mine.status == JobStatus.SUCCEEDED, mine.error
    count = Message.objects.count()
    tasks.import_export.apply(args=(mine.pk, key), task_id=old_id)  # redelivered a day later
    assert Message.objects.count() == count


@pytest.mark.django_db
def test_a_requeued_signal_import_without_its_passphrase_says_to_retry(
    tmp_path, django_capture_on_commit_callbacks
):
    # Its passphrase expired from the cache meanwhile.
    export = signal_export(tmp_path, status=JobStatus.RUNNING, worker_host="default@box")

    with django_capture_on_commit_callbacks() as sent:
        services.requeue_interrupted_imports(worker_host="default@box")
    task_id, args = queued_task(export, sent)
    tasks.import_export.apply(args=args, task_id=task_id)

    export.refresh_from_db()
    assert (export.status, export.error) == (JobStatus.FAILED, services.SIGNAL_KEY_GONE)


def _drop_unacked(redis_url: str, task_id: str) -> None:
    """Remove the killed worker's unacknowledged message from Redis, so that no later run of the
    suite gets it redelivered (kombu keeps it in the "unacked" hash and index)."""
    import redis

    client = redis.Redis.from_url(redis_url)
    for tag, payload in client.hgetall("unacked").items():
        if task_id.encode() in payload:
            client.hdel("unacked", tag)
            client.zrem("unacked_index", tag)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_import_imports_it_again_when_it_restarts(tmp_path, redis_url):
    """The whole path: a real Celery worker on Redis is SIGKILLed during an import; started
    again under its name, it imports the export at once, without waiting a day for Redis."""
    if connection.vendor != "postgresql":
        pytest.skip("the worker process needs a database it can share")
    people, stream = synthetic_stream(300_000, channels=4)
    export = stored_export(build_slack(tmp_path / "big.zip", users=people, stream=stream))
    env = worker_env(tmp_path, JOE_INGEST_WORKERS="0", REDIS_URL=redis_url)
    name = f"default@joe-test-{uuid.uuid4().hex[:8]}"
    command = [sys.executable, "-m", "celery", "-A", "joe_site", "worker", "-P", "solo",
               "-Q", "default", "-n", name, "--loglevel", "WARNING"]  # fmt: skip

    def start() -> subprocess.Popen:
        return subprocess.Popen(command, cwd=ROOT, env=env)

    worker = start()
    try:
        services.queue_import(export=export)  # autocommit: sent at once
        export.refresh_from_db()
        first_task = export.celery_task_id
        assert wait_for(lambda: Export.objects.get(pk=export.pk).progress_done > 0, 120, 0.02)
        worker.send_signal(signal.SIGKILL)
        worker.wait(30)
        export.refresh_from_db()
        assert (export.status, export.worker_host) == (JobStatus.RUNNING, name)
        assert corpus() == EMPTY

        worker = start()  # the same name: it finds the import it was killed in

        assert wait_for(lambda: not Export.objects.get(pk=export.pk).is_active, 180)
        export.refresh_from_db()
        assert export.status == JobStatus.SUCCEEDED, export.error
        assert export.celery_task_id != first_task
        assert export.messages_count == Message.objects.count() == 300_000
    finally:
        worker.terminate()
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
        _drop_unacked(redis_url, first_task)


@pytest.mark.django_db
def test_the_page_of_an_import_whose_worker_went_silent_says_so(staff_client, tmp_path):
    if connection.vendor == "sqlite":
        pytest.skip("on SQLite a running import's progress goes through the cache")
    export = stored_export(slack_export(tmp_path / "s.zip", {"general": [("U1", "hi")]}))
    Export.objects.filter(pk=export.pk).update(
        status=JobStatus.RUNNING, worker_host="default@box", heartbeat_at=timezone.now()
    )
    assert 'data-testid="worker-silent"' not in staff_client.get(export.get_absolute_url()).text

    Export.objects.filter(pk=export.pk).update(
        heartbeat_at=timezone.now() - services.HEARTBEAT_STALE - timedelta(minutes=1)
    )
    page = staff_client.get(export.get_absolute_url()).text

    assert 'data-testid="worker-silent"' in page and "most likely stopped" in page
