from django.contrib import admin

from generations.models import (
    Favourite,
    GenerationBatch,
    LiveGeneration,
    ShareLink,
    Snippet,
    Vote,
)


@admin.register(GenerationBatch)
class GenerationBatchAdmin(admin.ModelAdmin):
    list_display = ["pk", "run", "status", "progress_done", "progress_total", "created_at"]
    list_filter = ["status"]


@admin.register(Snippet)
class SnippetAdmin(admin.ModelAdmin):
    list_display = ["text", "speaker", "status", "score", "longest_shared_run", "created_at"]
    list_filter = ["status", "kind", "is_leak"]
    list_select_related = ["speaker"]  # nullable: Django's own select_related() leaves it out
    search_fields = ["text"]
    raw_id_fields = ["batch", "run", "speaker", "vetoed_by", "created_by"]


@admin.register(Vote)
class VoteAdmin(admin.ModelAdmin):
    list_display = ["snippet", "user", "value", "created_at"]
    raw_id_fields = ["snippet"]


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
