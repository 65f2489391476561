"""Generation jobs for the GPU worker (queue `gpu`, routed by name): ids in, status on the row."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task
from celery.signals import worker_ready

from generations import live, services
from generations.models import GenerationBatch, LiveGeneration
from joe_site.jobs import HEARTBEAT_STALE, restarted_worker
from joe_site.lost_messages import LostMessages

log = logging.getLogger(__name__)

INTERNAL_ERROR = (
    "Generation stopped on an unexpected error ({kind}); the worker's log has the details."
)


# As an argument of retry(), None would mean the default of 3 tries, not "no limit".
@shared_task(name="generations.tasks.run_batch", bind=True, max_retries=None)
def run_batch(self: Any, batch_id: int) -> None:
    batch = GenerationBatch.objects.filter(pk=batch_id).first()
    if batch is None:
        log.warning("batch %s is gone; nothing to do", batch_id)
        return
    try:
        batch = services.execute_batch(batch_id, worker_host=self.request.hostname or "")
    except services.BatchBusy as busy:
        # Dropping this message would strand the batch if that worker was in fact just killed:
        # look again once its heartbeat would be stale (a finished batch then does nothing).
        log.info("%s; trying again later", busy)
        raise self.retry(countdown=HEARTBEAT_STALE.total_seconds() + 30) from None
    except services.GenerationError as exc:
        batch.mark_failed(str(exc))
        return
    except Exception as exc:
        batch.mark_failed(INTERNAL_ERROR.format(kind=type(exc).__name__))
        raise
    if batch.stats.get("generated"):
        # The run's leak rate and speaker fidelity count this batch's snippets too.
        from generations.report import refresh_run_report

        refresh_run_report.delay(batch.run_id, with_perplexity=False)


@worker_ready.connect
def resume_batches_this_worker_left(sender: Any = None, **kwargs: Any) -> None:
    """A worker that starts under a name that still has batches running was killed during
    them: queue those again now rather than wait out the broker's visibility timeout."""
    hostname = restarted_worker(sender, "gpu")  # a default-queue worker never generates
    if not hostname:
        return
    for batch_id in services.requeue_lost_batches(worker_host=hostname):
        log.warning("Batch %s was interrupted on %s; carrying on with it", batch_id, hostname)


# Queued batches whose message the broker lost: sent again by a starting GPU worker and by their
# page.
LOST_BATCHES = LostMessages(
    GenerationBatch,
    task_name="generations.tasks.run_batch",
    resend=lambda batch: services.send_batch(batch.pk),
    waiting_note="Waiting for the generation worker",
)


@worker_ready.connect
def resend_lost_batches(sender: Any = None, **kwargs: Any) -> None:
    if restarted_worker(sender, "gpu"):
        LOST_BATCHES.resend_lost()


# Queued live generations whose message the broker lost (or that could not be sent): sent again
# from their page, polled while the member waits, and by a starting GPU worker. One whose member
# has left (the page gives up waiting after a minute) fails instead: a text written now would be
# for nobody, and would hold the worker that the next member's request waits for.
LOST_LIVE = LostMessages(
    LiveGeneration,
    task_name="generations.tasks.live_generate",
    resend=lambda generation: live.send_live(generation.pk),
    waiting_note=live.WAITING,
    after=live.LOST_AFTER,
    page_check_every_s=int(live.LOST_AFTER.total_seconds()),
    give_up_after=live.UNCLAIMED_GIVE_UP_AFTER,
    give_up_note=live.MESSAGE_LOST,
)


@worker_ready.connect
def resend_lost_live_generations(sender: Any = None, **kwargs: Any) -> None:
    if restarted_worker(sender, "gpu"):
        LOST_LIVE.resend_lost()


@shared_task(name="generations.tasks.live_generate")
def live_generate(live_id: int, speaker_ids: list[int] | None = None) -> None:
    generation = LiveGeneration.objects.filter(pk=live_id).first()
    if generation is None:
        log.warning("live generation %s is gone; nothing to do", live_id)
        return
    try:
        live.execute_live(live_id, speaker_ids=speaker_ids or [])
    except services.GenerationError as exc:
        generation.mark_failed(str(exc))
    except Exception as exc:
        generation.mark_failed(INTERNAL_ERROR.format(kind=type(exc).__name__))
        raise
