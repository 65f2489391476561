"""The fields and state changes every long job's row shares (exports, runs, batches).

Pages read a job's state from its row, never from a Celery result backend.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db import models
from django.utils import timezone

# A running job's worker writes its heartbeat while it works (a run every 30 s, a batch every
# chunk); one with none for this long has most likely lost its worker.
HEARTBEAT_STALE = timedelta(minutes=5)


class ReportsHeartbeat:
    """For a job model whose worker writes ``heartbeat_at`` while it runs."""

    status: str
    heartbeat_at: Any
    worker_host: str

    @property
    def worker_silent(self) -> bool:
        """Running, and its worker has written nothing for HEARTBEAT_STALE: it has most likely
        stopped (killed, out of memory, its machine gone)."""
        if self.status != JobStatus.RUNNING:
            return False
        return self.heartbeat_at is None or timezone.now() - self.heartbeat_at > HEARTBEAT_STALE

    def held_by_another(self, worker_host: str, now: Any = None) -> bool:
        """Running on another worker that reported within HEARTBEAT_STALE: it may still be at
        it, so a second delivery of its message must not start it again."""
        return (
            self.status == JobStatus.RUNNING
            and self.worker_host != worker_host
            and self.heartbeat_at is not None
            and (now or timezone.now()) - self.heartbeat_at < HEARTBEAT_STALE
        )


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


ACTIVE_STATUSES = (JobStatus.QUEUED, JobStatus.RUNNING)
NEVER_STARTED = "Cancelled before it started."
# A job put back in the queue after its worker was lost (a run resuming from its checkpoint).
CANCELLED_WAITING = "Cancelled while it waited to go on; what it had done stays."
# A job queued while the task queue (Redis) did not answer: joe_site.lost_messages sends it again.
SEND_FAILED = (
    "The task queue did not answer when this was queued; it is sent to the worker again as soon "
    "as the queue is back."
)


class Job(models.Model):
    status = models.CharField(
        max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED, db_index=True
    )
    progress_done = models.BigIntegerField(default=0)
    progress_total = models.BigIntegerField(default=0)
    progress_note = models.CharField(max_length=200, blank=True)
    error = models.TextField(blank=True)
    cancel_requested = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    celery_task_id = models.CharField(max_length=64, blank=True)

    class Meta:
        abstract = True

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def waits_for_queue(self) -> bool:
        """Queued while the task queue did not answer: it is sent again once the queue is back."""
        return self.status == JobStatus.QUEUED and self.progress_note == SEND_FAILED

    @property
    def percent(self) -> int:
        if not self.progress_total:
            return 0
        return min(100, int(100 * self.progress_done / self.progress_total))

    def _save_fields(self, **fields) -> None:
        for name, value in fields.items():
            setattr(self, name, value)
        # Only touch these columns, and through the queryset, so concurrent writers (a cancel
        # click while the worker reports progress) never overwrite each other's fields.
        type(self).objects.filter(pk=self.pk).update(**fields)

    def mark_running(self) -> None:
        self._save_fields(status=JobStatus.RUNNING, started_at=timezone.now(), error="")

    def set_progress(self, done: int, total: int | None = None, note: str | None = None) -> None:
        fields: dict = {"progress_done": done}
        if total is not None:
            fields["progress_total"] = total
        if note is not None:
            fields["progress_note"] = note[:200]
        self._save_fields(**fields)

    def mark_succeeded(self) -> None:
        self._save_fields(status=JobStatus.SUCCEEDED, finished_at=timezone.now())

    def mark_failed(self, error: str) -> None:
        self._save_fields(status=JobStatus.FAILED, error=error, finished_at=timezone.now())

    def mark_cancelled(self) -> None:
        self._save_fields(status=JobStatus.CANCELLED, finished_at=timezone.now())

    def request_cancel(self) -> None:
        """Ask the worker to stop at its next step; a job still queued is cancelled at once."""
        queued = type(self).objects.filter(pk=self.pk, status=JobStatus.QUEUED)
        for began, note in ((False, NEVER_STARTED), (True, CANCELLED_WAITING)):
            queued.filter(started_at__isnull=not began).update(
                status=JobStatus.CANCELLED,
                finished_at=timezone.now(),
                cancel_requested=True,
                progress_note=note,  # not "Waiting for a worker" any more
            )
        type(self).objects.filter(pk=self.pk).update(cancel_requested=True)
        self.refresh_from_db(fields=["status", "cancel_requested", "finished_at", "progress_note"])

    def cancel_was_requested(self) -> bool:
        return type(self).objects.filter(pk=self.pk, cancel_requested=True).exists()


def restarted_worker(sender: Any, queue: str) -> str:
    """For Celery's ``worker_ready``: the name of the worker that just started, if it consumes
    ``queue`` ("" otherwise). Jobs still marked running under that name lost their worker: the
    same name cannot be running them any more."""
    queues = getattr(getattr(sender, "app", None), "amqp", None)
    consuming = queues.queues.consume_from if queues is not None else None
    if consuming and queue not in consuming:
        return ""
    return getattr(sender, "hostname", "") or ""
