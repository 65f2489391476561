"""Generated snippets and what members do with them: batches, votes, favourites, share links."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone

from ingest.models import Speaker
from joe_site.jobs import Job
from trainer.models import TrainingRun


class GenerationBatch(Job):
    run = models.ForeignKey(TrainingRun, on_delete=models.CASCADE, related_name="batches")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    per_speaker = models.JSONField(default=dict, blank=True)  # {speaker slug: count}
    conversations = models.PositiveIntegerField(default=0)
    temperature = models.FloatField(default=0.9)
    top_p = models.FloatField(default=0.95)
    top_k = models.PositiveIntegerField(default=50)
    max_new_tokens = models.PositiveIntegerField(default=60)
    prompt = models.CharField(max_length=300, blank=True)
    base_seed = models.BigIntegerField(default=0)
    stats = models.JSONField(default=dict, blank=True)  # generated / kept / filtered by reason

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "generation batches"

    def __str__(self) -> str:
        return f"Batch {self.pk} of {self.run}"

    def get_absolute_url(self) -> str:
        return reverse("generations:batch", args=[self.pk])


class SnippetStatus(models.TextChoices):
    TRIAGE = "triage", "Waiting for staff"
    PUBLISHED = "published", "In the gallery"
    HIDDEN = "hidden", "Hidden"
    DISCARDED = "discarded", "Discarded"


class Snippet(models.Model):
    """One fake message, or a whole fake conversation, with everything needed to regenerate it."""

    class Kind(models.TextChoices):
        MESSAGE = "message", "Message"
        CONVERSATION = "conversation", "Conversation"

    class Source(models.TextChoices):
        BATCH = "batch", "Batch"
        LIVE = "live", "Live"

    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.MESSAGE)
    source = models.CharField(max_length=8, choices=Source.choices, default=Source.BATCH)
    batch = models.ForeignKey(
        GenerationBatch, null=True, blank=True, on_delete=models.SET_NULL, related_name="snippets"
    )
    run = models.ForeignKey(
        TrainingRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="snippets"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="snippets_created",
    )
    speaker = models.ForeignKey(
        Speaker, null=True, blank=True, on_delete=models.CASCADE, related_name="snippets"
    )  # the (first) voice; conversations list all voices in `speakers`
    speakers = models.ManyToManyField(Speaker, related_name="snippets_in", blank=True)
    lines = models.JSONField(default=list)  # [{"speaker": slug, "name": display name, "text": ...}]
    text = models.TextField(blank=True)  # all lines as plain text, for dedup and search
    prompt = models.CharField(max_length=300, blank=True)
    temperature = models.FloatField(default=0.9)
    top_p = models.FloatField(default=0.95)
    top_k = models.PositiveIntegerField(default=50)
    max_new_tokens = models.PositiveIntegerField(default=60)
    seed = models.BigIntegerField(default=0)
    longest_shared_run = models.PositiveIntegerField(
        default=0, help_text="Longest run of tokens shared with a training message"
    )
    is_leak = models.BooleanField(default=False, db_index=True)
    status = models.CharField(
        max_length=12, choices=SnippetStatus.choices, default=SnippetStatus.PUBLISHED
    )
    hidden_reason = models.CharField(max_length=200, blank=True)
    vetoed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="vetoes",
    )
    vetoed_at = models.DateTimeField(null=True, blank=True)
    upvotes = models.PositiveIntegerField(default=0)
    downvotes = models.PositiveIntegerField(default=0)
    score = models.IntegerField(default=0)
    views = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    published_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["status", "-created_at"], name="snippet_new"),
            models.Index(fields=["status", "-score", "-created_at"], name="snippet_top"),
            models.Index(fields=["speaker", "status", "-created_at"], name="snippet_speaker_new"),
        ]

    def __str__(self) -> str:
        return self.text[:60]

    def get_absolute_url(self) -> str:
        return reverse("generations:snippet", args=[self.pk])


class Vote(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="votes"
    )
    snippet = models.ForeignKey(Snippet, on_delete=models.CASCADE, related_name="votes")
    value = models.SmallIntegerField(choices=[(1, "Up"), (-1, "Down")])
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "snippet"], name="one_vote_per_member"),
            models.CheckConstraint(
                condition=models.Q(value__in=[1, -1]), name="vote_is_up_or_down"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} {'+' if self.value > 0 else '-'}1 on {self.snippet_id}"


class Favourite(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="favourites"
    )
    snippet = models.ForeignKey(Snippet, on_delete=models.CASCADE, related_name="favourites")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["user", "snippet"], name="one_favourite_per_member")
        ]

    def __str__(self) -> str:
        return f"{self.user} ★ {self.snippet_id}"


def _share_token() -> str:
    return secrets.token_urlsafe(16)


class ShareLink(models.Model):
    """An unguessable public URL for one snippet; revoked links 404."""

    snippet = models.ForeignKey(Snippet, on_delete=models.CASCADE, related_name="share_links")
    token = models.CharField(max_length=40, unique=True, default=_share_token, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="share_links"
    )
    created_at = models.DateTimeField(default=timezone.now)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"Share link for snippet {self.snippet_id}"

    def get_absolute_url(self) -> str:
        return reverse("generations:share", args=[self.token])


class LiveGeneration(Job):
    """A member's live request: the worker appends text as tokens arrive; the page polls it."""

    member = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="live_generations"
    )
    run = models.ForeignKey(TrainingRun, null=True, on_delete=models.SET_NULL)
    speaker = models.ForeignKey(Speaker, null=True, blank=True, on_delete=models.CASCADE)
    conversation = models.BooleanField(default=False)
    opening = models.CharField(max_length=300, blank=True)
    temperature = models.FloatField(default=0.9)
    top_p = models.FloatField(default=0.95)
    top_k = models.PositiveIntegerField(default=50)
    max_new_tokens = models.PositiveIntegerField(default=60)
    seed = models.BigIntegerField(default=0)
    lines = models.JSONField(default=list)  # grows while the worker streams
    longest_shared_run = models.PositiveIntegerField(default=0)
    saved_snippet = models.ForeignKey(Snippet, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Live generation {self.pk} by {self.member}"
