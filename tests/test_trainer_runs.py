"""Staff start, watch, cancel, activate and retrain fine-tuning runs; a tiny model really trains."""

from __future__ import annotations

import json
import random
import shutil
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import Client
from django.utils import timezone

from ingest.models import Conversation, Identity, Message, Speaker
from joe_site.jobs import JobStatus
from trainer import services
from trainer.models import RetrainReason, TrainingRun

T0 = datetime(2024, 1, 1, tzinfo=UTC)
# A tiny GPT-2 learns the group's habits in ten steps on CPU.
TINY_HP = {
    "max_steps": 10,
    "batch_size": 2,
    "grad_accum": 2,
    "lr": 3e-3,
    "warmup_steps": 2,
    "window_len": 32,
    "eval_every": 5,
    "val_fraction": 0.15,
}
HABITS = {
    "Alice": ["pho tonight?", "pho?"],
    "Bob": ["always", "yes"],
    "Carol": ["ramen instead", "ramen!"],
}


def make_corpus(names: tuple[str, ...] = ("Alice", "Bob"), sessions: int = 24) -> dict:
    """A friend group with very predictable habits, imported the way an export would be."""
    rng = random.Random(0)
    conv = Conversation.objects.create(source_kind="slack", external_id="C1", title="food")
    identities = {}
    for i, name in enumerate(names):
        speaker = Speaker.objects.create(display_name=name, slug=name.lower())
        identities[name] = Identity.objects.create(
            source_kind="slack", external_id=f"U{i}", display_name=name, speaker=speaker
        )
    messages = []
    for s in range(sessions):
        for i in range(4):
            name = names[i % len(names)]
            messages.append(
                Message(
                    conversation=conv,
                    identity=identities[name],
                    source_kind="slack",
                    external_id=f"{s}-{i}",
                    sent_at=T0 + timedelta(hours=s, minutes=i),
                    text=rng.choice(HABITS[name]),
                )  # fmt: skip
            )
    Message.objects.bulk_create(messages)
    return {name: identity.speaker for name, identity in identities.items()}


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return services.tiny_base_folder(tmp_path_factory.mktemp("base"))


@pytest.fixture
def models_dir(settings, tmp_path: Path, tiny_base: Path) -> Path:
    """A private MODELS_DIR per test, with the tiny base model already built."""
    settings.MODELS_DIR = tmp_path / "models"
    (settings.MODELS_DIR / "base").mkdir(parents=True)
    shutil.copytree(tiny_base, settings.MODELS_DIR / "base" / "tiny-gpt2")
    return settings.MODELS_DIR


@pytest.fixture
def queued(monkeypatch) -> list[int]:
    """Run ids handed to the GPU queue (nothing is sent to a broker)."""
    from trainer.tasks import train_run

    sent: list[int] = []

    class Sent:
        id = "task-id"

    def delay(run_id: int) -> Sent:
        sent.append(run_id)
        return Sent()

    monkeypatch.setattr(train_run, "delay", delay)
    return sent


def tiny_run(**hyperparameters) -> TrainingRun:
    return services.new_run(
        name="tiny", base_model="tiny", hyperparameters=TINY_HP | hyperparameters
    )


def flat(history: list[dict]) -> list:
    """Loss history as one flat list of numbers for pytest.approx (no loss yet: -1)."""
    keys = ("step", "train_loss", "val_loss")
    return [-1.0 if h[key] is None else h[key] for h in history for key in keys]


def flagged(run: TrainingRun, *texts: str) -> TrainingRun:
    """The run, with these reasons to retrain (of no kind the site gives: written by hand)."""
    RetrainReason.objects.bulk_create(
        RetrainReason(run=run, kind=RetrainReason.Kind.OTHER, text=text) for text in texts
    )
    return run


def reasons(run: TrainingRun) -> list[str]:
    """Why the run needs a retrain, first given first."""
    return list(RetrainReason.objects.filter(run_id=run.pk).values_list("text", flat=True))


