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


def test_staff_see_the_veto_but_cannot_publish_it_again(member_client, staff_client, alice_snippet):
    member_client.post(f"/s/{alice_snippet.pk}/veto/")
    triage = staff_client.get("/triage/").content.decode()
    assert 'data-testid="vetoed"' in triage
    response = staff_client.post(
        f"/s/{alice_snippet.pk}/curate/", {"action": "unhide"}, follow=True
    )
    assert "vetoed it, so it cannot be published again" in response.content.decode()
    alice_snippet.refresh_from_db()
    assert alice_snippet.status == SnippetStatus.HIDDEN
    assert not Snippet.objects.visible().filter(pk=alice_snippet.pk).exists()


def test_veto_hides_the_snippet_from_the_gallery_and_share_page(
    member_client, member, alice_snippet
):
    from django.test import Client

    link = ShareLink.objects.create(snippet=alice_snippet, created_by=member)
    assert Client().get(f"/share/{link.token}/").status_code == 200
    member_client.post(f"/s/{alice_snippet.pk}/veto/")
    assert Client().get(f"/share/{link.token}/").status_code == 404
    assert f"/s/{alice_snippet.pk}/" not in member_client.get("/gallery/").content.decode()


def test_the_snippet_page_offers_the_veto_to_the_friend_whose_voice_it_is(
    member_client, other_member, alice_snippet
):
    from django.test import Client

    page = member_client.get(alice_snippet.get_absolute_url()).content.decode()
    assert 'data-testid="veto"' in page and f'action="/s/{alice_snippet.pk}/veto/"' in page

    other = Client()
    other.force_login(other_member)  # not their voice: no veto offered
    assert 'data-testid="veto"' not in other.get(alice_snippet.get_absolute_url()).content.decode()

    response = member_client.post(f"/s/{alice_snippet.pk}/veto/", follow=True)
    assert "Vetoed: nobody will see this fake again" in response.content.decode()


def test_staff_see_why_members_cannot_see_it_and_no_button_that_cannot_apply(
    member_client, staff_client, member, alice_snippet
):
    page = staff_client.get(f"/s/{alice_snippet.pk}/").content.decode()
    assert 'data-testid="hidden-because"' not in page  # visible: nothing to explain

    Speaker.objects.filter(slug="alice").update(opted_out=True)
    page = staff_client.get(f"/s/{alice_snippet.pk}/").content.decode()
    assert "Members cannot see this snippet: Alice opted out." in page

    Speaker.objects.filter(slug="alice").update(opted_out=False)
    member_client.post(f"/s/{alice_snippet.pk}/veto/")
    page = staff_client.get(f"/s/{alice_snippet.pk}/").content.decode()
    assert f"Members cannot see this snippet: vetoed by {member.username}." in page
    assert 'value="unhide"' not in page and 'value="publish"' not in page


def test_the_friend_whose_voice_it_is_sees_and_revokes_others_share_links(
    client, member, other_member, alice_snippet
):
    link = ShareLink.objects.create(snippet=alice_snippet, created_by=other_member)
    client.force_login(member)  # Alice's member; the link is someone else's

    page = client.get(f"/s/{alice_snippet.pk}/").content.decode()
    assert link.get_absolute_url() in page and f"made by {other_member.username}" in page

    client.post(f"/share-links/{link.pk}/revoke/")

    link.refresh_from_db()
    assert link.revoked_at is not None
    alice_snippet.refresh_from_db()
    assert alice_snippet.vetoed_by is None  # the snippet itself stays in the gallery


def test_a_member_cannot_revoke_someone_elses_link_to_another_voice(
    client, member, other_member, alice_snippet
):
    link = ShareLink.objects.create(snippet=alice_snippet, created_by=member)
    client.force_login(other_member)

    assert client.post(f"/share-links/{link.pk}/revoke/").status_code == 404
    link.refresh_from_db()
    assert link.revoked_at is None
