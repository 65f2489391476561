"""Fine-tuning runs: their settings, live progress, loss history and the checkpoint they leave."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import models, transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver
from django.urls import reverse
from django.utils import timezone

from ingest.models import export_deleted
from joe_site.jobs import ACTIVE_STATUSES, Job, JobStatus, ReportsHeartbeat

# The redaction kinds trainer/ml/data.py counts, as the run page says them: one, several.
_REDACTED = {
    "emails": ("email address", "email addresses"),
    "phones": ("phone number", "phone numbers"),
    "urls": ("link", "links"),
    "words": ("word", "words"),
}


# While a worker holds a run, it writes the run's heartbeat this often, whatever it is doing
# (services._Heartbeat); a running run with none for HEARTBEAT_STALE has lost its worker.
HEARTBEAT_EVERY = timedelta(seconds=30)
# A run whose worker is lost this many times in a row, with no new checkpoint in between, is
# failed rather than started again: its worker is most likely killed for using too much memory.
MAX_WORKER_LOSSES = 3
# How long a finished run's page waits for its quality report before it stops looking.
REPORT_WAIT = timedelta(minutes=15)
# A worker takes a queued run within seconds: queued this long, the page asks why it waits.
UNCLAIMED_HINT_AFTER = timedelta(seconds=20)


class TrainingRun(ReportsHeartbeat, Job):
    name = models.CharField(max_length=100)
    base_model = models.CharField(max_length=200, default="smollm2-135m")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    # Hyperparameters, exactly as the loop received them (steps, batch, grad accumulation, lr,
    # schedule, window length, seed, redaction...).
    hyperparameters = models.JSONField(default=dict, blank=True)
    dataset_summary = models.JSONField(default=dict, blank=True)
    # Speakers whose messages went into the data: consent changes mark runs that need a retrain.
    speaker_ids = models.JSONField(default=list, blank=True)
    tokens_per_second = models.FloatField(null=True, blank=True)
    eta_seconds = models.FloatField(null=True, blank=True)
    loss_history = models.JSONField(default=list, blank=True)  # [{step, train_loss, val_loss}]
    final_val_loss = models.FloatField(null=True, blank=True)
    checkpoint_dir = models.CharField(max_length=500, blank=True)
    worker_host = models.CharField(max_length=200, blank=True)
    device = models.CharField(max_length=100, blank=True)
    is_active = models.BooleanField(default=False, db_index=True)
    report = models.JSONField(default=dict, blank=True)  # quality and leak report
    # Where the worker got to: the step of the last checkpoint on disk, the step a restarted
    # worker resumed from, and when the worker last reported (a silent run has lost its worker).
    checkpoint_step = models.PositiveIntegerField(null=True, blank=True)
    resumed_from_step = models.PositiveIntegerField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # How many times in a row its worker was lost (killed, out of memory) since the last new
    # checkpoint; and in all, for the page.
    worker_losses = models.PositiveSmallIntegerField(default=0)
    worker_losses_total = models.PositiveSmallIntegerField(default=0)
    # Its worker was asked to shut down (a restart, an upgrade): losing it then is no loss.
    worker_stopping = models.BooleanField(default=False)
    # Set by a retrain of the active run (and `manage.py train --make-active`): the new run takes
    # over as the active model the moment it succeeds, so an opted-out voice leaves the site.
    activate_on_success = models.BooleanField(default=False)
    # The run this one retrains (the Retrain button on a flagged run): that run's page links here.
    retrain_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="retrains"
    )

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_active"],
                condition=models.Q(is_active=True),
                name="one_active_training_run",
            )
        ]

    def __str__(self) -> str:
        return self.name or f"Run {self.pk}"

    def get_absolute_url(self) -> str:
        return reverse("trainer:run", args=[self.pk])

    @property
    def run_dir(self) -> Path:
        """The run's private folder (checkpoints), under MODELS_DIR, never served by the web."""
        return Path(settings.MODELS_DIR) / "runs" / str(self.pk)

    @property
    def run_dir_size(self) -> int:
        """Bytes its folder holds on disk (checkpoints, leak index)."""
        root = self.run_dir
        if not root.is_dir():
            return 0
        return sum(f.stat().st_size for f in root.rglob("*") if f.is_file())

    @property
    def in_progress(self) -> bool:
        # Job.is_active means queued-or-running, but this model's `is_active` field (the model the
        # gallery uses) shadows it; this is the same question under another name.
        return self.status in ACTIVE_STATUSES

    @property
    def queued_too_long(self) -> bool:
        """Queued for a while with no worker taking it (since it was created, or since its
        lost worker last reported, for a run waiting to resume)."""
        if self.status != JobStatus.QUEUED:
            return False
        since = max(self.created_at, self.heartbeat_at or self.created_at)
        return timezone.now() - since > UNCLAIMED_HINT_AFTER

    @property
    def can_be_made_active(self) -> bool:
        return (
            self.status == JobStatus.SUCCEEDED and bool(self.checkpoint_dir) and not self.is_active
        )

    @property
    def needs_retrain(self) -> bool:
        """It has a reason to retrain (lists prefetch them: ``flagged()`` filters in SQL)."""
        return bool(self.retrain_reasons.all())

    @staticmethod
    def flagged() -> models.Exists:
        """In SQL, whether a run needs a retrain: ``annotate(flagged=TrainingRun.flagged())``."""
        return models.Exists(RetrainReason.objects.filter(run=models.OuterRef("pk")))

    @classmethod
    def mark_those_that_learnt(
        cls,
        speaker_ids: set[int],
        kind: str,
        text: str,
        *,
        speaker: Any = None,
        started_since: datetime | None = None,
    ) -> set[int]:
        """Give a reason to retrain to every run whose data included one of the speaker ids and
        that is, or may become, a model generations use (all but cancelled and failed ones: a
        queued run may be one waiting to resume from a checkpoint trained on them); returns the
        ids of the runs that got it. A run keeps every reason it has: each is taken back only
        by what undoes it (RetrainReason). ``speaker``: whom it is about; ``started_since``:
        only the runs that read the corpus since then."""
        usable = cls.objects.exclude(status__in=(JobStatus.CANCELLED, JobStatus.FAILED))
        if started_since is not None:
            usable = usable.filter(started_at__gte=started_since)
        # Told twice (a signal sent again, a friend's opt-out as two speakers merged), a run
        # holds it once.
        same = RetrainReason.objects.filter(run=models.OuterRef("pk"), kind=kind, speaker=speaker)
        if kind not in RetrainReason.ONE_PER_SPEAKER or speaker is None:
            same = same.filter(text=text[:300])
        usable = usable.exclude(models.Exists(same))
        learnt = [
            run.pk for run in usable.only("pk", "speaker_ids") if speaker_ids & {*run.speaker_ids}
        ]
        RetrainReason.objects.bulk_create(
            RetrainReason(
                run_id=pk,
                kind=kind,
                speaker=speaker,
                speaker_name=speaker.display_name if speaker else "",
                text=text[:300],
            )
            for pk in learnt
        )
        return set(learnt)

    @property
    def retrain_takes_over(self) -> bool:
        """A retrain of this run becomes the active model when it succeeds: of the active model,
        or of a run still training that is to take its place (itself such a retrain)."""
        return self.is_active or (self.in_progress and self.activate_on_success)

    def current_retrain(self) -> TrainingRun | None:
        """Its latest retrain that is queued, training or done: the one a second click would
        duplicate (after a failed or cancelled one, Retrain is offered again)."""
        return TrainingRun.current_retrains([self.pk]).get(self.pk)

    @classmethod
    def current_retrains(cls, run_ids: list[int]) -> dict[int, TrainingRun]:
        """The current retrain of each of these runs that has one, in one query."""
        retrains = (
            cls.objects.filter(retrain_of__in=run_ids)
            .exclude(status__in=(JobStatus.FAILED, JobStatus.CANCELLED))
            .order_by("created_at", "pk")
        )
        return {retrain.retrain_of_id: retrain for retrain in retrains}  # the newest wins

    @property
    def report_computed_at(self) -> datetime | None:
        """When its report was computed (stored in the JSON as an ISO string)."""
        try:
            return datetime.fromisoformat(self.report.get("computed_at") or "")
        except (AttributeError, TypeError, ValueError):
            return None

    @property
    def validation_losses(self) -> list[float]:
        return [h["val_loss"] for h in self.loss_history if h.get("val_loss") is not None]

    @property
    def awaiting_report(self) -> bool:
        """Just succeeded, and its quality report (computed next, on the default worker) has not
        come yet: the page keeps looking for it for a while."""
        return (
            self.status == JobStatus.SUCCEEDED
            and not self.report
            and self.finished_at is not None
            and timezone.now() - self.finished_at < REPORT_WAIT
        )

    def why_not_deletable(self) -> str:
        """Why the run cannot be deleted now ("" when it can): its page and the admin ask."""
        if self.in_progress:
            return "This run is still going: cancel it first, then delete it."
        if self.is_active:
            return "This is the active model: make another run active first."
        if self.batches.filter(status__in=ACTIVE_STATUSES).exists():
            return "A batch is generating from this run: wait for it or cancel it first."
        if self.awaiting_report:
            return "Its quality report is being computed: delete it once the report is in."
        return ""

    @property
    def keeps_polling(self) -> bool:
        return self.in_progress or self.awaiting_report

    @property
    def eta_text(self) -> str:
        # Only while it trains: a run waiting to resume, or whose worker went silent, has none.
        if self.eta_seconds is None or self.status != JobStatus.RUNNING or self.worker_silent:
            return ""
        return duration_text(self.eta_seconds)

    def mark_failed(self, error: str) -> None:
        # The note said what it was doing ("Loading the base model"): the error says the rest.
        self._save_fields(
            status=JobStatus.FAILED,
            error=error,
            finished_at=timezone.now(),
            progress_note="",
            eta_seconds=None,
        )

    def hyperparameter_rows(self) -> list[tuple[str, Any]]:
        hp = dict(self.hyperparameters)
        redaction = hp.pop("redaction", None)
        rows = sorted(hp.items())
        if isinstance(redaction, dict):
            words = redaction.get("words") or []
            # The custom word list is names and places: count it, never show it on a page.
            rows += [(f"redaction {k}", v) for k, v in sorted(redaction.items()) if k != "words"]
            rows.append(("redaction words", f"{len(words)} word(s)"))
        return rows

    def speaker_rows(self) -> list[dict[str, Any]]:
        """Messages and tokens per speaker in the training data, with display names, most
        messages first (PostgreSQL keeps a JSON object's keys shortest first)."""
        names = self.dataset_summary.get("names", {})
        rows = [
            {"slug": slug, "name": names.get(slug, slug), **counts}
            for slug, counts in self.dataset_summary.get("speakers", {}).items()
        ]
        return sorted(rows, key=lambda row: (-row.get("messages", 0), row["name"].lower()))

    def data_notes(self) -> list[str]:
        """What the data preparation replaced or left out, as short phrases."""
        summary = self.dataset_summary
        notes = [
            f"{count:,} {_REDACTED.get(kind, (kind, kind))[count != 1]} redacted"
            for kind, count in summary.get("redactions", {}).items()
        ]
        notes += [
            f"{count:,} message{'' if count == 1 else 's'} left out ({kind.replace('_', ' ')})"
            for kind, count in summary.get("dropped", {}).items()
            if count
        ]
        if truncated := summary.get("truncated"):
            notes.append(f"{truncated:,} long message{'' if truncated == 1 else 's'} truncated")
        return notes

    @property
    def perplexity(self) -> float | None:
        if self.final_val_loss is None:
            return None
        return math.exp(min(self.final_val_loss, 50.0))

    @classmethod
    def active(cls) -> TrainingRun | None:
        return cls.objects.filter(is_active=True).first()

    @classmethod
    def first_in_training(cls) -> TrainingRun | None:
        """The run training the very first model, while no run has finished with one (pages
        that need a model say it is on its way rather than only that there is none)."""
        finished = cls.objects.filter(status=JobStatus.SUCCEEDED).exclude(checkpoint_dir="")
        if finished.exists():
            return None
        return cls.objects.filter(status__in=ACTIVE_STATUSES).order_by("created_at").first()

    def make_active(self) -> None:
        if self.status != JobStatus.SUCCEEDED or not self.checkpoint_dir:
            raise ValueError("Only a finished run with a checkpoint can become the active model.")
        with transaction.atomic():
            TrainingRun.objects.filter(is_active=True).exclude(pk=self.pk).update(is_active=False)
            TrainingRun.objects.filter(pk=self.pk).update(is_active=True)
        self.is_active = True

    def choose_as_active(self) -> list[TrainingRun]:
        """Make it the active model because a person chose it (the Make active button, the
        demo): a run still training that was to take the active model's place when done (a
        retrain, `train --make-active`) no longer does. The runs whose takeover was withdrawn."""
        with transaction.atomic():
            self.make_active()
            takeovers = list(
                TrainingRun.objects.select_for_update()
                .filter(status__in=ACTIVE_STATUSES, activate_on_success=True)
                .exclude(pk=self.pk)
                .order_by("created_at", "pk")
            )
            TrainingRun.objects.filter(pk__in=[run.pk for run in takeovers]).update(
                activate_on_success=False
            )
        return takeovers


