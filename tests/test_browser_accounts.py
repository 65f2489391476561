"""In a real browser: staff log in, create an invite; a friend signs up with it elsewhere."""

from __future__ import annotations

import pytest

from tests.conftest import log_in, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_staff_invites_a_friend_who_signs_up(new_page, staff):
    admin = new_page()
    log_in(admin, "staff", "correct horse 3")
    admin.goto("/accounts/invites/")
    admin.fill("input[name=note]", "Carol")
    admin.click("text=Create invite link")
    link = admin.locator("[data-testid=invite-link]").first.input_value()
    assert "/accounts/signup/" in link
    admin.click("button[data-copy]")
    admin.locator(".toast", has_text="Link copied.").wait_for()
    screenshot(admin, "invites")

    friend = new_page(viewport={"width": 390, "height": 844})  # a phone, another device
    friend.goto(link)
    friend.fill("input[name=username]", "carol")
    friend.fill("input[name=password1]", "a-long-unusual-passphrase-77")
    friend.fill("input[name=password2]", "a-long-unusual-passphrase-77")
    friend.click("text=Create my account")
    friend.wait_for_url(lambda url: url.rstrip("/").endswith(("", "8000")) and "signup" not in url)
    assert "Welcome to joe, carol" in friend.content()

    admin.reload()
    assert "used by carol" in admin.content()
    stranger = new_page()
    stranger.goto(link)
    assert "already been used" in stranger.content()


def test_a_wrong_password_is_read_out_on_the_field_that_has_the_focus(new_page, member):
    """The page came back with the focus on the username and the sentence tied to no field: a
    screen reader said "Username, alice" and nothing of what went wrong."""
    page = new_page()
    page.goto("/accounts/login/")
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", "not her password")
    page.click("button[type=submit]")
    page.locator(".errorlist").wait_for()

    assert page.evaluate("document.activeElement.name") == "username"
    described = page.evaluate(
        """() => (document.activeElement.getAttribute('aria-describedby') || '').split(' ')
             .map(id => document.getElementById(id)?.textContent || '').join(' ')"""
    )
    assert "enter a correct username and password" in described
    assert page.locator("input[name=password]").get_attribute("aria-invalid") == "true"


def test_staff_make_a_reset_link_and_a_friend_sets_a_new_password(new_page, staff, member):
    admin = new_page()
    log_in(admin, "staff", "correct horse 3")
    admin.goto("/accounts/invites/")
    admin.get_by_role("button", name="Make a reset link for alice").click()
    link = admin.locator("[data-testid=reset-link]").input_value()
    assert "/accounts/reset/" in link
    screenshot(admin, "reset-link")

    friend = new_page(viewport={"width": 390, "height": 844})  # her phone
    friend.goto(link)
    friend.get_by_role("heading", name="Set a new password").wait_for()
    assert "/set-password/" in friend.url  # the token is out of the address bar
    friend.fill("input[name=new_password1]", "a-long-unusual-passphrase-78")
    friend.fill("input[name=new_password2]", "a-long-unusual-passphrase-78")
    friend.click("text=Set my password")
    friend.locator(".toast", has_text="Welcome back, alice").wait_for()
    assert friend.locator(".account").inner_text().startswith("alice")

    stranger = new_page()
    stranger.goto(link)
    assert "Ask a staff member for a new link" in stranger.content()

    # Alice, logged in, opens the used link again: the page's own Log out still works (a page
    # sent with no-referrer posts its forms with "Origin: null", refused as a forgery).
    friend.goto(link)
    friend.get_by_text("Ask a staff member for a new link").wait_for()
    friend.click("text=Log out")
    friend.wait_for_url(lambda url: "/accounts/login/" in url)
    assert "Forbidden" not in friend.content()
