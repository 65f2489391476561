"""The top bar: one line on a laptop screen for staff too, staff's pages in one menu that
opens and closes with the mouse and the keyboard, and nothing of it for a member."""

from __future__ import annotations

import pytest

from tests.conftest import log_in, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

STAFF_PAGES = ["Exports", "Speakers", "Training", "Batches", "Triage", "Invites", "Claims", "Admin"]


def bar_lines(page) -> int:
    """How many rows the top bar's items sit on."""
    return page.evaluate(
        """() => new Set([...document.querySelectorAll(
               '.topbar > .brand, .topbar nav > a, .topbar nav > details > summary, .account > *')]
             .map(e => { const r = e.getBoundingClientRect();
                         return Math.round((r.top + r.height / 2) / 16); })).size"""
    )


def test_staff_bar_fits_one_line_and_the_menu_works(new_page, staff):
    page = new_page(viewport={"width": 1280, "height": 800})
    log_in(page, "staff", "correct horse 3")
    page.goto("/gallery/")
    screenshot(page, "nav-staff-1280")
    assert bar_lines(page) == 1
    menu = page.locator("details.staff-menu")
    links = menu.locator(".staff-links a")
    assert links.all_text_contents() == STAFF_PAGES
    assert not links.first.is_visible()

    menu.locator("summary").click()
    assert links.first.is_visible()
    page.locator("main").click(position={"x": 5, "y": 5})  # a click elsewhere closes it
    assert not links.first.is_visible()

    # The keyboard: Enter opens it, Escape closes it and leaves the focus on it.
    menu.locator("summary").focus()
    page.keyboard.press("Enter")
    assert links.first.is_visible()
    page.keyboard.press("Tab")
    page.keyboard.press("Escape")
    assert not links.first.is_visible()
    assert page.evaluate("document.activeElement.tagName") == "SUMMARY"

    page.keyboard.press("Enter")
    menu.get_by_role("link", name="Training").click()
    page.wait_for_url("**/trainer/")
    # Where the current page is one of staff's, the menu says so.
    assert "current" in (page.locator("details.staff-menu summary").get_attribute("class") or "")
    assert page.locator(".staff-links a[aria-current=page]").text_content() == "Training"


def test_on_a_phone_the_menu_opens_in_the_bar(new_page, staff):
    page = new_page(viewport={"width": 375, "height": 740})
    log_in(page, "staff", "correct horse 3")
    page.goto("/")
    # The brand and the account share the first line; the links fill the width below them
    # (squeezed between the two they stacked five rows deep).
    brand, account = page.locator(".brand").bounding_box(), page.locator(".account").bounding_box()
    assert abs(brand["y"] - account["y"]) < 12
    assert page.locator(".topbar").bounding_box()["height"] < 140
    page.locator("details.staff-menu summary").click()
    exports = page.locator(".staff-links a", has_text="Exports")
    box = exports.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 375
    assert page.evaluate("document.documentElement.scrollWidth") <= 375


def test_a_member_gets_no_staff_menu(new_page, member):
    page = new_page(viewport={"width": 1280, "height": 800})
    log_in(page, "alice", "correct horse 1")
    page.goto("/gallery/")
    assert page.locator("details.staff-menu").count() == 0
    assert bar_lines(page) == 1
