"""A member's live generation whose Celery message vanished (Redis restarted without its data, a
send while it was down) is sent again while the member watches, or ends with a sentence; and
two messages for one live generation write it once."""

from __future__ import annotations

import contextlib
import threading
import time
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from generations import live, services
from generations.models import LiveGeneration
from generations.tasks import LOST_LIVE, live_generate
from joe_site import lost_messages
from joe_site.jobs import SEND_FAILED, JobStatus
from tests.builders.generation import (
    FakeGenerator,
)
from tests.test_jobs_lost_messages import CLOSED_PORT, Broker, a_worker_starts, broker_at

HTMX = {"HX-Request": "true"}
TASK = "generations.tasks.live_generate"


@pytest.fixture
def broker(redis_url):
    """The real Redis; every message a test left in it is removed afterwards."""
    broker = Broker(redis_url)
    before = broker.messages()
    yield broker
    broker.remove(broker.messages() - before)


@pytest.fixture
def worker_up(monkeypatch):
    """A GPU worker answered a moment ago (remembered for a minute): Generate is offered."""
    monkeypatch.setattr(live, "gpu_worker_is_up", lambda: True)


@pytest.fixture(autouse=True)
def pages_not_asked_lately():
    """Row ids count from 1 again in every test: a page check remembered from another is not."""
    cache.clear()


def generate(client, speaker, *, htmx=False):
    data = {"opening": "", "temperature": 0.9, "mode": "speaker", "speaker": speaker.pk}
    return client.post(reverse("generations:live"), data, headers=HTMX if htmx else {})


def queued_seconds_ago(generation: LiveGeneration, seconds: float) -> None:
    LiveGeneration.objects.filter(pk=generation.pk).update(
        created_at=timezone.now() - timedelta(seconds=seconds)
    )
    lost_messages.note_queued(LiveGeneration, generation.pk, at=time.time() - seconds)


def poll(client, generation: LiveGeneration):
    return client.get(reverse("generations:live_generation", args=[generation.pk]), headers=HTMX)


@pytest.mark.django_db
def test_a_live_generation_whose_message_vanished_is_sent_again_while_the_member_waits(
    broker, member_client, run, friends, worker_up, django_capture_on_commit_callbacks, caplog
):
    with django_capture_on_commit_callbacks(execute=True):
        generate(member_client, friends["ann"])
    generation = LiveGeneration.objects.get()
    first = generation.celery_task_id
    assert first and broker.holds(first)
    broker.drop(first)  # Redis restarted without its data

    with django_capture_on_commit_callbacks(execute=True):
        young = poll(member_client, generation)  # a moment ago: its message may be on its way
    assert broker.count(TASK, generation.pk) == 0
    cache.clear()  # as if the page had last asked the broker a while ago

    queued_seconds_ago(generation, 8)
    with django_capture_on_commit_callbacks(execute=True):
        page = poll(member_client, generation)

    assert young.status_code == page.status_code == 200
    assert 'hx-trigger="every 300ms"' in page.content.decode()  # still waiting, and says so
    assert escape(live.NO_WORKER_YET) in page.content.decode()
    generation.refresh_from_db()
    assert generation.status == JobStatus.QUEUED
    assert generation.celery_task_id not in ("", first) and broker.holds(generation.celery_task_id)
    assert broker.count(TASK, generation.pk) == 1
    assert f"Live generation {generation.pk} was queued but its message is not" in caplog.text

    # Polled again within seconds (every 300 ms): the broker is not asked every time.
    broker.drop(generation.celery_task_id)
    queued_seconds_ago(generation, 8)
    with django_capture_on_commit_callbacks(execute=True):
        poll(member_client, generation)
    assert broker.count(TASK, generation.pk) == 0


