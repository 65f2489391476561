"""A job's message delivered twice (acks_late, a redelivery, a message sent again), or run after
the person it was for has gone: imports are claimed once, Live requests of members who left are
dropped, no voice that opted out is written in, and a game answer counts once per dealt round."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

import pytest
from celery.canvas import Signature
from celery.exceptions import Retry
from django.db import connection
from django.utils import timezone

from ingest import services as ingest_services
from ingest import tasks
from ingest.models import Export, Message
from joe_site.jobs import HEARTBEAT_STALE, JobStatus
from tests.test_ingest_support import EMPTY, corpus, slack_export, stored_export, use_tmp_upload_dir


@pytest.fixture
def uploads(settings, tmp_path):
    return use_tmp_upload_dir(settings, tmp_path)


def one_message_export(tmp_path, **fields) -> Export:
    return stored_export(slack_export(tmp_path / "s.zip", {"general": [("U1", "hi")]}), **fields)


def deliver_import(export: Export, *, task_id: str, hostname: str) -> None:
    """The import task as a worker process runs it: its message's id, the worker's name."""
    tasks.import_export.push_request(
        id=task_id, retries=0, called_directly=False, hostname=hostname,
        args=[export.pk], kwargs={},
    )  # fmt: skip
    try:
        tasks.import_export.run(export.pk)
    finally:
        tasks.import_export.pop_request()


# -- imports ----------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "hostname", ["default@b", "default@a"], ids=["another worker", "the same worker's 2nd process"]
)
def test_a_second_delivery_leaves_an_import_in_progress_alone(
    uploads, tmp_path, monkeypatch, caplog, hostname
):
    """The compose worker runs two processes under one name (-c 2): the second delivery of the
    message may reach either, and neither may start the import again beside the first."""
    started = timezone.now() - timedelta(minutes=2)
    export = one_message_export(
        tmp_path, status=JobStatus.RUNNING, worker_host="default@a", heartbeat_at=timezone.now(),
        started_at=started, celery_task_id="t-1", progress_note="12 of 40 files read",
    )  # fmt: skip
    sent: list = []
    monkeypatch.setattr(Signature, "apply_async", lambda sig, *a, **k: sent.append(sig))

    with caplog.at_level(logging.INFO, logger="ingest"), pytest.raises(Retry):
        deliver_import(export, task_id="t-1", hostname=hostname)

    export.refresh_from_db()
    assert (export.status, export.worker_host, export.started_at, export.progress_note) == (
        JobStatus.RUNNING, "default@a", started, "12 of 40 files read",
    )  # fmt: skip
    assert corpus() == EMPTY and export.file  # not imported beside it, its file still there
    # Looked at again once that worker's heartbeat would be stale: taken over if it died.
    assert tasks.import_export.max_retries is None
    assert len(sent) == 1 and sent[0].options["countdown"] > HEARTBEAT_STALE.total_seconds()
    busy = [r for r in caplog.records if "is being imported by default@a" in r.getMessage()]
    assert [r.levelno for r in busy] == [logging.INFO]


@pytest.mark.django_db
def test_an_import_whose_worker_went_silent_is_taken_over(uploads, tmp_path, monkeypatch):
    export = one_message_export(
        tmp_path, status=JobStatus.RUNNING, worker_host="default@a", celery_task_id="t-1",
        heartbeat_at=timezone.now() - HEARTBEAT_STALE - timedelta(minutes=1),
    )  # fmt: skip

    deliver_import(export, task_id="t-1", hostname="default@b")

    export.refresh_from_db()
    assert (export.status, export.worker_host) == (JobStatus.SUCCEEDED, "default@b")
    assert export.messages_count == Message.objects.count() == 1


@pytest.mark.django_db
def test_a_second_delivery_of_a_finished_import_does_nothing_visible(uploads, tmp_path, caplog):
    export = one_message_export(tmp_path, celery_task_id="t-1")
    deliver_import(export, task_id="t-1", hostname="default@a")
    export.refresh_from_db()
    assert export.status == JobStatus.SUCCEEDED
    finished = (export.finished_at, export.started_at, export.worker_host, export.progress_note)

    with caplog.at_level(logging.INFO, logger="ingest"):
        deliver_import(export, task_id="t-1", hostname="default@b")

    export.refresh_from_db()
    assert export.status == JobStatus.SUCCEEDED
    assert (export.finished_at, export.started_at, export.worker_host, export.progress_note) == (
        finished
    )
    assert Message.objects.count() == 1
    skipped = [r for r in caplog.records if "already imported" in r.getMessage()]
    assert [r.levelno for r in skipped] == [logging.INFO]


@pytest.mark.django_db(transaction=True)
def test_a_delivery_that_looked_while_the_first_ran_does_not_reopen_it_once_done(
    uploads, tmp_path, monkeypatch
):
    """Two processes get the same message at once. The second looks at the export while the
    first is importing it, and gets on only after the first has finished: it used to mark the
    finished export running again, for good (it then found its messages and returned)."""
    export = one_message_export(tmp_path)
    first_importing, second_on, first_done = (threading.Event() for _ in range(3))
    real_import = ingest_services.import_export

    def import_export(**kwargs):
        if threading.current_thread().name == "first":
            first_importing.set()
            second_on.wait(10)  # the second delivery has looked at the export meanwhile
        else:
            second_on.set()
            first_done.wait(10)
        return real_import(**kwargs)

    monkeypatch.setattr(ingest_services, "import_export", import_export)

    def deliver(done: threading.Event) -> None:
        try:
            tasks.import_export(export.pk)
        except Retry:
            pass  # held by the first: looked at again later (the retry is not sent in a test)
        finally:
            done.set()
            connection.close()

    first = threading.Thread(target=deliver, args=(first_done,), name="first")
    first.start()
    assert first_importing.wait(10)
    second = threading.Thread(target=deliver, args=(second_on,), name="second")
    second.start()
    first.join(30)
    second.join(30)

    export.refresh_from_db()
    assert export.status == JobStatus.SUCCEEDED, export.error
    assert export.messages_count == Message.objects.count() == 1
