"""Generated snippets and what members do with them: batches, votes, favourites, share links."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import models
from django.db.models import Exists, OuterRef, Q, Subquery
from django.urls import reverse
from django.utils import timezone

from generations import ranking
from ingest.models import Speaker
from joe_site.jobs import Job, ReportsHeartbeat
from trainer.models import TrainingRun


class GenerationBatch(ReportsHeartbeat, Job):
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
    # The worker generating it, and when it last reported (each chunk): a worker killed mid-batch
    # leaves it running, and the broker hands the job out again only after a day.
    worker_host = models.CharField(max_length=200, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "generation batches"

    def __str__(self) -> str:
        return f"Batch {self.pk} of {self.run}"

    def get_absolute_url(self) -> str:
        return reverse("generations:batch", args=[self.pk])

    def speaker_counts(self) -> list[tuple[str, int]]:
        """The single messages asked of each speaker, by the name the site shows them under, in
        name order (``per_speaker`` keeps the slug the model knows them by; a speaker since gone
        shows that)."""
        names = dict(
            Speaker.objects.filter(slug__in=list(self.per_speaker)).values_list(
                "slug", "display_name"
            )
        )
        return sorted((names.get(slug, slug), n) for slug, n in self.per_speaker.items())


class SnippetStatus(models.TextChoices):
    TRIAGE = "triage", "Waiting for staff"
    PUBLISHED = "published", "In the gallery"
    HIDDEN = "hidden", "Hidden"
    DISCARDED = "discarded", "Discarded"


class CurationError(Exception):
    """A curation step that is not allowed; the message is meant for the page."""


@dataclass(frozen=True)
class Bubble:
    """One line of a snippet as the gallery draws it."""

    name: str
    text: str
    colour: str
    initial: str


class SnippetQuerySet(models.QuerySet):
    def visible(self) -> SnippetQuerySet:
        """What members may see anywhere on the site: the one place this rule lives.

        Published, not vetoed, not a leak, and no voice in it belongs to an opted-out speaker.
        """
        opted_out_voice = Snippet.speakers.through.objects.filter(
            snippet_id=OuterRef("pk"), speaker__opted_out=True
        )
        return self.filter(
            status=SnippetStatus.PUBLISHED,
            is_leak=False,
            vetoed_by__isnull=True,
            vetoed_at__isnull=True,
        ).exclude(
            Q(speaker__opted_out=True) | Q(Exists(opted_out_voice)),
        )

    def featuring(self, speaker: Speaker) -> SnippetQuerySet:
        """Snippets in this speaker's voice, alone or as one voice of a conversation."""
        in_conversation = Snippet.speakers.through.objects.filter(
            snippet_id=OuterRef("pk"), speaker_id=speaker.pk
        )
        return self.filter(Q(speaker_id=speaker.pk) | Q(Exists(in_conversation)))

    def for_member(self, user) -> SnippetQuerySet:
        """Annotate the member's own vote (1, -1 or None) and whether they starred it."""
        return self.annotate(
            my_vote=Subquery(
                Vote.objects.filter(snippet_id=OuterRef("pk"), user_id=user.pk).values("value")[:1]
            ),
            is_favourite=Exists(
                Favourite.objects.filter(snippet_id=OuterRef("pk"), user_id=user.pk)
            ),
        )

    def ranked(self, sort: str, *, now: datetime | None = None, seed: int = 0) -> SnippetQuerySet:
        """Order by one of ranking.SORTS; ties broken by recency so pages never overlap."""
        if sort == "new":
            return self.order_by("-created_at", "-pk")
        if sort == "top":
            return self.order_by("-score", "-created_at", "-pk")
        if sort == "best":
            return self.order_by("-best", "-created_at", "-pk")
        if sort == "random":
            return self.annotate(shuffle=ranking.shuffled(seed)).order_by("shuffle", "pk")
        hot = ranking.hot(now or timezone.now())
        return self.annotate(hot=hot).order_by("-hot", "-created_at", "-pk")


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
    views = models.PositiveIntegerField(default=0)  # members who saw it, each counted once
    best = models.FloatField(
        default=0.0, help_text="Wilson lower bound of upvotes over impressions (the best sort)"
    )
    hot_ceiling = models.FloatField(
        default=0.0,
        help_text="Hot as of the last vote or refresh: never below today's hot (the hot sort)",
    )
    created_at = models.DateTimeField(default=timezone.now)
    published_at = models.DateTimeField(null=True, blank=True)

    objects = SnippetQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["status", "-created_at"], name="snippet_new"),
            models.Index(fields=["status", "-score", "-created_at"], name="snippet_top"),
            models.Index(fields=["speaker", "status", "-created_at"], name="snippet_speaker_new"),
            models.Index(fields=["status", "-best", "-created_at"], name="snippet_best"),
            models.Index(fields=["status", "-hot_ceiling"], name="snippet_hot"),
        ]

    def __str__(self) -> str:
        return self.text[:60]

    def save(self, **kwargs) -> None:
        """Keep hot_ceiling in step with whatever score is saved (votes.set_vote does it in SQL)."""
        update_fields = kwargs.get("update_fields")
        if update_fields is None or "score" in update_fields:
            self.hot_ceiling = ranking.hot_ceiling_in_python(
                self.score, self.created_at, timezone.now()
            )
            if update_fields is not None:
                kwargs["update_fields"] = {*update_fields, "hot_ceiling"}
        super().save(**kwargs)

    def get_absolute_url(self) -> str:
        return reverse("generations:snippet", args=[self.pk])

    @property
    def is_visible(self) -> bool:
        return Snippet.objects.visible().filter(pk=self.pk).exists()

    def bubbles(self, speakers: Mapping[str, Speaker]) -> list[Bubble]:
        """The lines as chat bubbles; `speakers` maps slug to Speaker (names may have changed)."""
        lines = self.lines or [{"speaker": "", "name": str(self.speaker or ""), "text": self.text}]
        bubbles = []
        for line in lines:
            speaker = speakers.get(line.get("speaker", ""))
            if speaker is None and self.speaker_id and len(lines) == 1:
                speaker = self.speaker
            name = speaker.display_name if speaker else line.get("name") or "?"
            bubbles.append(
                Bubble(
                    name=name,
                    text=line.get("text", ""),
                    colour=speaker.colour if speaker else "#777777",
                    initial=speaker.initial if speaker else (name[:1] or "?").upper(),
                )
            )
        return bubbles

    @property
    def hidden_because(self) -> str:
        """Why members cannot see it, beyond its status: a veto, or a voice that opted out
        (those hold whatever the status says; "" when neither applies)."""
        if self.vetoed_at is not None:
            who = (
                self.vetoed_by.get_username() if self.vetoed_by else "the friend whose voice it is"
            )
            return f"vetoed by {who}"
        voices = [self.speaker, *self.speakers.all()] if self.speaker_id else self.speakers.all()
        gone = sorted({s.display_name for s in voices if s is not None and s.opted_out})
        if gone:
            return " and ".join(gone) + " opted out"
        return ""

    def voice_names(self, speakers: Mapping[str, Speaker]) -> list[str]:
        """Each voice once, in order of appearance: "AI parody of Ann and Bo"."""
        return list(dict.fromkeys(b.name for b in self.bubbles(speakers)))

    # Staff curation. Leaks never reach the gallery: they can only be discarded.
    def publish(self) -> None:
        if self.is_leak:
            raise CurationError(
                "This snippet repeats a training message, so it can only be discarded."
            )
        if self.vetoed_at is not None:
            raise CurationError(
                "The friend whose voice this is vetoed it, so it cannot be published again."
            )
        self.status = SnippetStatus.PUBLISHED
        self.published_at = self.published_at or timezone.now()
        self.hidden_reason = ""
        self.save(update_fields=["status", "published_at", "hidden_reason"])

    def hide(self, reason: str = "") -> None:
        self.status = SnippetStatus.HIDDEN
        self.hidden_reason = reason[:200]
        self.save(update_fields=["status", "hidden_reason"])

    def discard(self) -> None:
        self.status = SnippetStatus.DISCARDED
        self.save(update_fields=["status"])


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


