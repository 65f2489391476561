from django.contrib import admin, messages
from django.contrib.admin.views.main import ORDER_VAR
from django.db.models import F, Max, Min, QuerySet
from django.http import HttpRequest
from django.utils.text import Truncator

from accounts import consent
from ingest import services
from ingest.models import Conversation, Export, Identity, Message, Speaker
from joe_site.admin_lists import BigTableAdmin


@admin.register(Export)
class ExportAdmin(admin.ModelAdmin):
    """To look at only: exports are uploaded and deleted on the site (its "View on site" link).
    Added here, an export waited for an import nobody queued and could then not be deleted;
    deleted here, its uploaded file stayed on disk, and the people and conversations only it
    held stayed in the corpus (services.delete_export removes them), and the confirmation page
    listed every one of its messages."""

    list_display = ["original_name", "kind", "status", "messages_count", "created_at"]
    list_filter = ["kind", "status"]
    search_fields = ["original_name", "sha256"]
    exclude = ["file"]  # uploads are never web-reachable: the admin's link to one led nowhere

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Export | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Export | None = None) -> bool:
        return False


@admin.register(Speaker)
class SpeakerAdmin(admin.ModelAdmin):
    """Consent is the friend's own (their Me page), and the slug is how trained models know the
    speaker: the admin shows them but changes neither, except that staff may opt out a friend
    who asked them to (as the friend would: runs trained on them flagged, links revoked); only
    the friend opts back in. Nor does it delete a speaker, which took the snippets in their
    voice with it and forgot their opt-out (the next import of their name made a new,
    trainable speaker): the Speakers page merges them instead."""

    list_display = ["display_name", "slug", "member", "opted_out", "game_opt_in"]
    list_select_related = ["member"]  # nullable: Django's own select_related() leaves it out
    search_fields = ["display_name", "slug"]
    prepopulated_fields = {"slug": ["display_name"]}
    readonly_fields = [
        "opted_out_at", "opted_out_by", "messages_deleted_at", "game_opt_in", "former_ids",
    ]  # fmt: skip

    def get_readonly_fields(self, request: HttpRequest, obj: Speaker | None = None) -> list[str]:
        # Its member is linked and unlinked on the Claims page (consent.link_speaker, which asks
        # before handing someone else's opt-out over; unlink_speaker, which ends the game opt-in).
        return [*self.readonly_fields, "slug", "member"] if obj else self.readonly_fields

    def get_prepopulated_fields(self, request: HttpRequest, obj: Speaker | None = None) -> dict:
        return {} if obj else self.prepopulated_fields

    def has_delete_permission(self, request: HttpRequest, obj: Speaker | None = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Speaker, form, change: bool) -> None:
        changed = change and "opted_out" in form.changed_data
        if changed and not obj.opted_out:
            obj.opted_out = True
            messages.warning(request, f"{obj} stays opted out: only they opt back in (Me page).")
        super().save_model(request, obj, form, change)
        if changed and obj.opted_out:
            consent.set_opted_out(speaker=obj, opted_out=True)


