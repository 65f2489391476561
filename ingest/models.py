"""The corpus: uploaded exports, their people (identities → speakers), conversations, messages."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, models, transaction
from django.db.models import Exists, OuterRef
from django.dispatch import Signal
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify

from ingest.rows import clean_name
from joe_site.jobs import Job, JobStatus

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


# Exports that call their owner "me" whoever they are (an iMessage database, signal-export's
# output): two friends' exports would make one person of their owners. Such an export is
# imported with its owner's name, and their identity is keyed by it (``records.owner_key``).
OWNER_NAMED_KINDS = {
    SourceKind.IMESSAGE: "An iMessage chat.db",
    SourceKind.SIGNAL_DESKTOP: "A Signal Desktop export (signal-export)",
}
NEEDS_OWNER = (
    "{kind} calls its owner “me”, whoever they are: say whose it is (“Whose phone is it?”), "
    "so that their messages go to them and not to the owner of another such export."
)


# Sent once an export's deletion has committed, for the stages after the corpus (the trainer
# flags the runs that learnt from it). Arguments: name, the export's file name; speaker_ids,
# every id its messages' speakers had (merges, splits); imported_at, when its import ended;
# chats, the names of the chats staff deleted in the admin, when it was those and not an export.
export_deleted = Signal()


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
        max_length=100,
        blank=True,
        help_text="Whose phone or computer the export came from (Signal, iMessage, signal-export)",
    )
    include_bots = models.BooleanField(
        default=False,
        help_text="Import bots' messages too (Slack), as identities without a speaker",
    )
    conversations_count = models.PositiveIntegerField(default=0)
    messages_count = models.PositiveIntegerField(default=0)
    duplicates_count = models.PositiveIntegerField(default=0)
    identities_count = models.PositiveIntegerField(default=0)
    skipped = models.JSONField(default=dict, blank=True)
    # What the parser said about the file for whoever imported it (a chat that may be here
    # already from an older export, say): sentences, shown on the export's page.
    notices = models.JSONField(default=list, blank=True)
    first_message_at = models.DateTimeField(null=True, blank=True)
    last_message_at = models.DateTimeField(null=True, blank=True)
    # Deleting a big export runs on the worker (services.request_delete): asked for, then begun,
    # or given up with a reason (the row stays, so the page can say so and offer it again).
    delete_requested_at = models.DateTimeField(null=True, blank=True)
    delete_started_at = models.DateTimeField(null=True, blank=True)
    delete_error = models.TextField(blank=True)
    # The worker running the import (Celery's node name) and when it last wrote its progress:
    # a worker that starts again under that name requeues the import it was killed in, and a
    # cancel of an import whose worker went silent takes effect at once (services.cancel_import).
    worker_host = models.CharField(max_length=200, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # The process of that worker importing it: a second delivery to the same worker finds out
    # whether it is still there (one killed by the kernel for memory is not: services.claim_import).
    worker_pid = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.original_name

    def get_absolute_url(self) -> str:
        return reverse("ingest:export", args=[self.pk])

    @property
    def is_signal(self) -> bool:
        return self.kind == SourceKind.SIGNAL

    @property
    def has_file(self) -> bool:
        return bool(self.file) and self.file.storage.exists(self.file.name)

    @property
    def is_deleting(self) -> bool:
        return self.delete_requested_at is not None

    @property
    def can_retry(self) -> bool:
        if self.is_deleting:
            return False
        if self.status not in (JobStatus.FAILED, JobStatus.CANCELLED) or not self.has_file:
            return False
        return self.status == JobStatus.CANCELLED or not self.failed_for_good

    @property
    def failed_for_good(self) -> bool:
        """Failed for the file's own reason: a damaged, empty or foreign file fails the same way
        every time (its error says what is wrong with it), so its import is not retried."""
        from ingest.services import retry_helps  # services imports this module

        return self.status == JobStatus.FAILED and not retry_helps(self.error)

    def earlier_import(self) -> Export | None:
        """The first successful import of the same file (same sha256), if this is a re-upload."""
        if not self.sha256:
            return None
        return (
            Export.objects.filter(
                sha256=self.sha256, status=JobStatus.SUCCEEDED, created_at__lte=self.created_at
            )
            .exclude(pk=self.pk)
            .order_by("created_at")
            .first()
        )

    def later_overlaps(self) -> models.QuerySet[Export]:
        """Later successful imports of the same kind that skipped messages as already imported.

        Some of those may be this export's messages (a re-upload, a newer backup of the same
        phone): each message belongs to the import that added it first, so deleting this export
        removes them even though a later export also held them.
        """
        return (
            Export.objects.filter(
                kind=self.kind,
                status=JobStatus.SUCCEEDED,
                created_at__gt=self.created_at,
                duplicates_count__gt=0,
            )
            .exclude(pk=self.pk)
            .order_by("created_at")
        )

    def skipped_items(self) -> list[tuple[str, int]]:
        """Skip reasons, most frequent first."""
        return sorted(self.skipped.items(), key=lambda item: (-item[1], item[0]))

    def summary_lines(self) -> list[str]:
        """The import's result in words, as the export page and `manage.py ingest` print it."""
        # The conversations and people are those of the whole file, whether its messages were
        # new or not: a re-upload adds no message but still holds them.
        held = (
            f"{_count(self.conversations_count, 'conversation')} from "
            f"{_count(self.identities_count, 'person', 'people')}"
        )
        new = _count(self.messages_count, "new message")
        lines = [
            f"{new} in {held}" if not self.duplicates_count else f"{new}; the file holds {held}",
            f"{_count(self.duplicates_count, 'duplicate')} already imported",
        ]
        if self.first_message_at and self.last_message_at:
            lines.append(
                f"from {self.first_message_at:%Y-%m-%d} to {self.last_message_at:%Y-%m-%d}"
            )
        skipped = ", ".join(f"{count:,} {reason}" for reason, count in self.skipped_items())
        lines.append(f"skipped: {skipped}" if skipped else "nothing skipped")
        return lines + list(self.notices)

    def delete_file(self) -> None:
        if self.file:
            self.file.delete(save=False)
            type(self).objects.filter(pk=self.pk).update(file="")


