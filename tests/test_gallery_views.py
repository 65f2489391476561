"""The gallery pages as members use them: browse, escape, star, permalink, boards, curation."""

from __future__ import annotations

import pytest
from django.test import Client, override_settings

from generations import votes
from generations.models import Favourite, ShareLink, Snippet, SnippetStatus
from tests.builders.snippets import make_snippet, make_speaker

pytestmark = pytest.mark.django_db
HTMX = {"HX-Request": "true"}
HOSTILE_TEXT = ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>']


@pytest.mark.parametrize(
    "url", ["/gallery/", "/s/1/", "/favourites/", "/leaderboards/", "/triage/"]
)
def test_gallery_pages_are_members_only(client, url):
    response = client.get(url)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_gallery_shows_a_conversation_as_a_thread(member_client, ann, bo):
    make_snippet((ann, "anyone up for pub"), (bo, "always"))
    html = member_client.get("/gallery/").content.decode()
    assert html.index("anyone up for pub") < html.index("always")
    assert html.count('class="bubble-row"') == 2
    assert f"background: {ann.colour}" in html and ">A</span>" in html


def test_gallery_uses_the_speakers_current_name(member_client, ann):
    make_snippet((ann, "hello"))
    ann.display_name = "Annie"
    ann.save()
    assert "Annie" in member_client.get("/gallery/").content.decode()


@pytest.mark.parametrize("hostile", HOSTILE_TEXT)
def test_hostile_snippet_text_shows_as_text(member_client, ann, hostile):
    snippet = make_snippet((ann, hostile))
    for url in ["/gallery/", f"/s/{snippet.pk}/", "/leaderboards/"]:
        html = member_client.get(url).content.decode()
        assert hostile not in html, url
        assert "alert(1)" in html, url


@pytest.mark.parametrize("hostile", HOSTILE_TEXT)
def test_hostile_speaker_names_show_as_text(member_client, hostile):
    evil = make_speaker(hostile, slug="evil")
    make_snippet((evil, "innocent words"))
    html = member_client.get("/gallery/").content.decode()
    assert hostile not in html
    assert "innocent words" in html


def test_more_loads_the_next_page_as_a_partial(member_client, ann):
    for i in range(25):
        make_snippet((ann, f"fake number {i}"))
    first = member_client.get("/gallery/?sort=new").content.decode()
    assert 'hx-trigger="revealed"' in first
    assert "?sort=new&amp;page=2" in first
    more = member_client.get("/gallery/?sort=new&page=2", headers=HTMX).content.decode()
    assert "<html" not in more
    assert more.count('class="card snippet"') == 5
    assert "fake number 0" in more and "fake number 0" not in first
    assert 'hx-trigger="revealed"' not in more  # the last page


def test_more_works_without_javascript(member_client, ann):
    for i in range(21):
        make_snippet((ann, f"n{i}"))
    page2 = member_client.get("/gallery/?sort=new&page=2").content.decode()
    assert "<html" in page2 and page2.count('class="card snippet"') == 1


def test_a_page_past_the_end_says_so_and_links_back(member_client, ann):
    make_snippet((ann, "the only one"))
    html = member_client.get("/gallery/?sort=top&speaker=ann&page=9999").content.decode()
    assert "the only one" not in html
    assert "Nothing on page 9999" in html
    assert 'href="?sort=top&amp;speaker=ann"' in html  # back to the first page, same view
    more = member_client.get("/gallery/?sort=top&page=9999", headers=HTMX).content.decode()
    assert "Nothing on page" not in more  # "More" past the end (hidden meanwhile): just nothing


def test_bad_gallery_parameters_fall_back(member_client, ann):
    make_snippet((ann, "still here"))
    response = member_client.get("/gallery/?sort=sideways&page=-3&speaker=nobody")
    assert response.status_code == 200 and "still here" in response.content.decode()
    # One bad value falls back alone: the rest of the query still counts.
    response = member_client.get("/gallery/?sort=top&page=abc")
    assert response.context["sort"] == "top" and response.context["page"] == 1
    response = member_client.get("/gallery/?sort=random&seed=0")
    assert "seed=0" in response.context["query"]  # 0 is a seed like any other


def test_filter_by_speaker(member_client, ann, bo):
    make_snippet((ann, "from ann"))
    make_snippet((bo, "from bo"))
    html = member_client.get("/gallery/?speaker=bo").content.decode()
    assert "from bo" in html and "from ann" not in html


