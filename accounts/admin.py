from django.contrib import admin

from accounts.models import Invite


@admin.register(Invite)
class InviteAdmin(admin.ModelAdmin):
    list_display = ["note", "created_by", "created_at", "expires_at", "used_by", "revoked"]
    list_select_related = ["created_by", "used_by"]  # nullable: not in Django's select_related()
    readonly_fields = ["token", "used_by", "used_at"]
