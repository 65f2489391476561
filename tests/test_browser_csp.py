"""The Content-Security-Policy in a real browser: nothing of ours is refused, and the confirm
questions that used to be inline handlers still ask."""

from __future__ import annotations

import pytest

from generations.models import Snippet
from ingest.models import Speaker
from tests.builders.snippets import make_snippet
from tests.conftest import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def watch_for_refusals(page) -> list[str]:
    refused: list[str] = []
    page.on(
        "console",
        lambda message: (
            refused.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    return refused


def test_staff_pages_run_under_the_policy(new_page, staff):
    page = new_page(enforce_csp=True)
    refused = watch_for_refusals(page)
    log_in(page, "staff", "correct horse 3")
    for url in (
        "/ingest/",
        "/ingest/speakers/",
        "/trainer/",
        "/batches/",
        "/live/",
        "/leaderboards/",
        "/accounts/claims/",
        "/accounts/invites/",
        "/admin/",
        "/admin/ingest/speaker/",
    ):
        page.goto(url)
        page.wait_for_load_state("networkidle")
        if not url.startswith("/admin/"):
            assert page.evaluate("typeof htmx") == "object", url  # our scripts ran
    assert refused == []


def test_pages_run_under_the_policy_and_a_veto_still_asks(new_page, member, ann):
    Speaker.objects.filter(pk=ann.pk).update(member=member)
    snippet = make_snippet((ann, "pho again?"))
    page = new_page(enforce_csp=True)
    refused = watch_for_refusals(page)
    log_in(page, "alice", "correct horse 1")
    for url in ("/", "/gallery/", "/accounts/me/", f"/s/{snippet.pk}/"):
        page.goto(url)
        page.wait_for_load_state("networkidle")
    assert page.evaluate("typeof htmx") == "object"  # our scripts loaded and ran

    questions = []

    def answer(dialog, accept: bool) -> None:
        questions.append(dialog.message)
        dialog.accept() if accept else dialog.dismiss()

    page.once("dialog", lambda dialog: answer(dialog, False))
    page.click("[data-testid=veto] button")
    page.wait_for_timeout(300)
    assert questions == ["Veto this fake? Nobody will see it again."]
    assert Snippet.objects.get(pk=snippet.pk).vetoed_at is None  # said no: nothing sent

    page.once("dialog", lambda dialog: answer(dialog, True))
    page.click("[data-testid=veto] button")
    page.wait_for_url("**/accounts/me/")
    assert Snippet.objects.get(pk=snippet.pk).vetoed_at is not None
    assert refused == []
