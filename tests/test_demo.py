"""The README's demo: the quick variant end to end on a real worker (real chat messages → ingest →
training → a first batch; re-running it reuses everything), what load_demo reuses, and bin/demo."""

from __future__ import annotations

import fcntl
import hashlib
import io
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from generations.models import GenerationBatch, Snippet, SnippetStatus
from ingest.models import Conversation, Export, Identity, Message, Speaker
from joe_site.jobs import JobStatus
from joe_site.management.commands import load_demo
from tests.test_ingest_support import use_tmp_upload_dir
from tests.test_trainer_runs import models_dir, tiny_base  # noqa: F401 - fixtures
from trainer.models import TrainingRun
from trainer.services import resolved_hyperparameters

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_quick_demo_fills_the_gallery_and_reruns_reuse_it(
    settings,
    tmp_path,
    staff,
    models_dir,  # noqa: F811
    celery_worker_on_redis,
    capsys,
):
    settings.DATA_DIR = tmp_path / "data"
    use_tmp_upload_dir(settings, tmp_path)
    call_command("load_demo", "--quick", "--timeout", "600")
    out = capsys.readouterr().out
    assert f"Demo ready: {Snippet.objects.visible().count()} snippets in the gallery." in out, out

    export = Export.objects.get()
    assert export.status == "succeeded" and export.kind == "slack"
    assert set(Speaker.objects.values_list("display_name", flat=True)) == {
        "Alice", "Bob", "Chloé", "Dev",
    }  # fmt: skip
    run = TrainingRun.objects.get()
    assert run.is_active and run.status == "succeeded"
    assert Snippet.objects.visible().exists()
    counts = (Message.objects.count(), TrainingRun.objects.count(), GenerationBatch.objects.count())

    hidden = Snippet.objects.visible().first()
    Snippet.objects.filter(pk=hidden.pk).update(status=SnippetStatus.HIDDEN)
    call_command("load_demo", "--quick", "--timeout", "600")
    out = capsys.readouterr().out  # the gallery's count, less the hidden one (not the batch's)
    assert f"Demo ready: {Snippet.objects.visible().count()} snippets in the gallery." in out, out
    assert (Message.objects.count(), TrainingRun.objects.count()) == counts[:2]
    assert GenerationBatch.objects.count() == counts[2]
    assert Export.objects.count() == 1


@pytest.mark.django_db
def test_full_demo_after_the_quick_one_trains_its_own_model(monkeypatch, staff):
    finished = {"status": JobStatus.SUCCEEDED, "checkpoint_dir": "models/demo"}
    tiny = TrainingRun.objects.create(name="Demo (tiny)", base_model="tiny", **finished)
    started = []

    def start_run(**fields):  # a worker that finishes at once
        started.append(fields["base_model"])
        return TrainingRun.objects.create(
            name=fields["name"], base_model=fields["base_model"], **finished
        )

    monkeypatch.setattr(load_demo, "start_run", start_run)
    command = load_demo.Command()
    command.timeout = 1

    full = command.train(load_demo.FULL, staff, retrain=False)
    assert full.base_model == "smollm2-135m" and started == ["smollm2-135m"]
    assert command.train(load_demo.QUICK, staff, retrain=False) == tiny
    assert command.train(load_demo.FULL, staff, retrain=False) == full
    assert started == ["smollm2-135m"]


@pytest.mark.django_db
def test_the_demo_model_made_active_is_not_replaced_by_a_run_still_training(staff):
    """As with the Make active button: a run queued with `train --make-active` before the demo
    made its model active took the demo's place when it finished."""
    demo = TrainingRun.objects.create(
        name="Demo (tiny)", status=JobStatus.SUCCEEDED, checkpoint_dir="models/demo"
    )
    queued = TrainingRun.objects.create(
        name="overnight", status=JobStatus.QUEUED, activate_on_success=True
    )
    out = io.StringIO()
    command = load_demo.Command(stdout=out)
    command.timeout = 1

    assert command.train(load_demo.QUICK, staff, retrain=False) == demo

    assert TrainingRun.active() == demo
    assert not TrainingRun.objects.get(pk=queued.pk).activate_on_success
    assert "“overnight”, still training, will not take the demo model's place" in out.getvalue()


@pytest.mark.parametrize("plan", [load_demo.QUICK, load_demo.FULL], ids=["quick", "full"])
def test_demo_spends_its_time_training_not_evaluating(plan):
    """Each evaluation reads the held-out set: together they read fewer tokens than training."""
    hp = resolved_hyperparameters(plan["hyperparameters"])
    evaluations = hp["max_steps"] // hp["eval_every"] + 1  # and the base model's, first
    trained = hp["max_steps"] * hp["batch_size"] * hp["window_len"]
    assert evaluations * hp["val_max_tokens"] < trained