def finished_run(name: str, **fields) -> TrainingRun:
    return TrainingRun.objects.create(
        name=name, status=JobStatus.SUCCEEDED, checkpoint_dir=f"/models/runs/{name}", **fields
    )


FORM = {
    "name": "first try",
    "base_model": "tiny",
    "max_steps": 40,
    "batch_size": 4,
    "grad_accum": 2,
    "lr": 0.001,
    "schedule": "linear",
    "warmup_steps": 5,
    "window_len": 64,
    "seed": 7,
    "redact": "on",
    "redact_emails": "on",
    "redact_urls": "on",
    "redact_words": "Springfield, Evergreen Terrace\nMoe",
}


# --- starting runs -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_staff_start_a_run_from_the_form(
    staff_client, staff, queued, django_capture_on_commit_callbacks
):
    page = staff_client.get("/trainer/").content.decode()
    assert 'value="smollm2-135m" selected' in page and 'name="max_steps"' in page
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post("/trainer/", FORM)
    run = TrainingRun.objects.get()
    assert response.status_code == 302 and response["Location"] == run.get_absolute_url()
    assert (run.name, run.base_model, run.status, run.created_by) == (
        "first try", "tiny", JobStatus.QUEUED, staff
    )  # fmt: skip
    hp = run.hyperparameters
    assert (hp["max_steps"], hp["batch_size"], hp["grad_accum"], hp["lr"]) == (40, 4, 2, 0.001)
    assert (hp["schedule"], hp["window_len"], hp["seed"], hp["eval_every"]) == ("linear", 64, 7, 2)
    assert hp["redaction"] == {
        "enabled": True, "emails": True, "phones": False, "urls": True,
        "words": ["Springfield", "Evergreen Terrace", "Moe"],
    }  # fmt: skip
    assert queued == [run.pk] and run.__class__.objects.get().celery_task_id == "task-id"
    page = staff_client.get(run.get_absolute_url()).content.decode()
    assert "Waiting for a GPU worker" in page and "3 word(s)" in page and "Springfield" not in page


@pytest.mark.django_db
def test_warm_up_must_end_before_the_run(staff_client, queued):
    response = staff_client.post("/trainer/", FORM | {"max_steps": 40, "warmup_steps": 500})
    assert "Warm-up must end before the run does (under 40 steps)" in response.content.decode()
    assert not TrainingRun.objects.exists() and queued == []


@pytest.mark.django_db
def test_other_base_model_must_be_named(staff_client, queued):
    response = staff_client.post("/trainer/", FORM | {"base_model": "other"})
    assert "Type a Hugging Face model id or a folder path." in response.content.decode()
    assert not TrainingRun.objects.exists()
    staff_client.post("/trainer/", FORM | {"base_model": "other", "base_model_other": "gpt2"})
    assert TrainingRun.objects.get().base_model == "gpt2"


@pytest.mark.django_db
def test_members_cannot_see_or_start_training(member_client, queued):
    assert member_client.get("/trainer/").status_code == 403
    assert member_client.post("/trainer/", FORM).status_code == 403
    run = finished_run("r1")
    assert member_client.get(run.get_absolute_url()).status_code == 403
    assert member_client.post(f"/trainer/{run.pk}/make-active/").status_code == 403
    assert not TrainingRun.objects.filter(is_active=True).exists() and queued == []


@pytest.mark.django_db
def test_runs_list_is_a_fixed_number_of_queries(staff_client, staff, django_assert_max_num_queries):
    for i in range(5):
        finished_run(f"r{i}", created_by=staff, final_val_loss=2.0 + i)
    with django_assert_max_num_queries(8):
        page = staff_client.get("/trainer/").content.decode()
    assert page.count('data-testid="run-row"') == 5


