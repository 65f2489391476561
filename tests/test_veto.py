"""A friend vetoes a fake in their own voice: hidden for everyone, share links revoked."""

from __future__ import annotations

import pytest

from generations.models import ShareLink, Snippet, SnippetStatus
from ingest.models import Speaker

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice_snippet(member):
    alice = Speaker.objects.create(display_name="Alice", slug="alice", member=member)
    snippet = Snippet.objects.create(
        speaker=alice, lines=[{"speaker": "alice", "name": "Alice", "text": "hi"}], text="hi"
    )
    snippet.speakers.add(alice)
    return snippet


def test_friend_vetoes_a_fake_in_their_voice(member_client, member, alice_snippet):
    link = ShareLink.objects.create(snippet=alice_snippet, created_by=member)
    response = member_client.post(f"/s/{alice_snippet.pk}/veto/")
    assert response.status_code == 302
    alice_snippet.refresh_from_db()
    link.refresh_from_db()
    assert alice_snippet.vetoed_by == member and alice_snippet.status == SnippetStatus.HIDDEN
    assert link.revoked_at is not None


def test_someone_else_cannot_veto(client, other_member, alice_snippet):
    client.force_login(other_member)
    client.post(f"/s/{alice_snippet.pk}/veto/")
    alice_snippet.refresh_from_db()
    assert alice_snippet.vetoed_by is None
    assert alice_snippet.status == SnippetStatus.PUBLISHED


def test_a_conversation_can_be_vetoed_by_any_voice_in_it(client, other_member, alice_snippet):
    bob = Speaker.objects.create(display_name="Bob", slug="bob", member=other_member)
    alice_snippet.speakers.add(bob)
    client.force_login(other_member)
    client.post(f"/s/{alice_snippet.pk}/veto/")
    alice_snippet.refresh_from_db()
    assert alice_snippet.vetoed_by == other_member