def test_the_voice_filter_lists_only_voices_with_a_fake_on_show(member_client, ann, bo):
    """Not every name in the corpus: a phone backup's one-to-one contacts, people staff
    excluded, anyone with no fake on show yet, are no business of the gallery."""
    make_snippet((ann, "from ann"))
    make_speaker("Carol (contacts)")  # in the corpus, never in a fake
    make_snippet((bo, "hidden one"), status=SnippetStatus.HIDDEN)

    options = member_client.get("/gallery/").context["speakers"]
    assert [s.display_name for s in options] == ["Ann"]

    make_snippet((ann, "together"), (bo, "yes"))  # a voice in a conversation counts too
    options = member_client.get("/gallery/").context["speakers"]
    assert sorted(s.display_name for s in options) == ["Ann", "Bo"]
    html = member_client.get("/gallery/").content.decode()
    assert "Carol (contacts)" not in html


def test_opted_out_speaker_vanishes_from_every_page(member_client, member, ann, bo):
    gone = make_snippet((bo, "bo was here"))
    make_snippet((ann, "ann stays"))
    Favourite.objects.create(user=member, snippet=gone)
    votes.set_vote(member=member, snippet_id=gone.pk, value=1)
    bo.opted_out = True
    bo.save()
    for url in ["/gallery/", "/favourites/", "/leaderboards/", "/gallery/?speaker=bo"]:
        html = member_client.get(url).content.decode()
        assert "bo was here" not in html, url
    missing = member_client.get(f"/s/{gone.pk}/")
    assert missing.status_code == 404
    assert 'href="/">Back home</a>' in missing.content.decode()  # as the 403 page has
    asked = member_client.get("/gallery/?speaker=bo").content.decode()
    assert "opted out of joe: fakes in their voice are hidden" in asked  # not silently everyone


def test_member_stars_and_unstars(member_client, member, ann):
    snippet = make_snippet((ann, "save me"))
    response = member_client.post(f"/s/{snippet.pk}/favourite/", {"starred": "1"})
    assert response.status_code == 302
    assert Favourite.objects.filter(user=member, snippet=snippet).exists()
    assert "save me" in member_client.get("/favourites/").content.decode()
    html = member_client.post(
        f"/s/{snippet.pk}/favourite/", {"starred": "0"}, headers=HTMX
    ).content.decode()
    assert 'aria-pressed="false"' in html and "<html" not in html
    assert not Favourite.objects.exists()
    assert "save me" not in member_client.get("/favourites/").content.decode()


def test_starring_twice_keeps_one_star(member_client, ann):
    snippet = make_snippet((ann, "save me"))
    member_client.post(f"/s/{snippet.pk}/favourite/", {"starred": "1"})
    member_client.post(f"/s/{snippet.pk}/favourite/", {"starred": "1"})
    assert Favourite.objects.count() == 1


def test_gallery_shows_own_vote_and_star(member_client, member, ann):
    snippet = make_snippet((ann, "mine"))
    votes.set_vote(member=member, snippet_id=snippet.pk, value=-1)
    votes.set_favourite(member=member, snippet_id=snippet.pk, starred=True)
    html = member_client.get("/gallery/").content.decode()
    assert html.count('aria-pressed="true"') == 2
    assert "Undo downvote" in html


def test_permalink_shows_votes_star_and_share(member_client, ann):
    snippet = make_snippet((ann, "permanent"), upvotes=2, score=2)
    html = member_client.get(f"/s/{snippet.pk}/").content.decode()
    assert "permanent" in html
    assert 'data-testid="upvotes">2<' in html
    assert "Create share link" in html and 'class="fav-box"' in html


def test_hidden_snippet_is_404_for_members_but_staff_can_unhide(member_client, client, staff, ann):
    snippet = make_snippet((ann, "too much"))
    snippet.hide()
    assert member_client.get(f"/s/{snippet.pk}/").status_code == 404
    client.force_login(staff)
    html = client.get(f"/s/{snippet.pk}/").content.decode()
    assert "Unhide" in html and "Create share link" not in html
    client.post(f"/s/{snippet.pk}/curate/", {"action": "unhide"})
    assert Snippet.objects.get(pk=snippet.pk).status == SnippetStatus.PUBLISHED


