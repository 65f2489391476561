# ruff: noqa: F811 (the trainer fixtures imported below are used as arguments)
"""Runs whose worker is lost: they are taken over, resumed a bounded number of times, shown as
silent on their page and can be cancelled; their files go when they are deleted."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.urls import reverse
from django.utils import timezone

from joe_site.jobs import HEARTBEAT_STALE, JobStatus
from tests.test_trainer_runs import (  # noqa: F401 (fixtures)
    TINY_HP,
    make_corpus,
    models_dir,
    queued,
    tiny_base,
    tiny_run,
)
from trainer import services
from trainer.models import MAX_WORKER_LOSSES, TrainingRun

HTMX = {"HX-Request": "true"}


def running(run: TrainingRun, *, host: str = "gpu@a", silent_for: timedelta = timedelta(0)):
    TrainingRun.objects.filter(pk=run.pk).update(
        status=JobStatus.RUNNING,
        worker_host=host,
        started_at=timezone.now() - timedelta(hours=1),
        heartbeat_at=timezone.now() - silent_for,
        progress_done=40,
        eta_seconds=420.0,
        tokens_per_second=1500.0,
    )
    run.refresh_from_db()
    return run


@pytest.mark.django_db
def test_a_run_another_worker_reported_on_just_now_is_tried_again_later(monkeypatch):
    """A pool process killed mid-run: the broker hands the job straight to another worker,
    whose heartbeat check finds it fresh. The job must come back, not be acknowledged away,
    however many times it has already come back."""
    from celery.canvas import Signature
    from celery.exceptions import Retry

    from trainer.tasks import train_run

    run = running(tiny_run(), silent_for=timedelta(seconds=3))
    sent = []
    monkeypatch.setattr(Signature, "apply_async", lambda sig, *a, **k: sent.append(sig))
    train_run.push_request(id="t-1", retries=10, called_directly=False, args=[run.pk], kwargs={})
    try:
        with pytest.raises(Retry):
            train_run.run(run.pk)
    finally:
        train_run.pop_request()

    assert train_run.max_retries is None
    assert len(sent) == 1 and sent[0].options["countdown"] > HEARTBEAT_STALE.total_seconds()
    run.refresh_from_db()
    assert (run.status, run.worker_host, run.worker_losses) == (JobStatus.RUNNING, "gpu@a", 0)


@pytest.mark.django_db
def test_once_that_worker_is_silent_the_run_is_taken_over_and_counted(models_dir):
    make_corpus()
    run = running(tiny_run(max_steps=2), silent_for=HEARTBEAT_STALE + timedelta(seconds=5))

    run = services.execute_run(run.pk, worker_host="gpu@b")

    assert run.status == JobStatus.SUCCEEDED, run.error
    assert run.worker_host == "gpu@b"
    # One loss, counted; the run then got to its end, so none is pending any more.
    assert (run.worker_losses, run.worker_losses_total) == (0, 1)


@pytest.mark.django_db
def test_a_run_that_keeps_killing_its_worker_fails_saying_why(queued):
    run = tiny_run()
    for loss in range(1, MAX_WORKER_LOSSES):
        running(run, host="gpu@a")
        # The same worker name gets it back (the broker's redelivery, or the restart hook).
        assert services._claim(run.pk, "gpu@a") is not None
        run.refresh_from_db()
        assert run.worker_losses == loss

    running(run, host="gpu@a")
    assert services._claim(run.pk, "gpu@a") is None

    run.refresh_from_db()
    assert run.status == JobStatus.FAILED and run.finished_at
    assert run.error.startswith(f"Its worker stopped {MAX_WORKER_LOSSES} times in a row")
    assert "too much memory" in run.error and run.progress_note == ""


@pytest.mark.django_db
def test_a_worker_asked_to_shut_down_loses_no_run(queued):
    """docker compose restart, an upgrade: the run resumes and nothing is counted against it."""
    from trainer.tasks import note_runs_of_a_stopping_worker

    run = running(tiny_run(), host="gpu@a")
    TrainingRun.objects.filter(pk=run.pk).update(worker_losses=MAX_WORKER_LOSSES - 1)

    note_runs_of_a_stopping_worker(sender="gpu@a", sig="SIGTERM", how="Warm", exitcode=0)
    run.refresh_from_db()
    assert run.worker_stopping and "shutting down" in run.progress_note

    assert services.requeue_lost_runs(worker_host="gpu@a") == [run.pk]
    assert services._claim(run.pk, "gpu@a") is not None  # no third loss: it goes on
    run.refresh_from_db()
    assert (run.status, run.worker_losses, run.worker_stopping) == (
        JobStatus.RUNNING,
        MAX_WORKER_LOSSES - 1,
        False,
    )


@pytest.mark.django_db
def test_the_restart_hook_counts_a_loss_and_a_new_checkpoint_forgives_them(queued):
    run = running(tiny_run(), host="gpu@a")
    TrainingRun.objects.filter(pk=run.pk).update(worker_losses=2, worker_losses_total=2)

    assert services.requeue_lost_runs(worker_host="gpu@a") == [run.pk]

    run.refresh_from_db()
    assert (run.status, run.worker_losses, run.worker_losses_total) == (JobStatus.QUEUED, 3, 3)
    assert run.eta_text == ""  # waiting to resume: no time left to show
    assert services._claim(run.pk, "gpu@a") is None  # the third loss in a row
    assert TrainingRun.objects.get(pk=run.pk).status == JobStatus.FAILED


@pytest.mark.django_db(transaction=True)  # the thread has its own connection: rows committed
def test_the_heartbeat_goes_on_while_the_worker_loads_and_prepares(monkeypatch):
    """Minutes of downloading a base model write no progress: a thread says the worker lives."""
    monkeypatch.setattr(services, "HEARTBEAT_EVERY", timedelta(seconds=0.05))
    run = running(tiny_run(), silent_for=timedelta(minutes=4))

    with services._Heartbeat(run.pk):
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            run.refresh_from_db()
            if timezone.now() - run.heartbeat_at < timedelta(seconds=30):
                break
            time.sleep(0.05)

    assert timezone.now() - run.heartbeat_at < timedelta(seconds=30)
    assert not run.worker_silent


@pytest.mark.django_db
def test_a_silent_runs_page_says_so_and_keeps_a_way_to_stop_it(staff_client):
    run = running(tiny_run(), silent_for=HEARTBEAT_STALE + timedelta(minutes=1))
    run.request_cancel()  # clicked while the worker was already gone: it never reads it

    page = staff_client.get(run.get_absolute_url()).content.decode()

    assert 'data-testid="worker-silent"' in page and "has most likely stopped" in page
    assert "Stop it now" in page  # not a dead end on "Cancelling…"
    assert "left</span>" not in page and "7 min 00 s" not in page  # no stale time left
    staff_client.post(f"/trainer/{run.pk}/cancel/")
    run.refresh_from_db()
    assert run.status == JobStatus.CANCELLED and "stopped reporting" in run.progress_note


@pytest.mark.django_db
def test_a_live_runs_page_shows_no_silence_notice(staff_client):
    run = running(tiny_run(), silent_for=timedelta(seconds=20))
    page = staff_client.get(run.get_absolute_url()).content.decode()
    assert 'data-testid="worker-silent"' not in page and "7 min 00 s" in page
    assert "Cancel run" in page


@pytest.mark.django_db
def test_cancel_after_a_checkpoint_names_the_step_on_disk(models_dir, monkeypatch):
    make_corpus()
    run = tiny_run(max_steps=200, checkpoint_every_steps=3, eval_every=0)

    class StopAFewStepsLater:
        def __init__(self, run) -> None:
            self.calls = 0

        def __call__(self) -> bool:
            self.calls += 1
            return self.calls >= 6

    monkeypatch.setattr(services, "_CancelCheck", StopAFewStepsLater)
    run = services.execute_run(run.pk)

    assert run.status == JobStatus.CANCELLED and run.progress_done > 3
    assert run.checkpoint_step == services._checkpoint_step(Path(run.checkpoint_dir)) == 3
    assert f"Cancelled at step {run.progress_done}; the checkpoint from step 3" in (
        run.progress_note
    )


@pytest.mark.django_db
def test_a_failed_run_drops_its_stale_note_and_explains_a_folder_that_is_no_model(
    models_dir, tmp_path
):
    make_corpus()
    folder = tmp_path / "not-a-model"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "no-such-architecture"}')
    run = services.new_run(name="x", base_model=str(folder), hyperparameters=TINY_HP)

    run = services.execute_run(run.pk)

    assert run.status == JobStatus.FAILED and run.progress_note == ""
    assert run.error.startswith(f"Could not load the base model “{folder}”: it is not a model")
    assert "unexpected error" not in run.error


@pytest.mark.django_db(transaction=True)
def test_deleting_a_run_deletes_its_folder(settings, tmp_path):
    settings.MODELS_DIR = tmp_path / "models"
    run = TrainingRun.objects.create(name="old", status=JobStatus.FAILED)
    (run.run_dir / "checkpoint").mkdir(parents=True)
    (run.run_dir / "checkpoint" / "model.safetensors").write_bytes(b"weights")

    run.delete()

    assert not run.run_dir.exists()


@pytest.mark.django_db
def test_a_finished_runs_page_waits_for_its_report(staff_client):
    run = TrainingRun.objects.create(
        name="done", status=JobStatus.SUCCEEDED, finished_at=timezone.now()
    )

    page = staff_client.get(run.get_absolute_url()).content.decode()
    assert 'data-testid="report-coming"' in page and 'hx-trigger="every 2s"' in page
    assert staff_client.get(run.get_absolute_url(), headers=HTMX).status_code == 200

    TrainingRun.objects.filter(pk=run.pk).update(report={"perplexity": []})
    assert staff_client.get(run.get_absolute_url(), headers=HTMX).status_code == 286
    long_ago = timezone.now() - timedelta(hours=1)
    TrainingRun.objects.filter(pk=run.pk).update(report={}, finished_at=long_ago)
    assert staff_client.get(run.get_absolute_url(), headers=HTMX).status_code == 286


@pytest.mark.django_db(transaction=True)
def test_staff_delete_an_ended_run_and_its_checkpoints(staff_client, settings, tmp_path, ann):
    from tests.builders.snippets import make_snippet

    settings.MODELS_DIR = tmp_path / "models"
    run = TrainingRun.objects.create(name="old try", status=JobStatus.SUCCEEDED)
    (run.run_dir / "checkpoint").mkdir(parents=True)
    (run.run_dir / "checkpoint" / "model.safetensors").write_bytes(b"w" * 2048)
    snippet = make_snippet((ann, "still funny"), run=run)

    page = staff_client.get(run.get_absolute_url()).content.decode()
    assert 'id="run-delete"' in page and "2.0\xa0KB on disk" in page
    response = staff_client.post(f"/trainer/{run.pk}/delete/", follow=True)

    assert "Deleted “old try” and its checkpoints." in response.content.decode()
    assert not TrainingRun.objects.filter(pk=run.pk).exists() and not run.run_dir.exists()
    snippet.refresh_from_db()
    assert snippet.run_id is None  # the gallery keeps it


@pytest.mark.django_db
def test_a_run_in_use_cannot_be_deleted(staff_client, member_client):
    from generations.models import GenerationBatch

    running_run = running(tiny_run())
    active = TrainingRun.objects.create(name="live", status=JobStatus.SUCCEEDED, is_active=True)
    generating = TrainingRun.objects.create(name="gen", status=JobStatus.SUCCEEDED)
    GenerationBatch.objects.create(run=generating, status=JobStatus.RUNNING)
    reporting = TrainingRun.objects.create(
        name="rep", status=JobStatus.SUCCEEDED, finished_at=timezone.now()
    )

    for run in (running_run, active, generating, reporting):
        assert 'id="run-delete"' not in staff_client.get(run.get_absolute_url()).content.decode()
        staff_client.post(f"/trainer/{run.pk}/delete/")
        # Nor from the admin, one by one or in bulk.
        admin_delete = reverse("admin:trainer_trainingrun_delete", args=[run.pk])
        assert staff_client.post(admin_delete, {"post": "yes"}).status_code == 403
        staff_client.post(
            reverse("admin:trainer_trainingrun_changelist"),
            {"action": "delete_selected", "_selected_action": [run.pk], "post": "yes"},
        )
        assert TrainingRun.objects.filter(pk=run.pk).exists()
    assert member_client.post(f"/trainer/{active.pk}/delete/").status_code == 403
    ended = TrainingRun.objects.create(name="old", status=JobStatus.SUCCEEDED)
    staff_client.post(reverse("admin:trainer_trainingrun_delete", args=[ended.pk]), {"post": "yes"})
    assert not TrainingRun.objects.filter(pk=ended.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_survives_a_database_error(monkeypatch):
    """A dropped connection: the thread logs it, drops the connection and beats again."""
    from django.utils import timezone as real_timezone

    class FlakyClock:
        calls = 0

        @classmethod
        def now(cls):
            cls.calls += 1
            if cls.calls == 1:
                raise services.connections["default"].Database.InterfaceError("connection lost")
            return real_timezone.now()

    monkeypatch.setattr(services, "HEARTBEAT_EVERY", timedelta(seconds=0.05))
    monkeypatch.setattr(services, "timezone", FlakyClock)
    run = running(tiny_run(), silent_for=timedelta(minutes=4))

    with services._Heartbeat(run.pk):
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and FlakyClock.calls < 3:
            time.sleep(0.05)

    run.refresh_from_db()
    assert FlakyClock.calls >= 3
    assert real_timezone.now() - run.heartbeat_at < timedelta(seconds=30)
