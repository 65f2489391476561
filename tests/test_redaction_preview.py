"""Staff preview redaction on real corpus messages before training."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ingest.models import Conversation, Identity, Message, Speaker

pytestmark = pytest.mark.django_db
ON = {"redact": "on", "redact_emails": "on", "redact_phones": "on", "redact_urls": "on"}


@pytest.fixture
def corpus():
    conv = Conversation.objects.create(source_kind="slack", external_id="C", title="general")
    alice = Speaker.objects.create(display_name="Alice", slug="alice")
    ident = Identity.objects.create(
        source_kind="slack", external_id="U1", display_name="Alice", speaker=alice
    )
    texts = [
        "mail me at alice@example.org",
        "call +44 20 7946 0958 tonight",
        "see https://example.org/party",
        "Gerald is late again",
        "<script>alert(1)</script> lol 12345678",
        "nothing to hide here",
    ]
    for i, text in enumerate(texts):
        Message.objects.create(
            conversation=conv, identity=ident, source_kind="slack", external_id=str(i),
            sent_at=datetime(2024, 1, 1, 12, i, tzinfo=UTC), text=text,
        )  # fmt: skip


def test_preview_shows_real_messages_before_and_after(staff_client, corpus):
    page = staff_client.post("/trainer/redaction-preview/", ON).content.decode()
    assert "<td>mail me at alice@example.org</td><td>mail me at &lt;email&gt;</td>" in page
    assert "<td>call &lt;phone&gt; tonight</td>" in page
    assert "<td>see &lt;url&gt;</td>" in page
    assert "nothing to hide here" not in page  # unchanged messages are not examples
    assert "Gerald is late again" not in page


def test_custom_words_are_masked_in_the_preview(staff_client, corpus):
    page = staff_client.post(
        "/trainer/redaction-preview/", {**ON, "redact_words": "Gerald"}
    ).content.decode()
    assert "Gerald is late again" in page
    assert page.count("Gerald") == 1  # only in the "before" column
    assert "<td>&lt;redacted&gt; is late again</td>" in page


def test_preview_escapes_messages(staff_client, corpus):
    page = staff_client.post("/trainer/redaction-preview/", ON).content.decode()
    assert "<script>alert(1)</script>" not in page


def test_preview_says_when_redaction_is_off(staff_client, corpus):
    page = staff_client.post("/trainer/redaction-preview/", {}).content.decode()
    assert "Redaction is off" in page


def test_members_cannot_preview(member_client, corpus):
    assert member_client.post("/trainer/redaction-preview/", ON).status_code == 403


def test_a_phone_number_written_in_pairs_shows_as_training_will_redact_it(staff_client):
    """A number like 06 12 34 56 78 has no three digits in a row: the preview's database filter
    passed it over and said no message could hold a phone number, while training replaced it."""
    conv = Conversation.objects.create(source_kind="slack", external_id="C", title="general")
    bo = Speaker.objects.create(display_name="Bo", slug="bo")
    ident = Identity.objects.create(
        source_kind="slack", external_id="U2", display_name="Bo", speaker=bo
    )
    Message.objects.create(
        conversation=conv, identity=ident, source_kind="slack", external_id="p",
        sent_at=datetime(2024, 1, 1, tzinfo=UTC), text="mon portable: 06 12 34 56 78",
    )  # fmt: skip

    page = staff_client.post("/trainer/redaction-preview/", ON).content.decode()

    assert "<td>mon portable: &lt;phone&gt;</td>" in page


def test_a_year_span_or_an_amount_is_not_shown_as_a_phone_number(staff_client, corpus):
    """The preview showed "we lived there 1998-2004" and "3.14159265" turned into <phone>,
    as training and the game's real rounds had them."""
    alice = Identity.objects.get(external_id="U1")
    for i, text in enumerate(["we lived there 1998-2004", "pi is 3.14159265", "1000000 views"]):
        Message.objects.create(
            conversation=alice.messages.first().conversation, identity=alice,
            source_kind="slack", external_id=f"n{i}",
            sent_at=datetime(2024, 1, 2, i, tzinfo=UTC), text=text,
        )  # fmt: skip

    page = staff_client.post("/trainer/redaction-preview/", ON).content.decode()

    assert "<td>call &lt;phone&gt; tonight</td>" in page
    assert "1998-2004" not in page
    assert "3.14159265" not in page
    assert "1000000" not in page
