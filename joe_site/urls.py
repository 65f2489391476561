"""Top-level URLs. Every view needs a login unless it is marked @login_not_required."""

from django.contrib import admin
from django.urls import include, path

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
    path("admin/", admin.site.urls),
]
