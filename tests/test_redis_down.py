"""Redis down in production: it is Celery's broker and Django's cache at once. Pages that only
remember things in the cache are still served (no 500), job pages still say where their job
stands, and the login and password-reset throttles, which count in Redis, refuse with a sentence
instead of letting attempts through uncounted."""

from __future__ import annotations

import logging
import re

import pytest
from django.core import mail
from django.urls import reverse
from django.utils.html import escape

from accounts import login
from generations import live
from generations.models import GameGuess, LiveGeneration, ShareLink
from joe_site import cache as fail_soft
from joe_site.cache import redis_cache
from joe_site.jobs import SEND_FAILED, JobStatus
from tests.builders.generation import checkpoint_copy, make_friends, make_run, tiny_checkpoint
from tests.builders.snippets import make_snippet, make_speaker
from tests.test_game import make_friend
from tests.test_ingest_support import slack_export, stored_export
from tests.test_jobs_lost_messages import CLOSED_PORT, broker_at, new_run

HTMX = {"HX-Request": "true"}
LOGIN = "/accounts/login/"
FORGOT = "/accounts/password/forgotten/"


def cache_at(settings, url: str) -> None:
    """Django's cache as production configures it (settings.py), at ``url``; pytest-django's
    settings fixture resets django.core.cache.caches now and again afterwards."""
    settings.CACHES = {"default": redis_cache(url)}


@pytest.fixture
def redis_down(settings):
    """Redis does not answer: the cache and Celery's broker both point at a closed port."""
    settings.REDIS_URL = CLOSED_PORT
    cache_at(settings, CLOSED_PORT)
    fail_soft._warned_at = 0.0
    with broker_at(CLOSED_PORT):
        yield
    fail_soft._warned_at = 0.0


def logged_in(client) -> bool:
    return "_auth_user_id" in client.session


# -- the cache itself -------------------------------------------------------------------------


def test_the_cache_misses_and_forgets_while_redis_is_down_and_warns_once_a_minute(
    redis_down, caplog, monkeypatch
):
    from django.core.cache import cache

    with caplog.at_level(logging.WARNING, logger="joe_site.cache"):
        assert cache.get("joe:k") is None and cache.get("joe:k", 7) == 7
        cache.set("joe:k", 1, 60)
        assert cache.add("joe:k", 1, 60) is False and fail_soft.unreachable()
        assert cache.get_many(["joe:k"]) == {}
        cache.delete("joe:k")
        cache.delete_many(["joe:k"])
        assert cache.touch("joe:k", 60) is False
        with pytest.raises(fail_soft.CacheUnavailable):
            cache.incr("joe:k")  # a count cannot be made up: its callers decide
        with pytest.raises(fail_soft.CacheUnavailable):
            cache.decr("joe:k")
    warnings = [r for r in caplog.records if r.name == "joe_site.cache"]
    assert len(warnings) == 1
    assert "The cache (Redis) does not answer" in warnings[0].getMessage()

    later = fail_soft.time.monotonic() + fail_soft.WARN_EVERY_S + 1
    monkeypatch.setattr(fail_soft.time, "monotonic", lambda: later)
    with caplog.at_level(logging.WARNING, logger="joe_site.cache"):
        cache.get("joe:k")
    assert len([r for r in caplog.records if r.name == "joe_site.cache"]) == 2


def test_the_cache_works_as_redis_does_while_it_answers(settings, redis_url):
    cache_at(settings, redis_url)
    from django.core.cache import cache

    cache.delete("joe:test-redis-down")
    assert cache.add("joe:test-redis-down", 0, 60) is True
    assert cache.add("joe:test-redis-down", 0, 60) is False and not fail_soft.unreachable()
    assert cache.incr("joe:test-redis-down") == 1
    assert cache.get("joe:test-redis-down") == 1
    cache.delete("joe:test-redis-down")


# -- pages that only remember things in the cache ---------------------------------------------


@pytest.mark.django_db
def test_a_run_page_and_its_poll_say_the_queue_is_down(
    redis_down, staff_client, django_capture_on_commit_callbacks
):
    run = new_run(django_capture_on_commit_callbacks)  # started while Redis is down
    run.refresh_from_db()
    assert (run.status, run.progress_note) == (JobStatus.QUEUED, SEND_FAILED)

    page = staff_client.get(run.get_absolute_url())
    polled = staff_client.get(run.get_absolute_url(), headers=HTMX)

    assert page.status_code == 200 and escape(SEND_FAILED) in page.content.decode()
    assert polled.status_code == 200 and escape(SEND_FAILED) in polled.content.decode()