@pytest.mark.django_db
def test_a_live_generation_whose_message_is_there_is_not_sent_again(
    broker, member_client, run, friends, worker_up, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        generate(member_client, friends["ann"])
    generation = LiveGeneration.objects.get()
    queued_seconds_ago(generation, 20)  # the worker is busy with a batch, say

    with django_capture_on_commit_callbacks(execute=True):
        page = poll(member_client, generation)
        a_worker_starts("gpu")

    assert page.status_code == 200
    assert broker.count(TASK, generation.pk) == 1


@pytest.mark.django_db(transaction=True)  # sent at commit, before the page is drawn
def test_generate_while_the_queue_is_down_says_so_and_goes_when_it_is_back(
    broker, member_client, run, friends, worker_up, caplog
):
    with broker_at(CLOSED_PORT):
        started = generate(member_client, friends["ann"], htmx=True)
        generation = LiveGeneration.objects.get()
        down = poll(member_client, generation)  # no broker to ask: left alone

    assert started.status_code == 200, started.content.decode()[:2000]
    assert escape(SEND_FAILED) in started.content.decode()
    assert down.status_code == 200 and escape(SEND_FAILED) in down.content.decode()
    generation.refresh_from_db()
    assert (generation.status, generation.progress_note) == (JobStatus.QUEUED, SEND_FAILED)
    [warning] = [r for r in caplog.records if r.levelname == "WARNING"]
    assert f"Could not send live generation {generation.pk} to its worker" in warning.getMessage()
    assert broker.count(TASK, generation.pk) == 0

    cache.clear()  # the page last asked a while ago; the queue is back
    back = poll(member_client, generation)  # at once, however young the request

    generation.refresh_from_db()
    assert generation.progress_note == live.WAITING
    assert broker.count(TASK, generation.pk) == 1
    assert back.status_code == 200
    assert "Waiting for the generation worker" in back.content.decode()
    assert escape(SEND_FAILED) not in back.content.decode()


@pytest.mark.django_db
def test_a_queue_down_for_a_minute_ends_the_wait_with_a_sentence(
    broker, member_client, run, friends, worker_up, django_capture_on_commit_callbacks
):
    with broker_at(CLOSED_PORT):
        with django_capture_on_commit_callbacks(execute=True):
            generate(member_client, friends["ann"])
        generation = LiveGeneration.objects.get()
        queued_seconds_ago(generation, 90)
        ended = poll(member_client, generation)

    assert ended.status_code == 286  # the page stops asking
    assert escape(live.QUEUE_DOWN) in ended.content.decode()
    generation.refresh_from_db()
    assert (generation.status, generation.error) == (JobStatus.FAILED, live.QUEUE_DOWN)
    with django_capture_on_commit_callbacks(execute=True):
        a_worker_starts("gpu")
    assert broker.count(TASK, generation.pk) == 0


@pytest.mark.django_db
def test_a_starting_worker_sends_a_recent_lost_request_and_ends_an_abandoned_one(
    broker, member, run, friends, worker_up, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        recent = live.start_live(member=member, speaker=friends["ann"])
        abandoned = live.start_live(member=member, speaker=friends["bo"])
    for generation in (recent, abandoned):
        broker.drop(generation.celery_task_id)
    queued_seconds_ago(recent, 10)
    queued_seconds_ago(abandoned, 600)  # its member closed the page long ago

    with django_capture_on_commit_callbacks(execute=True):
        a_worker_starts("default")  # it never generates: not its job
    assert broker.count(TASK, recent.pk) == 0

    with django_capture_on_commit_callbacks(execute=True):
        a_worker_starts("gpu")

    assert broker.count(TASK, recent.pk) == 1
    assert broker.count(TASK, abandoned.pk) == 0
    recent.refresh_from_db()
    abandoned.refresh_from_db()
    assert recent.status == JobStatus.QUEUED
    assert (abandoned.status, abandoned.error) == (JobStatus.FAILED, live.MESSAGE_LOST)
    assert LOST_LIVE.resend_lost() == []  # nothing left to send


@pytest.mark.django_db(transaction=True)
def test_two_messages_for_one_live_generation_write_it_once(
    broker, member, run, friends, worker_up, monkeypatch
):
    """Two workers take a message each for the same request at the same moment (one sent again
    while the first was on its way, a redelivery): only one loads the model and writes."""
    if connection.vendor != "postgresql":
        pytest.skip("two connections need the test database on a server")
    generation = live.start_live(member=member, speaker=friends["ann"])  # autocommit: sent
    generator = FakeGenerator(messages=["only the one take of this"])
    both_in = threading.Barrier(2, timeout=3)
    loads = []
    mark_running = LiveGeneration.mark_running

    def marking_running(self):
        # Were both to go ahead, both get here before either does; else the other one waits
        # for this one's lock (or found it taken) and the wait ends after a few seconds.
        with contextlib.suppress(threading.BrokenBarrierError):
            both_in.wait()
        mark_running(self)

    def load_generator(checkpoint_dir):
        loads.append(threading.current_thread().name)
        return generator

    monkeypatch.setattr(LiveGeneration, "mark_running", marking_running)
    monkeypatch.setattr(services, "load_generator", load_generator)

    def worker() -> None:
        try:
            live_generate.run(generation.pk)
        finally:
            connection.close()

    workers = [threading.Thread(target=worker, name=f"gpu@{side}") for side in "ab"]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(30)

    generation.refresh_from_db()
    assert len(loads) == 1, loads
    assert generator.calls == 1
    assert generation.status == JobStatus.SUCCEEDED
    assert [line["text"] for line in generation.lines] == ["only the one take of this"]


@pytest.mark.django_db(transaction=True)
def test_generate_while_the_queue_is_down_and_no_worker_was_seen_lately_says_so(
    broker, member_client, run, friends
):
    """The broker cannot be asked whether a worker is up either: the request is queued all the
    same, and the page says why it waits (no 500, and no blaming a worker nobody could ask)."""
    with broker_at(CLOSED_PORT):
        started = generate(member_client, friends["ann"], htmx=True)

    assert started.status_code == 200
    html = started.content.decode()
    assert escape(SEND_FAILED) in html and escape(live.NO_WORKER) not in html
    generation = LiveGeneration.objects.get()
    assert (generation.status, generation.progress_note) == (JobStatus.QUEUED, SEND_FAILED)
