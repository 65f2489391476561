"""In a real browser: a page htmx moved away from (the Speakers search pushes its URL) is not
kept in the tab's storage, and after logging out Back shows the login page, not the names."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.conftest import log_in
from tests.test_ingest_support import import_path, slack_export, use_tmp_upload_dir

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


@pytest.fixture(autouse=True)
def uploads(settings, tmp_path):
    return use_tmp_upload_dir(settings, tmp_path / "server")


def test_no_page_of_names_is_kept_in_the_tab_and_back_after_logout_shows_none(
    new_page, staff, tmp_path
):
    import_path(slack_export(tmp_path / "s.zip", {"general": [("U1", "hi"), ("U2", "yo")]}))
    page = new_page()
    log_in(page, "staff", "correct horse 3")
    page.goto(reverse("ingest:speakers"))
    page.get_by_label("Find a person").press_sequentially("bo")
    page.wait_for_url(lambda url: url.endswith("?q=bo"))
    page.wait_for_function("document.querySelectorAll('[data-testid=speaker]').length === 1")

    assert page.evaluate("() => sessionStorage.getItem('htmx-history-cache')") is None

    page.go_back()  # Back past the search still works: the whole list, from the server
    page.wait_for_url(lambda url: url.endswith("/ingest/speakers/"))
    page.wait_for_function("document.querySelectorAll('[data-testid=speaker]').length === 2")
    page.go_forward()
    page.wait_for_url(lambda url: url.endswith("?q=bo"))

    page.get_by_role("button", name="Log out").click()
    page.wait_for_url("**/accounts/login/")
    page.go_back()
    page.wait_for_load_state()
    assert "/accounts/login/" in page.url
    assert "Alice" not in page.content() and "Bob" not in page.content()
