from django.urls import path

from trainer import redaction_preview, views

app_name = "trainer"

urlpatterns = [
    path("", views.runs, name="runs"),
    path("<int:pk>/", views.run, name="run"),
    path("<int:pk>/cancel/", views.cancel, name="cancel"),
    path("<int:pk>/make-active/", views.make_active, name="make_active"),
    path("<int:pk>/retrain/", views.retrain, name="retrain"),
    path("<int:pk>/delete/", views.delete, name="delete"),
    path(
        "redaction-preview/",
        redaction_preview.redaction_preview,
        name="redaction_preview",
    ),
]
