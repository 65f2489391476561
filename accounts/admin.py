from django import forms
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.forms import UserChangeForm
from django.http import HttpRequest

from accounts.models import ConfirmedEmail, Invite, is_last_admin

User = get_user_model()
LAST_ADMIN = (
    "{user} is the last active superuser: with them gone, nobody could run the site. Make "
    "someone else a superuser first."
)


@admin.register(Invite)
class InviteAdmin(admin.ModelAdmin):
    list_display = ["note", "created_by", "created_at", "expires_at", "used_by", "revoked"]
    list_select_related = ["created_by", "used_by"]  # nullable: not in Django's select_related()
    readonly_fields = ["token", "used_by", "used_at"]


class MemberChangeForm(UserChangeForm):
    forget_confirmed_email = forms.BooleanField(
        label="Delete the confirmed email",
        required=False,
        help_text="No more reset links go to it (a mailbox the member lost, an address confirmed "
        "for the wrong account), and it is no longer the account's email; the member sets and "
        "confirms another from their page. Only its member confirms an address, by opening the "
        "link joe emails to it.",
    )

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        confirmed = ConfirmedEmail.of(self.instance) if self.instance.pk else None
        if confirmed is not None and "forget_confirmed_email" in self.fields:
            # Which address goes, in the box's own name (its help is read only on request).
            self.fields[
                "forget_confirmed_email"
            ].label = f"Delete the confirmed email {confirmed.email}"

    def clean(self) -> dict:
        cleaned = super().clean()
        # The instance holds the saved values until the form is applied to it, after this.
        # Without staff status too, they could open neither the admin nor the staff pages.
        kept = ("is_superuser", "is_active", "is_staff")
        demoted = not all(cleaned.get(field) for field in kept)
        if self.instance.pk and demoted and is_last_admin(self.instance):
            raise forms.ValidationError(LAST_ADMIN.format(user=self.instance))
        return cleaned


admin.site.unregister(User)


@admin.register(User)
class MemberAdmin(UserAdmin):
    """Django's own, except that it refuses to delete or demote the last active superuser, as
    the site's own account deletion does, and shows the member's confirmed email (where
    "Forgot your password?" sends links), which staff can delete. An email emptied here removes
    its confirmation, as on *Me*; one changed here waits unconfirmed for its member, and links
    go on going to the confirmed one until then."""

    form = MemberChangeForm
    readonly_fields = ["confirmed_email_shown"]
    personal = (
        "first_name",
        "last_name",
        "email",
        "confirmed_email_shown",
        "forget_confirmed_email",
    )
    fieldsets = [
        UserAdmin.fieldsets[0],
        ("Personal info", {"fields": personal}),
        *UserAdmin.fieldsets[2:],
    ]

    def get_fieldsets(self, request: HttpRequest, obj=None):  # noqa: ANN001, ANN201
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None or ConfirmedEmail.of(obj) is not None:
            return fieldsets
        # No confirmed email: a box to delete it would do nothing.
        return [
            (
                name,
                {
                    **options,
                    "fields": [f for f in options["fields"] if f != "forget_confirmed_email"],
                },
            )
            for name, options in fieldsets
        ]

    @admin.display(description="Confirmed email")
    def confirmed_email_shown(self, obj) -> str:  # noqa: ANN001
        confirmed = ConfirmedEmail.of(obj) if obj and obj.pk else None
        if confirmed is None:
            return "None: “Forgot your password?” emails this member no link."
        return (
            f"{confirmed.email} (confirmed {confirmed.confirmed_at:%Y-%m-%d}): reset links go here."
        )

    def save_model(self, request: HttpRequest, obj, form, change: bool) -> None:  # noqa: ANN001
        confirmed = ConfirmedEmail.of(obj) if change else None
        if confirmed and form.cleaned_data.get("forget_confirmed_email"):
            # Gone from the account altogether: while it stayed its email, a confirmation link
            # emailed there earlier (3 days) would confirm it again.
            if obj.email.lower() == confirmed.email.lower():
                obj.email = ""
            confirmed.delete()
        elif confirmed and not obj.email:
            confirmed.delete()
        super().save_model(request, obj, form, change)

    def get_deleted_objects(self, objs, request: HttpRequest):
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        users = list(objs)
        remaining = User.objects.filter(is_superuser=True, is_active=True).exclude(
            pk__in=[user.pk for user in users]
        )
        if not remaining.exists():
            protected = [
                *protected,
                *(LAST_ADMIN.format(user=u) for u in users if u.is_superuser and u.is_active),
            ]
        return deleted, counts, perms_needed, protected
