"""Queued jobs whose Celery message vanished (Redis restarted without its data, a send that failed
while it was down) are sent again, once; a job whose message is there, or that was queued a
moment ago, is left alone; and two messages for one batch generate it once."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import pytest
from celery.signals import worker_ready
from django.conf import settings as django_settings
from django.db import connection
from django.urls import reverse

from generations import services as generation_services
from generations.models import GenerationBatch
from generations.tasks import run_batch
from ingest import passphrases
from ingest import services as ingest_services
from ingest.models import Export
from joe_site import lost_messages
from joe_site.jobs import SEND_FAILED, JobStatus
from tests.builders.generation import checkpoint_copy, make_friends, make_run, tiny_checkpoint
from tests.builders.waiting import wait_for
from tests.signal_writer import FIXTURE_MESSAGES, write_backup
from tests.test_ingest_support import PASSPHRASE, stored_export, use_tmp_upload_dir, worker_env
from tests.test_trainer_runs import FORM
from trainer import services as trainer_services
from trainer.models import TrainingRun
from trainer.tasks import LOST_RUNS

ROOT = Path(__file__).resolve().parents[1]
HTMX = {"HX-Request": "true"}
CLOSED_PORT = "redis://127.0.0.1:1/0"  # nothing listens there: the broker is "down"
QUEUES = ("default", "gpu")


class Broker:
    """Redis as Celery sees it: the queues' lists and the delivered-but-unacknowledged hash."""

    def __init__(self, url: str) -> None:
        import redis

        self.client = redis.Redis.from_url(url)

    def _lists(self) -> list[bytes]:
        return [k for k in self.client.keys("*") if k.split(b"\x06\x16")[0].decode() in QUEUES]

    def messages(self) -> set[tuple[bytes, bytes, bytes]]:
        found = set()
        for key in self._lists():
            if self.client.type(key) == b"list":
                found |= {(b"list", key, raw) for raw in self.client.lrange(key, 0, -1)}
        for tag, raw in self.client.hgetall("unacked").items():
            found.add((b"unacked", tag, raw))
        return found

    def holds(self, task_id: str) -> bool:
        return any(task_id.encode() in raw for _, _, raw in self.messages())

    def count(self, task_name: str, pk: int) -> int:
        """How many messages of that task for that row there are, waiting or delivered."""
        found = 0
        for where, _, raw in self.messages():
            payload = json.loads(raw)
            if where == b"unacked":
                payload = payload[0]  # [message, exchange, routing key]
            args = json.loads(base64.b64decode(payload["body"]))[0]
            found += (payload["headers"]["task"], args[:1]) == (task_name, [pk])
        return found

    def remove(self, messages) -> None:
        for where, key, raw in messages:
            if where == b"list":
                self.client.lrem(key, 0, raw)
            else:
                self.client.hdel("unacked", key)
                self.client.zrem("unacked_index", key)

    def drop(self, task_id: str) -> None:
        """Lose a message, as a Redis restarted without persistence does."""
        self.remove([m for m in self.messages() if task_id.encode() in m[2]])


@pytest.fixture
def broker(redis_url):
    """The real Redis, and every message a test left in it removed afterwards (a later run of
    the suite, with its ids counting from 1 again, must not be handed them)."""
    broker = Broker(redis_url)
    before = broker.messages()
    yield broker
    broker.remove(broker.messages() - before)


@contextmanager
def broker_at(url: str, **transport_options):
    """Point the Celery app (its connections and producers) at another broker for a while."""
    from joe_site.celery import app

    saved = app.conf.broker_url, app.conf.broker_transport_options

    def point(url: str, options: dict) -> None:
        app.conf.broker_url, app.conf.broker_transport_options = url, options
        app._pool = None
        app.amqp._producer_pool = None

    point(url, {**saved[1], **transport_options})
    try:
        yield
    finally:
        point(*saved)


def queued_minutes_ago(job, minutes: float) -> None:
    """As if the job had been created and queued that long ago."""
    from django.utils import timezone

    type(job).objects.filter(pk=job.pk).update(
        created_at=timezone.now() - timezone.timedelta(minutes=minutes)
    )
    lost_messages.note_queued(type(job), job.pk, at=time.time() - 60 * minutes)


