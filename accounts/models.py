"""Members join by invite only: staff create invite links, a friend signs up with one."""

from __future__ import annotations

import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import models
from django.db.models.functions import Lower
from django.urls import reverse
from django.utils import timezone


def is_last_admin(user) -> bool:
    """Whether deleting ``user``, or taking away their superuser status, would leave nobody
    able to run the site."""
    if not (user.is_superuser and user.is_active):
        return False
    others = get_user_model().objects.filter(is_superuser=True, is_active=True).exclude(pk=user.pk)
    return not others.exists()


def _new_token() -> str:
    return secrets.token_urlsafe(24)


def _default_expiry():
    return timezone.now() + timedelta(days=settings.JOE_INVITE_DAYS)


class Invite(models.Model):
    token = models.CharField(max_length=64, unique=True, default=_new_token, editable=False)
    note = models.CharField(
        max_length=100, blank=True, help_text="Who it is for (only staff see it)"
    )
    created_by = models.ForeignKey(  # the invites a staff member made outlive their account
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="invites_created",
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(default=_default_expiry)
    used_by = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="invite_used",
    )
    used_at = models.DateTimeField(null=True, blank=True)
    revoked = models.BooleanField(default=False)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Invite {self.note or self.token[:6]}"

    def get_absolute_url(self) -> str:
        return reverse("signup", args=[self.token])

    @property
    def state(self) -> str:
        if self.used_at:
            return "used"
        if self.revoked:
            return "revoked"
        if self.expires_at <= timezone.now():
            return "expired"
        return "open"

    @property
    def is_usable(self) -> bool:
        return self.state == "open"


class ConfirmedEmail(models.Model):
    """The address a member proved is theirs by opening the link joe emailed to it: the only one
    "Forgot your password?" sends to. ``User.email`` is what they last set on their page, which
    waits there unconfirmed until its link is opened (this address keeps its links till then)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="confirmed_email",
    )
    email = models.EmailField()
    confirmed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            # One account per address, whatever its case, even when two confirm it at once.
            models.UniqueConstraint(Lower("email"), name="one_account_per_confirmed_email")
        ]

    def __str__(self) -> str:
        return f"{self.email} (confirmed)"

    @classmethod
    def of(cls, user) -> ConfirmedEmail | None:  # noqa: ANN001
        try:
            return user.confirmed_email
        except cls.DoesNotExist:
            return None

    @classmethod
    def held_by_another(cls, email: str, user) -> bool:  # noqa: ANN001
        return cls.objects.filter(email__iexact=email).exclude(user=user).exists()

    @classmethod
    def waiting_for(cls, user) -> str:  # noqa: ANN001
        """The email ``user`` set that is not confirmed yet, or ''."""
        confirmed = cls.of(user)
        if not user.email or (confirmed and confirmed.email.lower() == user.email.lower()):
            return ""
        return user.email


class SpeakerClaim(models.Model):
    """A member asks to be recognised as a speaker; staff approve, which links the two."""

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for staff"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"
        UNLINKED = "unlinked", "Approved, then unlinked by staff"

    member = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="speaker_claims"
    )
    speaker = models.ForeignKey("ingest.Speaker", on_delete=models.CASCADE, related_name="claims")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField(default=timezone.now)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["member", "speaker"],
                condition=models.Q(status="pending"),
                name="one_pending_claim_per_speaker_and_member",
            )
        ]

    def __str__(self) -> str:
        return f"{self.member} claims {self.speaker} ({self.status})"
