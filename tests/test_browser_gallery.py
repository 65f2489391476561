"""In a real browser: members vote and star without reloads, open permalinks, share a snippet."""

from __future__ import annotations

import pytest

from generations.models import Favourite, ShareLink
from tests.builders.snippets import make_snippet, make_speaker
from tests.conftest import log_in, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def snippets(db):
    ann, bo, cy = make_speaker("Ann"), make_speaker("Bo"), make_speaker("Cy")
    made = [
        make_snippet((ann, "who keeps leaving the oven on"), (bo, "not me"), (cy, "definitely bo")),
        make_snippet((bo, "<script>alert(1)</script> is my new ringtone")),
        make_snippet((cy, "pub at 8? I'll bring the quiz questions"), score=2, upvotes=2),
    ]
    return made


def test_member_votes_without_a_reload(new_page, member, snippets):
    page = new_page()
    log_in(page, "alice", "correct horse 1")
    page.goto("/gallery/?sort=new")
    target = snippets[0]
    page.evaluate("window.__stillHere = true")
    up = page.locator(f"#vote-up-{target.pk}")
    up.click()
    page.wait_for_selector(f'#vote-up-{target.pk}[aria-pressed="true"]')
    assert page.evaluate("window.__stillHere") is True  # no navigation happened
    box = page.locator(f"#vote-{target.pk}")
    assert box.locator("[data-testid=score]").inner_text() == "1"
    page.locator(f"#vote-down-{target.pk}").click()
    page.wait_for_selector(f'#vote-down-{target.pk}[aria-pressed="true"]')
    assert box.locator("[data-testid=score]").inner_text() == "-1"
    assert page.locator(f"#vote-up-{target.pk}").get_attribute("aria-pressed") == "false"
    page.locator(f"#vote-down-{target.pk}").click()  # undo
    page.wait_for_selector(f'#vote-down-{target.pk}[aria-pressed="false"]')
    assert box.locator("[data-testid=score]").inner_text() == "0"
    assert page.evaluate("window.__stillHere") is True


def test_two_members_vote_on_the_same_snippet(new_page, member, other_member, snippets):
    target = snippets[2]  # starts at +2
    alice, bob = new_page(), new_page()
    log_in(alice, "alice", "correct horse 1")
    log_in(bob, "bob", "correct horse 2")
    for page in (alice, bob):
        page.goto("/gallery/?sort=new")
    alice.locator(f"#vote-up-{target.pk}").click()
    alice.wait_for_selector(f'#vote-up-{target.pk}[aria-pressed="true"]')
    bob.locator(f"#vote-down-{target.pk}").click()
    bob.wait_for_selector(f'#vote-down-{target.pk}[aria-pressed="true"]')
    # Bob's swap brings Alice's vote with it; each sees only their own button pressed.
    assert bob.locator(f"#vote-{target.pk} [data-testid=upvotes]").inner_text() == "1"
    assert bob.locator(f"#vote-{target.pk} [data-testid=downvotes]").inner_text() == "1"
    assert bob.locator(f"#vote-up-{target.pk}").get_attribute("aria-pressed") == "false"
    alice.reload()
    assert alice.locator(f"#vote-{target.pk} [data-testid=downvotes]").inner_text() == "1"
    assert alice.locator(f"#vote-up-{target.pk}").get_attribute("aria-pressed") == "true"
    assert alice.locator(f"#vote-down-{target.pk}").get_attribute("aria-pressed") == "false"


def test_member_saves_a_favourite_and_finds_it(new_page, member, snippets):
    target = snippets[1]
    page = new_page()
    log_in(page, "alice", "correct horse 1")
    page.goto("/gallery/?sort=new")
    page.locator(f"#star-{target.pk}").click()
    page.wait_for_selector(f'#star-{target.pk}[aria-pressed="true"]')
    assert Favourite.objects.filter(user=member, snippet=target).exists()
    page.goto("/favourites/")
    assert "is my new ringtone" in page.content()
    assert page.locator(f"#snippet-{target.pk} .bubble-text").inner_text().startswith("<script>")


