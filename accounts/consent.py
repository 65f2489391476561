"""Friends control their own voice: claim a speaker, opt out and back in, delete their messages.

Opting out takes effect at once for the gallery and generation (both read `Speaker.opted_out`) and
at the next training run (the corpus selector leaves opted-out speakers out); runs that already
learnt from the speaker are marked so staff can retrain with one click.
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import SpeakerClaim
from ingest.models import Identity, Message, Speaker
from trainer.models import RetrainReason, TrainingRun

# The kinds of reason to retrain: the Speakers page and the admin give theirs through here.
Kind = RetrainReason.Kind


def mark_runs_trained_on(speaker: Speaker, kind: str, reason: str) -> set[int]:
    """Give the reason to every run whose data included the speaker (under any id their
    messages had: merges, splits) and that is, or may become, a model generations use (all but
    cancelled and failed ones: a queued run may be one waiting to resume from a checkpoint
    trained on them); returns the ids of the runs that got it."""
    # Under this speaker's id, or one it was merged from or split off (their messages too).
    theirs = {speaker.pk, *speaker.former_ids}
    return TrainingRun.mark_those_that_learnt(theirs, kind, reason, speaker=speaker)


def flag_runs_that_learnt_identity(
    identity: Identity, speaker: Speaker | None, kind: str, reason: str
) -> str:
    """Mark the runs that learnt ``identity`` (as it is before a move, a split or an exclusion,
    on the Speakers page or in the admin) in ``speaker``'s voice "needs retrain": bots and
    excluded identities trained nothing (trainer.corpus). What to tell staff about them (""
    when none was marked)."""
    if speaker is None or identity.excluded or identity.is_bot:
        return ""
    flagged = len(mark_runs_trained_on(speaker, kind, reason))
    if not flagged:
        return ""
    return f"Training runs that learnt {speaker}'s voice are marked “needs retrain” ({flagged})."


@transaction.atomic
def set_opted_out(*, speaker: Speaker, opted_out: bool) -> None:
    """The speaker's member opts it out (remembered as theirs) or back in."""
    Speaker.objects.filter(pk=speaker.pk).update(
        opted_out=opted_out,
        opted_out_at=timezone.now() if opted_out else None,
        opted_out_by_id=speaker.member_id if opted_out else None,
    )
    speaker.opted_out = opted_out
    if opted_out:
        mark_runs_trained_on(speaker, Kind.OPTED_OUT, _opted_out_reason(speaker))
        revoke_public_links(speaker)
        return
    # Back in: their opt-out is no reason to retrain any more, wherever it was given, under
    # whatever name (a merge moved a speaker's reasons to the one it was merged into). Every
    # other reason a run has stays: a run with none left is current again.
    RetrainReason.objects.filter(kind=Kind.OPTED_OUT, speaker_id=speaker.pk).delete()


def _opted_out_reason(speaker: Speaker) -> str:
    return f"{speaker.display_name} opted out after this run was trained on their messages."


@transaction.atomic
def merge_speakers(*, speaker: Speaker, target: Speaker) -> int:
    """Staff make one speaker of two (``Speaker.merge_into``). The runs that learnt ``speaker``
    are flagged in any case: the model knows it as a voice no speaker holds after the merge.
    When ``speaker`` had opted out and ``target`` had not, the merged voice is opted out as the
    friend asked: the runs trained on ``target`` are flagged and its share links revoked, as if
    they had opted it out there; the other way round, the share links of ``speaker`` are
    revoked. Claims move over with the rest. Returns how many runs were flagged."""
    newly_opted_out = speaker.opted_out and not target.opted_out
    if target.opted_out and not speaker.opted_out:
        revoke_public_links(speaker)
        reason = (
            f"{speaker.display_name} was merged into {target.display_name}, who opted out, "
            "after this run was trained on their messages."
        )
    else:
        # The model knows the speaker's slug, which no speaker holds any more: it no longer
        # writes in that voice (generations leave voices nobody holds out).
        reason = (
            f"{speaker.display_name} was merged into {target.display_name} after this run was "
            f"trained: it knows them as two voices, and no longer writes as "
            f"{speaker.display_name}."
        )
    flagged = mark_runs_trained_on(speaker, Kind.SPEAKER_MERGED, reason)
    # A friend who claimed both (their two apps) keeps one claim: the database allows a member
    # one pending claim per speaker.
    pending = SpeakerClaim.objects.filter(status=SpeakerClaim.Status.PENDING)
    pending.filter(
        speaker_id=speaker.pk, member__in=pending.filter(speaker_id=target.pk).values("member")
    ).delete()
    speaker.merge_into(target)  # moves the reasons about ``speaker`` to ``target``
    if newly_opted_out:
        revoke_public_links(target)
        # A run that learnt ``speaker`` holds their opt-out already: it is not said twice.
        flagged |= mark_runs_trained_on(
            target,
            Kind.OPTED_OUT,
            f"{target.display_name} opted out (as {speaker.display_name}, merged into them) "
            "after this run was trained on their messages.",
        )
    return len(flagged)


def revoke_public_links(speaker: Speaker) -> int:
    """Revoke every public share link to a fake in the speaker's voice (theirs alone or one of
    a conversation's): opting out ends them for good, as a veto does; opting back in later does
    not bring back links the friend believed dead. How many were revoked."""
    from generations.models import ShareLink, Snippet  # generations builds on accounts

    voiced = Snippet.objects.filter(Q(speaker=speaker) | Q(speakers=speaker)).values("pk")
    return ShareLink.objects.filter(snippet__in=voiced, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )


@transaction.atomic
def delete_messages(*, speaker: Speaker) -> int:
    """Remove every message of the speaker from the corpus, for good: their identities stay
    excluded from training and marked, and so does the speaker, so that imports skip their
    messages from now on (a re-uploaded export cannot bring them back, nor can another app's
    export where they go by the same name)."""
    identities = Identity.objects.filter(speaker=speaker)
    deleted = Message.objects.filter(identity__in=identities).delete_in_sql()
    now = timezone.now()
    identities.update(excluded=True, messages_deleted_at=now)
    Speaker.objects.filter(pk=speaker.pk).update(messages_deleted_at=now)
    mark_runs_trained_on(
        speaker,
        Kind.MESSAGES_DELETED,
        f"{speaker.display_name} deleted their messages after this run was trained on them.",
    )
    return deleted


def message_count(speaker: Speaker) -> int:
    return Message.objects.filter(identity__speaker=speaker).count()


ALREADY_LINKED = "That speaker is linked to a member already: unlink it first."


class AlreadyLinked(Exception):
    """The speaker belongs to a member: it moves only after an explicit unlink."""


class OptOutOfSomeoneElse(Exception):
    """The speaker was opted out by someone other than the member it is being linked to (or
    by someone unknown): linked, they could opt it back in, so staff say explicitly that they
    may."""


def earlier_holders(speaker: Speaker, *, besides=None) -> list[str]:
    """The members who held this speaker before staff unlinked them (other than ``besides``)."""
    claims = SpeakerClaim.objects.filter(
        speaker_id=speaker.pk, status=SpeakerClaim.Status.UNLINKED
    ).select_related("member")
    names = [c.member.username for c in claims if besides is None or c.member_id != besides.pk]
    return sorted(set(names))


def opt_out_at_stake(speaker: Speaker, member) -> str:
    """Why linking ``speaker`` to ``member`` needs staff's say-so ("" when it does not)."""
    if not speaker.opted_out:
        return ""
    if member is not None and speaker.opted_out_by_id == member.pk:
        return ""  # their own opt-out, given back to them
    holders = earlier_holders(speaker, besides=member)
    by = (
        f"was held by {', '.join(holders)} before staff unlinked them"
        if holders
        else "who opted it out is not known (an account since deleted, say)"
    )
    return (
        f"{speaker} is opted out, and {by}: linked to {member}, it would be theirs to opt back "
        f"in. Do so only if {member} is that friend."
    )


@transaction.atomic
def link_speaker(
    *,
    speaker: Speaker,
    member,
    staff_user,
    claim: SpeakerClaim | None = None,
    opt_out_confirmed: bool = False,
) -> None:
    """Give a free speaker to a member (a direct link, or an approved claim); the other claims
    waiting for it are turned down: one speaker, one member. Raises AlreadyLinked, and
    OptOutOfSomeoneElse unless ``opt_out_confirmed`` where opt_out_at_stake says why."""
    speaker = Speaker.objects.select_for_update().get(pk=speaker.pk)
    if not opt_out_confirmed and speaker.member_id is None:
        reason = opt_out_at_stake(speaker, member)
        if reason:
            raise OptOutOfSomeoneElse(reason)
    if not Speaker.objects.filter(pk=speaker.pk, member__isnull=True).update(member=member):
        raise AlreadyLinked(ALREADY_LINKED)  # checked and written at once: two staff can't race
    SpeakerClaim.objects.filter(speaker_id=speaker.pk, status=SpeakerClaim.Status.PENDING).exclude(
        pk=claim.pk if claim else None
    ).update(status=SpeakerClaim.Status.REJECTED, decided_by=staff_user, decided_at=timezone.now())


@transaction.atomic
def unlink_speaker(*, speaker: Speaker, staff_user):
    """Free a speaker from its member; returns that member, or None if it had none. Their
    approved claim on it says it was unlinked, by whom and when (so their page stops showing
    it as approved); the speaker's opt-out and vetoes stay. Its game opt-in does not: letting
    the friend's real messages be shown was the member's say, and a wrong link's member
    never had it."""
    member = Speaker.objects.select_for_update().get(pk=speaker.pk).member
    if member is None:
        return None
    Speaker.objects.filter(pk=speaker.pk).update(member=None, game_opt_in=False)
    now = timezone.now()
    unlinked = SpeakerClaim.objects.filter(
        speaker_id=speaker.pk, member=member, status=SpeakerClaim.Status.APPROVED
    ).update(status=SpeakerClaim.Status.UNLINKED, decided_by=staff_user, decided_at=now)
    if not unlinked:  # linked directly by staff, with no claim: keep the history all the same
        SpeakerClaim.objects.create(
            member=member,
            speaker_id=speaker.pk,
            status=SpeakerClaim.Status.UNLINKED,
            decided_by=staff_user,
            decided_at=now,
        )
    return member


@transaction.atomic
def decide_claim(
    *, claim: SpeakerClaim, approve: bool, staff_user, opt_out_confirmed: bool = False
) -> None:
    """Raises AlreadyLinked or OptOutOfSomeoneElse (and decides nothing) where link_speaker
    does."""
    if approve:
        link_speaker(
            speaker=claim.speaker,
            member=claim.member,
            staff_user=staff_user,
            claim=claim,
            opt_out_confirmed=opt_out_confirmed,
        )
    claim.status = SpeakerClaim.Status.APPROVED if approve else SpeakerClaim.Status.REJECTED
    claim.decided_by = staff_user
    claim.decided_at = timezone.now()
    claim.save(update_fields=["status", "decided_by", "decided_at"])
