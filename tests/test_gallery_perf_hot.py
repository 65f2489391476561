"""The hot sort's stored ceiling: kept by votes and saves, refreshed when stale, never waited on."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import F
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from generations import ranking, votes
from generations.models import Snippet
from tests.builders.snippets import make_snippet

pytestmark = pytest.mark.django_db
SLACK = ranking.HOT_CEILING_SLACK


def hot_now(snippet: Snippet, now) -> float:
    return Snippet.objects.ranked("hot", now=now).get(pk=snippet.pk).hot


def ranked_by_sql(now) -> list[int]:
    return list(Snippet.objects.visible().ranked("hot", now=now).values_list("pk", flat=True))


def test_a_vote_sets_the_ceiling_to_hot_a_minute_ago(member, ann):
    snippet = make_snippet((ann, "vote on me"), age=timedelta(hours=5))
    before = timezone.now()
    snippet = votes.set_vote(member=member, snippet_id=snippet.pk, value=1)
    assert snippet.hot_ceiling == pytest.approx(1 / (5 - 1 / 60 + 2) ** 1.8, rel=1e-3)
    assert snippet.hot_ceiling >= hot_now(snippet, before)
    votes.set_vote(member=member, snippet_id=snippet.pk, value=-1)
    snippet.refresh_from_db()
    assert snippet.hot_ceiling < 0  # a negative score has no ceiling to speak of


def test_saving_a_score_keeps_the_ceiling_at_or_above_hot(ann):
    snippet = make_snippet((ann, "made with a score"), score=7, age=timedelta(hours=10))
    now = timezone.now()
    assert snippet.hot_ceiling >= hot_now(snippet, now)
    assert snippet.hot_ceiling == pytest.approx(hot_now(snippet, now - SLACK), rel=1e-4)
    snippet.score = 40
    snippet.save(update_fields=["score"])
    snippet.refresh_from_db()
    assert snippet.hot_ceiling >= hot_now(snippet, timezone.now())
    assert snippet.hot_ceiling == pytest.approx(40 / (12 - 1 / 60) ** 1.8, rel=1e-4)


def test_a_just_made_snippet_is_never_above_its_ceiling(ann):
    snippet = make_snippet((ann, "brand new"), score=3)
    assert snippet.hot_ceiling >= hot_now(snippet, timezone.now())
    later = make_snippet((ann, "from the future"), score=3, age=-timedelta(hours=1))
    assert later.hot_ceiling >= hot_now(later, timezone.now())


def test_fresh_ceilings_rank_a_page_in_one_query(ann):
    for i in range(60):
        make_snippet((ann, f"n{i}"), score=1 + i % 9, age=timedelta(hours=i * 7))
    now = timezone.now()
    with CaptureQueriesContext(connection) as queries:
        page = ranking.hot_page_ids(Snippet.objects.visible(), now=now, offset=0, limit=21)
    assert len(queries) == 1
    assert page == ranked_by_sql(now)[:21]


def test_stale_ceilings_are_refreshed_by_the_page_that_finds_them(ann):
    for i in range(60):
        make_snippet((ann, f"n{i}"), score=1 + i % 9, age=timedelta(hours=i * 7))
    Snippet.objects.update(hot_ceiling=F("score") / 2**ranking.GRAVITY)  # hot at birth
    now = timezone.now()
    visible = Snippet.objects.visible()
    page = ranking.hot_page_ids(visible, now=now, offset=0, limit=21)
    assert page == ranked_by_sql(now)[:21]
    for shown in Snippet.objects.filter(pk__in=page):  # brought down to earth
        assert shown.hot_ceiling == pytest.approx(hot_now(shown, now - SLACK), rel=1e-9)
        assert shown.hot_ceiling >= hot_now(shown, now)
    with CaptureQueriesContext(connection) as queries:
        again = ranking.hot_page_ids(visible, now=now, offset=0, limit=21)
    assert again == page and len(queries) == 1


def test_an_old_snippet_voted_up_rises_in_hot_at_once(ann):
    members = [get_user_model().objects.create_user(username=f"m{i}") for i in range(30)]
    for i in range(60):
        make_snippet((ann, f"n{i}"), score=1 + i % 3, age=timedelta(hours=1 + i))
    old = make_snippet((ann, "a classic"), age=timedelta(hours=30))
    for member in members:
        votes.set_vote(member=member, snippet_id=old.pk, value=1)
    now = timezone.now()
    page = ranking.hot_page_ids(Snippet.objects.visible(), now=now, offset=0, limit=21)
    assert page == ranked_by_sql(now)[:21]
    assert old.pk in page


def test_the_tail_runs_from_zeros_newest_first_into_negatives(ann):
    make_snippet((ann, "liked"), score=2)
    zeros = [make_snippet((ann, f"zero {i}"), age=timedelta(hours=i)) for i in range(5)]
    hated = make_snippet((ann, "hated"), score=-4, age=timedelta(hours=100))
    disliked = make_snippet((ann, "disliked"), score=-1)
    now = timezone.now()
    visible = Snippet.objects.visible()
    everything = ranking.hot_page_ids(visible, now=now, offset=0, limit=20)
    assert everything == ranked_by_sql(now)
    assert everything[1:6] == [z.pk for z in zeros]
    assert everything[6:] == [hated.pk, disliked.pk]  # -4 over 100 hours beats -1 today
    assert ranking.hot_page_ids(visible, now=now, offset=7, limit=5) == [disliked.pk]


@pytest.mark.django_db(transaction=True)
def test_refresh_skips_a_row_a_vote_is_holding(ann):
    held, free = (make_snippet((ann, t), score=5, age=timedelta(hours=9)) for t in "ab")
    Snippet.objects.update(hot_ceiling=99.0)
    locked, release = threading.Event(), threading.Event()

    def voter() -> None:
        with transaction.atomic():
            Snippet.objects.select_for_update(no_key=True).get(pk=held.pk)
            locked.set()
            release.wait(10)
        connection.close()

    thread = threading.Thread(target=voter)
    thread.start()
    try:
        assert locked.wait(10)
        refreshed = ranking.refresh_hot_ceilings(Snippet.objects.all(), now=timezone.now())
    finally:
        release.set()
        thread.join()
    assert refreshed == 1
    assert Snippet.objects.get(pk=held.pk).hot_ceiling == 99.0
    assert Snippet.objects.get(pk=free.pk).hot_ceiling == pytest.approx(
        5 / (11 - 1 / 60) ** 1.8, rel=1e-4
    )