def test_member_shares_a_snippet_a_stranger_opens_it(new_page, member, snippets):
    target = snippets[0]
    page = new_page()
    log_in(page, "alice", "correct horse 1")
    page.goto("/gallery/?sort=new")
    page.click(f"#snippet-{target.pk} a.permalink")
    page.wait_for_url(f"**/s/{target.pk}/")
    page.click("text=Create share link")
    link = page.locator("[data-testid=share-link]").first
    link.wait_for()
    url = link.input_value()
    assert ShareLink.objects.filter(snippet=target, created_by=member).exists()
    screenshot(page, "gallery-permalink")

    stranger = new_page(viewport={"width": 390, "height": 844})
    stranger.goto(url)
    assert stranger.locator("[data-testid=parody-label]").inner_text().lower() == (
        "ai parody of ann, bo and cy"
    )
    assert "definitely bo" in stranger.content()
    assert stranger.locator("nav").count() == 0
    image = stranger.locator('meta[property="og:image"]').get_attribute("content")
    assert image.startswith("http") and image.endswith("/card.png")
    assert stranger.request.get(image).status == 200
    screenshot(stranger, "share-phone")

    page.click("button:has-text('Revoke')")
    page.wait_for_selector("text=Create share link")
    assert stranger.goto(url).status == 404


def test_gallery_looks_right_on_a_phone_and_a_desktop(new_page, member, staff, snippets):
    for i in range(22):
        make_snippet(
            (snippets[0].speaker, f"filler fake number {i}, long enough to wrap a line or two")
        )
    page = new_page(viewport={"width": 1100, "height": 900})
    log_in(page, "alice", "correct horse 1")
    page.goto("/gallery/?sort=top")
    page.wait_for_timeout(2500)  # let the first-view typewriter finish
    screenshot(page, "gallery")
    assert page.locator(".snippet").count() >= 20
    # infinite scroll: reaching the bottom loads the next page in place
    page.locator(".more").scroll_into_view_if_needed()
    page.wait_for_function("document.querySelectorAll('.snippet').length >= 25")
    assert page.locator("script:has-text('alert(1)')").count() == 0

    phone = new_page(viewport={"width": 390, "height": 844})
    log_in(phone, "alice", "correct horse 1")
    phone.goto("/gallery/?sort=top")
    phone.wait_for_timeout(500)
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"page scrolls sideways on a phone ({width}px)"
    screenshot(phone, "gallery-phone")


def test_typewriter_runs_once_and_respects_reduced_motion(browser, live_server, member, snippets):
    context = browser.new_context(
        base_url=live_server.url, reduced_motion="reduce", bypass_csp=True
    )
    page = context.new_page()
    log_in(page, "alice", "correct horse 1")
    page.goto("/gallery/?sort=new")
    assert page.locator(".snippet.typing").count() == 0
    assert "definitely bo" in page.locator(f"#snippet-{snippets[0].pk}").inner_text()
    context.close()

    context = browser.new_context(base_url=live_server.url, bypass_csp=True)
    page = context.new_page()
    log_in(page, "alice", "correct horse 1")
    page.goto("/gallery/?sort=new")
    page.wait_for_selector(".snippet.typing")
    page.wait_for_function("document.querySelectorAll('.snippet.typing').length === 0")
    assert "definitely bo" in page.locator(f"#snippet-{snippets[0].pk}").inner_text()
    page.reload()
    page.wait_for_timeout(300)
    assert page.locator(".snippet.typing").count() == 0  # seen before in this browser
    context.close()


def test_keyboard_can_vote(new_page, member, snippets):
    target = snippets[0]
    page = new_page()
    log_in(page, "alice", "correct horse 1")
    page.goto("/gallery/?sort=new")
    page.focus(f"#vote-up-{target.pk}")
    page.keyboard.press("Enter")
    page.wait_for_selector(f'#vote-up-{target.pk}[aria-pressed="true"]')
    assert page.evaluate("document.activeElement.id") == f"vote-up-{target.pk}"