# --- training for real ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_tiny_run_learns_and_leaves_a_checkpoint(models_dir):
    speakers = make_corpus()
    run = services.execute_run(tiny_run().pk, worker_host="box")

    assert run.status == JobStatus.SUCCEEDED, run.error
    assert (run.progress_done, run.progress_total, run.worker_host, run.device) == (
        10, 10, "box", "cpu"
    )  # fmt: skip
    assert [h["step"] for h in run.loss_history] == [0, 5, 10]
    first, last = run.loss_history[0]["val_loss"], run.loss_history[-1]["val_loss"]
    assert last < first - 2.0
    assert run.final_val_loss == last and run.perplexity == pytest.approx(2.718281828**last)
    assert run.tokens_per_second > 0 and run.started_at and run.finished_at
    assert run.checkpoint_dir == str(models_dir / "runs" / str(run.pk) / "checkpoint")
    assert (Path(run.checkpoint_dir) / "model.safetensors").is_file()
    assert sorted(run.speaker_ids) == sorted(s.pk for s in speakers.values())
    summary = run.dataset_summary
    assert set(summary["speakers"]) == {"alice", "bob"} and summary["train"]["windows"] > 0
    assert summary["val"]["windows"] > 0 and summary["names"]["alice"] == "Alice"

    # A duplicate delivery of the same task changes nothing.
    again = services.execute_run(run.pk, worker_host="other")
    assert (again.finished_at, again.loss_history, again.worker_host) == (
        run.finished_at, run.loss_history, "box"
    )  # fmt: skip


@pytest.mark.django_db
def test_opted_out_speaker_is_not_in_the_data(models_dir):
    speakers = make_corpus(("Alice", "Bob", "Carol"))
    Speaker.objects.filter(pk=speakers["Carol"].pk).update(opted_out=True)
    run = services.execute_run(tiny_run(max_steps=2).pk)

    assert run.status == JobStatus.SUCCEEDED, run.error
    assert speakers["Carol"].pk not in run.speaker_ids and len(run.speaker_ids) == 2
    assert set(run.dataset_summary["speakers"]) == {"alice", "bob"}
    trained_format = json.loads((Path(run.checkpoint_dir) / "joe_format.json").read_text())
    assert set(trained_format["speakers"]) == {"alice", "bob"}


@pytest.mark.django_db
def test_run_without_a_corpus_explains_what_to_do(models_dir):
    run = services.execute_run(tiny_run().pk)
    assert run.status == JobStatus.FAILED and run.finished_at
    assert run.error == (
        "No trainable messages: upload an export and map its people to speakers first."
    )


@pytest.mark.django_db
def test_missing_base_model_is_reported(models_dir, tmp_path):
    make_corpus()
    run = services.new_run(name="x", base_model=str(tmp_path / "nope"), hyperparameters=TINY_HP)
    run = services.execute_run(run.pk)
    assert run.status == JobStatus.FAILED
    assert run.error.startswith(f"Could not load the base model “{tmp_path / 'nope'}”")


@pytest.mark.django_db
def test_cancel_stops_the_run_and_keeps_its_checkpoint(models_dir, monkeypatch):
    make_corpus()
    monkeypatch.setattr(services, "CANCEL_CHECK_EVERY_S", 0)
    run = tiny_run(max_steps=200, checkpoint_every_steps=3, eval_every=0)

    def click_cancel_after_first_checkpoint(progress) -> None:
        if progress.event == "checkpoint":
            TrainingRun.objects.get(pk=run.pk).request_cancel()

    run = services.execute_run(run.pk, on_progress=click_cancel_after_first_checkpoint)
    assert run.status == JobStatus.CANCELLED and run.finished_at
    assert run.checkpoint_step == 3 and run.progress_done == 3
    assert (Path(run.checkpoint_dir) / "model.safetensors").is_file()
    assert "the checkpoint from step 3 is kept" in run.progress_note
    assert run.final_val_loss is None and not run.can_be_made_active


@pytest.mark.django_db
def test_cancelling_a_queued_run_means_it_never_starts(staff_client, models_dir):
    make_corpus()
    run = tiny_run()
    response = staff_client.post(f"/trainer/{run.pk}/cancel/", follow=True)
    page = response.content.decode()
    assert "Cancelled before it started." in page  # the toast and the run's note
    assert "Waiting for a GPU worker" not in page and "keeps its last checkpoint" not in page
    run = services.execute_run(run.pk)
    assert run.status == JobStatus.CANCELLED and run.started_at is None
    assert not run.run_dir.exists()


