from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from generations.models import (
    Favourite,
    GenerationBatch,
    LiveGeneration,
    ShareLink,
    Snippet,
    Vote,
)
from generations.votes import recount
from joe_site.admin_lists import BigTableAdmin


@admin.register(GenerationBatch)
class GenerationBatchAdmin(admin.ModelAdmin):
    """Batches are started from the site, which queues them (one added here waited forever),
    and one still generating is cancelled there, not deleted: the worker writing its snippets
    failed. No bulk delete, which would not ask each batch."""

    list_display = ["pk", "run", "status", "progress_done", "progress_total", "created_at"]
    list_filter = ["status"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(
        self, request: HttpRequest, obj: GenerationBatch | None = None
    ) -> bool:
        allowed = super().has_delete_permission(request, obj)
        return allowed and (obj is None or not obj.is_active)

    def get_actions(self, request: HttpRequest) -> dict:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions


@admin.register(Snippet)
class SnippetAdmin(BigTableAdmin):
    """Hundreds of thousands of rows once a gallery is busy: counted once a page, by the
    planner's estimate when unfiltered (two COUNT(*)s were most of its time: 70 of 135 ms at
    100k), newest first by pk (by created_at, which no index serves alone, it sorted every
    snippet: 70 ms at 100k). Its search reads every snippet's text, as its help text says."""

    list_display = ["text", "speaker", "status", "score", "longest_shared_run", "created_at"]
    list_filter = ["status", "kind", "is_leak"]
    ordering = ["-pk"]
    list_select_related = ["speaker"]  # nullable: Django's own select_related() leaves it out
    search_fields = ["text"]
    search_help_text = "Finds snippets whose text contains these words (it reads every one)."
    raw_id_fields = ["batch", "run", "speaker", "vetoed_by", "created_by"]


@admin.register(Vote)
class VoteAdmin(BigTableAdmin):
    """A vote added, changed or deleted here counts in its snippet's score and ranking, as one
    cast on the site does (they went stale until the next vote on that snippet). Hundreds of
    thousands of rows: sorted only by member, which an index serves (a sort by snippet, value
    or date read every vote: 0.25 s a page at 200k)."""

    list_display = ["snippet", "user", "value", "created_at"]
    sortable_by = ["user"]
    raw_id_fields = ["snippet"]

    def save_model(self, request: HttpRequest, obj: Vote, form, change: bool) -> None:
        super().save_model(request, obj, form, change)
        recount({obj.snippet_id, form.initial.get("snippet") or obj.snippet_id})

    def delete_model(self, request: HttpRequest, obj: Vote) -> None:
        super().delete_model(request, obj)
        recount([obj.snippet_id])

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Vote]) -> None:
        snippet_ids = list(queryset.values_list("snippet_id", flat=True))
        super().delete_queryset(request, queryset)
        recount(snippet_ids)


@admin.register(Favourite)
class FavouriteAdmin(admin.ModelAdmin):
    list_display = ["snippet", "user", "created_at"]
    raw_id_fields = ["snippet"]


@admin.register(ShareLink)
class ShareLinkAdmin(admin.ModelAdmin):
    list_display = ["snippet", "created_by", "created_at", "revoked_at"]
    list_select_related = ["snippet", "created_by"]
    raw_id_fields = ["snippet"]


@admin.register(LiveGeneration)
class LiveGenerationAdmin(admin.ModelAdmin):
    list_display = ["member", "speaker", "status", "created_at"]
    list_select_related = ["member", "speaker"]
    raw_id_fields = ["saved_snippet"]  # not a menu of every snippet ever generated
