"""Shared fixtures: members, staff, the shared samples folder, a real Celery worker, a browser."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from joe_site.chromium import CHROMIUM, CHROMIUM_FLAGS

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "samples"
REDIS_URL = os.environ.get("REDIS_URL", "")


@pytest.fixture
def samples() -> Path:
    if not SAMPLES.is_dir():
        pytest.skip("../shared/samples is not beside this checkout")
    return SAMPLES


@pytest.fixture(scope="session", autouse=True)
def no_login_lock_left_over():
    """The cache (Redis, or files under the data dir) outlives a run: failed logins left there
    by a developer trying the site must not lock the test users out of the browser tests."""
    from django.core.cache import cache
    from django.test import RequestFactory

    from accounts.login import _keys

    for address in ("127.0.0.1", "::1"):
        request = RequestFactory().post("/", REMOTE_ADDR=address)
        for username in ("alice", "bob", "staff"):
            cache.delete_many(
                [key + suffix for key in _keys(request, username) for suffix in ("", ":until")]
            )


@pytest.fixture(autouse=True)
def redis_taken_as_up():
    """joe_site.cache remembers, per process, a Redis that failed lately (for ten seconds): a test
    that pointed the cache or the broker at a dead port must not leave the next one starting
    inside that window."""
    from joe_site.cache import forget_failures

    forget_failures()
    yield
    forget_failures()


@pytest.fixture
def friends(db):
    """Friends with messages, as tests/builders/generation.make_friends makes them."""
    from tests.builders.generation import make_friends

    return make_friends()


@pytest.fixture
def run(friends, tmp_path):
    """The active run: a copy of the tiny checkpoint, trained (so to speak) on ``friends``."""
    from tests.builders.generation import checkpoint_copy, make_run, tiny_checkpoint

    return make_run(checkpoint_copy(tiny_checkpoint(), tmp_path / "checkpoint"), friends)


@pytest.fixture
def member(django_user_model):
    return django_user_model.objects.create_user(username="alice", password="correct horse 1")


@pytest.fixture
def other_member(django_user_model):
    return django_user_model.objects.create_user(username="bob", password="correct horse 2")


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user(
        username="staff", password="correct horse 3", is_staff=True, is_superuser=True
    )


@pytest.fixture
def member_client(client, member):
    client.force_login(member)
    return client


@pytest.fixture
def staff_client(staff):
    """Its own Client, so a test can hold a member's and a staff member's session at once."""
    from django.test import Client

    staff_session = Client()
    staff_session.force_login(staff)
    return staff_session


@pytest.fixture
def redis_url() -> str:
    if not REDIS_URL:
        pytest.skip("REDIS_URL is not set (CI sets it to the local Redis)")
    return REDIS_URL


@pytest.fixture
def queued(monkeypatch):
    """The import tasks the pages queue, as (export id, passphrase key), instead of a worker."""
    from ingest import tasks

    calls = []
    monkeypatch.setattr(
        tasks.import_export, "apply_async", lambda args, **options: calls.append(tuple(args))
    )
    return calls


@pytest.fixture
def celery_worker_on_redis(redis_url, settings):
    """A real Celery worker thread consuming both queues from Redis, as in production."""
    from celery.contrib.testing.worker import start_worker

    from joe_site.celery import app

    app.conf.broker_url = redis_url
    app.conf.task_always_eager = False
    # Starting it sets up Celery's logging: the root logger at its level (ERROR) for the rest of
    # the session, so any later test's caplog lost every WARNING.
    root = logging.getLogger()
    level = root.level
    try:
        with start_worker(
            app,
            pool="solo",
            queues=["default", "gpu"],
            perform_ping_check=False,
            shutdown_timeout=30,
        ) as worker:
            root.setLevel(level)
            yield worker
    finally:
        root.setLevel(level)


ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium via Playwright, which gives each launch a fresh user-data-dir."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (bin/test installs it)")
    # Playwright's sync API runs an event loop in this thread; the ORM calls the tests make
    # between page actions are still plain synchronous calls.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture
def new_page(browser, live_server):
    """Open a page in a fresh context (its own cookies), as a second person on another device."""
    contexts = []

    def make(viewport=None, enforce_csp=False):
        # Playwright's own helpers (wait_for_function, add_script_tag) evaluate strings in the
        # page, which the site's Content-Security-Policy forbids: only tests of that policy
        # (test_browser_csp.py) keep it on.
        context = browser.new_context(
            base_url=live_server.url, viewport=viewport, bypass_csp=not enforce_csp
        )
        context.set_default_timeout(15_000)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


def log_in(page, username: str, password: str) -> None:
    """Log in through the real login form."""
    page.goto("/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/accounts/login/" not in url)


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


# Two speakers for the gallery tests (snippets need someone to be in the voice of).
@pytest.fixture
def ann(db):
    from tests.builders.snippets import make_speaker

    return make_speaker("Ann")


@pytest.fixture
def bo(db):
    from tests.builders.snippets import make_speaker

    return make_speaker("Bo")