@pytest.mark.django_db
def test_cancelling_a_run_queued_to_resume_keeps_what_it_did(staff_client):
    run = tiny_run()
    TrainingRun.objects.filter(pk=run.pk).update(started_at=timezone.now(), progress_done=4)

    page = staff_client.post(f"/trainer/{run.pk}/cancel/", follow=True).content.decode()

    run.refresh_from_db()
    assert run.status == JobStatus.CANCELLED and run.progress_done == 4
    assert run.progress_note == "Cancelled while it waited to go on; what it had done stays."
    assert "Cancelled before it started." not in page


@pytest.mark.slow
@pytest.mark.django_db
def test_interrupted_run_resumes_from_its_checkpoint(models_dir):
    """The in-process version of the worker test: the checkpoint carries on, not step 0."""
    make_corpus()
    hp = {"max_steps": 6, "checkpoint_every_steps": 3, "eval_every": 3}
    reference = services.execute_run(tiny_run(**hp).pk)

    class WorkerKilled(BaseException):
        pass

    def die_after_first_checkpoint(progress) -> None:
        if progress.event == "checkpoint":
            raise WorkerKilled

    run = tiny_run(**hp)
    with pytest.raises(WorkerKilled):
        services.execute_run(run.pk, worker_host="box", on_progress=die_after_first_checkpoint)
    assert TrainingRun.objects.get(pk=run.pk).status == JobStatus.RUNNING
    assert services.requeue_lost_runs(worker_host="box") == [run.pk]
    run = services.execute_run(run.pk, worker_host="box")

    assert run.status == JobStatus.SUCCEEDED and run.resumed_from_step == 3
    assert flat(run.loss_history) == pytest.approx(flat(reference.loss_history))
    # One loss counted; none pending now that it got to the end (test_trainer_lost_workers).
    assert (run.worker_losses, run.worker_losses_total) == (0, 1)
    # A finished run never resumes: its optimizer state is not kept beside the weights.
    assert not (Path(run.checkpoint_dir) / "trainer_state.pt").exists()
    assert (Path(run.checkpoint_dir) / "model.safetensors").is_file()


@pytest.mark.django_db
def test_a_live_worker_keeps_its_run(models_dir):
    make_corpus()
    run = tiny_run()
    services.requeue_lost_runs(worker_host="other")  # nothing of ours
    TrainingRun.objects.filter(pk=run.pk).update(
        status=JobStatus.RUNNING, worker_host="celery@gpu1", heartbeat_at=datetime.now(UTC)
    )
    with pytest.raises(services.RunBusy):  # the task tries again later (test_trainer_lost_workers)
        services.execute_run(run.pk, worker_host="celery@gpu2")
    again = TrainingRun.objects.get(pk=run.pk)
    assert again.status == JobStatus.RUNNING and again.worker_host == "celery@gpu1"


@pytest.mark.django_db
def test_worker_restart_requeues_the_runs_it_was_training(
    queued, django_capture_on_commit_callbacks
):
    lost = TrainingRun.objects.create(
        name="lost", status=JobStatus.RUNNING, worker_host="celery@gpu1", progress_done=40
    )
    elsewhere = TrainingRun.objects.create(
        name="elsewhere", status=JobStatus.RUNNING, worker_host="celery@gpu2"
    )
    from trainer.tasks import resume_runs_this_worker_left

    class Consumer:
        hostname = "celery@gpu1"

    with django_capture_on_commit_callbacks(execute=True):
        resume_runs_this_worker_left(sender=Consumer())
    lost.refresh_from_db()
    assert lost.status == JobStatus.QUEUED and "stopped at step 40" in lost.progress_note
    assert queued == [lost.pk]
    assert TrainingRun.objects.get(pk=elsewhere.pk).status == JobStatus.RUNNING


