"""Batch and live generation URLs, included by generations.urls (namespace "generations")."""

from django.urls import path

from generations import views_generate as views

urlpatterns = [
    path("batches/", views.batches, name="batches"),
    path("batches/<int:pk>/", views.batch, name="batch"),
    path("batches/<int:pk>/cancel/", views.cancel_batch, name="cancel_batch"),
    path("live/", views.live_page, name="live"),
    path("live/<int:pk>/", views.live_generation, name="live_generation"),
    path("live/<int:pk>/stop/", views.stop_live, name="stop_live"),
    path("live/<int:pk>/save/", views.save_live, name="save_live"),
]