class RetrainReason(models.Model):
    """One reason a run's model no longer matches the corpus (a friend opted out, an export was
    deleted...): a run needs a retrain while it has one. An opt-out's is taken back when the
    friend opts in again (accounts.consent.set_opted_out); the others hold until the run is
    retrained."""

    class Kind(models.TextChoices):
        OPTED_OUT = "opted_out", "opted out"
        MESSAGES_DELETED = "messages_deleted", "messages deleted"
        IDENTITY_MOVED = "identity_moved", "identity moved"
        IDENTITY_SPLIT = "identity_split", "identity split off"
        IDENTITY_EXCLUDED = "identity_excluded", "identity excluded"
        SPEAKER_MERGED = "speaker_merged", "speakers merged"
        EXPORT_DELETED = "export_deleted", "export deleted"
        CHAT_DELETED = "chat_deleted", "chat deleted"  # in the admin: its text names the chats
        OTHER = "other", "other"  # a reason written before they were kinds

    # A friend's consent is one reason on a run, whatever merges told it again.
    ONE_PER_SPEAKER = frozenset({Kind.OPTED_OUT, Kind.MESSAGES_DELETED})

    run = models.ForeignKey(TrainingRun, on_delete=models.CASCADE, related_name="retrain_reasons")
    kind = models.CharField(max_length=30, choices=Kind.choices)
    # Whom it is about: an opt-in finds its friend's by this, under any name. No reverse name:
    # a reason holds no speaker up (ingest.models.unreferenced_speakers), and a merge moves it
    # to the speaker merged into like any other row pointing at a speaker.
    speaker = models.ForeignKey(
        "ingest.Speaker", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    speaker_name = models.CharField(max_length=255, blank=True)  # as they were called then
    text = models.CharField(max_length=300)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "pk"]

    def __str__(self) -> str:
        return self.text