@pytest.mark.django_db
def test_manage_py_train_runs_in_the_terminal(models_dir, capsys):
    make_corpus()
    call_command("train", "--base", "tiny", "--max-steps", "3", "--batch-size", "2",
                 "--name", "from the shell", "--make-active")  # fmt: skip
    run = TrainingRun.objects.get()
    assert run.name == "from the shell" and run.status == JobStatus.SUCCEEDED
    assert run.is_active and run.created_by is None
    assert "now the active model" in capsys.readouterr().out


@pytest.mark.django_db
def test_manage_py_train_reports_the_error(models_dir):
    with pytest.raises(CommandError, match="No trainable messages"):
        call_command("train", "--base", "tiny", "--max-steps", "3")


# --- the run page --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_run_page_shows_progress_plot_data_and_report(staff_client):
    run = TrainingRun.objects.create(
        name="watch me",
        status=JobStatus.RUNNING,
        progress_done=30,
        progress_total=120,
        tokens_per_second=1234.5,
        eta_seconds=95,
        worker_host="celery@gpu1",
        heartbeat_at=timezone.now(),
        device="NVIDIA H100",
        resumed_from_step=20,
        hyperparameters=services.resolved_hyperparameters({}),
        loss_history=[
            {"step": 0, "train_loss": None, "val_loss": 4.0},
            {"step": 25, "train_loss": 3.1, "val_loss": 3.3},
        ],
        dataset_summary={
            "speakers": {"alice": {"messages": 12, "tokens": 340}},
            "names": {"alice": "Alice <3"},
            "train": {"sessions": 3, "messages": 10, "windows": 4, "tokens": 300},
            "val": {"sessions": 1, "messages": 2, "windows": 1, "tokens": 40},
            "redactions": {"emails": 2},
            "dropped": {"too_long_skipped": 1},
        },
        report={
            "perplexity": [
                {
                    "speaker": "__all__",
                    "name": "Everyone",
                    "fine_tuned": 12.3,
                    "base_model": 80.0,
                    "unigram": 200.0,
                },
                {
                    "speaker": "alice",
                    "name": "<b>Alice</b>",
                    "fine_tuned": 11.0,
                    "base_model": 70.0,
                    "unigram": 150.0,
                },
            ],
            "fidelity": {"accuracy": 0.75, "chance": 0.5, "generated": 8, "real_accuracy": 0.9},
            "leaks": {"snippets": 10, "leaks": 1, "threshold": 8, "rate": 0.1},
        },  # fmt: skip
    )
    page = staff_client.get(run.get_absolute_url()).content.decode()
    assert 'style="width: 25%"' in page and "30 / 120" in page and "1 min 35 s" in page
    assert "1235" in page and "celery@gpu1 on NVIDIA H100" in page
    assert "Resumed from step 20" in page
    assert "<svg" in page and "<polyline" in page
    assert "Alice &lt;3" in page and "340" in page and "2 email addresses redacted" in page
    assert "1 message left out (too long skipped)" in page
    assert "<td>12.3</td>" in page and "&lt;b&gt;Alice&lt;/b&gt;" in page
    assert "<strong>75%</strong>" in page and "chance: 50%" in page
    assert "<strong>1</strong> of 10 snippets" in page
    assert 'hx-trigger="every 2s"' in page and "Cancel run" in page


@pytest.mark.django_db
def test_progress_polling_stops_when_the_run_ends(staff_client):
    run = TrainingRun.objects.create(name="r", status=JobStatus.RUNNING, progress_total=10)
    live = staff_client.get(run.get_absolute_url(), headers={"HX-Request": "true"})
    assert live.status_code == 200 and 'hx-trigger="every 2s"' in live.content.decode()
    assert "<h1>" not in live.content.decode()  # only the live panel
    TrainingRun.objects.filter(pk=run.pk).update(
        status=JobStatus.SUCCEEDED, progress_done=10, final_val_loss=1.5, checkpoint_dir="/x"
    )
    done = staff_client.get(run.get_absolute_url(), headers={"HX-Request": "true"})
    body = done.content.decode()
    assert done.status_code == 286 and "hx-trigger" not in body
    assert 'data-testid="final-val-loss">1.500' in body and "Make this the active model" in body


