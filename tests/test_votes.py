"""Votes: one per member per snippet, changeable and undoable, counted right under concurrency."""

from __future__ import annotations

import threading

import pytest
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext

from generations import votes
from generations.models import Impression, Snippet, SnippetStatus, Vote
from tests.builders.snippets import make_snippet, make_speaker

HTMX = {"HX-Request": "true"}


@pytest.fixture
def snippet(db):
    return make_snippet((make_speaker("Ann"), "pineapple belongs on pizza"))


def vote(client, snippet, value, **extra):
    return client.post(f"/s/{snippet.pk}/vote/", {"value": value, "next": "/gallery/"}, **extra)


def counts(snippet) -> tuple[int, int, int]:
    snippet.refresh_from_db()
    return snippet.upvotes, snippet.downvotes, snippet.score


def test_member_can_upvote(member_client, member, snippet):
    response = vote(member_client, snippet, "up")
    assert response.status_code == 302 and response["Location"] == "/gallery/"
    assert counts(snippet) == (1, 0, 1)
    assert Vote.objects.get(user=member, snippet=snippet).value == 1


def test_member_can_undo_vote(member_client, snippet):
    vote(member_client, snippet, "up")
    vote(member_client, snippet, "none")
    assert counts(snippet) == (0, 0, 0)
    assert not Vote.objects.exists()


def test_member_can_switch_up_to_down_and_back(member_client, snippet):
    vote(member_client, snippet, "up")
    vote(member_client, snippet, "down")
    assert counts(snippet) == (0, 1, -1)
    vote(member_client, snippet, "up")
    assert counts(snippet) == (1, 0, 1)
    assert Vote.objects.count() == 1


def test_pressing_up_twice_counts_once(member_client, snippet):
    """The button posts the state it wants, so a double click or a retry cannot double count."""
    vote(member_client, snippet, "up")
    vote(member_client, snippet, "up")
    assert counts(snippet) == (1, 0, 1)


def test_two_members_votes_add_up(member_client, client, other_member, snippet):
    vote(member_client, snippet, "up")
    client.force_login(other_member)
    vote(client, snippet, "down")
    assert counts(snippet) == (1, 1, 0)


def test_htmx_vote_returns_the_vote_box_with_own_state(member_client, snippet):
    response = vote(member_client, snippet, "up", headers=HTMX)
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<form class="vote-box"')
    assert "<html" not in html
    assert 'aria-pressed="true"' in html  # the up button now shows pressed
    assert 'value="none"' in html  # and pressing it again undoes the vote
    assert 'data-testid="upvotes">1<' in html


def test_plain_post_ignores_a_next_url_off_site(member_client, snippet):
    response = member_client.post(
        f"/s/{snippet.pk}/vote/", {"value": "up", "next": "https://evil.example/"}
    )
    assert response["Location"] == f"/s/{snippet.pk}/"


def test_nonsense_vote_is_refused(member_client, snippet):
    assert vote(member_client, snippet, "sideways").status_code == 400
    assert vote(member_client, snippet, "2").status_code == 400


def test_votes_need_post(member_client, snippet):
    assert member_client.get(f"/s/{snippet.pk}/vote/").status_code == 405


def test_hidden_snippet_cannot_be_voted_on(member_client, snippet):
    snippet.hide()
    assert vote(member_client, snippet, "up").status_code == 404
    assert not Vote.objects.exists()


def test_voting_counts_as_having_seen_it(member_client, member, snippet):
    vote(member_client, snippet, "up")
    vote(member_client, snippet, "down")
    snippet.refresh_from_db()
    assert snippet.views == 1
    assert Impression.objects.filter(user=member, snippet=snippet).count() == 1


def test_best_score_follows_votes(member_client, snippet):
    vote(member_client, snippet, "up")
    snippet.refresh_from_db()
    assert snippet.best > 0
    vote(member_client, snippet, "none")
    snippet.refresh_from_db()
    assert snippet.best == 0


