"""Share links: a public page and PNG card for one snippet, revocable, and nothing else exposed."""

from __future__ import annotations

import io
import secrets

import pytest
from PIL import Image

from generations import share_card
from generations.models import Bubble, ShareLink
from tests.builders.snippets import make_snippet, make_speaker

pytestmark = pytest.mark.django_db
BOTS = [
    "Discordbot/2.0",
    "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
    "Twitterbot/1.0",
    "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
]


@pytest.fixture
def snippet(db):
    ann, bo = make_speaker("Ann"), make_speaker("Bo")
    make_speaker("Secret Sam")  # in the group, not in this snippet: must never show
    return make_snippet((ann, "who took my charger"), (bo, "the charger took itself"))


@pytest.fixture
def link(member, snippet):
    return ShareLink.objects.create(snippet=snippet, created_by=member)


def test_member_creates_a_share_link(member_client, member, snippet):
    response = member_client.post(f"/s/{snippet.pk}/share/")
    assert response.status_code == 302
    link = ShareLink.objects.get(snippet=snippet, created_by=member)
    page = member_client.get(f"/s/{snippet.pk}/").content.decode()
    assert f"/share/{link.token}/" in page


def test_creating_twice_reuses_the_open_link(member_client, snippet):
    member_client.post(f"/s/{snippet.pk}/share/")
    member_client.post(f"/s/{snippet.pk}/share/")
    assert ShareLink.objects.count() == 1


