"""Gallery URLs, included by generations.urls under the "generations" namespace at the site root."""

from django.urls import path

from generations import views_gallery as views

urlpatterns = [
    path("gallery/", views.gallery, name="gallery"),
    path("s/<int:pk>/", views.snippet, name="snippet"),
    path("s/<int:pk>/vote/", views.vote, name="vote"),
    path("s/<int:pk>/favourite/", views.favourite, name="favourite"),
    path("s/<int:pk>/share/", views.create_share, name="create_share"),
    path("s/<int:pk>/curate/", views.curate, name="curate"),
    path("share-links/<int:pk>/revoke/", views.revoke_share, name="revoke_share"),
    path("share/<str:token>/", views.share, name="share"),
    path("share/<str:token>/card.png", views.share_image, name="share_image"),
    path("favourites/", views.favourites, name="favourites"),
    path("leaderboards/", views.leaderboards, name="leaderboards"),
    path("triage/", views.triage, name="triage"),
]
