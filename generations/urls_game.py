from django.urls import path

from generations import views_game

urlpatterns = [
    path("game/", views_game.play, name="game"),
    path("game/guess/", views_game.guess, name="game_guess"),
]