class Impression(models.Model):
    """A member saw a snippet: counted once per member, the denominator of the best sort."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="impressions"
    )
    snippet = models.ForeignKey(Snippet, on_delete=models.CASCADE, related_name="impressions")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "snippet"], name="one_impression_per_member")
        ]

    def __str__(self) -> str:
        return f"{self.user} saw {self.snippet_id}"


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


class ShareLinkQuerySet(models.QuerySet):
    def active(self) -> ShareLinkQuerySet:
        """Not revoked, and the snippet is still one members may see."""
        return self.filter(revoked_at__isnull=True, snippet__in=Snippet.objects.visible())


class ShareLink(models.Model):
    """An unguessable public URL for one snippet; revoked links 404."""

    snippet = models.ForeignKey(Snippet, on_delete=models.CASCADE, related_name="share_links")
    token = models.CharField(max_length=40, unique=True, default=_share_token, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="share_links"
    )
    created_at = models.DateTimeField(default=timezone.now)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ShareLinkQuerySet.as_manager()

    def __str__(self) -> str:
        return f"Share link for snippet {self.snippet_id}"

    def get_absolute_url(self) -> str:
        return reverse("generations:share", args=[self.token])

    def can_revoke(self, user) -> bool:
        """Staff, whoever made it, and a friend whose voice the snippet is in (who may veto the
        whole snippet anyway, and should not have to, to stop one public link)."""
        from generations.consent import can_veto

        if user.is_staff or (user.pk is not None and user.pk == self.created_by_id):
            return True
        return can_veto(user, self.snippet)

    def revoke(self) -> None:
        if self.revoked_at is None:
            self.revoked_at = timezone.now()
            self.save(update_fields=["revoked_at"])


class LiveGeneration(Job):
    """A member's live request: the worker appends text as tokens arrive; the page polls it."""

    member = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="live_generations"
    )
    run = models.ForeignKey(TrainingRun, null=True, on_delete=models.SET_NULL)
    speaker = models.ForeignKey(Speaker, null=True, blank=True, on_delete=models.CASCADE)
    conversation = models.BooleanField(default=False)
    # The friends a conversation is between (their speaker ids), as the member picked them.
    speaker_ids = models.JSONField(default=list, blank=True)
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


