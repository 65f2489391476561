from django.urls import path

from ingest import views

app_name = "ingest"

urlpatterns = [
    path("", views.exports, name="exports"),
    path("<int:pk>/", views.export, name="export"),
    path("<int:pk>/delete/", views.export_delete, name="export_delete"),
    path("<int:pk>/keep/", views.export_keep, name="export_keep"),
    path("<int:pk>/cancel/", views.export_cancel, name="export_cancel"),
    path("<int:pk>/retry/", views.export_retry, name="export_retry"),
    path("speakers/", views.speakers, name="speakers"),
    path("speakers/<int:pk>/rename/", views.speaker_rename, name="speaker_rename"),
    path("speakers/<int:pk>/merge/", views.speaker_merge, name="speaker_merge"),
    path("speakers/<int:pk>/not-same/", views.speaker_not_same, name="speaker_not_same"),
    path("identities/<int:pk>/speaker/", views.identity_assign, name="identity_assign"),
    path("identities/<int:pk>/split/", views.identity_split, name="identity_split"),
    path("identities/<int:pk>/exclude/", views.identity_exclude, name="identity_exclude"),
]
