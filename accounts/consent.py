"""Friends control their own voice: claim a speaker, opt out and back in, delete their messages.

Opting out takes effect at once for the gallery and generation (both read `Speaker.opted_out`) and
at the next training run (the corpus selector leaves opted-out speakers out); runs that already
learnt from the speaker are marked so staff can retrain with one click.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from accounts.models import SpeakerClaim
from ingest.models import Identity, Message, Speaker
from joe_site.jobs import JobStatus
from trainer.models import TrainingRun


def mark_runs_trained_on(speaker: Speaker, reason: str) -> int:
    """Flag every run whose data included the speaker and that is, or may become, a model
    generations use (finished or still training: a cancelled or failed run never can);
    returns how many were flagged."""
    usable = TrainingRun.objects.filter(status__in=(JobStatus.SUCCEEDED, JobStatus.RUNNING))
    runs = [run for run in usable.only("pk", "speaker_ids") if speaker.pk in run.speaker_ids]
    TrainingRun.objects.filter(pk__in=[run.pk for run in runs]).update(needs_retrain=reason[:300])
    return len(runs)


@transaction.atomic
def set_opted_out(*, speaker: Speaker, opted_out: bool) -> None:
    Speaker.objects.filter(pk=speaker.pk).update(
        opted_out=opted_out, opted_out_at=timezone.now() if opted_out else None
    )
    speaker.opted_out = opted_out
    if opted_out:
        mark_runs_trained_on(
            speaker,
            f"{speaker.display_name} opted out after this run was trained on their messages.",
        )


@transaction.atomic
def delete_messages(*, speaker: Speaker) -> int:
    """Remove every message of the speaker from the corpus; their identities stay excluded so a
    re-uploaded export cannot bring the messages back into training."""
    identities = Identity.objects.filter(speaker=speaker)
    deleted = Message.objects.filter(identity__in=identities).delete_in_sql()
    identities.update(excluded=True)
    mark_runs_trained_on(
        speaker,
        f"{speaker.display_name} deleted their messages after this run was trained on them.",
    )
    return deleted


def message_count(speaker: Speaker) -> int:
    return Message.objects.filter(identity__speaker=speaker).count()


@transaction.atomic
def decide_claim(*, claim: SpeakerClaim, approve: bool, staff_user) -> None:
    claim.status = SpeakerClaim.Status.APPROVED if approve else SpeakerClaim.Status.REJECTED
    claim.decided_by = staff_user
    claim.decided_at = timezone.now()
    claim.save(update_fields=["status", "decided_by", "decided_at"])
    if approve:
        Speaker.objects.filter(pk=claim.speaker_id).update(member=claim.member)
        # Anyone else waiting for the same speaker loses: one speaker, one member.
        SpeakerClaim.objects.filter(
            speaker_id=claim.speaker_id, status=SpeakerClaim.Status.PENDING
        ).exclude(pk=claim.pk).update(
            status=SpeakerClaim.Status.REJECTED, decided_by=staff_user, decided_at=timezone.now()
        )
