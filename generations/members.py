"""What a member's account leaves behind when it is deleted (in the admin, or by themselves)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models.signals import post_delete, pre_delete
from django.dispatch import receiver
from django.utils import timezone

from generations.models import Impression, ShareLink, Vote


@receiver(pre_delete, sender=settings.AUTH_USER_MODEL, dispatch_uid="joe-member-leaves")
def _before_member_deleted(sender: Any, instance: Any, **kwargs: Any) -> None:
    # Their public links stop working: nobody would be left who made them, or could revoke them.
    ShareLink.objects.filter(created_by=instance, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    # Their votes and impressions go with them (CASCADE): the snippets' counts follow, below.
    instance._joe_touched_snippets = set(
        Vote.objects.filter(user=instance).values_list("snippet_id", flat=True)
    ) | set(Impression.objects.filter(user=instance).values_list("snippet_id", flat=True))


@receiver(post_delete, sender=settings.AUTH_USER_MODEL, dispatch_uid="joe-member-left")
def _after_member_deleted(sender: Any, instance: Any, **kwargs: Any) -> None:
    from generations.votes import recount

    recount(getattr(instance, "_joe_touched_snippets", ()))
