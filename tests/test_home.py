"""The home page: the counts for everyone, and for staff the way in to each step."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from accounts.models import SpeakerClaim
from ingest.models import Conversation, Export, Identity, Message, Speaker

pytestmark = pytest.mark.django_db


def test_staff_getting_started_steps_and_recent_jobs_are_links(staff_client, staff):
    export = Export.objects.create(original_name="slack.zip", kind="slack", uploaded_by=staff)

    html = staff_client.get("/").content.decode()

    for url in ("/ingest/", "/ingest/speakers/", "/trainer/", "/batches/", "/accounts/invites/"):
        assert f'href="{url}"' in html, url
    assert f'<a href="{export.get_absolute_url()}">slack.zip</a>' in html


def test_members_see_no_staff_steps(member_client):
    html = member_client.get("/").content.decode()
    assert "Getting started" not in html and 'href="/ingest/"' not in html


def test_staff_are_told_a_friend_asks_to_be_linked(staff_client, member):
    speaker = Speaker.objects.create(display_name="Bob", slug="bob")
    SpeakerClaim.objects.create(member=member, speaker=speaker)

    html = staff_client.get("/").content.decode()

    assert '<a href="/accounts/claims/">1 member asks to be linked to a speaker</a>' in html


def test_a_friend_who_just_joined_is_asked_which_speaker_they_are(member_client, member):
    assert "Link your account to your voice" in member_client.get("/").content.decode()

    speaker = Speaker.objects.create(display_name="Bob", slug="bob")
    SpeakerClaim.objects.create(member=member, speaker=speaker)  # asked: staff decide now
    assert "Which speaker are you?" not in member_client.get("/").content.decode()


def test_counts_read_with_thousands_separators(member_client):
    """The demo's corpus showed as "32829 messages", hard to take in at a glance."""
    conv = Conversation.objects.create(source_kind="slack", external_id="C", title="general")
    ident = Identity.objects.create(source_kind="slack", external_id="U1", display_name="Ann")
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    Message.objects.bulk_create(
        Message(
            conversation=conv,
            identity=ident,
            source_kind="slack",
            external_id=str(i),
            sent_at=t0 + timedelta(seconds=i),
            text="hi",
        )  # fmt: skip
        for i in range(12345)
    )

    html = member_client.get("/").content.decode()

    assert "<strong>12,345</strong><span>messages</span>" in html