@pytest.mark.django_db
def test_the_live_poll_says_the_queue_is_down(
    redis_down, member_client, tmp_path, monkeypatch, django_capture_on_commit_callbacks
):
    friends = make_friends()
    make_run(checkpoint_copy(tiny_checkpoint(), tmp_path / "checkpoint"), friends)
    monkeypatch.setattr(live, "gpu_worker_is_up", lambda: True)
    data = {"opening": "", "temperature": 0.9, "mode": "speaker", "speaker": friends["ann"].pk}

    with django_capture_on_commit_callbacks(execute=True):
        started = member_client.post(reverse("generations:live"), data, headers=HTMX)
    generation = LiveGeneration.objects.get()
    polled = member_client.get(
        reverse("generations:live_generation", args=[generation.pk]), headers=HTMX
    )

    assert started.status_code == 200
    generation.refresh_from_db()
    assert (generation.status, generation.progress_note) == (JobStatus.QUEUED, SEND_FAILED)
    assert polled.status_code == 200 and escape(SEND_FAILED) in polled.content.decode()


@pytest.mark.django_db
def test_the_live_page_asks_for_the_gpu_worker_without_a_500(redis_down, member_client):
    assert member_client.get(reverse("generations:live")).status_code == 200


@pytest.mark.django_db
def test_the_gallery_and_the_export_page_are_served(redis_down, staff_client, tmp_path):
    export = stored_export(slack_export(tmp_path / "slack.zip", {"general": [("U1", "hi")]}))

    assert staff_client.get(reverse("generations:gallery")).status_code == 200
    assert staff_client.get(export.get_absolute_url()).status_code == 200
    assert staff_client.get(export.get_absolute_url(), headers=HTMX).status_code == 200


@pytest.mark.django_db
def test_a_share_page_and_its_card_are_served(redis_down, client, member):
    snippet = make_snippet((make_speaker("Ann"), "hi"), (make_speaker("Bo"), "hello"))
    link = ShareLink.objects.create(snippet=snippet, created_by=member)

    page = client.get(f"/share/{link.token}/")
    card = client.get(f"/share/{link.token}/card.png")

    assert page.status_code == 200
    assert card.status_code == 200 and card["Content-Type"] == "image/png"


@pytest.mark.django_db
def test_a_game_answer_still_counts(redis_down, member_client, member):
    make_friend("Alice", opted_in=True)
    assert "Did <bdi>Alice</bdi> really write this?" in member_client.get("/game/").content.decode()
    kind = member_client.session["game_round"]["kind"]

    result = member_client.post("/game/guess/", {"guess": kind})

    assert result.status_code == 200 and "Right!" in result.content.decode()
    guess = GameGuess.objects.get()
    assert guess.user == member and guess.correct


# -- the throttles fail closed ----------------------------------------------------------------


@pytest.mark.django_db
def test_logging_in_is_paused_with_a_sentence_and_no_password_is_checked(
    redis_down, client, member
):
    for password in ["guess 1", "guess 2", "correct horse 1"]:
        page = client.post(LOGIN, {"username": "alice", "password": password})
        assert page.status_code == 503
        assert escape(login.PAUSED) in page.content.decode()
        assert "Please enter a correct username and password" not in page.content.decode()
    assert not logged_in(client)  # not even the right password: it is never checked

    admin = client.post("/admin/login/", {"username": "alice", "password": "correct horse 1"})
    assert escape(login.PAUSED) in admin.content.decode() and not logged_in(client)


@pytest.mark.django_db
def test_asking_for_the_password_again_is_paused_too(redis_down, member_client):
    new = "a new horse battery 9"
    data = {"old_password": "correct horse 1", "new_password1": new, "new_password2": new}

    changed = member_client.post("/accounts/password/", data)
    deleted = member_client.post("/accounts/me/delete-account/", {"password": "correct horse 1"})

    assert escape(login.PAUSED) in changed.content.decode()
    assert escape(login.PAUSED) in deleted.content.decode()
    member_client.logout()
    assert member_client.login(username="alice", password="correct horse 1")  # unchanged


@pytest.mark.django_db
def test_forgot_your_password_says_it_cannot_send_and_sends_nothing(
    redis_down, client, member, settings
):
    from joe_site.celery import app

    settings.JOE_EMAIL_ENABLED = True
    member.email = "alice@example.org"
    member.save()
    saved = app.conf.task_always_eager
    app.conf.task_always_eager = True  # were it queued, it would be sent at once
    try:
        page = client.post(FORGOT, {"username_or_email": "alice"})
    finally:
        app.conf.task_always_eager = saved

    assert page.status_code == 503
    assert "its job queue is not answering" in page.content.decode()
    assert mail.outbox == []


@pytest.mark.django_db
def test_a_reset_link_still_sets_a_new_password(redis_down, staff_client, member, client):
    """A link's token, not a count, guards it: it works while Redis is down, and logs in."""
    made = staff_client.post(f"/accounts/members/{member.pk}/reset-link/", follow=True)
    made = made.content.decode()
    link = re.search(r'value="http://testserver(/accounts/reset/[^"]+)"', made)[1]
    new = "a new horse battery 9"

    opened = client.get(link)
    done = client.post(opened["Location"], {"new_password1": new, "new_password2": new})

    assert done.status_code == 302 and done["Location"] == "/"
    assert logged_in(client)
    member.refresh_from_db()
    assert member.check_password(new)