class StartingWorker:
    """What Celery's worker_ready hands its receivers: the worker, with its name and queues."""

    def __init__(self, queue: str) -> None:
        self.hostname = f"{queue}@box"
        consuming = SimpleNamespace(consume_from={queue: None})
        self.app = SimpleNamespace(amqp=SimpleNamespace(queues=consuming))


def a_worker_starts(queue: str) -> None:
    """What a worker consuming ``queue`` does as it starts."""
    worker_ready.send(sender=StartingWorker(queue))


def new_run(capture) -> TrainingRun:
    with capture(execute=True):
        run = trainer_services.start_run(
            name="lost", base_model="tiny", hyperparameters={"max_steps": 2}, created_by=None
        )
    run.refresh_from_db()
    return run


@pytest.fixture
def model_run(tmp_path):
    return make_run(checkpoint_copy(tiny_checkpoint(), tmp_path / "checkpoint"), make_friends())


def batch_form(run) -> dict:
    return {
        "run": run.pk, "quota_ann": 2, "quota_bo": 1, "quota_cy": 0, "conversations": 0,
        "temperature": 0.9, "top_p": 0.95, "top_k": 50, "max_new_tokens": 8, "prompt": "",
        "base_seed": 7,
    }  # fmt: skip


# -- in the test process, against the real Redis ------------------------------------------------


@pytest.mark.django_db
def test_a_run_whose_message_vanished_is_sent_again_from_its_page(
    broker, staff_client, django_capture_on_commit_callbacks, caplog
):
    run = new_run(django_capture_on_commit_callbacks)
    first = run.celery_task_id
    assert first and broker.holds(first)
    broker.drop(first)  # Redis restarted without its data
    queued_minutes_ago(run, 3)

    with django_capture_on_commit_callbacks(execute=True):
        page = staff_client.get(run.get_absolute_url(), headers=HTMX)

    assert page.status_code == 200
    run.refresh_from_db()
    assert run.status == JobStatus.QUEUED
    assert run.celery_task_id not in ("", first) and broker.holds(run.celery_task_id)
    assert broker.count("trainer.tasks.train_run", run.pk) == 1
    assert f"Training run {run.pk} was queued but its message is not in the broker" in caplog.text

    # Polled again within 30 s (two staff members on the page, say): the broker is not asked.
    broker.drop(run.celery_task_id)
    with django_capture_on_commit_callbacks(execute=True):
        staff_client.get(run.get_absolute_url(), headers=HTMX)
    assert broker.count("trainer.tasks.train_run", run.pk) == 0


@pytest.fixture
def hanging_broker():
    """A Redis that takes connections and never answers (stopped with SIGSTOP, swapping)."""
    import socket
    import threading

    server = socket.create_server(("127.0.0.1", 0))
    held = []

    def take() -> None:
        while True:
            try:
                held.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=take, daemon=True).start()
    yield f"redis://127.0.0.1:{server.getsockname()[1]}/0"
    server.close()
    for conn in held:
        conn.close()


@pytest.mark.django_db(transaction=True)
def test_a_queued_runs_page_waits_on_a_hanging_redis_two_seconds_at_most(hanging_broker):
    run = TrainingRun.objects.create(name="waiting", status=JobStatus.QUEUED, celery_task_id="x")
    queued_minutes_ago(run, 3)

    import threading

    answers = []
    with broker_at(hanging_broker):
        # What its page asks every 30 s (in a thread: a look that hangs fails, not the suite).
        def ask() -> None:
            try:
                answers.append(LOST_RUNS.resend_lost(pk=run.pk))
            finally:
                connection.close()  # this thread's own

        asking = threading.Thread(target=ask, daemon=True)
        asking.start()
        asking.join(lost_messages.BROKER_ANSWER_S + 1.5)

    assert answers == [[]], "the page still waits for Redis"
    run.refresh_from_db()
    assert (run.status, run.celery_task_id) == (JobStatus.QUEUED, "x")  # never guessed lost


