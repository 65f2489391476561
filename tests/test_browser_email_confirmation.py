"""In a real browser: a member sets their email on Me, opens the link joe emailed (on a phone,
logged out), confirms it, and "Forgot your password?" then emails that address."""

from __future__ import annotations

import re

import pytest
from django.core import mail

from tests.conftest import log_in, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def email_on(settings):
    """Email into Django's locmem outbox; the email tasks run in the live server's thread, as the
    `default` worker would run them."""
    from joe_site.celery import app

    settings.JOE_EMAIL_ENABLED = True
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    saved = app.conf.task_always_eager
    app.conf.task_always_eager = True
    mail.outbox = []
    yield
    app.conf.task_always_eager = saved


def test_a_member_confirms_their_email_from_another_device(new_page, member, email_on):
    page = new_page()
    log_in(page, "alice", "correct horse 1")
    page.goto("/accounts/me/")
    email = page.locator("#email")
    email.locator("input[name=email]").fill("alice@example.org")
    email.locator("input[name=password]").fill("correct horse 1")
    email.locator("button", has_text="Save my email").click()
    page.locator("[data-testid=email-waiting]").wait_for()
    # The address's box is drawn like every other field (it was the browser's bare input: the
    # stylesheet named text, password, number... but not email).
    widths = [email.locator(f"input[name={name}]").bounding_box()["width"]
              for name in ("email", "password")]  # fmt: skip
    assert widths[0] == widths[1], widths
    assert "alice@example.org is not confirmed yet" in page.locator("#email").inner_text()
    screenshot(page, "me-email-waiting")

    [sent] = [m for m in mail.outbox if "Confirm your email" in m.subject]
    assert sent.to == ["alice@example.org"]
    link = re.search(r"https?://\S+/accounts/email/confirm/\S+/", sent.body)[0]

    phone = new_page(viewport={"width": 360, "height": 740})  # the mail app, not logged in
    phone.goto(link)
    assert "/accounts/email/confirm/" in phone.url and phone.url.endswith("/confirm-email/")
    assert "alice@example.org" in phone.content()
    phone.get_by_role("button", name=re.compile("Confirm", re.I)).click()
    phone.wait_for_load_state()
    screenshot(phone, "email-confirmed-phone")
    assert "confirm" in phone.content().lower()

    page.reload()
    confirmed = page.locator("[data-testid=email-confirmed]")
    assert "alice@example.org" in confirmed.inner_text()
    assert page.locator("[data-testid=email-waiting]").count() == 0

    stranger = new_page()
    stranger.goto("/accounts/password/forgotten/")
    stranger.fill("input[name=username_or_email]", "alice@example.org")
    stranger.locator("button[type=submit]").click()
    stranger.wait_for_load_state()
    resets = [m for m in mail.outbox if m.subject == "Set a new password for joe"]
    assert [m.to for m in resets] == [["alice@example.org"]]

    phone.goto(link)  # used: a sentence, not a form
    assert phone.get_by_role("button", name=re.compile("Confirm", re.I)).count() == 0
