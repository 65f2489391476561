"""Whether a Celery worker listens on a queue: pages of jobs that wait for one ask it."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.cache import cache

from joe_site import cache as redis_health

_WORKER_SEEN_KEY = "generations:gpu-worker-seen"
logger = logging.getLogger(__name__)

# For staff: how to start the worker that training and generation wait for.
START_GPU_WORKER = (
    "Start one on the machine with the GPU: “.venv/bin/celery -A joe_site worker -Q gpu -c 1 "
    "-n gpu@%h”, or “docker compose up -d worker-gpu”."
)


def broker_redis() -> str:
    """Celery's broker's URL when it is a Redis ("" otherwise): the key under which
    joe_site.cache remembers that it failed a moment ago (REDIS_URL, the cache's too)."""
    from joe_site.celery import app

    url = str(app.conf.broker_url or "")
    return url if url.startswith(("redis://", "rediss://", "unix://")) else ""


def gpu_worker_is_up() -> bool | None:
    """Whether a worker listening on the `gpu` queue answers (Redis only; None where the
    embedded broker cannot broadcast, or the broker does not answer: then nobody can tell, and a
    job sent meanwhile says the queue did not answer). A yes is remembered for a minute: asking
    takes a second. Not asked while Redis failed a moment ago (joe_site.cache.failed_lately)."""
    if not settings.REDIS_URL:
        return None
    if cache.get(_WORKER_SEEN_KEY):
        return True
    from kombu.exceptions import KombuError

    from joe_site.celery import app

    redis = broker_redis()
    if redis_health.failed_lately(redis):
        return None
    # A Redis that hangs (stopped, swapping) answers nothing: wait 2 s for it at most, once.
    waits = {"socket_timeout": 2, "socket_connect_timeout": 2, "max_retries": 0}
    try:
        with app.connection_for_write(transport_options=waits) as connection:
            inspect = app.control.inspect(timeout=1.0, connection=connection)
            replies = inspect.active_queues() or {}
    except (KombuError, OSError) as error:  # Redis down or hung: kombu's OperationalError
        return _could_not_ask(redis, error)
    except Exception as error:  # redis-py's own errors are not OSErrors
        if not type(error).__module__.startswith("redis"):
            raise
        return _could_not_ask(redis, error)
    redis_health.note_answered(redis)
    up = any(q.get("name") == "gpu" for queues in replies.values() for q in queues or [])
    if up:
        cache.set(_WORKER_SEEN_KEY, True, 60)
    return up


def _could_not_ask(redis: str, error: Exception) -> None:
    logger.info("Could not ask the task queue whether a GPU worker is up: %s", error)
    redis_health.note_failed(redis, error)
