"""The worker's tasks: an import (load the row, fetch the passphrase from the cache, call the
service) and the deletion of a big export."""

from __future__ import annotations

import logging

from celery import shared_task
from django.utils import timezone

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
    if export is None or not export.is_active or export.is_deleting:
        logger.info(
            "Export %s was deleted, cancelled, already imported or is being deleted; skipping",
            export_id,
        )
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


@shared_task(
    name="ingest.tasks.delete_export",
    # As for imports: a worker killed mid-deletion leaves the message with the broker (Redis
    # hands it out again after its visibility timeout) and a later run starts from the beginning,
    # as the deletion is one transaction that never committed. The export's page also offers to
    # ask again, for a broker that lost the message.
    acks_late=True,
    reject_on_worker_lost=True,
)
def delete_export(export_id: int) -> None:
    """A deletion that ``services.request_delete`` handed over (a big export, or one that had
    to wait for another import). Its state is on the export's row, for its page."""
    try:
        marked = Export.objects.filter(pk=export_id, delete_requested_at__isnull=False)
        if not marked.update(delete_started_at=timezone.now()):
            logger.info("Export %s is gone or no longer to be deleted; skipping", export_id)
            return
        services.delete_export(export_id=export_id)
    except Export.DoesNotExist:
        logger.info("Export %s was deleted meanwhile", export_id)
    except services.ImportInProgress as error:
        _give_up(export_id, str(error))
    except Exception:
        logger.exception("Deleting export %s failed", export_id)
        _give_up(export_id, services.DELETE_FAILED)
        raise


def _give_up(export_id: int, reason: str) -> None:
    Export.objects.filter(pk=export_id).update(
        delete_requested_at=None, delete_started_at=None, delete_error=reason
    )