def test_database_refuses_a_second_vote_row(member, snippet):
    Vote.objects.create(user=member, snippet=snippet, value=1)
    with pytest.raises(IntegrityError), transaction.atomic():
        Vote.objects.create(user=member, snippet=snippet, value=-1)


def test_a_vote_runs_the_same_queries_whatever_the_history(member_client, client, snippet):
    busy = make_snippet((make_speaker("Bo"), "busy one"))
    for i in range(12):
        from django.contrib.auth import get_user_model

        voter = get_user_model().objects.create_user(username=f"voter{i}")
        votes.set_vote(member=voter, snippet_id=busy.pk, value=1)
    with CaptureQueriesContext(connection) as quiet:
        vote(member_client, snippet, "up", headers=HTMX)
    with CaptureQueriesContext(connection) as loud:
        vote(member_client, busy, "up", headers=HTMX)
    assert len(quiet) == len(loud) <= 12


@pytest.mark.django_db(transaction=True)
def test_concurrent_votes_from_many_members_are_all_counted(django_user_model):
    snippet = make_snippet((make_speaker("Ann"), "race me"))
    members = [django_user_model.objects.create_user(username=f"m{i}") for i in range(16)]
    wanted = {m.pk: (1 if i % 3 else -1) for i, m in enumerate(members)}
    _race(
        [
            lambda m=m: votes.set_vote(member=m, snippet_id=snippet.pk, value=wanted[m.pk])
            for m in members
        ]
    )
    snippet.refresh_from_db()
    ups = sum(1 for v in wanted.values() if v == 1)
    assert (snippet.upvotes, snippet.downvotes) == (ups, len(members) - ups)
    assert snippet.score == 2 * ups - len(members)
    assert snippet.views == len(members)
    assert Vote.objects.filter(snippet=snippet).count() == len(members)


@pytest.mark.django_db(transaction=True)
def test_one_member_racing_themself_still_has_one_vote(django_user_model):
    snippet = make_snippet((make_speaker("Ann"), "double click"))
    member = django_user_model.objects.create_user(username="clicker")
    values = [1, -1, 1, 1, -1, 0, 1, -1] * 2
    _race(
        [lambda v=v: votes.set_vote(member=member, snippet_id=snippet.pk, value=v) for v in values]
    )
    snippet.refresh_from_db()
    rows = list(Vote.objects.filter(snippet=snippet))
    assert len(rows) <= 1
    final = rows[0].value if rows else 0
    assert (snippet.upvotes, snippet.downvotes) == (int(final == 1), int(final == -1))
    assert snippet.score == final


@pytest.mark.django_db(transaction=True)
def test_concurrent_impressions_and_votes_keep_views_exact(django_user_model):
    snippet = make_snippet((make_speaker("Ann"), "look at me"))
    members = [django_user_model.objects.create_user(username=f"v{i}") for i in range(12)]
    jobs = []
    for i, m in enumerate(members):
        if i % 2:
            jobs.append(lambda m=m: votes.set_vote(member=m, snippet_id=snippet.pk, value=1))
        jobs.append(lambda m=m: votes.record_impressions(member=m, snippet_ids=[snippet.pk]))
    _race(jobs)
    snippet.refresh_from_db()
    assert snippet.views == len(members) == Impression.objects.filter(snippet=snippet).count()
    assert snippet.upvotes == len(members) // 2


def _race(jobs) -> None:
    """Run every job in its own thread and database connection, released at the same moment."""
    start = threading.Barrier(len(jobs))
    errors: list[BaseException] = []

    def run(job):
        try:
            start.wait()
            job()
        except BaseException as exc:  # collected and re-raised in the test's thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors


def test_opted_out_speakers_snippets_cannot_be_voted_on(member_client, snippet):
    snippet.speaker.opted_out = True
    snippet.speaker.save()
    assert vote(member_client, snippet, "up").status_code == 404
    assert Snippet.objects.get(pk=snippet.pk).status == SnippetStatus.PUBLISHED
