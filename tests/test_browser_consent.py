"""In a real browser: a friend claims their speaker, opts out and sees their fakes vanish, opts in
to the game and plays a round."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from accounts.models import SpeakerClaim
from generations.models import Snippet
from ingest.models import Conversation, Identity, Message, Speaker
from tests.conftest import log_in, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def alice_and_her_fakes():
    alice = Speaker.objects.create(display_name="Alice", slug="alice")
    conv = Conversation.objects.create(source_kind="slack", external_id="C", title="general")
    ident = Identity.objects.create(
        source_kind="slack", external_id="U1", display_name="Alice", speaker=alice
    )
    for i in range(3):
        Message.objects.create(
            conversation=conv, identity=ident, source_kind="slack", external_id=str(i),
            sent_at=datetime(2024, 1, 1, i, tzinfo=UTC), text=f"the real alice says hello {i}",
        )  # fmt: skip
    fake = Snippet.objects.create(
        speaker=alice,
        lines=[{"speaker": "alice", "name": "Alice", "text": "a fake alice line for the gallery"}],
        text="a fake alice line for the gallery",
    )
    fake.speakers.add(alice)
    return alice, fake


def test_friend_claims_opts_out_and_plays(new_page, member, staff, alice_and_her_fakes):
    alice, fake = alice_and_her_fakes
    friend = new_page()
    friend.emulate_media(reduced_motion="reduce")  # whole texts at once, no typewriter
    log_in(friend, "alice", "correct horse 1")
    friend.goto("/accounts/me/")
    friend.select_option("select[name=speaker]", str(alice.pk))
    friend.click("text=Ask to be linked")
    friend.locator("text=Waiting for staff").wait_for()

    admin = new_page()
    log_in(admin, "staff", "correct horse 3")
    admin.goto("/accounts/claims/")
    admin.click("button:has-text('Approve')")
    admin.locator("text=Claim approved.").wait_for()
    assert SpeakerClaim.objects.get().status == "approved"

    friend.goto("/accounts/me/")
    assert "3</strong> of your messages are in the corpus" in friend.content()
    friend.goto("/gallery/")
    assert "a fake alice line for the gallery" in friend.content()
    friend.goto("/accounts/me/")
    friend.click("text=Opt out of joe")
    friend.locator(".badge", has_text="You opted out").wait_for()
    friend.goto("/gallery/")
    assert "a fake alice line for the gallery" not in friend.content()
    screenshot(friend, "consent-gallery-after-opt-out")

    friend.goto("/accounts/me/")
    friend.click("text=Opt back in")
    friend.click("text=Allow my real messages in the game")
    friend.locator("p", has_text="Your real messages from group chats can appear").wait_for()
    friend.goto("/game/")
    friend.locator("text=Did Alice really write this?").wait_for()
    friend.click("button:has-text('Real')")
    friend.locator("[data-testid=game-result]").wait_for()
    assert "right of 1" in friend.locator("[data-testid=game-score]").inner_text()
    screenshot(friend, "consent-game")


def test_a_screen_reader_reads_the_voice_heading_as_the_name(new_page, member):
    """The avatar's initial was read into the heading: "A Alice"."""
    Speaker.objects.create(display_name="Alice", slug="alice", member=member)
    page = new_page()
    log_in(page, "alice", "correct horse 1")
    page.goto("/accounts/me/")

    assert page.get_by_role("heading", name="Alice", exact=True).is_visible()


CONTRAST = """el => {
    const rgb = c => c.match(/[\\d.]+/g).slice(0, 3).map(Number);
    const lum = c => rgb(c).map(v => (v /= 255) <= .03928 ? v / 12.92 : ((v + .055) / 1.055) ** 2.4)
        .reduce((sum, v, i) => sum + v * [.2126, .7152, .0722][i], 0);
    let back = el;
    while (getComputedStyle(back).backgroundColor === "rgba(0, 0, 0, 0)") back = back.parentElement;
    const [a, b] = [lum(getComputedStyle(el).color), lum(getComputedStyle(back).backgroundColor)];
    return (Math.max(a, b) + .05) / (Math.min(a, b) + .05);
}"""


def test_in_dark_mode_the_opt_out_button_can_be_read(new_page, member):
    """Red on the dark card read at 2.5:1: the danger buttons and error messages were the
    light theme's red."""
    Speaker.objects.create(display_name="Alice", slug="alice", member=member)
    page = new_page()
    page.emulate_media(color_scheme="dark")
    log_in(page, "alice", "correct horse 1")
    page.goto("/accounts/me/")

    assert page.get_by_role("button", name="Opt out of joe").evaluate(CONTRAST) >= 4.5
