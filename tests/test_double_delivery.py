"""A job's message delivered twice (acks_late, a redelivery, a message sent again), or run after
the person it was for has gone: imports are claimed once, Live requests of members who left are
dropped, no voice that opted out is written in, and a game answer counts once per dealt round."""

from __future__ import annotations

import logging
import secrets
import threading
from datetime import timedelta

import pytest
from celery.canvas import Signature
from celery.exceptions import Retry
from django.db import connection
from django.test import Client
from django.utils import timezone

from accounts import consent
from generations import live, services
from generations.models import GameGuess, LiveGeneration, Snippet
from generations.tasks import live_generate, run_batch
from ingest import services as ingest_services
from ingest import tasks
from ingest.models import Export, Message
from joe_site.jobs import HEARTBEAT_STALE, JobStatus
from tests.builders.generation import (
    FakeGenerator,
)
from tests.test_game import each_round_is_answered_once_in_a_race, make_friend
from tests.test_ingest_support import EMPTY, corpus, slack_export, stored_export, use_tmp_upload_dir
from tests.test_redis_down import redis_down  # noqa: F401  (a fixture)


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


# -- Live generations and batches whose people left -------------------------------------------


@pytest.fixture
def fake(monkeypatch):
    generator = FakeGenerator()
    monkeypatch.setattr(services, "load_generator", lambda checkpoint_dir: generator)
    return generator


def queued_live(member, speaker=None, *, speakers=()) -> LiveGeneration:
    """A Live request as start_live leaves it: queued, its message on its way (not sent here:
    the test's transaction never commits)."""
    generation = live.start_live(member=member, speaker=speaker, speakers=list(speakers))
    assert generation.status == JobStatus.QUEUED
    return generation


@pytest.fixture
def worker_up(monkeypatch):
    monkeypatch.setattr(live, "gpu_worker_is_up", lambda: True)


def test_a_live_request_of_a_member_removed_meanwhile_is_dropped(
    member, run, friends, fake, worker_up, caplog
):
    generation = queued_live(member, friends["ann"])
    member.is_active = False  # staff removed them (the admin's "Active" unticked)
    member.save()

    with caplog.at_level(logging.INFO, logger="generations"):
        live_generate(generation.pk)

    generation.refresh_from_db()
    assert generation.status == JobStatus.CANCELLED
    assert generation.progress_note == live.MEMBER_GONE
    assert generation.lines == [] and fake.calls == 0
    dropped = [r for r in caplog.records if live.MEMBER_GONE in r.getMessage()]
    assert [r.levelno for r in dropped] == [logging.INFO]


def test_a_live_request_of_a_member_who_deleted_their_account_is_not_generated(
    member, run, friends, fake, worker_up
):
    generation = queued_live(member, friends["ann"])
    member.delete()  # their requests go with the account

    live_generate(generation.pk)

    assert not LiveGeneration.objects.filter(pk=generation.pk).exists()
    assert fake.calls == 0 and not Snippet.objects.exists()


def test_a_live_request_for_a_friend_who_opted_out_meanwhile_writes_nothing(
    member, run, friends, fake, worker_up
):
    generation = queued_live(member, friends["bo"])
    consent.set_opted_out(speaker=friends["bo"], opted_out=True)

    live_generate(generation.pk)

    generation.refresh_from_db()
    assert generation.status == JobStatus.FAILED and "opted out" in generation.error
    assert generation.lines == [] and fake.calls == 0


def test_a_live_conversation_leaves_out_a_friend_who_opted_out_meanwhile(
    member, run, friends, fake, worker_up
):
    generation = queued_live(member, speakers=[friends["ann"], friends["bo"], friends["cy"]])
    consent.set_opted_out(speaker=friends["bo"], opted_out=True)
    fake.conversations = [[("ann", "who is in"), ("cy", "me")]]

    live_generate(generation.pk)

    generation.refresh_from_db()
    assert generation.status == JobStatus.SUCCEEDED
    assert {line["speaker"] for line in generation.lines} == {"ann", "cy"}


@pytest.mark.django_db(transaction=True)
def test_a_batch_whose_staff_member_is_deleted_while_it_runs_still_finishes(
    staff, friends, run, fake
):
    """Its snippets stay, nobody's (as the account's own snippets become); before, the next
    snippet named the deleted account and the batch failed on the database's foreign key."""
    batch = services.create_batch(
        run=run, per_speaker={"ann": 40, "bo": 40}, conversations=0, temperature=0.9,
        top_p=0.95, top_k=50, max_new_tokens=8, prompt="", base_seed=7, created_by=staff,
    )  # fmt: skip
    fake.after_chunk = lambda: staff.delete() if staff.pk else None

    run_batch(batch.pk)

    batch.refresh_from_db()
    assert batch.status == JobStatus.SUCCEEDED, batch.error
    assert batch.created_by is None
    assert batch.snippets.filter(kind="message", is_leak=False).count() == 80
    assert not Snippet.objects.filter(created_by__isnull=False).exists()


def test_a_batch_queued_by_staff_deleted_since_writes_no_voice_that_opted_out(
    staff, friends, run, fake
):
    batch = services.create_batch(
        run=run, per_speaker={"ann": 2, "bo": 2}, conversations=2, temperature=0.9,
        top_p=0.95, top_k=50, max_new_tokens=8, prompt="", base_seed=7, created_by=staff,
    )  # fmt: skip
    staff.delete()
    consent.set_opted_out(speaker=friends["bo"], opted_out=True)
    fake.conversations = [[("ann", "pho?"), ("cy", "pho.")], [("cy", "again"), ("ann", "yes")]]

    run_batch(batch.pk)

    batch.refresh_from_db()
    assert batch.status == JobStatus.SUCCEEDED, batch.error
    voices = {line["speaker"] for s in batch.snippets.all() for line in s.lines}
    assert "bo" not in voices and voices
    assert not batch.snippets.filter(speakers__slug="bo").exists()


# -- Real or fake? ------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_double_click_during_a_redis_outage_counts_once(redis_down, member):  # noqa: F811
    each_round_is_answered_once_in_a_race(member)


@pytest.mark.django_db
def test_the_same_answer_sent_again_for_one_dealt_round_counts_once(redis_down, member):  # noqa: F811
    """The same POST resent with the session as it was when the round was dealt (a browser's
    resend, a session saved back by a slower request): the round's deal is answered already."""
    alice = make_friend("Alice", opted_in=True)
    real = Message.objects.filter(identity__speaker=alice).first()
    player = Client()
    player.force_login(member)
    dealt = {"kind": "real", "pk": real.pk, "deal": secrets.token_urlsafe(12)}
    for _ in range(2):
        session = player.session
        session["game_round"] = dict(dealt)
        session.save()
        player.post("/game/guess/", {"guess": "real"})

    assert GameGuess.objects.filter(user=member).count() == 1
    # Another dealing of the same message is another round, and counts.
    session = player.session
    session["game_round"] = {**dealt, "deal": secrets.token_urlsafe(12)}
    session.save()
    player.post("/game/guess/", {"guess": "fake"})
    assert GameGuess.objects.filter(user=member).count() == 2