@pytest.mark.django_db
def test_error_shows_on_the_run_page(staff_client):
    run = TrainingRun.objects.create(name="r", status=JobStatus.FAILED, error="No <trainable>.")
    page = staff_client.get(run.get_absolute_url()).content.decode()
    assert '<div class="error-box" role="alert">No &lt;trainable&gt;.</div>' in page


@pytest.mark.django_db
def test_staff_cancel_with_htmx_gets_the_panel_back(staff_client):
    run = TrainingRun.objects.create(
        name="r", status=JobStatus.RUNNING, heartbeat_at=datetime.now(UTC)
    )
    response = staff_client.post(f"/trainer/{run.pk}/cancel/", headers={"HX-Request": "true"})
    assert response.status_code == 200 and "Cancelling…" in response.content.decode()
    assert "toast" in response["HX-Trigger"]
    assert TrainingRun.objects.get(pk=run.pk).cancel_requested


@pytest.mark.django_db
def test_cancelling_a_run_whose_worker_vanished_ends_it_at_once(staff_client):
    run = TrainingRun.objects.create(
        name="r", status=JobStatus.RUNNING, heartbeat_at=datetime.now(UTC) - timedelta(hours=3)
    )
    staff_client.post(f"/trainer/{run.pk}/cancel/")
    run.refresh_from_db()
    assert run.status == JobStatus.CANCELLED and "stopped reporting" in run.progress_note


@pytest.mark.django_db
def test_make_active_leaves_exactly_one_active_run(staff_client):
    old = finished_run("old", is_active=True)
    new = finished_run("new")
    response = staff_client.post(f"/trainer/{new.pk}/make-active/")
    assert response.status_code == 302
    assert list(TrainingRun.objects.filter(is_active=True)) == [new]
    response = staff_client.post(f"/trainer/{old.pk}/make-active/", headers={"HX-Request": "true"})
    assert "active model" in response.content.decode() and "toast" in response["HX-Trigger"]
    assert list(TrainingRun.objects.filter(is_active=True)) == [old]


@pytest.mark.django_db
def test_failed_run_cannot_become_active(staff_client):
    run = TrainingRun.objects.create(name="r", status=JobStatus.FAILED)
    response = staff_client.post(f"/trainer/{run.pk}/make-active/", follow=True)
    assert "Only a finished run with a checkpoint" in response.content.decode()
    assert not TrainingRun.objects.filter(is_active=True).exists()


@pytest.mark.django_db
def test_flagged_run_is_retrained_in_one_click(
    staff_client, staff, queued, django_capture_on_commit_callbacks
):
    hp = services.resolved_hyperparameters({"max_steps": 77, "seed": 3})
    run = flagged(
        finished_run("friends v1", is_active=True, base_model="tiny", hyperparameters=hp),
        "Alice opted out on 2024-05-01.",
    )
    page = staff_client.get(run.get_absolute_url()).content.decode()
    assert "Alice opted out on 2024-05-01." in page and "Retrain with the same settings" in page
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(f"/trainer/{run.pk}/retrain/")
    retrained = TrainingRun.objects.exclude(pk=run.pk).get()
    assert response["Location"] == retrained.get_absolute_url()
    assert retrained.name == "friends v1 (retrain)" and retrained.hyperparameters == hp
    assert retrained.base_model == "tiny" and retrained.created_by == staff
    assert retrained.activate_on_success and queued == [retrained.pk]


