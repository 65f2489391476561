"""The worker's import task: load the row, fetch the passphrase from the cache, call the service."""

from __future__ import annotations

import logging

from celery import shared_task

from ingest import passphrases, services
from ingest.models import Export

logger = logging.getLogger(__name__)


@shared_task(
    name="ingest.tasks.import_export",
    # Acknowledge only when done: a worker killed mid-import leaves the message with the broker,
    # the next worker gets it, and the import starts again from scratch (its transaction never
    # committed, so nothing was half-imported).
    acks_late=True,
    reject_on_worker_lost=True,
)
def import_export(export_id: int, passphrase_key: str | None = None) -> None:
    """``passphrase_key`` names the encrypted passphrase in the cache (see passphrases.py)."""
    export = Export.objects.filter(pk=export_id).first()
    if export is None or not export.is_active:
        logger.info("Export %s was deleted, cancelled or already imported; skipping", export_id)
        return
    passphrase = passphrases.read(passphrase_key) if passphrase_key else None
    try:
        services.import_export(
            export_id=export.pk,
            passphrase=passphrase,
            owner_name=export.owner_name,
            include_bots=export.include_bots,
        )
    finally:
        passphrase = None
        if passphrase_key:
            passphrases.discard(passphrase_key)
