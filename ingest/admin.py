from django.contrib import admin
from django.utils.text import Truncator

from ingest.models import Conversation, Export, Identity, Message, Speaker


@admin.register(Export)
class ExportAdmin(admin.ModelAdmin):
    list_display = ["original_name", "kind", "status", "messages_count", "created_at"]
    list_filter = ["kind", "status"]
    readonly_fields = ["sha256", "size_bytes", "skipped", "error"]


@admin.register(Speaker)
class SpeakerAdmin(admin.ModelAdmin):
    list_display = ["display_name", "slug", "member", "opted_out", "game_opt_in"]
    prepopulated_fields = {"slug": ["display_name"]}


@admin.register(Identity)
class IdentityAdmin(admin.ModelAdmin):
    list_display = ["display_name", "source_kind", "external_id", "speaker", "excluded", "is_bot"]
    list_filter = ["source_kind", "excluded", "is_bot"]
    search_fields = ["display_name", "external_id"]


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ["title", "source_kind", "is_group"]
    list_filter = ["source_kind"]


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ["sent_at", "identity", "conversation", "short_text"]
    list_filter = ["source_kind"]
    list_select_related = ["identity", "conversation"]
    raw_id_fields = ["conversation", "identity", "export"]
    search_fields = ["text"]
    date_hierarchy = "sent_at"

    @admin.display(description="text", ordering="text")
    def short_text(self, message: Message) -> str:
        """The first 120 characters: a long message (Signal allows 64 KB) made rows pages tall."""
        return Truncator(message.text).chars(120)