@pytest.mark.django_db(transaction=True)
def test_a_queued_runs_page_answers_while_redis_hangs(staff_client, hanging_broker):
    import threading

    from django.core.cache import cache

    from joe_site import workers

    run = TrainingRun.objects.create(name="waiting", status=JobStatus.QUEUED, celery_task_id="x")
    queued_minutes_ago(run, 3)
    # What another test (a worker seen, none seen, this run's id looked for) left in the cache.
    page_key = lost_messages._PAGE_KEY.format(label="trainer.trainingrun", pk=run.pk)
    cache.delete_many([workers._WORKER_SEEN_KEY, trainer_services._NO_GPU_WORKER_KEY, page_key])
    pages = []

    def poll() -> None:
        try:
            pages.append(staff_client.get(run.get_absolute_url(), headers=HTMX))
        finally:
            connection.close()  # this thread's own

    with broker_at(hanging_broker):
        polling = threading.Thread(target=poll, daemon=True)
        polling.start()
        polling.join(8)  # the lost message's look (2 s) and the worker's (2 s, then 1 s)

    assert pages and pages[0].status_code == 200, "the page still waits for Redis"
    assert "No GPU worker has taken this run yet: none may be running" in pages[0].content.decode()


@pytest.mark.django_db
def test_a_run_whose_message_vanished_is_sent_again_when_a_gpu_worker_starts(
    broker, django_capture_on_commit_callbacks
):
    run = new_run(django_capture_on_commit_callbacks)
    broker.drop(run.celery_task_id)
    queued_minutes_ago(run, 3)

    with django_capture_on_commit_callbacks(execute=True):
        a_worker_starts("default")  # it never trains: not its job
    assert broker.count("trainer.tasks.train_run", run.pk) == 0

    with django_capture_on_commit_callbacks(execute=True):
        a_worker_starts("gpu")
    assert broker.count("trainer.tasks.train_run", run.pk) == 1
    run.refresh_from_db()
    assert broker.holds(run.celery_task_id)


