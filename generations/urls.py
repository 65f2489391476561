"""Generation and gallery URLs: the gallery's routes and the generation routes live apart."""

from django.urls import include, path

app_name = "generations"

urlpatterns = [
    path("", include("generations.urls_gallery")),
    path("", include("generations.urls_generate")),
    path("", include("generations.urls_consent")),
    path("", include("generations.urls_game")),
]
