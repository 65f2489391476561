"""In a real browser: a member asks for a live message, watches it arrive, and saves it."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import expect

from generations.models import Snippet
from tests.builders.generation import (
    checkpoint_copy,
    make_friends,
    make_run,
    tiny_checkpoint,
    wait_for_gpu_worker,
)
from tests.conftest import log_in, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# Records every text the thread shows, so the test can tell words arrived one poll at a time.
WATCH_THREAD = """
window.__seen = [];
new MutationObserver(() => {
  const thread = document.querySelector("[data-testid=live-thread]");
  const text = thread ? thread.textContent.trim() : "";
  if (text && window.__seen[window.__seen.length - 1] !== text) window.__seen.push(text);
}).observe(document, {subtree: true, childList: true, characterData: true});
"""


@pytest.fixture
def unhurried_model(monkeypatch):
    """A tiny model writes 40 tokens faster than one poll; slow it to a person's reading pace."""
    from generations.sampling import Generator

    real = Generator.generate_messages

    def unhurried(self, *args, on_token=None, **kwargs):
        def slow(index, text):
            time.sleep(0.05)
            on_token(index, text)

        return real(self, *args, on_token=slow if on_token else None, **kwargs)

    monkeypatch.setattr(Generator, "generate_messages", unhurried)


def test_member_watches_words_arrive_and_saves_to_the_gallery(
    new_page, member, tmp_path, celery_worker_on_redis, unhurried_model
):
    wait_for_gpu_worker()
    friends = make_friends()
    make_run(checkpoint_copy(tiny_checkpoint(), tmp_path / "checkpoint"), friends)
    page = new_page()
    log_in(page, "alice", "correct horse 1")
    page.goto("/live/")
    page.add_script_tag(content=WATCH_THREAD)
    page.evaluate("window.__sameDocument = true")

    page.select_option("select[name=speaker]", label="Bo")
    page.fill("input[name=opening]", "honestly")
    page.click("text=Generate")
    page.locator("text=Save to the gallery").wait_for(timeout=60_000)

    seen = page.evaluate("window.__seen")
    assert page.evaluate("window.__sameDocument"), "the page never reloaded"
    assert len(seen) >= 3, f"words arrived over several polls, saw {seen}"
    assert seen[-1].startswith("B") and "honestly" in seen[-1]
    assert "/live/" in page.url
    screenshot(page, "live-generated")
    # Read out once, from a region that stays put; nothing inside the polled part is a live region.
    announcer = page.locator("[data-testid=live-announcer]")
    assert announcer.inner_text() == "Done. AI parody: none of this was really said."
    assert page.locator("#live-stream [role=status], #live-stream [role=alert]").count() == 0

    page.click("text=Save to the gallery")
    page.locator("[data-testid=saved]").wait_for()
    snippet = Snippet.objects.get()
    assert snippet.source == "live" and snippet.created_by == member
    # The recent list under the form caught up without a reload: this one, done and saved.
    recent = page.locator("[data-testid=live-recent] li")
    expect(recent).to_have_count(1)
    expect(recent).to_contain_text("Bo")
    expect(recent).to_contain_text("saved")
    assert page.evaluate("window.__sameDocument")
    page.click("text=See it in the gallery")
    page.wait_for_url(f"**/s/{snippet.pk}/")
    # The gallery types a snippet out the first time; wait for the whole text.
    expect(page.locator("main .bubble-text").first).to_have_text(snippet.lines[0]["text"])
    screenshot(page, "live-saved")