@pytest.mark.django_db
def test_a_queued_batch_whose_message_is_there_is_not_sent_again(
    broker, model_run, staff_client, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        staff_client.post(reverse("generations:batches"), batch_form(model_run))
    batch = GenerationBatch.objects.get()
    queued_minutes_ago(batch, 30)  # the GPU worker is busy with a long run, say

    with django_capture_on_commit_callbacks(execute=True):
        a_worker_starts("gpu")
        page = staff_client.get(batch.get_absolute_url(), headers=HTMX)

    assert page.status_code == 200
    assert broker.count("generations.tasks.run_batch", batch.pk) == 1


@pytest.mark.django_db
def test_a_job_queued_a_moment_ago_is_not_sent_again(
    broker, django_capture_on_commit_callbacks, settings
):
    run = new_run(django_capture_on_commit_callbacks)
    broker.drop(run.celery_task_id)  # or still on its way from the web process

    with django_capture_on_commit_callbacks(execute=True):
        assert LOST_RUNS.resend_lost() == []
    assert broker.count("trainer.tasks.train_run", run.pk) == 0

    # A run re-queued a moment ago (its worker lost) counts from then, not from its creation.
    queued_minutes_ago(run, 10)
    lost_messages.note_queued(TrainingRun, run.pk)
    with django_capture_on_commit_callbacks(execute=True):
        assert LOST_RUNS.resend_lost() == []

    settings.JOE_LOST_MESSAGE_AFTER = 0
    with django_capture_on_commit_callbacks(execute=True):
        assert LOST_RUNS.resend_lost() == [run.pk]
    assert broker.count("trainer.tasks.train_run", run.pk) == 1


@pytest.mark.django_db
def test_a_batch_started_while_the_queue_is_down_says_so_and_goes_when_it_is_back(
    broker, model_run, staff_client, django_capture_on_commit_callbacks, caplog
):
    with broker_at(CLOSED_PORT):
        with django_capture_on_commit_callbacks(execute=True):
            started = staff_client.post(reverse("generations:batches"), batch_form(model_run))
        batch = GenerationBatch.objects.get()
        page = staff_client.get(started.url).content.decode()  # no broker to ask: left alone

    assert started.status_code == 302 and started.url == batch.get_absolute_url()
    batch.refresh_from_db()
    assert (batch.status, batch.progress_note) == (JobStatus.QUEUED, SEND_FAILED)
    assert SEND_FAILED in page
    [warning] = [r for r in caplog.records if r.levelname == "WARNING"]
    assert f"Could not send generation batch {batch.pk} to its worker" in warning.getMessage()
    assert broker.count("generations.tasks.run_batch", batch.pk) == 0

    with django_capture_on_commit_callbacks(execute=True):
        a_worker_starts("gpu")  # the queue is back: at once, however young the batch

    batch.refresh_from_db()
    assert batch.progress_note == "Waiting for the generation worker"
    assert broker.count("generations.tasks.run_batch", batch.pk) == 1
    assert SEND_FAILED not in staff_client.get(batch.get_absolute_url()).content.decode()


@pytest.mark.django_db
def test_a_run_started_while_the_queue_is_down_says_so_on_its_page(
    broker, staff_client, django_capture_on_commit_callbacks
):
    form = FORM | {"name": "down"}
    with broker_at(CLOSED_PORT):
        with django_capture_on_commit_callbacks(execute=True):
            started = staff_client.post(reverse("trainer:runs"), form)
        run = TrainingRun.objects.get()
        assert started.status_code == 302, started.content.decode()[:2000]
        page = staff_client.get(run.get_absolute_url()).content.decode()

    assert SEND_FAILED in page
    with django_capture_on_commit_callbacks(execute=True):
        assert LOST_RUNS.resend_lost() == [run.pk]
    assert broker.count("trainer.tasks.train_run", run.pk) == 1


@pytest.mark.django_db
def test_a_batch_another_worker_is_generating_is_not_generated_twice(model_run, monkeypatch):
    """A second message for a batch that a live worker holds: nothing generated, looked at
    again once that worker's heartbeat would be stale."""
    from celery.canvas import Signature
    from celery.exceptions import Retry
    from django.utils import timezone

    batch = generation_services.create_batch(
        run=model_run, per_speaker={"ann": 2}, conversations=0, temperature=0.9, top_p=0.95,
        top_k=50, max_new_tokens=8, prompt="", base_seed=1,
    )  # fmt: skip
    GenerationBatch.objects.filter(pk=batch.pk).update(
        status=JobStatus.RUNNING, worker_host="gpu@a", heartbeat_at=timezone.now()
    )
    monkeypatch.setattr(Signature, "apply_async", lambda *a, **k: None)
    run_batch.push_request(id="t-2", retries=0, called_directly=False, hostname="gpu@b")
    try:
        with pytest.raises(Retry):
            run_batch.run(batch.pk)
    finally:
        run_batch.pop_request()

    batch.refresh_from_db()
    assert (batch.status, batch.worker_host, batch.snippets.count()) == (
        JobStatus.RUNNING, "gpu@a", 0,
    )  # fmt: skip


def test_the_embedded_brokers_files_are_looked_in_too(tmp_path, db, settings):
    """The demo's broker (no Redis): one file per message in its folder."""
    folder = tmp_path / "broker"
    for sub in ("in", "processed", "control"):
        (folder / sub).mkdir(parents=True)
    options = {"data_folder_in": str(folder / "in"), "data_folder_out": str(folder / "in"),
               "processed_folder": str(folder / "processed"),
               "control_folder": str(folder / "control"), "store_processed": False}  # fmt: skip
    with broker_at("filesystem://localhost//", **options):
        run = trainer_services.new_run(name="demo", base_model="tiny", hyperparameters={})
        sent = SimpleNamespace(id="")

        def send():
            from trainer.tasks import train_run

            sent.id = train_run.delay(run.pk).id

        send()
        TrainingRun.objects.filter(pk=run.pk).update(celery_task_id=sent.id)
        queued_minutes_ago(run, 3)
        assert lost_messages.pending_messages(["gpu"]).ids == {sent.id}
        assert LOST_RUNS.resend_lost() == []

        [message] = (folder / "in").iterdir()
        message.unlink()  # the data folder wiped
        assert LOST_RUNS.resend_lost() == [run.pk]


# -- real Celery workers ------------------------------------------------------------------------


def start_worker(env: dict, queue: str, name: str, log: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "celery", "-A", "joe_site", "worker", "-P", "solo",
               "-Q", queue, "-n", name, "--loglevel", "INFO"]  # fmt: skip
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT
    )


