"""Friends control their own voice: claim, opt out and back in, delete messages, staff links."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from accounts import consent
from accounts.models import SpeakerClaim
from ingest.models import Conversation, Identity, Message, Speaker
from joe_site.jobs import JobStatus
from tests.test_trainer_runs import reasons
from trainer.corpus import chat_format, corpus_messages
from trainer.models import TrainingRun

pytestmark = pytest.mark.django_db
T0 = datetime(2024, 5, 1, 12, tzinfo=UTC)


def make_corpus():
    conv = Conversation.objects.create(source_kind="slack", external_id="C1", title="general")
    speakers = {}
    for i, name in enumerate(["Alice", "Bob"]):
        speaker = Speaker.objects.create(display_name=name, slug=name.lower())
        identity = Identity.objects.create(
            source_kind="slack", external_id=f"U{i}", display_name=name, speaker=speaker
        )
        for j in range(3):
            Message.objects.create(
                conversation=conv, identity=identity, source_kind="slack",
                external_id=f"{i}-{j}", sent_at=T0 + timedelta(minutes=j), text=f"{name} {j}",
            )  # fmt: skip
        speakers[name] = speaker
    bot = Identity.objects.create(
        source_kind="slack", external_id="B1", display_name="bot", is_bot=True,
        speaker=speakers["Bob"],
    )  # fmt: skip
    Message.objects.create(
        conversation=conv, identity=bot, source_kind="slack", external_id="b", sent_at=T0,
        text="beep",
    )  # fmt: skip
    return speakers


def test_member_claims_speaker_and_staff_approves(member_client, member, staff_client):
    alice = make_corpus()["Alice"]
    member_client.post("/accounts/me/claim/", {"speaker": alice.pk})
    claim = SpeakerClaim.objects.get()
    assert claim.status == "pending"
    staff_client.post(f"/accounts/claims/{claim.pk}/decide/", {"decision": "approve"})
    alice.refresh_from_db()
    assert alice.member == member
    page = member_client.get("/accounts/me/").content.decode()
    assert "Alice" in page and "<strong>3</strong> of your messages" in page


def test_members_are_offered_only_speakers_someone_trains(member_client, member):
    speakers = make_corpus()
    contact = Speaker.objects.create(display_name="Carol (contacts)", slug="carol")
    Identity.objects.create(
        source_kind="signal", external_id="+1555", display_name="Carol", speaker=contact,
        excluded=True,
    )  # fmt: skip
    Speaker.objects.create(display_name="Nobody", slug="nobody")  # no identity at all

    page = member_client.get("/accounts/me/").content.decode()

    assert "Alice" in page and "Bob" in page
    assert "Carol (contacts)" not in page and "Nobody" not in page
    member_client.post("/accounts/me/claim/", {"speaker": contact.pk})
    assert not SpeakerClaim.objects.exists()  # not a choice, even posted by hand
    assert speakers["Alice"].member is None


def test_staff_links_member_directly(staff_client, member):
    bob = make_corpus()["Bob"]
    staff_client.post("/accounts/claims/", {"member": member.pk, "speaker": bob.pk})
    bob.refresh_from_db()
    assert bob.member == member


def test_staff_cannot_silently_take_a_speaker_from_its_member(
    staff_client, staff, member, other_member
):
    bob = make_corpus()["Bob"]
    staff_client.post("/accounts/claims/", {"member": member.pk, "speaker": bob.pk})

    page = staff_client.post(
        "/accounts/claims/", {"member": other_member.pk, "speaker": bob.pk}
    ).content.decode()

    assert "That speaker is linked to a member already: unlink it first." in page
    bob.refresh_from_db()
    assert bob.member == member
    speaker_choices = page.split('name="speaker"')[1].split("</select>")[0]
    assert ">Bob<" not in speaker_choices and ">Alice<" in speaker_choices  # only free ones

    response = staff_client.post(f"/accounts/speakers/{bob.pk}/unlink/", follow=True)
    assert "Unlinked Bob from alice" in response.content.decode()
    bob.refresh_from_db()
    assert bob.member is None
    staff_client.post("/accounts/claims/", {"member": other_member.pk, "speaker": bob.pk})
    bob.refresh_from_db()
    assert bob.member == other_member


def test_approving_a_claim_never_moves_a_linked_speaker(
    member_client, member, other_member, staff_client
):
    bob = make_corpus()["Bob"]
    member_client.post("/accounts/me/claim/", {"speaker": bob.pk})  # alice asks for Bob
    waiting = SpeakerClaim.objects.get()
    staff_client.post("/accounts/claims/", {"member": other_member.pk, "speaker": bob.pk})

    bob.refresh_from_db()
    waiting.refresh_from_db()
    assert bob.member == other_member  # the direct link turned the other claim down
    assert waiting.status == SpeakerClaim.Status.REJECTED

    waiting.status = SpeakerClaim.Status.PENDING  # say a stale page approves it anyway
    waiting.save()
    response = staff_client.post(
        f"/accounts/claims/{waiting.pk}/decide/", {"decision": "approve"}, follow=True
    )
    assert "Bob is linked already: unlink it first." in response.content.decode()
    bob.refresh_from_db()
    waiting.refresh_from_db()
    assert bob.member == other_member and waiting.status == SpeakerClaim.Status.PENDING


def test_a_new_holder_may_undo_an_earlier_holders_opt_out_only_if_staff_say_so(
    member_client, member, other_member, staff_client
):
    """Alice held Bob and opted out; staff unlinked her. Giving Bob to someone else would let
    them opt back in: staff see that, and approve it only explicitly."""
    from django.test import Client

    bob = make_corpus()["Bob"]
    member_client.post("/accounts/me/claim/", {"speaker": bob.pk})
    staff_client.post(
        f"/accounts/claims/{SpeakerClaim.objects.get().pk}/decide/", {"decision": "approve"}
    )
    member_client.post(f"/accounts/me/speakers/{bob.pk}/opt-out/", {"opted_out": "1"})
    staff_client.post(f"/accounts/speakers/{bob.pk}/unlink/")
    mallory = Client()
    mallory.force_login(other_member)
    mallory.post("/accounts/me/claim/", {"speaker": bob.pk})
    claim = SpeakerClaim.objects.get(member=other_member)

    page = staff_client.get("/accounts/claims/").content.decode()
    assert 'data-testid="opt-out-at-stake"' in page and "held by alice" in page
    response = staff_client.post(
        f"/accounts/claims/{claim.pk}/decide/", {"decision": "approve"}, follow=True
    )
    assert "Not approved: Bob is opted out" in response.content.decode()
    bob.refresh_from_db()
    claim.refresh_from_db()
    assert bob.member is None and claim.status == SpeakerClaim.Status.PENDING

    staff_client.post(
        f"/accounts/claims/{claim.pk}/decide/",
        {"decision": "approve", "opt_out_confirmed": "1"},
    )
    bob.refresh_from_db()
    assert bob.member == other_member and bob.opted_out  # still out until they opt back in


def test_a_direct_link_of_someone_elses_opted_out_speaker_asks_too(
    member, other_member, staff_client
):
    alice = make_corpus()["Alice"]
    staff_client.post("/accounts/claims/", {"member": member.pk, "speaker": alice.pk})
    Speaker.objects.filter(pk=alice.pk).update(opted_out=True)
    staff_client.post(f"/accounts/speakers/{alice.pk}/unlink/")  # no claim: history all the same

    page = staff_client.post(
        "/accounts/claims/", {"member": other_member.pk, "speaker": alice.pk}
    ).content.decode()
    assert "held by alice before staff unlinked them" in page
    assert Speaker.objects.get(pk=alice.pk).member is None

    staff_client.post(
        "/accounts/claims/",
        {"member": other_member.pk, "speaker": alice.pk, "opt_out_confirmed": "on"},
    )
    assert Speaker.objects.get(pk=alice.pk).member == other_member


def test_an_unlink_shows_on_the_members_page_and_says_who(
    member_client, member, staff_client, staff
):
    bob = make_corpus()["Bob"]
    member_client.post("/accounts/me/claim/", {"speaker": bob.pk})
    claim = SpeakerClaim.objects.get()
    staff_client.post(f"/accounts/claims/{claim.pk}/decide/", {"decision": "approve"})
    assert "Bob: Approved<" in member_client.get("/accounts/me/").content.decode()

    staff_client.post(f"/accounts/speakers/{bob.pk}/unlink/")

    claim.refresh_from_db()
    assert (claim.status, claim.decided_by) == (SpeakerClaim.Status.UNLINKED, staff)
    page = member_client.get("/accounts/me/").content.decode()
    assert "Bob: Approved, then unlinked by staff<" in page
    response = staff_client.post(f"/accounts/speakers/{bob.pk}/unlink/")
    assert response.status_code == 404  # nothing left to unlink


def test_an_unlink_takes_back_the_game_opt_in_its_member_gave(
    member_client, member, staff_client, staff
):
    """Alice's speaker was linked to this member by mistake, who let her real messages into
    Real or fake?: that was never theirs to give, and after the unlink the game shows none."""
    alice = make_corpus()["Alice"]
    consent.link_speaker(speaker=alice, member=member, staff_user=staff)
    member_client.post(f"/accounts/me/speakers/{alice.pk}/game/", {"game_opt_in": "1"})
    assert Speaker.objects.get(pk=alice.pk).game_opt_in

    response = staff_client.post(f"/accounts/speakers/{alice.pk}/unlink/", follow=True)

    alice.refresh_from_db()
    assert alice.member is None and not alice.game_opt_in
    assert "out of Real or fake?" in response.content.decode()


def test_members_cannot_unlink(member_client, member):
    bob = make_corpus()["Bob"]
    Speaker.objects.filter(pk=bob.pk).update(member=member)
    assert member_client.post(f"/accounts/speakers/{bob.pk}/unlink/").status_code == 403
    bob.refresh_from_db()
    assert bob.member == member


def test_training_corpus_leaves_out_opted_out_speakers_and_bots(member_client, member):
    speakers = make_corpus()
    assert {m.speaker_slug for m in corpus_messages()} == {"alice", "bob"}
    assert "beep" not in {m.text for m in corpus_messages()}
    alice = speakers["Alice"]
    Speaker.objects.filter(pk=alice.pk).update(member=member)
    both = [alice.pk, speakers["Bob"].pk]
    run = TrainingRun.objects.create(name="r1", speaker_ids=both, status=JobStatus.SUCCEEDED)
    cancelled = TrainingRun.objects.create(
        name="r2", speaker_ids=both, status=JobStatus.CANCELLED
    )  # can never be a model in use: nothing to retrain
    resuming = TrainingRun.objects.create(
        name="r3", speaker_ids=both, status=JobStatus.QUEUED
    )  # re-queued after its worker died: its checkpoint learned from Alice
    member_client.post(f"/accounts/me/speakers/{alice.pk}/opt-out/", {"opted_out": "1"})
    assert {m.speaker_slug for m in corpus_messages()} == {"bob"}
    assert set(chat_format().speakers) == {"bob"}
    opted_out = "Alice opted out after this run was trained on their messages."
    assert reasons(run) == [opted_out] and reasons(cancelled) == []
    assert reasons(resuming) == [opted_out]
    member_client.post(f"/accounts/me/speakers/{alice.pk}/opt-out/", {"opted_out": "0"})
    assert {m.speaker_slug for m in corpus_messages()} == {"alice", "bob"}


def test_member_cannot_touch_someone_elses_speaker(member_client):
    bob = make_corpus()["Bob"]
    response = member_client.post(f"/accounts/me/speakers/{bob.pk}/opt-out/", {"opted_out": "1"})
    assert response.status_code == 404
    bob.refresh_from_db()
    assert not bob.opted_out


def test_delete_my_messages_leaves_nothing(member_client, member):
    speakers = make_corpus()
    alice = speakers["Alice"]
    Speaker.objects.filter(pk=alice.pk).update(member=member)
    page = member_client.get(f"/accounts/me/speakers/{alice.pk}/delete/").content.decode()
    assert "all <strong>3</strong> messages" in page
    # a stale confirmation (the count changed meanwhile) deletes nothing
    member_client.post(f"/accounts/me/speakers/{alice.pk}/delete/", {"confirm_count": "2"})
    assert Message.objects.filter(identity__speaker=alice).count() == 3
    member_client.post(f"/accounts/me/speakers/{alice.pk}/delete/", {"confirm_count": "3"})
    assert not Message.objects.filter(identity__speaker=alice).exists()
    assert not Message.objects.filter(text__startswith="Alice").exists()
    assert Message.objects.filter(identity__speaker=speakers["Bob"]).count() == 4
    assert all(i.excluded for i in Identity.objects.filter(speaker=alice))


def test_game_opt_in_is_off_by_default_and_explicit(member_client, member):
    alice = make_corpus()["Alice"]
    assert not alice.game_opt_in
    Speaker.objects.filter(pk=alice.pk).update(member=member)
    member_client.post(f"/accounts/me/speakers/{alice.pk}/game/", {"game_opt_in": "1"})
    alice.refresh_from_db()
    assert alice.game_opt_in


def test_big_counts_read_with_thousands_separators(member_client, member):
    """A friend with years of messages read "1234 of your messages" and "Delete 1234 messages"."""
    alice = make_corpus()["Alice"]
    Speaker.objects.filter(pk=alice.pk).update(member=member)
    identity = alice.identities.get()
    Message.objects.bulk_create(
        Message(
            conversation=Conversation.objects.get(),
            identity=identity,
            source_kind="slack",
            external_id=f"many-{i}",
            sent_at=T0 + timedelta(hours=1, seconds=i),
            text="hi",
        )  # fmt: skip
        for i in range(1231)
    )
    url = f"/accounts/me/speakers/{alice.pk}/delete/"

    me = member_client.get("/accounts/me/").content.decode()
    page = member_client.get(url).content.decode()
    done = member_client.post(url, {"confirm_count": "1234"}, follow=True).content.decode()

    assert "<strong>1,234</strong> of your messages are in the corpus" in me
    assert "all <strong>1,234</strong> messages" in page and ">Delete 1,234 messages<" in page
    assert 'name="confirm_count" value="1234"' in page
    assert "Deleted 1,234 of your messages from the corpus." in done


def test_a_friend_who_opted_out_is_told_their_messages_are_not_in_the_game(member_client, member):
    """Alice had allowed her real messages in Real or fake?, then opted out: her page still said
    they could appear in the game, and nothing said plainly they were out of it and of training."""
    alice = make_corpus()["Alice"]
    Speaker.objects.filter(pk=alice.pk).update(member=member, game_opt_in=True)
    member_client.post(f"/accounts/me/speakers/{alice.pk}/opt-out/", {"opted_out": "1"})

    page = member_client.get("/accounts/me/").content.decode()

    assert "Your messages are not in the game and not in training:" in page
    assert "While you are opted out, none of your real messages appears in" in page
    assert "Your real messages from group chats can appear" not in page