@admin.register(Identity)
class IdentityAdmin(admin.ModelAdmin):
    """Not deleted here: the row is what remembers that staff excluded someone, or that they
    deleted their messages (services.delete_export keeps such identities for that reason);
    deleted, the next upload of the export trained on them again. Exclude them instead."""

    list_display = ["display_name", "source_kind", "external_id", "speaker", "excluded", "is_bot"]
    list_filter = ["source_kind", "excluded", "is_bot"]
    list_select_related = ["speaker"]
    search_fields = ["display_name", "external_id"]
    # Set when the friend deletes their messages: cleared here, a re-import brought them back.
    readonly_fields = ["messages_deleted_at"]

    def has_delete_permission(self, request: HttpRequest, obj: Identity | None = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Identity, form, change: bool) -> None:
        """A move to another speaker goes through Identity.assign_to, as on the Speakers page:
        the speaker it moves to remembers the one it left (runs trained on that one learnt
        from this friend, and an opt-out must flag them). As there, a move or an exclusion
        marks the runs that learnt the identity in its old voice "needs retrain"."""
        if not change:
            return super().save_model(request, obj, form, change)
        before = Identity.objects.select_related("speaker").get(pk=obj.pk)
        moved = "speaker" in form.changed_data
        target = obj.speaker
        if moved:
            obj.speaker = before.speaker
        super().save_model(request, obj, form, change)
        if moved:
            obj.assign_to(target)
            kind = consent.Kind.IDENTITY_MOVED
            reason = (
                f"{obj} moved from {before.speaker} to {target} after this run was trained."
                if target
                else f"{obj} was taken off {before.speaker} after this run was trained."
            )
        else:
            kind = consent.Kind.IDENTITY_EXCLUDED
            reason = f"{obj} was excluded from training after this run learnt from it."
        if moved or obj.excluded:
            note = consent.flag_runs_that_learnt_identity(before, before.speaker, kind, reason)
            if note:
                messages.info(request, note)


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    """Deleting a chat (say, a private one that should not be in the corpus): its confirmation
    counts the messages that go with it rather than listing each one (a chat of 18,000 took
    16 s and 2 MB to ask about; a big group's would outlast the server's timeout), and they
    are deleted in SQL (MessageQuerySet.delete_in_sql), not loaded to be deleted."""

    list_display = ["title", "source_kind", "is_group"]
    list_filter = ["source_kind"]
    search_fields = ["title", "external_id"]

    def get_deleted_objects(self, objs, request: HttpRequest):
        conversations = list(objs)
        count = Message.objects.filter(conversation__in=conversations).count()
        model_count = {"conversations": len(conversations), "messages": count}
        needed = set() if request.user.has_perm("ingest.delete_message") else {"message"}
        return [str(c) for c in conversations], model_count, needed, []

    def delete_model(self, request: HttpRequest, obj: Conversation) -> None:
        self.delete_queryset(request, Conversation.objects.filter(pk=obj.pk))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Conversation]) -> None:
        services.delete_conversations(queryset)  # the runs that learnt them: "needs retrain"


class ExportFilter(admin.RelatedFieldListFilter):
    """An export's messages, found through their pk range too: an import appends its rows
    together, and without the range PostgreSQL walked the pk index from the newest message back
    until it had a page of the export's (an old export of 1M: 230 ms a page, ~10x that at 10M).
    The range comes from the export's BRIN index (``pk + 0`` keeps the planner off the pk index).
    Only for that walk, in the default order: sorted by a column, the planner took the range and
    the export as unrelated, guessed 40x too few rows and joined them in a nested loop (163 ms
    against 27 ms through the BRIN alone at 1M, and growing with the export times its people)."""

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        queryset = super().queryset(request, queryset)
        if self.lookup_val and not request.GET.get(ORDER_VAR):
            bounds = Message.objects.filter(export_id__in=self.lookup_val).aggregate(
                low=Min(F("pk") + 0), high=Max(F("pk") + 0)
            )
            if bounds["low"] is not None:
                queryset = queryset.filter(pk__range=(bounds["low"], bounds["high"]))
        return queryset


# The lookups that narrow the list to what an index finds: an export's rows (BRIN, pk range)
# or a speaker's (the identity index), few enough to sort whatever the corpus's size.
NARROWING = ("export__id__exact", "identity__speaker__id__exact")


@admin.register(Message)
class MessageAdmin(BigTableAdmin):
    """A list of a million rows or more, with no index on sent_at (it slowed every import):
    newest imported first, by pk, and no date drill-down nor count of the whole table, which
    each read every row (2 s a page); the unfiltered list is counted by PostgreSQL's estimate.
    Narrowed by export or speaker (a few rows each), and only then sortable by its columns: a
    sort of the whole table read every row (0.5-0.7 s a page at 1M). Its search reads every
    message's text (no index serves "contains"): its help text says to narrow first."""

    list_display = ["sent_at", "identity", "conversation", "short_text"]
    list_filter = ["source_kind", ("export", ExportFilter), "identity__speaker"]
    list_select_related = ["identity", "conversation"]
    raw_id_fields = ["conversation", "identity", "export"]
    search_fields = ["text"]
    search_help_text = (
        "Finds messages whose text contains these words. It reads every message listed, which "
        "takes seconds over a whole corpus of millions: pick an export or a speaker first to "
        "search only theirs."
    )
    ordering = ["-pk"]

    def get_sortable_by(self, request: HttpRequest) -> list[str]:
        narrowed = any(request.GET.get(lookup) for lookup in NARROWING)
        return self.list_display if narrowed else []

    @admin.display(description="text", ordering="text")
    def short_text(self, message: Message) -> str:
        """The first 120 characters: a long message (Signal allows 64 KB) made rows pages tall."""
        return Truncator(message.text).chars(120)
