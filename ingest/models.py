"""The corpus: uploaded exports, their people (identities → speakers), conversations, messages."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone

from joe_site.jobs import Job

SPEAKER_COLOURS = [
    "#e4572e", "#2e86ab", "#a23b72", "#3bb273", "#f18f01", "#6c4ab6",
    "#c73e1d", "#1b998b", "#d81159", "#5c80bc", "#8f2d56", "#218380",
]  # fmt: skip


class SourceKind(models.TextChoices):
    SLACK = "slack", "Slack export"
    SIGNAL = "signal", "Signal Android backup"
    WHATSAPP = "whatsapp", "WhatsApp chat export"
    TELEGRAM = "telegram", "Telegram Desktop export"
    DISCORD = "discord", "Discord (DiscordChatExporter)"
    SIGNAL_DESKTOP = "signal_desktop", "Signal Desktop (signal-export)"
    MESSENGER = "messenger", "Facebook Messenger / Instagram"
    IMESSAGE = "imessage", "iMessage chat.db"


class Export(Job):
    """One uploaded file and the state of its import."""

    file = models.FileField(upload_to="exports/%Y/%m/", blank=True, max_length=500)
    original_name = models.CharField(max_length=255)
    kind = models.CharField(max_length=20, choices=SourceKind.choices, blank=True)
    sha256 = models.CharField(max_length=64, db_index=True, blank=True)
    size_bytes = models.BigIntegerField(default=0)
    keep_file = models.BooleanField(default=False, help_text="Keep the raw file after import")
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    owner_name = models.CharField(
        max_length=100, blank=True, help_text="Whose phone the backup came from (Signal)"
    )
    conversations_count = models.PositiveIntegerField(default=0)
    messages_count = models.PositiveIntegerField(default=0)
    duplicates_count = models.PositiveIntegerField(default=0)
    identities_count = models.PositiveIntegerField(default=0)
    skipped = models.JSONField(default=dict, blank=True)
    first_message_at = models.DateTimeField(null=True, blank=True)
    last_message_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.original_name

    def get_absolute_url(self) -> str:
        return reverse("ingest:export", args=[self.pk])


class Speaker(models.Model):
    """A friend as the model knows them: one voice, whatever apps they wrote on."""

    display_name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=60, unique=True)
    member = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="speakers",
    )
    opted_out = models.BooleanField(default=False, db_index=True)
    opted_out_at = models.DateTimeField(null=True, blank=True)
    game_opt_in = models.BooleanField(
        default=False, help_text="Real messages may appear in the Real or fake? game"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["display_name"]

    def __str__(self) -> str:
        return self.display_name

    @property
    def colour(self) -> str:
        return SPEAKER_COLOURS[(self.pk or 0) % len(SPEAKER_COLOURS)]

    @property
    def initial(self) -> str:
        return (self.display_name[:1] or "?").upper()


class Identity(models.Model):
    """One person as one source knows them (a Slack user id, a Signal recipient...)."""

    source_kind = models.CharField(max_length=20, choices=SourceKind.choices)
    external_id = models.CharField(max_length=255)
    display_name = models.CharField(max_length=255)
    speaker = models.ForeignKey(
        Speaker, null=True, blank=True, on_delete=models.SET_NULL, related_name="identities"
    )
    excluded = models.BooleanField(default=False, help_text="Never train on this identity")
    is_bot = models.BooleanField(default=False)
    is_self = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "identities"
        ordering = ["source_kind", "display_name"]
        constraints = [
            models.UniqueConstraint(
                fields=["source_kind", "external_id"], name="identity_unique_per_source"
            )
        ]

    def __str__(self) -> str:
        return f"{self.display_name} ({self.get_source_kind_display()})"


class Conversation(models.Model):
    source_kind = models.CharField(max_length=20, choices=SourceKind.choices)
    external_id = models.CharField(max_length=255)
    title = models.CharField(max_length=255, blank=True)
    is_group = models.BooleanField(default=True)

    class Meta:
        ordering = ["title"]
        constraints = [
            models.UniqueConstraint(
                fields=["source_kind", "external_id"], name="conversation_unique_per_source"
            )
        ]

    def __str__(self) -> str:
        return self.title or self.external_id


class Message(models.Model):
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages"
    )
    identity = models.ForeignKey(Identity, on_delete=models.CASCADE, related_name="messages")
    export = models.ForeignKey(
        Export, null=True, blank=True, on_delete=models.CASCADE, related_name="messages"
    )
    source_kind = models.CharField(max_length=20, choices=SourceKind.choices)
    # The dedup key: unique within a source, stable across re-exports of the same history.
    external_id = models.CharField(max_length=255)
    sent_at = models.DateTimeField()
    text = models.TextField()
    reply_to_external_id = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["sent_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["source_kind", "external_id"], name="message_unique_per_source"
            )
        ]
        indexes = [
            models.Index(fields=["conversation", "sent_at"]),
            models.Index(fields=["identity", "sent_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.identity.display_name}: {self.text[:40]}"
