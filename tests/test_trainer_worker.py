"""Runs on real Celery workers over Redis: a run trains, and a killed worker's run resumes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from joe_site.jobs import JobStatus
from tests.test_trainer_runs import (  # noqa: F401 - fixtures
    TINY_HP,
    flat,
    make_corpus,
    models_dir,
    tiny_base,
)
from trainer import services
from trainer.models import TrainingRun

ROOT = Path(__file__).resolve().parents[1]


def wait_for_run(pk: int, predicate, timeout: float, what: str) -> TrainingRun:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = TrainingRun.objects.get(pk=pk)
        if predicate(run):
            return run
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}: {run.status} {run.progress_note} {run.error}")


def clear_broker(redis_url: str) -> None:
    """Drop messages earlier tests left in this Redis database (queued or unacknowledged)."""
    import redis

    redis.Redis.from_url(redis_url).delete("gpu", "default", "unacked", "unacked_index")


def database_url() -> str:
    db = django_settings.DATABASES["default"]
    return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.mark.django_db(transaction=True)
def test_worker_on_redis_trains_a_run(redis_url, models_dir, celery_worker_on_redis):  # noqa: F811
    make_corpus()
    run = services.start_run(
        name="on redis", base_model="tiny", hyperparameters=TINY_HP | {"max_steps": 3},
        created_by=None,
    )  # fmt: skip
    run = wait_for_run(run.pk, lambda r: not r.in_progress, 180, "the run to finish")
    assert run.status == JobStatus.SUCCEEDED, run.error
    assert run.celery_task_id and run.worker_host and run.device == "cpu"
    assert run.progress_done == 3 and run.final_val_loss is not None


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_killed_worker_resumes_from_its_last_checkpoint(redis_url, models_dir, tmp_path):  # noqa: F811
    if django_settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        pytest.skip("the worker processes need the test database on a server")
    make_corpus()
    clear_broker(redis_url)
    hp = TINY_HP | {"max_steps": 24, "grad_accum": 1, "checkpoint_every_steps": 4, "eval_every": 4}
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "REDIS_URL": redis_url,
        "JOE_DATA_DIR": str(models_dir.parent),  # so the worker's MODELS_DIR is models_dir
        "DEBUG": "1",
    }
    workers: list[subprocess.Popen] = []

    def start_worker(log_name: str) -> subprocess.Popen:
        log = (tmp_path / log_name).open("wb")
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "joe_site", "worker", "-P", "solo",
             "-Q", "gpu", "--loglevel", "INFO"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        workers.append(worker)
        return worker

    try:
        run = services.start_run(
            name="killed", base_model="tiny", hyperparameters=hp, created_by=None
        )
        first = start_worker("worker1.log")
        at_kill = wait_for_run(
            run.pk, lambda r: r.checkpoint_step is not None, 240, "the first checkpoint"
        )
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
        at_kill = TrainingRun.objects.get(pk=run.pk)
        assert at_kill.status == JobStatus.RUNNING and at_kill.progress_done < 24, (
            "the run finished before the worker was killed; make it longer"
        )

        start_worker("worker2.log")
        run = wait_for_run(run.pk, lambda r: not r.in_progress, 300, "the resumed run")
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.terminate()
                worker.wait(timeout=60)
        clear_broker(redis_url)
    logs = "".join((tmp_path / f"worker{i}.log").read_text() for i in (1, 2))
    assert run.status == JobStatus.SUCCEEDED, run.error + logs[-3000:]
    assert run.resumed_from_step is not None, logs[-3000:]
    assert at_kill.checkpoint_step <= run.resumed_from_step < 24
    assert run.resumed_from_step % 4 == 0 and run.progress_done == 24
    assert "interrupted" in logs and "Traceback" not in logs, logs[-3000:]

    # The same run without the kill, in this process: the resumed one learned exactly the same.
    reference = services.execute_run(
        services.new_run(name="reference", base_model="tiny", hyperparameters=hp).pk
    )
    assert [h["step"] for h in run.loss_history] == [0, 4, 8, 12, 16, 20, 24]
    assert flat(run.loss_history) == pytest.approx(flat(reference.loss_history), rel=1e-5)