class GameGuess(models.Model):
    """One round of Real or fake?: a member saw a message and guessed where it came from.

    A real message appears only for speakers who opted in to the game (off by default); deleting
    the message (a friend's "delete my messages") deletes the guesses about it too.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="game_guesses"
    )
    speaker = models.ForeignKey(Speaker, on_delete=models.CASCADE, related_name="+")
    snippet = models.ForeignKey(Snippet, null=True, blank=True, on_delete=models.CASCADE)
    # No database-level constraint, like Message's own foreign keys: PostgreSQL checks a
    # deferred one once per deleted message at commit, and deleting a 1M-message export spent
    # 6.4 s there. Every deletion of messages goes through Django's cascade or
    # MessageQuerySet.delete_in_sql, which both delete the guesses first.
    message = models.ForeignKey(
        "ingest.Message",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        db_constraint=False,
    )
    guessed_fake = models.BooleanField()
    correct = models.BooleanField()
    # The dealing of the round this answers (kept in the member's session): answered once,
    # whatever reaches the server twice (a double click, a resent post) and with or without Redis.
    deal = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(snippet__isnull=True) ^ Q(message__isnull=True),
                name="guess_is_about_a_snippet_or_a_message",
            ),
            models.UniqueConstraint(
                fields=["user", "deal"], condition=~Q(deal=""), name="one_answer_per_dealt_round"
            ),
        ]
        indexes = [models.Index(fields=["user", "correct"])]

    def __str__(self) -> str:
        return f"{self.user} guessed {'fake' if self.guessed_fake else 'real'} ({self.correct})"