@pytest.mark.django_db(transaction=True)
def test_two_staff_pressing_retrain_at_the_same_moment_make_one_retrain(
    staff, django_user_model, queued, monkeypatch
):
    """Each person's clicks take turns on their own row, so two people's did not: both found
    no retrain yet, and the run was retrained twice. The second now waits on the run's row."""
    if connection.vendor != "postgresql":
        pytest.skip("row locks: PostgreSQL (SQLite lets one writer in at a time anyway)")
    other = django_user_model.objects.create_user("staff2", password="x", is_staff=True)
    run = flagged(finished_run("friends v1", is_active=True), "Alice opted out.")
    slow_start = services.start_run

    def start_run(**kwargs):
        time.sleep(0.3)  # both clicks have looked for a retrain by now
        return slow_start(**kwargs)

    monkeypatch.setattr(services, "start_run", start_run)
    barrier = threading.Barrier(2)
    pages: list[str] = []

    def click(user) -> None:
        try:
            browser = Client()
            browser.force_login(user)
            barrier.wait()
            pages.append(browser.post(f"/trainer/{run.pk}/retrain/", follow=True).content.decode())
        finally:
            connection.close()

    threads = [threading.Thread(target=click, args=(user,)) for user in (staff, other)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    retrained = TrainingRun.objects.get(retrain_of=run)
    assert retrained.name == "friends v1 (retrain)" and queued == [retrained.pk]
    assert len(pages) == 2
    assert sum("Retraining with the same settings" in page for page in pages) == 1
    assert sum("is already retrained as" in page for page in pages) == 1


@pytest.mark.django_db
def test_retrain_of_the_active_run_takes_over_when_it_succeeds(models_dir, queued):
    make_corpus()
    hp = TINY_HP | {"max_steps": 2}
    old = flagged(
        finished_run("v1", is_active=True, base_model="tiny", hyperparameters=hp),
        "Carol opted out.",
    )
    new = services.retrain(old)
    run = services.execute_run(new.pk)
    assert run.status == JobStatus.SUCCEEDED and run.is_active
    assert not TrainingRun.objects.get(pk=old.pk).is_active


@pytest.mark.django_db
def test_runs_list_refreshes_only_while_something_trains(staff_client):
    running = TrainingRun.objects.create(name="r", status=JobStatus.RUNNING, progress_total=10)
    live = staff_client.get("/trainer/", headers={"HX-Request": "true"})
    assert live.status_code == 200 and 'hx-trigger="every 3s"' in live.content.decode()
    assert "Start a run" not in live.content.decode()  # only the table
    TrainingRun.objects.filter(pk=running.pk).update(status=JobStatus.SUCCEEDED)
    done = staff_client.get("/trainer/", headers={"HX-Request": "true"})
    assert done.status_code == 286 and "hx-trigger" not in done.content.decode()


def test_loss_plot_draws_both_curves_and_nothing_without_data():
    from trainer.loss_plot import loss_plot_svg, nice_ticks

    assert loss_plot_svg([]) == ""
    assert loss_plot_svg([{"step": 0, "train_loss": None, "val_loss": None}]) == ""
    svg = loss_plot_svg(
        [
            {"step": 0, "train_loss": None, "val_loss": 10.8},
            {"step": 50, "train_loss": 6.0, "val_loss": 6.5},
            {"step": 100, "train_loss": 3.2, "val_loss": float("nan")},
        ]
    )
    assert svg.startswith("<svg") and svg.count("<polyline") == 2
    assert svg.count("<circle") == 4  # NaN and missing losses are not drawn
    assert "Validation: 6.5000 at step 50" in svg
    assert nice_ticks(0, 10) == [0, 5, 10] and nice_ticks(0, 60) == [0, 20, 40, 60]


def test_data_notes_count_in_words():
    run = TrainingRun(
        dataset_summary={
            "redactions": {"emails": 1, "phones": 2, "urls": 1},
            "dropped": {"too_long": 1, "empty": 3},
        }
    )
    assert run.data_notes()[:5] == [
        "1 email address redacted",
        "2 phone numbers redacted",
        "1 link redacted",
        "1 message left out (too long)",
        "3 messages left out (empty)",
    ]


def test_data_notes_count_with_thousands_separators():
    """A big corpus's notes read "12345 phone numbers redacted", hard to take in at a glance."""
    run = TrainingRun(
        dataset_summary={
            "redactions": {"phones": 12345},
            "dropped": {"empty": 2000},
            "truncated": 1500,
        }
    )
    assert run.data_notes() == [
        "12,345 phone numbers redacted",
        "2,000 messages left out (empty)",
        "1,500 long messages truncated",
    ]


@pytest.mark.django_db
def test_a_run_no_worker_takes_says_so_and_how_to_start_one(staff_client, monkeypatch):
    """It said "Waiting for a GPU worker" for ever, with no worker running at all."""
    answers = {"up": False}
    cache.delete(services._NO_GPU_WORKER_KEY)
    monkeypatch.setattr(services, "gpu_worker_is_up", lambda: answers["up"])
    run = services.new_run(name="stuck", base_model="tiny", hyperparameters={})

    def note() -> str:
        return staff_client.get(
            run.get_absolute_url(), headers={"HX-Request": "true"}
        ).content.decode()

    assert 'data-testid="queue-note"' not in note()  # just queued: a worker takes it in seconds
    TrainingRun.objects.filter(pk=run.pk).update(created_at=timezone.now() - timedelta(minutes=1))
    said = note()
    assert "No GPU worker is running, so this run cannot start." in said
    assert "celery -A joe_site worker -Q gpu" in said and 'hx-trigger="every 2s"' in said
    # A screen reader hears it once, from the status line the refreshes announce.
    assert 'data-status-announce="stuck: queued, no GPU worker is taking it"' in said
    answers["up"] = True  # a worker started: the page asks again within 15 s
    assert "No GPU worker is running" in note()
    cache.delete(services._NO_GPU_WORKER_KEY)
    assert 'data-testid="queue-note"' not in note()
    answers["up"] = None  # no Redis to ask
    assert "No GPU worker has taken this run yet: none may be running." in note()


@pytest.mark.django_db
def test_a_run_queued_behind_another_says_which(staff_client, monkeypatch):
    monkeypatch.setattr(services, "gpu_worker_is_up", lambda: False)  # a solo pool, busy
    TrainingRun.objects.create(name="first", status=JobStatus.RUNNING, heartbeat_at=timezone.now())
    second = services.new_run(name="second", base_model="tiny", hyperparameters={})
    TrainingRun.objects.filter(pk=second.pk).update(
        created_at=timezone.now() - timedelta(minutes=1)
    )

    page = staff_client.get(second.get_absolute_url()).content.decode()

    assert "It waits for “first”, which the GPU worker is training: one run at a time." in page
    assert "No GPU worker" not in page


@pytest.mark.django_db
def test_the_start_form_says_what_a_run_would_train_on(staff_client):
    """It said "every message of every speaker who has not opted out", with no numbers, while
    excluded identities and bots are left out too."""
    make_corpus(("Alice", "Bob", "Carol"))
    Speaker.objects.filter(display_name="Carol").update(opted_out=True)
    bob = Identity.objects.get(speaker__display_name="Bob")
    Identity.objects.filter(pk=bob.pk).update(is_bot=True)
    alice_messages = Message.objects.filter(identity__speaker__display_name="Alice").count()

    page = staff_client.get("/trainer/").content.decode()

    said = f"Trains on <strong>{alice_messages}</strong> messages from <strong>1</strong> speaker"
    assert said in page
    assert "excluded identities, bots" in page


@pytest.mark.django_db
def test_the_data_table_and_report_date_read_as_numbers_and_dates(staff_client):
    """ "12345678" tokens with no separators, and "Computed 2024-01-01T09:30" with a raw T."""
    run = TrainingRun.objects.create(
        name="big", status=JobStatus.SUCCEEDED,
        dataset_summary={
            "speakers": {"alice": {"messages": 52314, "tokens": 1234567}},
            "names": {"alice": "Alice"},
            "train": {"sessions": 1200, "messages": 50000, "windows": 9000, "tokens": 12345678},
            "val": {"sessions": 130, "messages": 2314, "windows": 900, "tokens": 123456},
        },
        report={"computed_at": "2024-01-01T09:30:12.5+00:00", "perplexity": []},
    )  # fmt: skip

    page = staff_client.get(run.get_absolute_url()).content.decode()

    for number in ("52,314", "1,234,567", "1,200", "50,000", "12,345,678", "2,314", "123,456"):
        assert f"<td>{number}</td>" in page
    assert "Computed 2024-01-01 09:30 UTC." in page
