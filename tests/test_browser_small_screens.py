"""On the narrowest phones (320 px, where a page must reflow): a table scrolls in its own box,
the page itself never sideways."""

from __future__ import annotations

import pytest

from accounts.models import Invite
from tests.builders.slack import User
from tests.conftest import log_in
from tests.test_ingest_support import import_path, slack_export

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_members_game_page_fits_a_small_phone(new_page, member):
    page = new_page(viewport={"width": 320, "height": 640})
    log_in(page, "alice", "correct horse 1")
    page.goto("/game/")
    page.get_by_role("heading", name="Best guessers").wait_for()

    assert page.evaluate("document.documentElement.scrollWidth") <= 320


def test_the_invites_page_fits_a_small_phone(new_page, staff):
    Invite.objects.create(note="for Cy")
    page = new_page(viewport={"width": 320, "height": 640})
    log_in(page, "staff", "correct horse 3")
    page.goto("/accounts/invites/")
    page.locator("table").last.wait_for()  # the members' table, under the invites'

    assert page.evaluate("document.documentElement.scrollWidth") <= 320
    page.get_by_role("button", name="Make a reset link for staff").click()
    page.locator("[data-testid=reset-link]").wait_for()
    assert page.evaluate("document.documentElement.scrollWidth") <= 320


def test_the_speakers_page_fits_a_small_phone(new_page, staff, tmp_path):
    """Its tables scrolled in their box, but their column heading for screen readers ("Actions",
    positioned out of sight) sat outside it, past the screen's edge: the page scrolled sideways."""
    people = [User("U1", "featherstonehaugh", "Alexandra Featherstonehaugh"), User("U2", "ron")]
    channels = {"general": [("U1", "hi"), ("U2", "yo")]}
    import_path(slack_export(tmp_path / "s.zip", channels, users=people))
    page = new_page(viewport={"width": 320, "height": 640})
    log_in(page, "staff", "correct horse 3")
    page.goto("/ingest/speakers/")
    page.locator("table").first.wait_for()

    assert page.evaluate("document.documentElement.scrollWidth") <= 320


def test_the_home_page_fits_a_small_phone_with_long_names(new_page, django_user_model):
    """A friend's long name (their username in the bar, a model named after them, a file name
    among the recent exports) did not wrap: the home page scrolled sideways on a phone."""
    from ingest.models import Export
    from trainer.models import JobStatus, TrainingRun

    long = "Alexandra-Featherstonehaugh-Montgomery"
    django_user_model.objects.create_user(
        username=long, password="correct horse 9", is_staff=True, is_superuser=True
    )
    TrainingRun.objects.create(
        name=f"{long}s-first-model", status=JobStatus.SUCCEEDED, is_active=True
    )
    Export.objects.create(original_name=f"{long}_WhatsApp_Chat_with_everyone.zip")
    page = new_page(viewport={"width": 320, "height": 640})
    log_in(page, long, "correct horse 9")
    page.goto("/")
    page.get_by_role("heading", name="Recent runs").wait_for()

    assert page.evaluate("document.documentElement.scrollWidth") <= 320