def stop(workers: list[subprocess.Popen]) -> None:
    for worker in workers:
        worker.terminate()
    for worker in workers:
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()


def answering(names: list[str]) -> bool:
    from joe_site.celery import app

    replies = app.control.ping(destination=names, timeout=1.0) or []
    return {name for reply in replies for name in reply} == set(names)


@pytest.fixture
def shared_db():
    if connection.vendor != "postgresql":
        pytest.skip("the worker processes need the test database on a server")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_signal_import_queued_while_the_queue_was_down_is_imported_when_a_worker_starts(
    broker, shared_db, tmp_path, settings, staff_client
):
    use_tmp_upload_dir(settings, tmp_path)
    write_backup(tmp_path / "signal.backup", messages=FIXTURE_MESSAGES)
    export = stored_export(tmp_path / "signal.backup", kind="signal")
    with broker_at(CLOSED_PORT):
        ingest_services.queue_import(export=export, passphrase=PASSPHRASE)  # autocommit: at once
        page = staff_client.get(export.get_absolute_url()).content.decode()
    export.refresh_from_db()
    first = export.celery_task_id
    assert export.waits_for_queue and SEND_FAILED in page
    key = passphrases.key_for(export.pk)
    assert passphrases.read(key) == PASSPHRASE  # kept (an hour at most) for the send to come

    env = worker_env(
        tmp_path, REDIS_URL=django_settings.CELERY_BROKER_URL, SECRET_KEY=settings.SECRET_KEY
    )
    worker = start_worker(
        env, "default", f"default@lost-{uuid.uuid4().hex[:8]}", tmp_path / "w.log"
    )
    try:
        done = wait_for(lambda: not Export.objects.get(pk=export.pk).is_active, 120)
        # Discarded as the task ends, a moment after the import's row says it succeeded.
        discarded = wait_for(lambda: passphrases.read(key) is None, 30)
    finally:
        stop([worker])
    log = (tmp_path / "w.log").read_text()
    assert done, log
    export.refresh_from_db()
    assert export.status == JobStatus.SUCCEEDED, (export.error, log)
    assert export.celery_task_id != first and export.messages_count > 0
    assert discarded, log  # gone with the import, as ever
    assert "Traceback" not in log, log


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_two_messages_for_one_batch_generate_it_once(broker, shared_db, tmp_path, model_run):
    batch = generation_services.create_batch(
        run=model_run, per_speaker={"ann": 12, "bo": 12}, conversations=2, temperature=0.9,
        top_p=0.95, top_k=50, max_new_tokens=24, prompt="", base_seed=5,
    )  # fmt: skip
    env = worker_env(tmp_path, REDIS_URL=django_settings.CELERY_BROKER_URL)
    names = [f"gpu@lost-{side}-{uuid.uuid4().hex[:6]}" for side in "ab"]
    workers = [start_worker(env, "gpu", n, tmp_path / f"{n}.log") for n in names]
    try:
        assert wait_for(lambda: answering(names), 90, 1.0), "the workers did not start"
        run_batch.delay(batch.pk)  # a message sent again while the first was still there,
        run_batch.delay(batch.pk)  # or a redelivery: both reach a worker at once
        assert wait_for(lambda: not GenerationBatch.objects.get(pk=batch.pk).is_active, 120)
        time.sleep(2)  # the other worker's message, if it were to generate, would by now
    finally:
        stop(workers)
    logs = "".join(path.read_text() for path in tmp_path.glob("gpu@*.log"))
    batch.refresh_from_db()
    assert batch.status == JobStatus.SUCCEEDED, (batch.error, logs)
    seeds = list(batch.snippets.values_list("seed", flat=True))
    assert seeds and len(seeds) == len(set(seeds)), "a seed was generated twice"
    for slug, wanted in batch.per_speaker.items():
        assert batch.snippets.filter(kind="message", speaker__slug=slug).count() <= wanted
    assert "Traceback" not in logs, logs
