"""Top-level URLs. Every view needs a login unless it is marked @login_not_required."""

from django.contrib import admin
from django.urls import include, path, reverse_lazy

from accounts import login
from joe_site import views

admin.site.site_header = "joe administration"
admin.site.site_title = "joe"

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("favicon.ico", views.favicon, name="favicon"),
    path("accounts/", include("accounts.urls")),
    path("ingest/", include("ingest.urls")),
    path("trainer/", include("trainer.urls")),
    path("", include("generations.urls")),
    # The admin's own password change, with the site's throttle on the current password (the
    # admin's form does not count wrong guesses); still staff only, still the admin's done page.
    path(
        "admin/password_change/",
        admin.site.admin_view(
            login.PasswordChangeView.as_view(success_url=reverse_lazy("admin:password_change_done"))
        ),
    ),
    path("admin/", admin.site.urls),
]
