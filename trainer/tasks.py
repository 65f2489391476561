"""The GPU worker's training task, and the worker start-up hook that resumes interrupted runs."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task
from celery.signals import worker_ready, worker_shutting_down

from joe_site.jobs import restarted_worker
from joe_site.lost_messages import LostMessages
from trainer import services
from trainer.models import TrainingRun

logger = logging.getLogger(__name__)


@shared_task(
    name="trainer.tasks.train_run",
    bind=True,
    # Acknowledge only when done: a worker killed mid-run leaves the message with the broker,
    # which hands it to the next worker, and the run resumes from its last checkpoint.
    acks_late=True,
    reject_on_worker_lost=True,
    # A run another worker holds is looked at again until it is free (see RunBusy below): as
    # an argument of retry(), None would mean the default of 3 tries, not "no limit".
    max_retries=None,
)
def train_run(self: Any, run_id: int) -> None:
    try:
        services.execute_run(run_id, worker_host=self.request.hostname or "")
    except TrainingRun.DoesNotExist:
        logger.info("Run %s was deleted before a worker got to it", run_id)
    except services.RunBusy as busy:
        # Another worker reported on it lately. Dropping this delivery would strand the run if
        # that worker was in fact just killed: look again once its heartbeat would be stale.
        logger.info("%s; trying again later", busy)
        raise self.retry(countdown=services.HEARTBEAT_STALE.total_seconds() + 30) from None


@worker_ready.connect
def resume_runs_this_worker_left(sender: Any = None, **kwargs: Any) -> None:
    """A worker that starts under a name that still owns running runs was killed while training
    them: queue those again at once rather than wait out the broker's visibility timeout."""
    hostname = restarted_worker(sender, "gpu")  # a default-queue worker never trains
    if not hostname:
        return
    for run_id in services.requeue_lost_runs(worker_host=hostname):
        logger.warning("Run %s was interrupted on %s; resuming it", run_id, hostname)


# Queued runs whose message the broker lost: sent again by a starting GPU worker and by their page.
LOST_RUNS = LostMessages(
    TrainingRun,
    task_name="trainer.tasks.train_run",
    resend=lambda run: services._enqueue(run.pk),
    waiting_note="Waiting for a GPU worker",
)


@worker_ready.connect
def resend_lost_runs(sender: Any = None, **kwargs: Any) -> None:
    if restarted_worker(sender, "gpu"):
        LOST_RUNS.resend_lost()


@worker_shutting_down.connect
def note_runs_of_a_stopping_worker(sender: Any = None, **kwargs: Any) -> None:
    """Asked to shut down (docker compose restart, an upgrade, Ctrl-C): the run this worker
    holds stops with it and resumes later; that is not a lost worker (MAX_WORKER_LOSSES)."""
    hostname = str(sender or "")
    if hostname:
        try:
            services.note_worker_stopping(worker_host=hostname)
        except Exception:  # the database may be gone too; shutting down goes on regardless
            logger.warning("Could not note that %s is shutting down", hostname, exc_info=True)