def test_vote_after_logging_out_in_another_tab_goes_to_login(new_page, member, snippets):
    target = snippets[0]
    page = new_page()
    log_in(page, "alice", "correct horse 1")
    page.goto("/gallery/?sort=new")
    other_tab = page.context.new_page()
    other_tab.goto("/gallery/")
    other_tab.get_by_role("button", name="Log out").click()
    other_tab.wait_for_url("**/accounts/login/**")
    page.locator(f"#vote-up-{target.pk}").click()
    # The whole page goes to log in (not the login form swapped into the vote box) and back.
    page.wait_for_url("**/accounts/login/?next=/gallery/%3Fsort%3Dnew")
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", "correct horse 1")
    page.locator("main button[type=submit]").click()
    page.wait_for_url("**/gallery/?sort=new")
    assert page.locator(f"#vote-{target.pk}").count() == 1


def test_vote_on_a_fake_vetoed_meanwhile_says_so(new_page, member, snippets):
    target = snippets[1]
    page = new_page()
    log_in(page, "alice", "correct horse 1")
    page.goto("/gallery/?sort=new")
    target.hide()  # vetoed or hidden by staff while the page was open
    page.locator(f"#vote-up-{target.pk}").click()
    toast = page.locator(".toast-error")
    toast.wait_for()
    assert "no longer here" in toast.inner_text()
    assert page.locator(f"#vote-up-{target.pk}").get_attribute("aria-pressed") == "false"
    page.locator(f"#star-{target.pk}").click()  # the same words again: still one toast
    page.wait_for_timeout(500)
    assert page.locator(".toast-error").count() == 1


# The share box swapped and settled (htmx gives focus to its heading as it settles; a key
# pressed before that lands on the old box).
SETTLED_ON_SHARE_TITLE = """document.activeElement.id === 'share-title'
    && !document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling, .htmx-added')"""


def test_keyboard_can_make_and_revoke_a_share_link(new_page, member, snippets):
    target = snippets[0]
    page = new_page()
    log_in(page, "alice", "correct horse 1")
    page.goto(f"/s/{target.pk}/")
    page.get_by_role("button", name="Create share link").focus()
    page.keyboard.press("Enter")
    # Focus stays in the box it swapped (not thrown back to the top of the page).
    page.wait_for_function(SETTLED_ON_SHARE_TITLE)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.dataset.testid") == "share-link"
    page.get_by_role("button", name="Revoke").focus()
    page.keyboard.press("Enter")
    page.wait_for_function(SETTLED_ON_SHARE_TITLE)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Create share link"


def test_more_after_a_batch_landed_shows_no_card_twice(new_page, member):
    ann = make_speaker("Ann")
    for i in range(25):
        make_snippet((ann, f"older fake {i}"))
    page = new_page()
    log_in(page, "alice", "correct horse 1")
    page.goto("/gallery/?sort=new")
    for i in range(3):  # a batch lands while Alice reads the first page
        make_snippet((ann, f"fresh fake {i}"))
    page.locator(".more").scroll_into_view_if_needed()
    page.wait_for_selector(".more", state="detached")  # the last page came: no more "More"
    ids = page.eval_on_selector_all("#snippets .snippet", "cards => cards.map(c => c.id)")
    assert len(ids) == len(set(ids)) == 25


def test_keyboard_on_more_goes_on_to_the_next_cards(new_page, member):
    """Tabbing onto "More" loaded the next page, which took the link away with the focus: the
    next Tab started again at the top of the page. The focus moves to the first new card."""
    ann = make_speaker("Ann")
    for i in range(25):
        make_snippet((ann, f"fake {i}"))
    page = new_page()
    page.emulate_media(reduced_motion="reduce")
    log_in(page, "alice", "correct horse 1")
    page.goto("/gallery/?sort=new")
    last = page.locator("#snippets .snippet .permalink").last
    last.focus()
    page.keyboard.press("Tab")  # onto "More", which scrolls it into view and loads the next page
    page.wait_for_selector(".more", state="detached")

    first_new = page.locator("#snippets .snippet").nth(20)
    assert first_new.evaluate("card => card.contains(document.activeElement)")
    page.keyboard.press("Tab")
    assert first_new.evaluate("card => card.contains(document.activeElement)")
