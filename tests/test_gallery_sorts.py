"""Which snippets the gallery shows and in what order: visibility, the five sorts, paging."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import F
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from generations import ranking, selectors, votes
from generations.models import Snippet, SnippetStatus
from tests.builders.snippets import make_snippet

pytestmark = pytest.mark.django_db


def order(member, sort, **kwargs) -> list[str]:
    page = selectors.gallery_page(member=member, sort=sort, **kwargs)
    return [s.text for s in page.snippets]


def members(n: int, prefix: str) -> list:
    return [get_user_model().objects.create_user(username=f"{prefix}{i}") for i in range(n)]


def test_visible_is_published_and_nothing_else(ann, bo, staff):
    make_snippet((ann, "shown"))
    make_snippet((ann, "waiting"), status=SnippetStatus.TRIAGE)
    make_snippet((ann, "hidden"), status=SnippetStatus.HIDDEN)
    make_snippet((ann, "discarded"), status=SnippetStatus.DISCARDED)
    make_snippet((ann, "a leak"), is_leak=True, longest_shared_run=12)
    make_snippet((ann, "vetoed"), vetoed_by=staff, vetoed_at=timezone.now())
    assert [s.text for s in Snippet.objects.visible()] == ["shown"]


def test_opted_out_speakers_snippets_vanish(member, ann, bo):
    make_snippet((ann, "ann alone"))
    make_snippet((bo, "bo alone"))
    make_snippet((ann, "ann starts"), (bo, "bo answers"))
    bo.opted_out = True
    bo.save()
    assert {s.text for s in Snippet.objects.visible()} == {"ann alone"}
    assert order(member, "new") == ["ann alone"]


def test_new_is_newest_first(member, ann):
    for hours, text in [(5, "old"), (1, "newer"), (0, "newest")]:
        make_snippet((ann, text), age=timedelta(hours=hours))
    assert order(member, "new") == ["newest", "newer", "old"]


def test_top_is_highest_score_first(member, ann):
    make_snippet((ann, "meh"), score=1, upvotes=1)
    make_snippet((ann, "loved"), score=9, upvotes=9)
    make_snippet((ann, "hated"), score=-3, downvotes=3)
    assert order(member, "top") == ["loved", "meh", "hated"]


def test_hot_is_score_over_age_with_gravity(member, ann):
    now = timezone.now()
    make_snippet((ann, "big but old"), score=10, created_at=now - timedelta(hours=48))
    make_snippet((ann, "decent and fresh"), score=3, created_at=now - timedelta(hours=1))
    make_snippet((ann, "brand new"), score=1, created_at=now)
    make_snippet((ann, "disliked"), score=-2, created_at=now)
    assert order(member, "hot", now=now) == [
        "decent and fresh",  # 3 / 3^1.8 = 0.41
        "brand new",  # 1 / 2^1.8 = 0.29
        "big but old",  # 10 / 50^1.8 = 0.009
        "disliked",
    ]


def test_hot_matches_the_formula(member, ann):
    now = timezone.now()
    snippet = make_snippet((ann, "x"), score=7, created_at=now - timedelta(hours=10))
    hot = Snippet.objects.ranked("hot", now=now).get(pk=snippet.pk).hot
    assert hot == pytest.approx(7 / (10 + 2) ** 1.8)


def test_best_is_wilson_lower_bound_of_upvotes_over_impressions(member, ann):
    sure = make_snippet((ann, "three of three"))
    popular = make_snippet((ann, "three of twenty"))
    single = make_snippet((ann, "one of one"))
    unseen = make_snippet((ann, "unseen"))
    voters = members(20, "v")
    for m in voters[:3]:
        votes.set_vote(member=m, snippet_id=sure.pk, value=1)
        votes.set_vote(member=m, snippet_id=popular.pk, value=1)
    votes.record_impressions(member=voters[3], snippet_ids=[])
    for m in voters[3:]:
        votes.record_impressions(member=m, snippet_ids=[popular.pk])
    votes.set_vote(member=voters[0], snippet_id=single.pk, value=1)
    for s, ups, seen in [(sure, 3, 3), (popular, 3, 20), (single, 1, 1), (unseen, 0, 0)]:
        s.refresh_from_db()
        assert (s.upvotes, s.views) == (ups, seen)
        assert s.best == pytest.approx(ranking.wilson_in_python(ups, seen))
    viewer = members(1, "reader")[0]
    assert order(viewer, "best") == ["three of three", "one of one", "three of twenty", "unseen"]


def test_random_is_stable_for_a_seed_and_complete(member, ann):
    for i in range(30):
        make_snippet((ann, f"n{i}"))
    first = order(member, "random", seed=1, page_size=30)
    assert order(member, "random", seed=1, page_size=30) == first
    assert sorted(first) == sorted(f"n{i}" for i in range(30))
    assert order(member, "random", seed=2, page_size=30) != first
    pages = order(member, "random", seed=1, page_size=10, page=1) + order(
        member, "random", seed=1, page_size=10, page=2
    )
    assert pages == first[:20]


def test_speaker_filter_includes_their_conversations(member, ann, bo):
    make_snippet((ann, "ann alone"))
    make_snippet((bo, "bo alone"))
    make_snippet((ann, "ann starts"), (bo, "bo answers"))
    assert sorted(order(member, "new", speaker=bo)) == ["ann starts\nbo answers", "bo alone"]


def test_pages_do_not_overlap(member, ann):
    for i in range(45):
        make_snippet((ann, f"n{i}"), score=i % 4)
    for sort in ("new", "top", "hot", "best"):
        seen = []
        for page in (1, 2, 3):
            seen += order(member, sort, page=page)
        assert len(seen) == len(set(seen)) == 45, sort
    page = selectors.gallery_page(member=member, sort="new", page=3)
    assert len(page.snippets) == 5 and not page.has_more


def test_gallery_page_counts_each_member_once(member, other_member, ann):
    snippet = make_snippet((ann, "look"))
    for _ in range(3):
        selectors.gallery_page(member=member, sort="new")
    selectors.gallery_page(member=other_member, sort="new")
    snippet.refresh_from_db()
    assert snippet.views == 2


@pytest.mark.parametrize("sort", ranking.SORTS)
def test_gallery_queries_do_not_grow_with_page_size(
    member_client, member, other_member, ann, bo, sort
):
    def load() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert member_client.get(f"/gallery/?sort={sort}").status_code == 200
        return len(queries)

    make_snippet((ann, "one"), (bo, "two"))
    small = load()
    Snippet.objects.all().delete()
    for i in range(25):
        s = make_snippet((ann, f"n{i}"), (bo, "and a reply"))
        votes.set_vote(member=other_member, snippet_id=s.pk, value=1 if i % 2 else -1)
        votes.set_favourite(member=member, snippet_id=s.pk, starred=bool(i % 3))
    big = load()
    assert small == big, (small, big)
    assert big <= 10  # one of them: which voices have a fake on show (the filter)


@pytest.mark.parametrize("ceilings", ["as saved", "stale", "fresh"])
def test_fast_hot_pages_match_ranking_every_row(member, ann, ceilings):
    """hot_page_ids skips rows that cannot compete; it must agree with ORDER BY hot exactly,
    however far the stored ceilings have drifted above today's hot."""
    import random

    rng = random.Random(7)
    for i in range(150):
        age = timedelta(
            hours=rng.choice([rng.uniform(0, 5), rng.uniform(0, 400), rng.uniform(0, 9000)])
        )
        make_snippet((ann, f"n{i}"), age=age, score=rng.choice([0, 1, 2, 5, 20, 300, -1]))
    now = timezone.now() + timedelta(hours=3)
    if ceilings == "stale":  # as if every score was last set the moment it was generated
        Snippet.objects.update(hot_ceiling=F("score") / 2**ranking.GRAVITY)
    elif ceilings == "fresh":
        Snippet.objects.update(hot_ceiling=ranking.hot_ceiling(now))
    visible = Snippet.objects.visible()
    everything = list(visible.ranked("hot", now=now).values_list("pk", flat=True))
    assert len(everything) == 150
    for offset in (0, 20, 60, 140):
        fast = ranking.hot_page_ids(visible, now=now, offset=offset, limit=21)
        assert fast == everything[offset : offset + 21], offset


def test_random_in_a_big_gallery_samples_visible_snippets(member, ann, monkeypatch):
    monkeypatch.setattr(ranking, "SHUFFLE_ALL_UP_TO", 10)
    made = [make_snippet((ann, f"n{i}")) for i in range(60)]
    made[0].hide()
    page = order(member, "random", seed=3, page_size=10)
    assert len(page) == 10 and len(set(page)) == 10
    assert "n0" not in page
    assert order(member, "random", seed=3, page_size=10) == page