@pytest.mark.django_db
def test_rerun_says_where_to_watch_the_run_it_waits_for(monkeypatch, staff):
    """A run left by a demo stopped with Ctrl-C resumes: the terminal points at its page."""
    run = TrainingRun.objects.create(
        name="Demo (tiny)", base_model="tiny", status=JobStatus.RUNNING
    )

    def worker_finishes(seconds):
        TrainingRun.objects.filter(pk=run.pk).update(
            status=JobStatus.SUCCEEDED, checkpoint_dir="models/demo"
        )

    monkeypatch.setattr(load_demo.time, "sleep", worker_finishes)
    out = io.StringIO()
    command = load_demo.Command(stdout=out)
    command.timeout = 5

    assert command.train(load_demo.QUICK, staff, retrain=False) == run
    assert f"Training Demo (tiny) (watch it on /trainer/{run.pk}/)..." in out.getvalue()
    assert TrainingRun.objects.count() == 1


@pytest.mark.django_db
def test_rerun_generates_again_after_the_demo_batch_was_cancelled(monkeypatch, staff):
    run = TrainingRun.objects.create(
        name="Demo (tiny)", status=JobStatus.SUCCEEDED, checkpoint_dir="models/demo"
    )
    GenerationBatch.objects.create(run=run, status=JobStatus.CANCELLED)

    def start_batch(**fields):  # a worker that finishes at once
        return GenerationBatch.objects.create(run=fields["run"], status=JobStatus.SUCCEEDED)

    monkeypatch.setattr(load_demo, "start_batch", start_batch)
    command = load_demo.Command()
    command.timeout = 1

    assert command.generate(load_demo.QUICK, staff, run).status == JobStatus.SUCCEEDED
    assert GenerationBatch.objects.count() == 2


@pytest.mark.django_db
def test_rerun_prints_the_corpus_size_not_what_its_import_added(
    monkeypatch, settings, tmp_path, staff
):
    """bin/demo a second time on the same data folder printed "Corpus: 0 messages": the demo's
    export row was one whose import had found every message already there and added none."""
    settings.DATA_DIR = tmp_path
    demo_zip = tmp_path / "demo" / "chitchat-demo-quick.zip"
    demo_zip.parent.mkdir()
    demo_zip.write_bytes(b"the demo export")
    Export.objects.create(
        original_name="chitchat-demo-quick.zip", kind="slack", status=JobStatus.SUCCEEDED,
        sha256=hashlib.sha256(b"the demo export").hexdigest(), messages_count=0,
        duplicates_count=1234, identities_count=2,
    )  # fmt: skip
    conversation = Conversation.objects.create(source_kind="slack", external_id="C1")
    for name in ["Alice", "Bob"]:
        identity = Identity.objects.create(
            source_kind="slack", external_id=name, speaker=Speaker.create_named(name)
        )
        Message.objects.bulk_create(
            Message(
                conversation=conversation,
                identity=identity,
                source_kind="slack",
                external_id=f"{name}-{i}",
                sent_at=datetime(2024, 1, 1, tzinfo=UTC),
                text="hi",
            )  # fmt: skip
            for i in range(617)
        )
    TrainingRun.objects.create(
        name="Demo (tiny)", status=JobStatus.SUCCEEDED, checkpoint_dir="models/demo",
        final_val_loss=1.0, is_active=True,
    )  # fmt: skip
    monkeypatch.setattr(load_demo.Command, "generate", lambda *args: None)
    out = io.StringIO()

    call_command("load_demo", "--quick", "--timeout", "1", stdout=out)

    assert "Corpus: 1,234 messages from 2 people." in out.getvalue()


@pytest.mark.django_db
def test_screenshots_after_the_demo_alone_say_what_they_need(monkeypatch):
    """bin/demo installs the site without the test tools; the README sends its visitor on to
    `manage.py screenshots`, which takes them with Playwright."""
    TrainingRun.objects.create(name="Demo (tiny)", status=JobStatus.SUCCEEDED)
    monkeypatch.setenv("JOE_ADMIN_PASSWORD", "printed-by-the-demo")
    monkeypatch.setitem(sys.modules, "playwright.sync_api", None)  # not installed
    with pytest.raises(CommandError, match="bin/test installs both"):
        call_command("screenshots")