def test_staff_hide_from_the_gallery(client, staff, ann):
    snippet = make_snippet((ann, "regrettable"))
    client.force_login(staff)
    assert "regrettable" in client.get("/gallery/").content.decode()
    response = client.post(f"/s/{snippet.pk}/curate/", {"action": "hide", "next": "/gallery/"})
    assert response["Location"] == "/gallery/"
    assert "regrettable" not in client.get("/gallery/").content.decode()


def test_members_cannot_curate(member_client, ann):
    snippet = make_snippet((ann, "stay"))
    assert member_client.post(f"/s/{snippet.pk}/curate/", {"action": "hide"}).status_code == 403
    assert member_client.get("/triage/").status_code == 403


@override_settings(JOE_CURATE_BEFORE_PUBLISH=True)
def test_staff_keep_or_discard_in_triage(client, staff, ann):
    keep = make_snippet((ann, "keeper"), status=SnippetStatus.TRIAGE)
    toss = make_snippet((ann, "tosser"), status=SnippetStatus.TRIAGE)
    client.force_login(staff)
    html = client.get("/triage/").content.decode()
    assert "keeper" in html and "tosser" in html
    # Moving from button to button, a screen reader says whose fake each Keep/Discard is for.
    what = f"Fake message #{keep.pk} by {ann.display_name}"
    assert f'aria-label="{what}"' in html
    assert f'<span class="sr-only" id="triage-what-{keep.pk}">{what}</span>' in html
    assert html.count(f'aria-describedby="triage-what-{keep.pk}"') == 2
    client.post(f"/s/{keep.pk}/curate/", {"action": "publish"})
    client.post(f"/s/{toss.pk}/curate/", {"action": "discard"})
    keep.refresh_from_db()
    assert keep.status == SnippetStatus.PUBLISHED and keep.published_at is not None
    assert Snippet.objects.get(pk=toss.pk).status == SnippetStatus.DISCARDED
    assert list(Snippet.objects.visible()) == [keep]


def test_leaks_are_listed_with_their_run_and_can_only_be_discarded(client, staff, ann):
    leak = make_snippet((ann, "word for word"), status=SnippetStatus.TRIAGE, is_leak=True)
    Snippet.objects.filter(pk=leak.pk).update(longest_shared_run=14)
    client.force_login(staff)
    html = client.get("/triage/").content.decode()
    assert "word for word" in html and "<strong>14</strong>" in html
    response = client.post(f"/s/{leak.pk}/curate/", {"action": "publish"}, follow=True)
    assert "can only be discarded" in response.content.decode()
    assert Snippet.objects.get(pk=leak.pk).status == SnippetStatus.TRIAGE
    client.post(f"/s/{leak.pk}/curate/", {"action": "discard"})
    assert Snippet.objects.get(pk=leak.pk).status == SnippetStatus.DISCARDED


def test_leaderboards_rank_voices_and_spotters(member_client, member, other_member, staff, ann, bo):
    ann_best = make_snippet((ann, "ann's best"))
    make_snippet((ann, "ann's other"))
    bo_one = make_snippet((bo, "bo's one"))
    votes.set_favourite(member=member, snippet_id=ann_best.pk, starred=True)  # before the votes
    for voter in (other_member, staff):
        votes.set_vote(member=voter, snippet_id=ann_best.pk, value=1)
    votes.set_vote(member=other_member, snippet_id=bo_one.pk, value=-1)
    votes.set_favourite(member=other_member, snippet_id=ann_best.pk, starred=True)  # too late
    html = member_client.get("/leaderboards/").content.decode()
    assert html.index("Ann</td>") < html.index("Bo</td>")
    assert "ann&#x27;s best" in html
    spotters = html[html.index("Sharpest eye") :]
    assert spotters.index("alice") < spotters.index("bob")
    assert "(+2)" in spotters


def test_the_snippet_and_share_pages_have_a_heading(member_client, member, ann):
    snippet = make_snippet((ann, "pho again"))
    page = member_client.get(f"/s/{snippet.pk}/").content.decode()
    assert f'<h1 class="sr-only">Fake message #{snippet.pk}</h1>' in page
    link = ShareLink.objects.create(snippet=snippet, created_by=member)
    shared = Client().get(link.get_absolute_url()).content.decode()
    assert '<h1 class="parody-label" data-testid="parody-label">AI parody of Ann</h1>' in shared
