"""The pages this session changed, in Chromium under the site's Content-Security-Policy, on the
narrowest phones and a desktop: the Me page's email, the email confirmation link, the reset link
the Invites page shows once, and an export's notice and its Try again form."""

from __future__ import annotations

import re

import pytest
from django.core.files.base import ContentFile

from accounts import email_confirmation
from ingest import services
from ingest.models import Export
from joe_site.jobs import JobStatus
from tests.builders.members import with_confirmed_email
from tests.conftest import log_in, screenshot
from tests.test_browser_csp import watch_for_refusals
from tests.test_ingest_support import use_tmp_upload_dir

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# What a screen reader reads for the focused field: its name and what describes it.
FOCUSED = """() => {
  const field = document.activeElement;
  const described = (field.getAttribute('aria-describedby') || '').split(' ')
    .map(id => document.getElementById(id)?.textContent || '').join(' ');
  return {name: field.name || '', tag: field.tagName, invalid: field.getAttribute('aria-invalid'),
          described: described.replace(/\\s+/g, ' ')};
}"""
HEADINGS = "() => [...document.querySelectorAll('h1,h2,h3')].map(h => h.tagName)"
# Whether the element is what a person sees at its own top-left corner (not under the bar).
UNCOVERED = """(selector) => {
  const el = document.querySelector(selector), box = el.getBoundingClientRect();
  const seen = document.elementFromPoint(box.left + 4, box.top + 4);
  return box.top >= 0 && (seen === el || el.contains(seen));
}"""


def fits(page, width: int) -> bool:
    return page.evaluate("document.documentElement.scrollWidth") <= width


def test_me_email_on_a_phone_a_wrong_password_is_read_out_where_the_focus_is(
    new_page, member, settings
):
    """The page came back with the focus at its top, two screens above the sentence, which a
    screen reader never read; "Send the link again" said nothing of the address it sends to."""
    settings.JOE_EMAIL_ENABLED = True
    with_confirmed_email(member, "alice@example.org")
    member.email = "alice-with-a-new-and-long-address@example-domain.org"  # changing it
    member.save(update_fields=["email"])
    page = new_page(viewport={"width": 320, "height": 640}, enforce_csp=True)
    refused = watch_for_refusals(page)
    log_in(page, "alice", "correct horse 1")
    page.goto("/accounts/me/")

    again = page.get_by_role("button", name="Send the link again")
    description = page.evaluate(
        "b => document.getElementById(b.getAttribute('aria-describedby')).textContent",
        again.element_handle(),
    )
    assert "alice-with-a-new-and-long-address@example-domain.org is not confirmed" in description
    # Its form and the email form below it read as two (the button sat on the next label).
    label = page.locator("label[for=id_email]").bounding_box()
    assert label["y"] - (again.bounding_box()["y"] + again.bounding_box()["height"]) >= 16
    assert fits(page, 320)

    email = page.locator("#email")
    email.locator("input[name=email]").fill("alice@example.net")
    email.locator("input[name=password]").fill("not her password")
    email.get_by_role("button", name="Save my email").click()
    page.locator("#email .errorlist").wait_for()

    focused = page.evaluate(FOCUSED)
    assert focused["name"] == "password" and focused["invalid"] == "true"
    assert "That is not your password." in focused["described"]
    assert page.evaluate(UNCOVERED, "#id_password")
    assert fits(page, 320)
    assert page.title() == "Me · joe"
    screenshot(page, "new-pages-me-wrong-password-320")
    assert refused == []


def test_an_email_confirmation_link_on_a_phone_logged_out(new_page, member):
    member.email = "alice@example.org"
    member.save(update_fields=["email"])
    link = email_confirmation.confirm_path(member)
    page = new_page(viewport={"width": 320, "height": 640}, enforce_csp=True)
    refused = watch_for_refusals(page)

    page.goto(link)
    assert page.title() == "Confirm your email · joe"
    assert page.evaluate(HEADINGS) == ["H1"] and fits(page, 320)
    page.get_by_role("button", name="Confirm").click()
    page.get_by_role("heading", name="Email confirmed").wait_for()
    assert page.title() == "Email confirmed · joe"  # was "Confirm your email" above it
    assert fits(page, 320)
    screenshot(page, "new-pages-email-confirmed-320")

    dead = page.goto(link)
    assert dead.status == 410
    assert page.title() == "Confirmation link not valid · joe"
    assert page.get_by_role("button").count() == 0  # used: nothing to press
    assert fits(page, 320)
    assert refused == []


@pytest.mark.parametrize("width", [320, 1280])
def test_the_reset_link_shown_once_has_the_focus_in_sight(
    new_page, staff, member, django_user_model, width
):
    """Its card came above the page's h1, and the sticky bar (three rows on a phone) covered the
    heading the #reset-link address scrolled to."""
    # Members enough for the page to scroll the card to the top of the window.
    django_user_model.objects.bulk_create(
        django_user_model(username=f"friend{i}", password="!") for i in range(20)
    )
    page = new_page(viewport={"width": width, "height": 640}, enforce_csp=True)
    refused = watch_for_refusals(page)
    log_in(page, "staff", "correct horse 3")
    page.goto("/accounts/invites/")
    page.get_by_role("button", name="Make a reset link for alice").click()
    page.locator("[data-testid=reset-link]").wait_for()

    assert page.evaluate(HEADINGS)[:2] == ["H1", "H2"]
    assert page.evaluate(UNCOVERED, "#reset-link-title")
    page.keyboard.press("Tab")  # from the #reset-link the address scrolled to
    assert page.evaluate("document.activeElement.dataset.testid") == "reset-link"
    assert fits(page, width)
    screenshot(page, f"new-pages-reset-link-{width}")
    assert refused == []


def test_an_exports_notice_and_a_signal_retry_on_a_phone(new_page, staff, settings, tmp_path):
    use_tmp_upload_dir(settings, tmp_path)
    notice = (
        'The chat "Family" may already be here from an older export (under the id 12345): if so, '
        "its messages are twice in the corpus."
    )
    telegram = Export.objects.create(
        original_name="result.json", kind="telegram", status=JobStatus.SUCCEEDED,
        messages_count=3, notices=[notice],
    )  # fmt: skip
    signal = Export.objects.create(
        original_name="signal-2024-01-01-12-00-00.backup", kind="signal",
        status=JobStatus.FAILED, error=services.SIGNAL_KEY_NOT_KEPT,
    )  # fmt: skip
    signal.file.save("signal.backup", ContentFile(b"not read here"))
    page = new_page(viewport={"width": 360, "height": 740}, enforce_csp=True)
    refused = watch_for_refusals(page)
    log_in(page, "staff", "correct horse 3")

    page.goto(telegram.get_absolute_url())
    assert page.get_by_test_id("export-notice").inner_text() == notice
    # Read out when a watched import ends, with the notice (the swapped-in box is not).
    announced = page.get_by_test_id("export-status").get_attribute("data-status-announce")
    assert announced == "result.json: succeeded, 3 new messages; read the note below"
    assert fits(page, 360)

    page.goto(signal.get_absolute_url())
    assert "joe cannot reach Redis" in page.get_by_test_id("export-error").inner_text()
    page.get_by_role("button", name="Import again").click()  # no passphrase typed
    page.locator(".errorlist").wait_for()
    focused = page.evaluate(FOCUSED)
    assert focused["name"] == "passphrase" and focused["invalid"] == "true"
    assert re.search(r"type the \d+-digit passphrase", focused["described"])
    assert fits(page, 360)
    screenshot(page, "new-pages-signal-retry-360")
    assert refused == []
