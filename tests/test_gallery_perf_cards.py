"""Gallery cards are drawn once per state and reused, and never show a stale or foreign state."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from generations import cards, votes
from tests.builders.snippets import make_snippet

pytestmark = pytest.mark.django_db
TOKEN = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


@pytest.fixture(autouse=True)
def empty_card_cache():
    cards.cache.clear()
    yield
    cards.cache.clear()


def gallery(client, url: str = "/gallery/?sort=new") -> str:
    response = client.get(url)
    assert response.status_code == 200
    return response.content.decode()


def without_tokens(html: str) -> str:
    return TOKEN.sub("", html).replace(re.search(r'"X-CSRFToken": "[^"]+"', html)[0], "")


def test_a_second_look_reuses_the_cards(member_client, ann):
    for i in range(3):
        make_snippet((ann, f"fake {i}"))
    first = gallery(member_client)
    assert len(cards.cache) == 3
    second = gallery(member_client)
    assert len(cards.cache) == 3
    assert without_tokens(second) == without_tokens(first)


def test_cached_and_fresh_cards_are_the_same_html(member_client, member, ann):
    snippet = make_snippet((ann, "the same either way"))
    votes.set_vote(member=member, snippet_id=snippet.pk, value=-1)
    votes.set_favourite(member=member, snippet_id=snippet.pk, starred=True)
    drawn = gallery(member_client)
    from_cache = gallery(member_client)
    cards.cache.clear()
    redrawn = gallery(member_client)
    assert without_tokens(drawn) == without_tokens(from_cache) == without_tokens(redrawn)
    assert drawn.count('aria-pressed="true"') == 2 and "Undo downvote" in drawn


def test_another_members_vote_shows_at_once(member_client, client, other_member, ann):
    snippet = make_snippet((ann, "vote on me"))
    assert 'data-testid="upvotes">0<' in gallery(member_client)
    votes.set_vote(member=other_member, snippet_id=snippet.pk, value=1)
    html = gallery(member_client)
    assert 'data-testid="upvotes">1<' in html and 'data-testid="score">1<' in html
    assert 'aria-pressed="true"' not in html  # the vote is theirs, not mine
    client.force_login(other_member)
    assert gallery(client).count('aria-pressed="true"') == 1


def test_own_vote_and_star_show_after_the_page_was_cached(member_client, ann):
    snippet = make_snippet((ann, "press me"))
    gallery(member_client)
    member_client.post(f"/s/{snippet.pk}/vote/", {"value": "up"})
    member_client.post(f"/s/{snippet.pk}/favourite/", {"starred": "1"})
    html = gallery(member_client)
    assert "Undo upvote" in html and "★" in html and 'data-testid="upvotes">1<' in html
    member_client.post(f"/s/{snippet.pk}/vote/", {"value": "none"})
    html = gallery(member_client)
    assert "Undo upvote" not in html and 'data-testid="upvotes">0<' in html


def test_edited_text_replaces_the_cached_card(member_client, ann):
    snippet = make_snippet((ann, "first draft"))
    gallery(member_client)
    snippet.lines = [{"speaker": ann.slug, "name": ann.display_name, "text": "second draft"}]
    snippet.save()
    html = gallery(member_client)
    assert "second draft" in html and "first draft" not in html


def test_renamed_speaker_replaces_the_cached_card(member_client, ann):
    make_snippet((ann, "hello"))
    html = gallery(member_client)
    assert ">Ann</span>" in html and ">A</span>" in html and "by Ann" in html
    ann.display_name = "Zed"
    ann.save()
    html = gallery(member_client)
    assert ">Zed</span>" in html and ">Z</span>" in html and "by Zed" in html
    assert "Ann" not in html


def test_hidden_snippet_leaves_the_gallery_at_once(member_client, ann):
    snippet = make_snippet((ann, "regrettable"))
    assert "regrettable" in gallery(member_client)
    snippet.hide()
    assert "regrettable" not in gallery(member_client)


def test_staff_hide_button_never_reaches_members(member_client, staff_client, ann):
    make_snippet((ann, "curate me"))
    assert 'value="hide"' in gallery(staff_client)
    assert 'value="hide"' not in gallery(member_client)
    cards.cache.clear()
    assert 'value="hide"' not in gallery(member_client)
    assert 'value="hide"' in gallery(staff_client)


def test_each_page_gets_its_own_next_url_escaped(member_client, ann):
    for i in range(25):
        make_snippet((ann, f"n{i}"))
    gallery(member_client, "/gallery/?sort=new&page=1")
    html = gallery(member_client, "/gallery/?sort=new&page=2&x=%22%3E%3Cb%3E")
    nexts = set(re.findall(r'name="next" value="([^"]*)"', html))
    assert nexts == {"/gallery/?sort=new&amp;page=2&amp;x=%22%3E%3Cb%3E"}
    assert "<b>" not in html


def test_cached_cards_carry_a_working_csrf_token(member, ann):
    snippet = make_snippet((ann, "vote without javascript"))
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(member)
    gallery(browser)
    html = gallery(browser)  # from the cache this time
    tokens = TOKEN.findall(html)
    assert len(tokens) >= 3 and "joe-csrf" not in html and "joe-next" not in html
    response = browser.post(
        f"/s/{snippet.pk}/vote/",
        {"value": "up", "next": "/gallery/", "csrfmiddlewaretoken": tokens[-1]},
    )
    assert response.status_code == 302
    assert 'data-testid="upvotes">1<' in gallery(browser)


def test_hostile_text_stays_escaped_from_the_cache(member_client, ann):
    make_snippet((ann, "<script>alert(1)</script>"))
    for _ in range(2):
        html = gallery(member_client)
        assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)" in html


def test_the_cache_keeps_only_the_newest_cards():
    small = cards.CardCache(size=3)
    for i in range(5):
        small.put((i,), f"card {i}")
    assert len(small) == 3
    assert small.get((0,)) is None and small.get((1,)) is None
    assert small.get((4,)) == "card 4"