def duration_text(seconds: float) -> str:
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


@receiver(post_delete, sender=TrainingRun, dispatch_uid="trainer-run-files")
def _delete_run_files(sender: type[TrainingRun], instance: TrainingRun, **kwargs: Any) -> None:
    """A deleted run's checkpoints (hundreds of MB to GB) go with it, once the delete commits:
    from the admin, the run's page or a cascade."""
    from trainer.services import delete_run_files

    run_dir = instance.run_dir
    transaction.on_commit(lambda: delete_run_files(run_dir))


@receiver(export_deleted, dispatch_uid="trainer-export-deleted")
def _flag_runs_trained_on_export(
    sender: Any,
    name: str,
    speaker_ids: set[int],
    imported_at: Any,
    chats: Sequence[str] = (),
    **kwargs: Any,
) -> None:
    """Runs that read the corpus after the export (or the chats) was imported, and learnt one
    of its speakers, hold its messages still: they need a retrain."""
    if chats:
        kind, text = RetrainReason.Kind.CHAT_DELETED, chats_deleted_text(chats)
    else:
        kind = RetrainReason.Kind.EXPORT_DELETED
        text = f"{name} was deleted after this run was trained on it."
    TrainingRun.mark_those_that_learnt(speaker_ids, kind, text, started_since=imported_at)


def chats_deleted_text(chats: Sequence[str]) -> str:
    """'The chat “Family” was deleted…', or 'The chats “A”, “B” and “C” were deleted…': as
    many names as a reason holds (300 characters), then how many more."""
    if len(chats) == 1:
        return f"The chat “{chats[0][:200]}” was deleted after this run was trained on it."
    end = " were deleted after this run was trained on them."
    for shown in range(len(chats), 0, -1):
        names = [f"“{chat}”" for chat in chats[:shown]]
        more = len(chats) - shown
        listed = ", ".join(names[:-1]) + " and " + names[-1] if not more else ", ".join(names)
        text = f"The chats {listed}{f' and {more} more' if more else ''}{end}"
        if len(text) <= 300:
            return text
    return f"{len(chats)} chats{end}"
