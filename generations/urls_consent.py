from django.urls import path

from generations import views_consent

urlpatterns = [
    path("s/<int:pk>/veto/", views_consent.veto_snippet, name="veto"),
]
