"""A member's pages are theirs: no shared proxy keeps one, nor the browser's disk or its
back-forward cache after they log out. Static files and the public share page and card keep
the caching they had."""

from __future__ import annotations

import pytest
from django.test import Client

from generations.models import ShareLink
from ingest.models import Export
from joe_site.jobs import JobStatus
from tests.builders.snippets import make_snippet
from trainer.models import TrainingRun

pytestmark = pytest.mark.django_db
HTMX = {"HX-Request": "true"}


def cache_control(response) -> set[str]:
    return {part.strip() for part in response.get("Cache-Control", "").split(",") if part.strip()}


@pytest.fixture
def pages(ann, member):
    snippet = make_snippet((ann, "a friend's fake message"))
    run = TrainingRun.objects.create(name="nightly", status=JobStatus.RUNNING)
    export = Export.objects.create(original_name="group chat.zip", kind="slack")
    return {
        "gallery": "/gallery/",
        "snippet": f"/s/{snippet.pk}/",
        "run": f"/trainer/{run.pk}/",
        "export": f"/ingest/{export.pk}/",
        "profile": "/accounts/me/",
        "home": "/",
        "leaderboards": "/leaderboards/",
        "favourites": "/favourites/",
        "not found": "/s/999999/",
    }


@pytest.mark.parametrize(
    "page", ["gallery", "snippet", "run", "export", "profile", "home", "leaderboards", "not found"]
)
def test_a_members_pages_are_private_and_not_stored(staff_client, pages, page):
    response = staff_client.get(pages[page])
    assert {"private", "no-store"} <= cache_control(response), pages[page]
    assert "public" not in cache_control(response)


def test_a_plain_members_pages_too(member_client, pages):
    for page in ("gallery", "snippet", "profile", "favourites"):
        response = member_client.get(pages[page])
        assert response.status_code == 200, page
        assert {"private", "no-store"} <= cache_control(response), page


def test_htmx_polls_are_private_and_still_poll(staff_client, pages):
    poll = staff_client.get(pages["run"], headers=HTMX)
    assert poll.status_code == 200 and "<html" not in poll.content.decode()
    assert {"private", "no-store"} <= cache_control(poll)
    TrainingRun.objects.update(status=JobStatus.SUCCEEDED)
    ended = staff_client.get(pages["run"], headers=HTMX)
    assert ended.status_code == 286  # "stop polling" gets through untouched
    assert "private" in cache_control(ended)


def test_a_members_redirects_after_a_post_are_private(member_client, ann):
    snippet = make_snippet((ann, "save me"))
    response = member_client.post(f"/s/{snippet.pk}/favourite/", {"starred": "1"})
    assert response.status_code == 302 and "private" in cache_control(response)


def test_static_files_keep_their_own_caching(member_client):
    for client in (member_client, Client()):
        response = client.get("/static/css/gallery.css")
        assert response.status_code == 200
        assert "max-age" in response["Cache-Control"]
        assert not {"private", "no-store"} & cache_control(response)


def test_the_public_share_page_and_card_keep_their_caching(client, ann, member):
    link = ShareLink.objects.create(snippet=make_snippet((ann, "shared one")), created_by=member)

    page = client.get(f"/share/{link.token}/")
    assert page.status_code == 200 and "Cache-Control" not in page
    card = client.get(f"/share/{link.token}/card.png")
    assert card["Cache-Control"] == "private, no-cache" and card.has_header("ETag")
    again = client.get(f"/share/{link.token}/card.png", headers={"If-None-Match": card["ETag"]})
    assert again.status_code == 304  # the card is still revalidated, not refetched


def test_a_member_asking_for_the_share_card_gets_the_same_headers(member_client, ann, member):
    link = ShareLink.objects.create(snippet=make_snippet((ann, "shared one")), created_by=member)
    card = member_client.get(f"/share/{link.token}/card.png")
    assert card["Cache-Control"] == "private, no-cache"


def test_the_invite_page_is_private(client, staff):
    from accounts.models import Invite

    invite = Invite.objects.create(created_by=staff, note="for Dee")
    response = client.get(f"/accounts/signup/{invite.token}/")
    assert response.status_code == 200 and "staff invited you" in response.content.decode()
    assert "private" in cache_control(response)  # names who invited them, behind a secret link
