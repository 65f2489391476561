"""A second read of the claim of an import (services.claim_import) and of Telegram's ids across
export layouts: what the first read left."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import pytest
from celery.canvas import Signature
from celery.exceptions import Retry
from django.utils import timezone

from ingest.models import Export, Message
from joe_site.jobs import JobStatus
from tests.test_double_delivery import deliver_import, one_message_export
from tests.test_ingest_support import EMPTY, corpus, use_tmp_upload_dir


@pytest.fixture
def uploads(settings, tmp_path):
    return use_tmp_upload_dir(settings, tmp_path)


def exited_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def running_on(tmp_path, *, worker_host: str, worker_pid: int) -> Export:
    """An import a worker's process claimed a moment ago (its heartbeat fresh)."""
    return one_message_export(
        tmp_path, status=JobStatus.RUNNING, worker_host=worker_host, worker_pid=worker_pid,
        heartbeat_at=timezone.now(), started_at=timezone.now(), celery_task_id="t-1",
    )  # fmt: skip


@pytest.mark.django_db
def test_an_import_whose_pool_process_was_killed_starts_again_at_once(uploads, tmp_path, caplog):
    """A pool process killed for memory: its worker puts the message back at once
    (reject_on_worker_lost) and hands it to its next process. Its heartbeat is fresh, but its
    process is gone: the import starts again now, not five and a half minutes later."""
    export = running_on(tmp_path, worker_host="default@a", worker_pid=exited_pid())

    with caplog.at_level(logging.WARNING, logger="ingest"):
        deliver_import(export, task_id="t-1", hostname="default@a")

    export.refresh_from_db()
    assert (export.status, export.worker_host) == (JobStatus.SUCCEEDED, "default@a")
    assert export.messages_count == Message.objects.count() == 1
    gone = [r for r in caplog.records if "is gone; importing it again" in r.getMessage()]
    assert len(gone) == 1


@pytest.mark.django_db
@pytest.mark.parametrize("whose", ["alive", "another worker's"])
def test_an_import_whose_process_may_be_at_it_is_left_alone(uploads, tmp_path, monkeypatch, whose):
    """A process that is still there (the other process of a -c 2 worker), or one of another
    worker (another machine: its pids say nothing here), keeps the import."""
    monkeypatch.setattr(Signature, "apply_async", lambda sig, *a, **k: None)
    if whose == "alive":
        pid, hostname = os.getppid(), "default@a"
    else:
        pid, hostname = exited_pid(), "default@b"
    export = running_on(tmp_path, worker_host="default@a", worker_pid=pid)

    with pytest.raises(Retry):
        deliver_import(export, task_id="t-1", hostname=hostname)

    export.refresh_from_db()
    assert (export.status, export.worker_host, export.worker_pid) == (
        JobStatus.RUNNING, "default@a", pid,
    )  # fmt: skip
    assert corpus() == EMPTY


@pytest.mark.django_db
def test_the_claim_names_its_process_and_a_new_queueing_forgets_it(uploads, tmp_path):
    from ingest import services

    export = one_message_export(tmp_path, celery_task_id="t-1")
    assert services.claim_import(export_id=export.pk, task_id="t-1", worker_host="default@a")
    export.refresh_from_db()
    assert (export.worker_host, export.worker_pid) == ("default@a", os.getpid())

    services.queue_import(export=export)
    export.refresh_from_db()
    assert (export.worker_host, export.worker_pid) == ("", None)


# -- Telegram: a message edited between an old export and a newer one ------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("zone", ["UTC", "America/New_York"])
def test_a_message_edited_since_the_old_export_is_not_doubled_by_the_newer_one(
    uploads, tmp_path, zone
):
    """The older export holds its first words; the newer one its edited words and says it was
    edited. The other messages tell how the corpus keyed the chat's times; this one has the
    same sender, second and place, and keeps its id (as it did when the zones agreed)."""
    from tests.test_telegram_eras import ANN, BERLIN, LATER, SAID, chat_export, imported

    edited = [
        (who, "hurry up, we're late", when) if text == "hurry" else (who, text, when)
        for who, text, when in SAID
    ]
    old = chat_export(tmp_path, "old.json", "2020", SAID, zone=BERLIN)
    new = chat_export(tmp_path, "new.json", "2021", [*edited, LATER], zone=BERLIN)
    raw = json.loads(new.read_text())
    for msg in raw["messages"]:
        if msg.get("text") == "hurry up, we're late":
            msg["edited"], msg["edited_unixtime"] = msg["date"], msg["date_unixtime"]
    new.write_text(json.dumps(raw))

    assert imported(old, zone) == (5, 0)
    assert imported(new, zone) == (1, 5)
    assert Message.objects.filter(identity__external_id=f"user{ANN}").count() == 5
    assert not Message.objects.filter(text="hurry up, we're late").exists()  # the words held


@pytest.mark.django_db
def test_an_unedited_message_with_other_words_is_not_taken_for_a_held_one(uploads, tmp_path):
    """Without the file saying it was edited, other words at the same second are another
    message (the guard the text match is)."""
    from tests.test_telegram_eras import BERLIN, LATER, SAID, chat_export, imported

    other = [
        (who, "something else", when) if text == "hurry" else (who, text, when)
        for who, text, when in SAID
    ]
    old = chat_export(tmp_path, "old.json", "2020", SAID, zone=BERLIN)
    new = chat_export(tmp_path, "new.json", "2021", [*other, LATER], zone=BERLIN)

    assert imported(old) == (5, 0)
    assert imported(new) == (2, 4)
