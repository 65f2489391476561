"""Real or fake? in a real browser, played with the keyboard alone."""

from __future__ import annotations

import pytest

from tests.conftest import log_in
from tests.test_game import make_friend

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
# The round swapped and settled, its heading focused (a key pressed before lands on the old one).
SETTLED_ON_H2 = """document.activeElement.tagName === 'H2'
    && !document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling, .htmx-added')"""


def test_keyboard_player_lands_on_the_answer_and_the_next_round(new_page, member):
    make_friend("Alice", opted_in=True)
    page = new_page()
    log_in(page, "alice", "correct horse 1")
    page.goto("/game/")
    page.focus("button[value=real]")
    page.keyboard.press("Enter")
    page.wait_for_selector("[data-testid=game-result]")
    page.wait_for_function(SETTLED_ON_H2)
    # Focus moves to the answer (a screen reader reads it), not back to the top of the page.
    focused = page.evaluate("document.activeElement.textContent")
    assert focused in ("Right!", "Wrong!")
    page.keyboard.press("Tab")
    if page.evaluate("document.activeElement.textContent") == "See it in the gallery":
        page.keyboard.press("Tab")  # a fake links to itself first
    assert page.evaluate("document.activeElement.textContent") == "Next round"
    page.keyboard.press("Enter")
    page.wait_for_selector("[data-testid=game-round]")
    page.wait_for_function(SETTLED_ON_H2)  # focused as it settles
    assert "really write this?" in page.evaluate("document.activeElement.textContent")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.value") == "real"


def test_the_fifth_answer_puts_the_player_on_the_leaderboard(new_page, member):
    """Answers swap only the round: after the fifth, the leaderboard still said nobody had
    played 5 rounds until the page was reloaded."""
    make_friend("Alice", opted_in=True)
    page = new_page()
    log_in(page, "alice", "correct horse 1")
    page.goto("/game/")
    board = page.get_by_test_id("game-leaderboard")
    for played in range(1, 6):
        page.click("button[value=real]")
        page.get_by_test_id("game-score").filter(has_text=f"of {played}.").wait_for()
        if played < 5:
            page.click("text=Next round")
            page.get_by_test_id("game-round").wait_for()

    board.get_by_role("cell", name="alice").wait_for()
    assert "Nobody has played" not in board.inner_text()
