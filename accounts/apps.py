from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Members and invites"

    def ready(self) -> None:
        from django.contrib import admin

        from accounts import login  # noqa: F401 (connects the failed-login throttle's signals)

        admin.site.login_form = login.ThrottledAdminAuthenticationForm