def _count(n: int, one: str, many: str = "") -> str:
    """ "1 conversation", "2 conversations", "1,000 people"."""
    return f"{n:,} {one if n == 1 else many or one + 's'}"


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
    # The member who opted it out: only they take it back in without staff saying so (linking
    # the speaker to someone else lets that person opt it in; accounts.consent.opt_out_at_stake).
    opted_out_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The friend deleted their messages (accounts.consent.delete_messages): an identity that an
    # import gives this speaker later (the same name on another app or account) is skipped too.
    messages_deleted_at = models.DateTimeField(null=True, blank=True)
    game_opt_in = models.BooleanField(
        default=False, help_text="Real messages may appear in the Real or fake? game"
    )
    # Staff said these are someone else (two Sams on two apps): never suggested for a merge.
    not_same_as = models.ManyToManyField("self", blank=True)
    # Speakers whose messages were this friend's: merged into it, or the one it was split off
    # from. A run trained on one of them learnt from this friend (runs record speaker ids).
    former_ids = models.JSONField(default=list, blank=True)
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

    @classmethod
    def create_named(cls, display_name: str) -> Speaker:
        """A new speaker with a unique slug made from the name (the slug is the model's token)."""
        name = clean_name(display_name)[:100] or "Someone"
        base = slugify(name)[:50] or "speaker"
        slug, n = base, 1
        while cls.objects.filter(slug=slug).exists():
            n += 1
            slug = f"{base}-{n}"
        return cls.objects.create(display_name=name, slug=slug)

    def rename(self, display_name: str) -> None:
        """Change the shown name. The slug stays: trained models know the speaker by it."""
        name = clean_name(display_name)
        if not name:
            raise ValidationError("A speaker needs a name.")
        self.display_name = name[:100]
        self.save(update_fields=["display_name"])

    def remember(self, other: Speaker) -> None:
        """Note (unsaved) that messages of ``other`` are now this speaker's: runs trained on it,
        or on any speaker it remembers, learnt from this friend."""
        self.former_ids = sorted({*self.former_ids, other.pk, *other.former_ids})

    def merge_into(self, target: Speaker) -> Speaker:
        """Make ``target`` the one speaker for both: identities, generated snippets and the rest
        move over, then this speaker is deleted."""
        if target.pk == self.pk:
            raise ValidationError("Pick two different speakers to merge.")
        if self.member_id and target.member_id and self.member_id != target.member_id:
            raise ValidationError(
                f"{self} and {target} are linked to different members; unlink one of them "
                "before merging."
            )
        with transaction.atomic():
            self.identities.update(speaker=target)
            _repoint_references(self, target)
            target.member_id = target.member_id or self.member_id
            # Consent is never widened by a merge: an opt-out wins, a game opt-in needs both.
            target.opted_out = target.opted_out or self.opted_out
            target.opted_out_at = target.opted_out_at or self.opted_out_at
            if target.opted_out and not target.opted_out_by_id:
                target.opted_out_by_id = self.opted_out_by_id
            target.game_opt_in = target.game_opt_in and self.game_opt_in
            target.messages_deleted_at = target.messages_deleted_at or self.messages_deleted_at
            target.not_same_as.add(*self.not_same_as.exclude(pk=target.pk))
            target.remember(self)
            target.save(
                update_fields=[
                    "member", "opted_out", "opted_out_at", "opted_out_by", "game_opt_in",
                    "messages_deleted_at", "former_ids",
                ]
            )  # fmt: skip
            self.delete()
        return target


