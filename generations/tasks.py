"""Generation jobs for the GPU worker (queue `gpu`, routed by name): ids in, status on the row."""

from __future__ import annotations

import logging

from celery import shared_task

from generations import live, services
from generations.models import GenerationBatch, LiveGeneration

log = logging.getLogger(__name__)

INTERNAL_ERROR = (
    "Generation stopped on an unexpected error ({kind}); the worker's log has the details."
)


@shared_task(name="generations.tasks.run_batch")
def run_batch(batch_id: int) -> None:
    batch = GenerationBatch.objects.filter(pk=batch_id).first()
    if batch is None:
        log.warning("batch %s is gone; nothing to do", batch_id)
        return
    try:
        batch = services.execute_batch(batch_id)
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
