"""Logging out on a shared computer: the browser is told to drop what it kept of the member's
pages (its cache, and storage such as htmx's sessionStorage), not only the session cookie."""

from __future__ import annotations

import pytest

from tests.conftest import log_in

pytestmark = pytest.mark.django_db


def test_logging_out_tells_the_browser_to_clear_its_cache_and_storage(member_client):
    response = member_client.post("/accounts/logout/")

    assert response.status_code == 302
    assert response["Clear-Site-Data"] == '"cache", "storage"'
    assert member_client.get("/accounts/me/").status_code == 302  # logged out for real


def test_deleting_ones_account_tells_the_browser_to_clear_its_cache_and_storage(member_client):
    response = member_client.post("/accounts/me/delete-account/", {"password": "correct horse 1"})

    assert response.status_code == 302
    assert response["Clear-Site-Data"] == '"cache", "storage"'


def test_a_failed_deletion_clears_nothing(member_client):
    response = member_client.post("/accounts/me/delete-account/", {"password": "wrong"})

    assert response.status_code == 200
    assert "Clear-Site-Data" not in response


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_after_logging_out_the_tab_keeps_nothing_of_the_members_session_storage(new_page, member):
    page = new_page()
    log_in(page, "alice", "correct horse 1")
    page.evaluate("sessionStorage.setItem('kept', 'a friend\\'s page')")
    page.evaluate("localStorage.setItem('kept', 'a friend\\'s page')")

    page.click("text=Log out")
    page.wait_for_url(lambda url: "/accounts/login/" in url)

    assert page.evaluate("sessionStorage.getItem('kept')") is None
    assert page.evaluate("localStorage.getItem('kept')") is None