class Identity(models.Model):
    """One person as one source knows them (a Slack user id, a Signal recipient...)."""

    source_kind = models.CharField(max_length=20, choices=SourceKind.choices)
    external_id = models.CharField(max_length=255)
    display_name = models.CharField(max_length=255)
    # Another name the source knows them by (Slack: the real name behind a display name such as
    # "Bobby"), compared too when suggesting which speakers are the same friend.
    full_name = models.CharField(max_length=255, blank=True)
    speaker = models.ForeignKey(
        Speaker, null=True, blank=True, on_delete=models.SET_NULL, related_name="identities"
    )
    excluded = models.BooleanField(default=False, help_text="Never train on this identity")
    # The friend deleted their messages (accounts.consent.delete_messages): imports skip this
    # identity's messages from then on, so re-uploading an export cannot bring them back.
    messages_deleted_at = models.DateTimeField(null=True, blank=True)
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

    def assign_to(self, speaker: Speaker | None) -> None:
        if self.speaker_id is not None and speaker is not None and speaker.pk != self.speaker_id:
            # A run trained on the speaker these messages leave learnt from their friend too.
            speaker.remember(Speaker.objects.get(pk=self.speaker_id))
            speaker.save(update_fields=["former_ids"])
        self.speaker = speaker
        self.save(update_fields=["speaker"])

    def split_off(self) -> Speaker:
        """Give this identity a speaker of its own, named after it.

        An opt-out comes along: these messages were part of a voice whose owner said no, and
        splitting must not make them trainable again. The member link and a game opt-in stay
        behind (the identity may be someone else's, merged by mistake): the new speaker's
        owner claims it and decides for themselves."""
        with transaction.atomic():
            previous = self.speaker
            speaker = Speaker.create_named(self.display_name)
            if previous is not None and (previous.opted_out or previous.messages_deleted_at):
                speaker.opted_out = previous.opted_out
                if previous.opted_out:
                    speaker.opted_out_at = previous.opted_out_at or timezone.now()
                    speaker.opted_out_by_id = previous.opted_out_by_id
                speaker.messages_deleted_at = previous.messages_deleted_at
                speaker.save(
                    update_fields=[
                        "opted_out",
                        "opted_out_at",
                        "opted_out_by",
                        "messages_deleted_at",
                    ]
                )
            self.assign_to(speaker)
        return speaker

    def set_excluded(self, excluded: bool) -> None:
        self.excluded = excluded
        self.save(update_fields=["excluded"])


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


class MessageQuerySet(models.QuerySet):
    def delete_in_sql(self) -> int:
        """Delete these messages without loading them into memory; returns how many went.

        ``delete()`` fetches every row to cascade in Python (a 1M-message export took 1.5 GB);
        here what points at the messages (found through the model's relations, so ingest does
        not import the apps after it) is deleted or unlinked first, in SQL, per its on_delete,
        then the messages themselves in one statement.
        """
        ids = self.order_by().values("pk")
        pointers = [
            relation.field
            for relation in Message._meta.get_fields(include_hidden=True)
            if relation.auto_created and relation.is_relation and not relation.concrete
        ]
        handled = (models.CASCADE, models.SET_NULL, models.DO_NOTHING)
        if any(field.remote_field.on_delete not in handled for field in pointers):
            return self.delete()[0]  # PROTECT and the rest: let Django decide, before any change
        for field in pointers:
            pointing = field.model._base_manager.filter(**{f"{field.name}__in": ids})
            if field.remote_field.on_delete is models.CASCADE:
                pointing.delete()
            elif field.remote_field.on_delete is models.SET_NULL:
                pointing.update(**{field.name: None})
        sql, params = ids.query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {Message._meta.db_table} WHERE id IN ({sql})", params)
            return cursor.rowcount


