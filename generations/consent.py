"""A friend's veto over fakes in their own voice: hidden for everyone, share links gone, final."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from generations.models import ShareLink, Snippet, SnippetStatus


class VetoError(Exception):
    """The member may not veto this snippet; the message is meant for the page."""


def can_veto(user, snippet: Snippet) -> bool:
    """Any friend whose voice appears in the snippet may veto it."""
    if not user.is_authenticated:
        return False
    if snippet.speaker is not None and snippet.speaker.member_id == user.pk:
        return True
    return snippet.speakers.filter(member=user).exists()


@transaction.atomic
def veto(*, snippet: Snippet, user) -> None:
    if not can_veto(user, snippet):
        raise VetoError("Only the friend whose voice this is can veto it.")
    now = timezone.now()
    Snippet.objects.filter(pk=snippet.pk).update(
        vetoed_by=user,
        vetoed_at=now,
        status=SnippetStatus.HIDDEN,
        hidden_reason=f"Vetoed by {user.get_username()}",
    )
    ShareLink.objects.filter(snippet=snippet, revoked_at__isnull=True).update(revoked_at=now)
    snippet.refresh_from_db()
