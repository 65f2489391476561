"""The worker's tasks: an import (load the row, fetch the passphrase from the cache, call the
service) and the deletion of a big export."""

from __future__ import annotations

import logging
from typing import Any

from celery import Task, shared_task
from celery.signals import worker_ready
from django.utils import timezone

from ingest import passphrases, services, uploads
from ingest.models import Export
from joe_site.jobs import HEARTBEAT_STALE, restarted_worker
from joe_site.lost_messages import LostMessages

logger = logging.getLogger(__name__)


@shared_task(
    name="ingest.tasks.import_export",
    bind=True,
    # Acknowledge only when done: a worker killed mid-import leaves the message with the broker
    # and the import starts again from scratch (its transaction never committed, so nothing was
    # half-imported). A worker that starts again under the same name does that at once
    # (``requeue_interrupted_imports``, below); otherwise the broker redelivers the message after
    # its visibility timeout.
    acks_late=True,
    reject_on_worker_lost=True,
    # As an argument of retry(), None would mean the default of 3 tries, not "no limit".
    max_retries=None,
)
def import_export(self: Task, export_id: int, passphrase_key: str | None = None) -> None:
    """``passphrase_key`` names the encrypted passphrase in the cache (see passphrases.py)."""
    keep_passphrase = False
    try:
        try:
            claimed = services.claim_import(
                export_id=export_id,
                task_id=self.request.id,
                worker_host=self.request.hostname or "",
            )
        except services.ImportSuperseded as superseded:
            # Queued again since (a retry, a restarted worker requeued it, its message was
            # thought lost and sent again): that task runs, maybe with this same passphrase key.
            logger.info("%s; skipping", superseded)
            keep_passphrase = passphrases.key_for(export_id) == passphrase_key
            return
        except services.ImportBusy as busy:
            # A second delivery while another process imports it. Dropping this message would
            # strand the export if that process was in fact just killed (its own message may be
            # this one): look again once its heartbeat would be stale; a finished export then
            # does nothing. The passphrase stays for the import that runs.
            logger.info("%s; trying again later", busy)
            keep_passphrase = True
            raise self.retry(countdown=HEARTBEAT_STALE.total_seconds() + 30) from None
        if not claimed:
            return
        export = Export.objects.get(pk=export_id)
        try:
            passphrase = passphrases.read(passphrase_key) if passphrase_key else None
        except passphrases.NotKept:
            # Not "joe no longer has it": it may well be there, once Redis answers again.
            logger.warning("Export %s: Redis did not answer for its passphrase", export_id)
            export.mark_failed(services.SIGNAL_KEY_NOT_KEPT)
            return
        services.import_export(
            export_id=export.pk,
            passphrase=passphrase,
            owner_name=export.owner_name,
            include_bots=export.include_bots,
        )
    finally:
        passphrase = None
        if passphrase_key and not keep_passphrase:
            passphrases.discard(passphrase_key)
        _expire_failed_uploads()


def _expire_failed_uploads() -> None:
    """The files of old failed imports and of uploads cut off mid-way go (housekeeping: never the
    reason a task or a worker start fails)."""
    try:
        services.expire_failed_uploads()
    except Exception:
        logger.exception("Could not delete the files of old failed imports")
    try:
        uploads.delete_abandoned_temp_files()
    except OSError:  # the folder unreadable, say: the next import tries again
        logger.exception("Could not delete the temporary files of uploads cut off mid-way")


@worker_ready.connect
def requeue_imports_this_worker_left(sender: Any = None, **kwargs: Any) -> None:
    """A worker that starts under a name that still has imports running was killed during
    them: queue those again now rather than wait out the broker's visibility timeout."""
    hostname = restarted_worker(sender, "default")  # a GPU-only worker never imports
    if not hostname:
        return
    _expire_failed_uploads()
    for export_id in services.requeue_interrupted_imports(worker_host=hostname):
        logger.warning("Export %s was being imported when %s stopped; importing it again",
                       export_id, hostname)  # fmt: skip


# Queued imports whose message the broker lost: sent again (under a new task id, with the
# passphrase while the cache keeps it) by a starting default worker and by their page.
LOST_IMPORTS = LostMessages(
    Export,
    task_name="ingest.tasks.import_export",
    resend=lambda export: services.queue_import(
        export=export, passphrase_key=passphrases.key_for(export.pk)
    ),
    by_call=False,  # a task whose id is not the export's skips itself
)


@worker_ready.connect
def resend_lost_imports(sender: Any = None, **kwargs: Any) -> None:
    if restarted_worker(sender, "default"):
        LOST_IMPORTS.resend_lost()


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