class Message(models.Model):
    # No database-level foreign keys here: the importer bulk-loads millions of rows and resolves
    # these ids itself, in the same transaction, and per-row constraint triggers doubled the
    # import's time (1M messages: 19 s more). Django still cascades deletes. The conversation's
    # single-column index is left out too: (conversation, sent_at) below serves its lookups.
    conversation = models.ForeignKey(
        Conversation,
        on_delete=models.CASCADE,
        related_name="messages",
        db_constraint=False,
        db_index=False,
    )
    identity = models.ForeignKey(
        Identity,
        on_delete=models.CASCADE,
        related_name="messages",
        db_constraint=False,
        db_index=False,
    )
    export = models.ForeignKey(
        Export,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="messages",
        db_constraint=False,
        # Indexed by migration 0005: BRIN on PostgreSQL (an import's rows are appended
        # together; a B-tree cost a big import ~10% of its database time), B-tree elsewhere.
        # Django does not know that index: a later migration that makes SQLite rebuild this
        # table (most AlterFields) must create ingest_message_export again.
        db_index=False,
    )
    source_kind = models.CharField(max_length=20, choices=SourceKind.choices)
    # The dedup key: unique within a source, stable across re-exports of the same history.
    # On PostgreSQL its column collates "C" (migration 0005): byte order, the cheapest to keep
    # an index in, and the same equality. Django does not know it: a later AlterField of this
    # field must set COLLATE "C" again (SQLite has no collation of that name for db_collation).
    external_id = models.CharField(max_length=255)
    sent_at = models.DateTimeField()
    text = models.TextField()
    reply_to_external_id = models.CharField(max_length=255, blank=True)

    objects = MessageQuerySet.as_manager()

    class Meta:
        ordering = ["sent_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["source_kind", "external_id"], name="message_unique_per_source"
            )
        ]
        indexes = [
            models.Index(fields=["conversation", "sent_at"]),
            # Lookups by person need no order: (identity, sent_at) took an import's rows in
            # time order per conversation, scattered per person, and cost a big import 1.2-1.4x
            # its database time (benchmarks/ingest_indexes.py); identity alone is appended to.
            models.Index(fields=["identity"], name="ingest_message_identity"),
        ]

    def __str__(self) -> str:
        return f"{self.identity.display_name}: {self.text[:40]}"


def _repoint_references(source: Speaker, target: Speaker) -> None:
    """Move every row that points at ``source`` (from any app) to ``target``.

    Found through the model's relations rather than imports, so ingest does not depend on the
    apps that come after it in the pipeline; hidden ones too (a game guess's speaker has no
    reverse name, and would go with the speaker merged away). A many-to-many's own table is
    moved through its relation.
    """
    relations = [
        field
        for field in Speaker._meta.get_fields(include_hidden=True)
        if field.auto_created and field.is_relation and not field.concrete
    ]
    for relation in relations:
        if (
            relation.related_model in (Identity, Speaker)
            or relation.related_model._meta.auto_created
        ):
            continue  # identities and speakers told apart: merge_into moves them itself
        if relation.many_to_many:
            through = relation.through
            from_field = next(
                f.name for f in through._meta.fields if f.related_model is relation.related_model
            )
            to_field = next(f.name for f in through._meta.fields if f.related_model is Speaker)
            already = through.objects.filter(**{to_field: target}).values(from_field)
            through.objects.filter(**{to_field: source}).exclude(
                **{f"{from_field}__in": already}
            ).update(**{to_field: target})
            through.objects.filter(**{to_field: source}).delete()
        elif relation.one_to_many or relation.one_to_one:
            manager = relation.related_model._base_manager
            manager.filter(**{relation.field.name: source}).update(**{relation.field.name: target})


def unreferenced_speakers() -> models.QuerySet[Speaker]:
    """Speakers nothing holds on to: no member, no identity, nothing generated in their voice."""
    queryset = Speaker.objects.filter(member__isnull=True)
    for relation in Speaker._meta.related_objects:
        if relation.related_model is Speaker:
            continue  # being told apart from another speaker holds nobody up
        model = relation.through if relation.many_to_many else relation.related_model
        if relation.many_to_many:
            field = next(f.name for f in model._meta.fields if f.related_model is Speaker)
        else:
            field = relation.field.name
        queryset = queryset.filter(~Exists(model._base_manager.filter(**{field: OuterRef("pk")})))
    return queryset
