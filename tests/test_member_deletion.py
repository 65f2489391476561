"""Deleting a member's account: their votes leave the counts, their share links stop working,
the invites they made stay usable."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts.models import Invite
from generations import votes
from generations.models import ShareLink, Snippet
from tests.builders.snippets import make_snippet

pytestmark = pytest.mark.django_db


def test_a_deleted_members_votes_leave_the_counts(member, other_member, ann):
    snippet = make_snippet((ann, "funny"))
    votes.set_vote(member=member, snippet_id=snippet.pk, value=1)
    votes.set_vote(member=other_member, snippet_id=snippet.pk, value=1)
    before = Snippet.objects.get(pk=snippet.pk)
    assert (before.upvotes, before.score, before.views) == (2, 2, 2)

    member.delete()

    after = Snippet.objects.get(pk=snippet.pk)
    assert (after.upvotes, after.downvotes, after.score, after.views) == (1, 0, 1, 1)
    assert after.best < before.best  # one vote in one view ranks below two in two


def test_a_deleted_members_share_links_stop_working(member, ann):
    snippet = make_snippet((ann, "share me"))
    link = ShareLink.objects.create(snippet=snippet, created_by=member)
    assert Client().get(link.get_absolute_url()).status_code == 200

    member.delete()

    link.refresh_from_db()
    assert link.revoked_at is not None and link.created_by is None
    assert Client().get(link.get_absolute_url()).status_code == 404


def test_invites_outlive_the_staff_member_who_made_them(staff):
    invite = Invite.objects.create(created_by=staff, note="Carol")

    staff.delete()

    invite.refresh_from_db()
    assert invite.is_usable and invite.created_by is None
    page = Client().get(f"/accounts/signup/{invite.token}/").content.decode()
    assert "You are invited" in page


def test_a_member_deletes_their_own_account(member_client, member, ann):
    from ingest.models import Speaker

    Speaker.objects.filter(pk=ann.pk).update(member=member, opted_out=True)
    page = member_client.get("/accounts/me/delete-account/").content.decode()
    assert "Ann stays in joe's corpus" in page and "stays opted out" in page

    wrong = member_client.post("/accounts/me/delete-account/", {"password": "nope"})
    assert "That is not your password." in wrong.content.decode()
    assert type(member).objects.filter(pk=member.pk).exists()

    response = member_client.post(
        "/accounts/me/delete-account/", {"password": "correct horse 1"}, follow=True
    )

    assert "The account alice is deleted." in response.content.decode()
    assert not type(member).objects.filter(pk=member.pk).exists()
    ann.refresh_from_db()
    assert ann.member is None and ann.opted_out
    # Nobody takes her voice back in without staff saying so explicitly.
    from accounts import consent

    assert "who opted it out is not known" in consent.opt_out_at_stake(ann, member)


def test_the_only_administrator_cannot_delete_their_account(staff, staff_client):
    page = staff_client.get("/accounts/me/delete-account/").content.decode()
    assert 'data-testid="last-admin"' in page

    staff_client.post("/accounts/me/delete-account/", {"password": "correct horse 3"})

    assert type(staff).objects.filter(pk=staff.pk).exists()


def test_a_deleted_members_opt_out_still_needs_staffs_tick(member, other_member, staff, ann):
    """Bob held Ann's speaker by mistake, Alice (the real Ann) opted out, then deleted her
    account: her claims went with it, but not the fact that the opt-out was not Bob's."""
    from accounts import consent
    from ingest.models import Speaker

    consent.link_speaker(speaker=ann, member=other_member, staff_user=staff)
    consent.unlink_speaker(speaker=ann, staff_user=staff)
    consent.link_speaker(speaker=ann, member=member, staff_user=staff)
    ann.refresh_from_db()
    consent.set_opted_out(speaker=ann, opted_out=True)
    assert consent.opt_out_at_stake(Speaker.objects.get(pk=ann.pk), member) == ""  # her own
    member.delete()

    ann.refresh_from_db()
    assert ann.opted_out and ann.member is None and ann.opted_out_by is None
    assert consent.opt_out_at_stake(ann, other_member) != ""
    with pytest.raises(consent.OptOutOfSomeoneElse):
        consent.link_speaker(speaker=ann, member=other_member, staff_user=staff)