def test_htmx_share_returns_the_share_box_and_a_toast(member_client, snippet):
    response = member_client.post(f"/s/{snippet.pk}/share/", headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert 'id="share-box"' in response.content.decode()
    assert "<html" not in response.content.decode()
    assert "toast" in response["HX-Trigger"]


def test_anyone_can_open_a_share_link_without_logging_in(client, link):
    response = client.get(f"/share/{link.token}/")
    html = response.content.decode()
    assert response.status_code == 200
    assert "who took my charger" in html
    assert "AI parody of Ann and Bo" in html


def test_share_page_has_open_graph_and_twitter_card(client, link):
    html = client.get(f"/share/{link.token}/").content.decode()
    image = f"http://testserver/share/{link.token}/card.png"
    assert f'<meta property="og:image" content="{image}">' in html
    assert '<meta property="og:title" content="AI parody of Ann and Bo">' in html
    assert '<meta property="og:image:width" content="1200">' in html
    assert '<meta name="twitter:card" content="summary_large_image">' in html
    assert f'<meta name="twitter:image" content="{image}">' in html


def test_share_page_shows_nothing_else_of_the_group(client, link):
    html = client.get(f"/share/{link.token}/").content.decode()
    assert "Secret Sam" not in html
    assert "<nav" not in html
    assert "Log out" not in html
    hrefs = [part.split('"')[0] for part in html.split('href="')[1:]]
    assert all(h.startswith("/static/") for h in hrefs), hrefs  # stylesheets only, no links in


@pytest.mark.parametrize("agent", BOTS)
def test_link_preview_bots_get_200(client, link, agent):
    assert client.get(f"/share/{link.token}/", headers={"User-Agent": agent}).status_code == 200
    card = client.get(f"/share/{link.token}/card.png", headers={"User-Agent": agent})
    assert card.status_code == 200


def test_link_checkers_may_ask_with_head(client, link):
    """Some unfurlers and link checkers send HEAD first: a 405 makes them give up on the link."""
    page = client.head(f"/share/{link.token}/")
    assert page.status_code == 200 and page["Content-Type"].startswith("text/html")
    card = client.head(f"/share/{link.token}/card.png")
    assert card.status_code == 200 and card["Content-Type"] == "image/png"
    link.revoke()
    assert client.head(f"/share/{link.token}/").status_code == 404


def test_card_is_a_1200_by_630_png(client, link):
    response = client.get(f"/share/{link.token}/card.png")
    assert response["Content-Type"] == "image/png"
    assert response["Cache-Control"] == "private, no-cache"  # asked again every time
    image = Image.open(io.BytesIO(response.content))
    assert image.format == "PNG"
    assert image.size == (1200, 630)


def test_card_of_a_very_long_snippet_still_fits(client, member):
    snippet = make_snippet((make_speaker("Cy"), "word " * 2000))
    link = ShareLink.objects.create(snippet=snippet, created_by=member)
    image = Image.open(io.BytesIO(client.get(f"/share/{link.token}/card.png").content))
    assert image.size == (1200, 630)


def test_a_long_word_is_cut_into_lines_without_measuring_it_over_and_over():
    """A model laughing for 256 tokens writes one 1,000-character word: cut by measuring every
    shorter prefix, the first request for its card took seconds of the web process's CPU."""
    face = share_card.font(44)
    measured = []

    class Counting:
        def getlength(self, text: str) -> float:
            measured.append(text)
            return face.getlength(text)

    lines = share_card.wrap("ha" * 500, Counting(), 900)

    assert "".join(lines) == "ha" * 500
    assert all(face.getlength(line) <= 900 for line in lines)
    assert all(face.getlength(line + "h") > 900 for line in lines[:-1])  # each line full
    assert len(measured) < 1000  # 15,192 when every prefix was tried


def test_card_keeps_long_names_and_many_voices_inside_it():
    names = ["Maximilian Alexander von Hohenzollern-Sigmaringen", "Bartholomew Featherstonehaugh"]
    names.append("W" * 100)
    bubbles = [Bubble(name=name, text="hi", colour="#2a9d8f", initial=name[0]) for name in names]
    png = share_card.render_card(bubbles=bubbles, label="AI parody of " + ", ".join(names))
    image = Image.open(io.BytesIO(png))
    # The label and the name over each bubble are cut with an ellipsis, not by the card's edge.
    right_margin = image.crop((1200 - 40, 0, 1200, 630)).convert("RGB")
    assert right_margin.getcolors() == [(40 * 630, (0xF6, 0xF4, 0xEF))]  # the background alone


def test_a_name_with_a_line_break_still_gets_a_card(client, member):
    """A chat name can carry a line break (or another separator str.splitlines knows): the
    card is the link's preview, and drawing the name failed with a 500."""
    names = ["Ann\nMarie", "Bo\r", "Cy\x1cD", "Di\u2029E"]
    voices = [make_speaker(name, slug=f"v{i}") for i, name in enumerate(names)]
    snippet = make_snippet(*[(voice, "hi") for voice in voices])
    link = ShareLink.objects.create(snippet=snippet, created_by=member)

    response = client.get(f"/share/{link.token}/card.png")

    assert response.status_code == 200
    assert Image.open(io.BytesIO(response.content)).size == (1200, 630)


def test_revoked_link_is_gone_page_and_image(member_client, client, link):
    card = client.get(f"/share/{link.token}/card.png")
    again = client.get(f"/share/{link.token}/card.png", headers={"If-None-Match": card["ETag"]})
    assert again.status_code == 304 and not again.content  # a browser's copy is still good

    response = member_client.post(f"/share-links/{link.pk}/revoke/")
    assert response.status_code == 302
    assert client.get(f"/share/{link.token}/").status_code == 404
    assert client.get(f"/share/{link.token}/card.png").status_code == 404
    # ...and a browser that kept the card, asking whether it still holds, is told it is gone.
    stale = client.get(f"/share/{link.token}/card.png", headers={"If-None-Match": card["ETag"]})
    assert stale.status_code == 404


def test_unknown_token_is_404(client):
    assert client.get("/share/not-a-token/").status_code == 404


def test_only_the_creator_or_staff_can_revoke(client, other_member, staff, link):
    client.force_login(other_member)
    assert client.post(f"/share-links/{link.pk}/revoke/").status_code == 404
    link.refresh_from_db()
    assert link.revoked_at is None
    client.force_login(staff)
    client.post(f"/share-links/{link.pk}/revoke/")
    link.refresh_from_db()
    assert link.revoked_at is not None


def test_share_link_dies_with_the_snippet_hidden_or_opted_out(client, link, snippet):
    snippet.hide()
    assert client.get(f"/share/{link.token}/").status_code == 404
    snippet.publish()
    assert client.get(f"/share/{link.token}/").status_code == 200
    snippet.speaker.opted_out = True
    snippet.speaker.save()
    assert client.get(f"/share/{link.token}/").status_code == 404
    assert client.get(f"/share/{link.token}/card.png").status_code == 404


def test_a_name_with_a_right_to_left_override_cannot_reverse_the_label(client, member):
    prank = make_speaker("Mira \u202eRTL", slug="mira")  # an override left open in a chat name
    snippet = make_snippet((prank, "hello"), (make_speaker("Ann"), "hi"))
    link = ShareLink.objects.create(snippet=snippet, created_by=member)
    html = client.get(f"/share/{link.token}/").content.decode()
    # Isolated (FSI ... PDI): " and Ann" stays as it is, on the page, in the unfurl and the card.
    label = "AI parody of \u2068Mira \u202eRTL\u2069 and Ann"
    assert f'<h1 class="parody-label" data-testid="parody-label">{label}</h1>' in html
    assert f'<meta property="og:title" content="{label}">' in html


def test_a_voice_named_by_its_phone_number_is_not_published_with_it(
    client, member, monkeypatch, settings
):
    """A WhatsApp group names someone its exporter had not saved by their number: fine among
    the group, not on a page that anyone with the link opens, nor in its unfurl or card."""
    number = make_speaker("+44 7700 900123", slug="number")
    snippet = make_snippet((number, "see you there"), (make_speaker("Ann"), "ok"))
    link = ShareLink.objects.create(snippet=snippet, created_by=member)
    drawn = {}

    def render_card(*, bubbles, label, conversation):
        drawn.update(names=[bubble.name for bubble in bubbles], label=label)
        return b"png"

    monkeypatch.setattr(share_card, "render_card", render_card)
    local = "django.core.cache.backends.locmem.LocMemCache"
    settings.CACHES = {"default": {"BACKEND": local, "LOCATION": secrets.token_hex(4)}}  # drawn

    html = client.get(f"/share/{link.token}/").content.decode()
    client.get(f"/share/{link.token}/card.png")

    assert "7700" not in html and "900123" not in html
    assert '<meta property="og:title" content="AI parody of a friend and Ann">' in html
    assert drawn == {"names": ["a friend", "Ann"], "label": "AI parody of a friend and Ann"}


def test_hostile_text_is_escaped_on_the_share_page(client, member):
    evil = make_speaker('"><img src=x onerror=alert(1)>', slug="evil")
    snippet = make_snippet((evil, "<script>alert(1)</script>"))
    link = ShareLink.objects.create(snippet=snippet, created_by=member)
    html = client.get(f"/share/{link.token}/").content.decode()
    assert "<script>alert(1)" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img src=x" not in html
    assert "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in html
    assert client.get(f"/share/{link.token}/card.png").status_code == 200


@pytest.mark.django_db(transaction=True)
def test_clicks_at_once_make_one_share_link(member):
    """A double click without JavaScript, or two tabs: one link, not twins that outlive a revoke."""
    from django.test import Client

    from tests.test_votes import _race

    ann = make_speaker("Ann")
    clients = [Client() for _ in range(10)]
    for session in clients:
        session.force_login(member)
    for attempt in range(3):
        snippet = make_snippet((ann, f"share me once {attempt}"))
        url = f"/s/{snippet.pk}/share/"
        _race([lambda c=c, url=url: c.post(url) for c in clients])
        assert ShareLink.objects.filter(snippet=snippet, created_by=member).count() == 1


def test_opting_out_revokes_the_public_links_for_good(
    client, member_client, member, other_member, snippet
):
    """Opting out used to hide the links only: opting back in brought back links the friend
    believed dead. Any link to a fake with their voice in it is revoked, as a veto does."""
    from ingest.models import Speaker

    bo = Speaker.objects.get(display_name="Bo")  # the second voice of the conversation
    Speaker.objects.filter(pk=bo.pk).update(member=member)
    theirs = ShareLink.objects.create(snippet=snippet, created_by=other_member)
    elsewhere = make_snippet((Speaker.objects.get(display_name="Ann"), "not Bo's"))
    kept = ShareLink.objects.create(snippet=elsewhere, created_by=other_member)

    response = member_client.post(f"/accounts/me/speakers/{bo.pk}/opt-out/", {"opted_out": "1"})
    assert "their public links revoked" in member_client.get(response.url).content.decode()
    member_client.post(f"/accounts/me/speakers/{bo.pk}/opt-out/", {"opted_out": "0"})

    assert client.get(f"/share/{theirs.token}/").status_code == 404
    theirs.refresh_from_db()
    assert theirs.revoked_at is not None
    assert client.get(f"/share/{kept.token}/").status_code == 200


def test_a_dead_link_says_so_and_nothing_else(member_client, link):
    from django.test import Client

    member_client.post(f"/share-links/{link.pk}/revoke/")
    stranger = Client()
    for token in (link.token, "never-made"):
        response = stranger.get(f"/share/{token}/")
        html = response.content.decode()
        assert response.status_code == 404
        assert "This link no longer works" in html and "Ann" not in html and "<nav" not in html


@pytest.fixture
def card_text(monkeypatch, settings):
    """Every piece of text the card draws, in order (the PNG itself cannot be read back)."""
    local = "django.core.cache.backends.locmem.LocMemCache"
    settings.CACHES = {"default": {"BACKEND": local, "LOCATION": secrets.token_hex(4)}}  # drawn
    written: list[str] = []
    draw_text = share_card.ImageDraw.ImageDraw.text

    def text(self, xy, text, *args, **kwargs):
        written.append(text)
        return draw_text(self, xy, text, *args, **kwargs)

    monkeypatch.setattr(share_card.ImageDraw.ImageDraw, "text", text)
    return written


def test_a_long_conversation_says_on_its_card_how_many_lines_are_left_out(
    client, member, card_text
):
    """A conversation of eight lines showed four on the card, cut off without a word, under
    'not a real message'; the shared page shows every line."""
    ann, bo = make_speaker("Ann"), make_speaker("Bo")
    lines = [(ann if i % 2 else bo, f"line number {i}") for i in range(8)]
    link = ShareLink.objects.create(snippet=make_snippet(*lines), created_by=member)

    html = client.get(f"/share/{link.token}/").content.decode()
    client.get(f"/share/{link.token}/card.png")

    assert all(f"line number {i}" in html for i in range(8))
    assert "An AI-generated fake conversation. Not a real one." in html
    assert "fake message" not in html and "real message" not in html
    shown = [text for text in card_text if text.startswith("line number")]
    assert 0 < len(shown) < 8
    assert f"+{8 - len(shown)} more lines" in card_text
    assert "joe · AI-generated parody, not a real conversation" in card_text


def test_a_message_card_says_message_and_nothing_left_out(client, link, member, card_text):
    message = ShareLink.objects.create(
        snippet=make_snippet((make_speaker("Cy"), "just me")), created_by=member
    )
    client.get(f"/share/{message.token}/card.png")
    assert "joe · AI-generated parody, not a real message" in card_text
    assert not [text for text in card_text if "more line" in text]

    card_text.clear()
    client.get(f"/share/{link.token}/card.png")  # two lines: both fit
    assert "who took my charger" in card_text and "the charger took itself" in card_text
    assert not [text for text in card_text if "more line" in text]


@pytest.mark.parametrize("text", ["word " * 2000, "ha" * 2000], ids=["words", "one long word"])
def test_a_message_cut_on_its_card_says_it_goes_on_on_the_page(client, member, card_text, text):
    """A single long message was cut with "…" inside its bubble, and nothing said so."""
    cut = ShareLink.objects.create(
        snippet=make_snippet((make_speaker("Cy"), text)), created_by=member
    )

    response = client.get(f"/share/{cut.token}/card.png")

    image = Image.open(io.BytesIO(response.content))
    assert image.size == (1200, 630)
    # Its last line ends with " …" inside the bubble, and the bubble inside the card's margin.
    right_margin = image.crop((1200 - 40, 0, 1200, 630)).convert("RGB")
    assert right_margin.getcolors() == [(40 * 630, (0xF6, 0xF4, 0xEF))]  # the background alone
    assert "… (continued on the page)" in card_text
    assert not [text for text in card_text if "more line" in text]

    card_text.clear()
    short = ShareLink.objects.create(
        snippet=make_snippet((make_speaker("Di"), "just me")), created_by=member
    )
    client.get(f"/share/{short.token}/card.png")
    assert "just me" in card_text and "… (continued on the page)" not in card_text


def test_a_card_drawn_before_its_wording_changed_is_drawn_again(client, link, monkeypatch):
    """The card's ETag and cache key carry its version: a browser's copy, or the cache's, of a
    card drawn with the old wording is not kept."""
    before = client.get(f"/share/{link.token}/card.png")["ETag"]
    again = client.get(f"/share/{link.token}/card.png", headers={"If-None-Match": before})
    assert again.status_code == 304

    monkeypatch.setattr(share_card, "VERSION", share_card.VERSION + 1)
    after = client.get(f"/share/{link.token}/card.png", headers={"If-None-Match": before})

    assert after.status_code == 200 and after["ETag"] != before
