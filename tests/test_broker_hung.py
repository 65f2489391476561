"""A Redis that hangs (takes connections, never answers) held every Celery send for ever, and the
page that sent with it; the broker's socket timeouts make a send fail in seconds, and its job
then waits saying the queue did not answer (tests/test_jobs_lost_messages.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.test_cache_breaker import HungRedis

ROOT = Path(__file__).resolve().parents[1]

SEND = """
import time, django
django.setup()
from kombu.exceptions import OperationalError
from joe_site.celery import app
started = time.monotonic()
try:
    app.send_task("ingest.probe_job", args=[1], queue="default")
except OperationalError:
    print(f"refused after {time.monotonic() - started:.1f} s")
"""


def test_a_send_to_a_hung_redis_fails_within_the_socket_timeout():
    redis = HungRedis()
    try:
        env = {**os.environ, "REDIS_URL": redis.url, "JOE_BROKER_SOCKET_TIMEOUT": "1",
               "DJANGO_SETTINGS_MODULE": "joe_site.settings", "DEBUG": "1"}  # fmt: skip
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-c", SEND], cwd=ROOT, env=env, capture_output=True, text=True,
            timeout=60,
        )  # fmt: skip
        took = time.monotonic() - started
    finally:
        redis.close()
    assert "refused after" in done.stdout, done.stdout + done.stderr
    assert float(done.stdout.split()[2]) < 10  # one second a try, a few tries at most
    assert took < 40
    assert redis.asked >= 1  # it did ask the hung one