def demo_on_a_taken_port(data: Path, *args: str) -> subprocess.CompletedProcess:
    """bin/demo on the embedded default with this data folder, told to serve on a port that is
    taken: whatever it does before starting the web server, it goes no further."""
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        env.update(JOE_DATA_DIR=str(data), JOE_BIND=f"127.0.0.1:{taken.getsockname()[1]}")
        return subprocess.run(
            [ROOT / "bin" / "demo", *args],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip


def test_a_second_demo_on_the_same_data_folder_starts_nothing(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    with (data / "demo.lock").open("a") as first_demo:
        fcntl.flock(first_demo, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = demo_on_a_taken_port(data, "--quick")
    assert result.returncode == 1
    assert "a demo is already running on" in result.stderr
    assert not (data / "logs").exists()  # no worker was started


def test_a_fresh_demo_keeps_its_data_folder_to_its_user(tmp_path):
    """The folder holds the chat database, uploads and models: made by bin/demo or by settings,
    it is the user's alone."""
    data = tmp_path / "data"
    result = demo_on_a_taken_port(data, "--quick")  # the web server cannot start: it stops there
    assert "the web server did not start" in result.stderr
    assert data.stat().st_mode & 0o777 == 0o700


def test_demo_help_says_the_options_and_starts_nothing(tmp_path):
    data = tmp_path / "data"
    result = demo_on_a_taken_port(data, "--help")  # were it to start the site, it would stop there
    assert result.returncode == 0, result.stderr
    assert "--quick" in result.stdout and "JOE_BIND" in result.stdout
    assert not data.exists()


def processes_on(data: Path) -> list[int]:
    """The processes started with this data folder (bin/demo's servers)."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"JOE_DATA_DIR={data}".encode() in environ:
            found.append(int(proc.name))
    return found


def lock_is_free(data: Path) -> bool:
    """bin/demo's lock: held until the script and everything it started have exited."""
    with (data / "demo.lock").open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True


@pytest.mark.slow
def test_a_second_ctrl_c_while_the_demo_stops_leaves_nothing_running(tmp_path):
    """The first Ctrl-C gives the servers 10 s; a worker stopped mid-task can hang there, and a
    second Ctrl-C ended the script before it, leaving that worker behind for good."""
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    env.update(JOE_DATA_DIR=str(data), JOE_BIND=f"127.0.0.1:{port}")
    demo = subprocess.Popen(
        [ROOT / "bin" / "demo", "--quick"], cwd=ROOT, env=env, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        for line in demo.stdout:  # the default worker is busy importing from here on
            if line.startswith("Importing"):
                break
        os.killpg(demo.pid, signal.SIGINT)  # Ctrl-C
        time.sleep(2)
        os.killpg(demo.pid, signal.SIGINT)  # and again, while it stops
        demo.wait(timeout=30)
        # Gone with it, not left stopping (or hanging) on their own.
        assert not processes_on(data), "a server of the demo outlived it"
        assert lock_is_free(data)
    finally:
        for pid in processes_on(data):
            os.kill(pid, signal.SIGKILL)
        demo.wait(timeout=30)


@pytest.mark.slow
def test_a_server_that_dies_on_its_own_stops_the_demo_and_says_which(tmp_path):
    """A worker killed (out of memory, say) left the demo waiting for ever on a job nobody ran,
    saying nothing; it stops now, naming the server and its log, and leaves nothing behind."""
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    env.update(JOE_DATA_DIR=str(data), JOE_BIND=f"127.0.0.1:{port}")
    demo = subprocess.Popen(
        [ROOT / "bin" / "demo", "--quick"], cwd=ROOT, env=env, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        for line in demo.stdout:
            if line.startswith("joe is up"):
                break
        gpu_worker = next(
            pid
            for pid in processes_on(data)
            if b"\0-Q\0gpu\0" in Path(f"/proc/{pid}/cmdline").read_bytes()
            and Path(f"/proc/{pid}/stat").read_text().split()[3] == str(demo.pid)  # not its pool
        )
        os.kill(gpu_worker, signal.SIGKILL)
        output = demo.communicate(timeout=60)[0]
        assert demo.returncode == 1
        assert f"the gpu worker (its log: {data}/logs/worker-gpu.log) stopped on its own" in output
        assert "bin/demo again carries on where it was" in output
        assert not processes_on(data), "a server of the demo outlived it"
        assert lock_is_free(data)
    finally:
        for pid in processes_on(data):
            os.kill(pid, signal.SIGKILL)
        demo.wait(timeout=30)
