"""The Speakers page: who is who across apps, fixed by hand where the names did not match."""

from __future__ import annotations

import json
import re

import pytest
from django.urls import reverse

from accounts import consent
from accounts.models import SpeakerClaim
from generations.models import GameGuess
from ingest.models import Identity, Message, Speaker
from ingest.speakers import merge_suggestions, normalise
from ingest.views import SPEAKERS_PER_PAGE
from joe_site.jobs import JobStatus
from tests.builders.slack import User
from tests.signal_writer import FIXTURE_MESSAGES, write_backup
from tests.test_ingest_support import PASSPHRASE, import_path, slack_export, use_tmp_upload_dir
from tests.test_trainer_runs import reasons
from trainer.corpus import trainable_messages
from trainer.models import TrainingRun

pytestmark = pytest.mark.django_db
SPEAKERS = reverse("ingest:speakers")
HTMX = {"HX-Request": "true"}


@pytest.fixture(autouse=True)
def uploads(settings, tmp_path):
    return use_tmp_upload_dir(settings, tmp_path)


@pytest.fixture
def slack_and_signal(tmp_path):
    """Alice, Bob and Sam on Slack; Sam's phone on Signal, where Alice is "Alice L. (contacts)"."""
    import_path(
        slack_export(
            tmp_path / "s.zip",
            {"general": [("U1", "hi"), ("U2", "yo"), ("U3", "hey"), ("U1", "again")]},
        )
    )
    path = tmp_path / "signal.backup"
    write_backup(path, messages=FIXTURE_MESSAGES)
    import_path(path, passphrase=PASSPHRASE, owner_name="Sam")


def speaker(name: str) -> Speaker:
    return Speaker.objects.get(display_name=name)


def identity(name: str, source: str) -> Identity:
    return Identity.objects.get(display_name=name, source_kind=source)


def test_identities_are_grouped_by_speaker_with_message_counts(staff_client, slack_and_signal):
    page = staff_client.get(SPEAKERS).content.decode()

    assert page.count('data-testid="speaker"') == Speaker.objects.count()
    sam = page[page.index('data-testid="speaker-name">Sam<') :]
    sam = sam[: sam.index("</section>")]
    assert "Slack export" in sam and "Signal Android backup" in sam
    assert 'data-testid="identity-messages">2<' in page  # Alice wrote two messages on Slack


def test_speakers_page_queries_do_not_grow_with_people(
    staff_client, slack_and_signal, django_assert_max_num_queries
):
    for n in range(20):
        s = Speaker.create_named(f"Extra {n}")
        Identity.objects.create(
            source_kind="slack", external_id=f"X{n}", display_name=f"Extra {n}", speaker=s
        )

    with django_assert_max_num_queries(8):
        staff_client.get(SPEAKERS)


def test_staff_find_a_person_by_any_of_their_names(staff_client, slack_and_signal):
    page = staff_client.get(SPEAKERS, {"q": "CONTACTS"}).content.decode()  # Signal's name for her

    assert re.findall(r'data-testid="speaker-name">([^<]*)<', page) == ["Alice L. (contacts)"]
    assert "1–1 of 1 speaker matching “CONTACTS”" in page


def test_a_search_that_finds_nobody_says_so(staff_client, slack_and_signal):
    page = staff_client.get(SPEAKERS, {"q": "zed"}).content.decode()

    assert 'data-testid="speaker"' not in page
    assert "No speaker matches “zed”." in page


def test_a_phone_full_of_contacts_is_paged(staff_client, slack_and_signal):
    for n in range(30):
        s = Speaker.create_named(f"Contact {n:02d}")
        Identity.objects.create(
            source_kind="signal", external_id=f"C{n}", display_name=f"Contact {n:02d}", speaker=s
        )
    total = Speaker.objects.count()

    first = staff_client.get(SPEAKERS).content.decode()
    last = staff_client.get(SPEAKERS, {"page": 2}).content.decode()

    assert first.count('data-testid="speaker"') == SPEAKERS_PER_PAGE
    assert last.count('data-testid="speaker"') == total - SPEAKERS_PER_PAGE
    assert f"1–{SPEAKERS_PER_PAGE} of {total} speakers" in first
    assert 'href="?page=2" rel="next"' in first
    # Every speaker is still there to merge into, from any page.
    merge_into = re.search(r'id="merge-target-[^>]*>(.*?)</select>', last, re.S)
    assert len(re.findall(r'<option value="\d+"', merge_into[1])) == total - 1
    # Nothing is picked until staff pick: "Merge into" pressed at once merged into the first.
    assert '<option value="" selected disabled>Pick who…</option>' in merge_into[1]
    assert re.search(r'id="merge-target-[^>]*required', last)


def test_an_action_refreshes_the_list_staff_were_searching(staff_client, slack_and_signal):
    sam = identity("Sam", "slack")

    response = staff_client.post(
        reverse("ingest:identity_exclude", args=[sam.pk]) + "?q=sam",
        {"excluded": "on"},
        headers=HTMX,
    )

    names = re.findall(r'data-testid="speaker-name">([^<]*)<', response.content.decode())
    assert names == ["Sam"]
    assert f'action="{reverse("ingest:identity_exclude", args=[sam.pk])}?q=sam"' in (
        response.content.decode()
    )


def test_without_javascript_an_action_comes_back_to_the_search(staff_client, slack_and_signal):
    response = staff_client.post(
        reverse("ingest:identity_exclude", args=[identity("Sam", "slack").pk]) + "?q=sam",
        {"excluded": "on"},
    )

    assert response["Location"] == f"{SPEAKERS}?q=sam"


def test_same_first_name_on_two_apps_is_suggested(staff_client, slack_and_signal):
    page = staff_client.get(SPEAKERS).content.decode()

    assert "Alice and Alice L. (contacts): same first name, “alice”" in page


def test_two_sams_told_apart_are_no_longer_suggested(staff_client, slack_and_signal):
    alice, signal_alice = speaker("Alice"), speaker("Alice L. (contacts)")

    response = staff_client.post(
        reverse("ingest:speaker_not_same", args=[signal_alice.pk]),
        {"speaker": alice.pk},
        headers=HTMX,
    )

    message = json.loads(response["HX-Trigger"])["toast"]["message"]
    assert message == (
        "Alice L. (contacts) and Alice are two people: joe no longer suggests merging them."
    )
    assert "Alice and Alice L. (contacts)" not in response.content.decode()
    assert "Alice and Alice L. (contacts)" not in staff_client.get(SPEAKERS).content.decode()
    assert Speaker.objects.count() == 4  # nothing merged


def test_a_merge_keeps_who_was_told_apart(slack_and_signal):
    speaker("Alice L. (contacts)").not_same_as.add(speaker("Alice"))

    merged = speaker("Alice L. (contacts)").merge_into(speaker("Bob"))

    assert list(merged.not_same_as.all()) == [speaker("Alice")]
    assert list(speaker("Alice").not_same_as.all()) == [merged]


def test_merging_makes_one_speaker_of_two(staff_client, slack_and_signal):
    signal_alice = speaker("Alice L. (contacts)")

    response = staff_client.post(
        reverse("ingest:speaker_merge", args=[signal_alice.pk]),
        {"speaker": speaker("Alice").pk},
        follow=True,
    )

    assert "Merged Alice L. (contacts) into Alice." in response.content.decode()
    assert sorted(speaker("Alice").identities.values_list("source_kind", flat=True)) == [
        "signal",
        "slack",
    ]
    assert not Speaker.objects.filter(pk=signal_alice.pk).exists()


def test_members_game_scores_survive_a_merge(slack_and_signal, member):
    signal_alice = speaker("Alice L. (contacts)")
    message = Message.objects.filter(identity__speaker=signal_alice).first()
    GameGuess.objects.create(
        user=member, speaker=signal_alice, message=message, guessed_fake=False, correct=True
    )

    signal_alice.merge_into(speaker("Alice"))

    guess = GameGuess.objects.get()  # not deleted with the speaker merged away
    assert (guess.speaker, guess.correct) == (speaker("Alice"), True)


def test_merge_keeps_the_stricter_consent_and_the_member(slack_and_signal, member):
    alice, other = speaker("Alice"), speaker("Alice L. (contacts)")
    Speaker.objects.filter(pk=other.pk).update(opted_out=True, member=member)
    Speaker.objects.filter(pk=alice.pk).update(game_opt_in=True)
    other.refresh_from_db()

    other.merge_into(alice)

    alice.refresh_from_db()
    assert (alice.opted_out, alice.game_opt_in, alice.member) == (True, False, member)


def test_merging_an_opted_out_speaker_flags_the_runs_trained_on_the_other(
    staff_client, slack_and_signal, member
):
    alice, signal_alice = speaker("Alice"), speaker("Alice L. (contacts)")
    signal_alice.member = member
    signal_alice.save()
    consent.set_opted_out(speaker=signal_alice, opted_out=True)
    run = TrainingRun.objects.create(
        name="slack only", speaker_ids=[alice.pk], status=JobStatus.SUCCEEDED
    )

    response = staff_client.post(
        reverse("ingest:speaker_merge", args=[signal_alice.pk]),
        {"speaker": alice.pk},
        headers=HTMX,
    )

    assert speaker("Alice").opted_out
    assert reasons(run) == [
        "Alice opted out (as Alice L. (contacts), merged into them) after this run was trained "
        "on their messages."
    ]
    message = json.loads(response["HX-Trigger"])["toast"]["message"]
    assert "Alice L. (contacts) had opted out of training, so Alice is opted out now." in message


def test_a_friend_who_claimed_both_speakers_keeps_one_claim_after_a_merge(
    staff_client, slack_and_signal, member
):
    for name in ("Alice", "Alice L. (contacts)"):
        SpeakerClaim.objects.create(member=member, speaker=speaker(name))

    response = staff_client.post(
        reverse("ingest:speaker_merge", args=[speaker("Alice L. (contacts)").pk]),
        {"speaker": speaker("Alice").pk},
        headers=HTMX,
    )

    assert response.status_code == 200
    claim = SpeakerClaim.objects.get()
    assert (claim.member, claim.speaker, claim.status) == (member, speaker("Alice"), "pending")


def test_two_members_cannot_be_merged(staff_client, slack_and_signal, member, other_member):
    Speaker.objects.filter(display_name="Alice").update(member=member)
    Speaker.objects.filter(display_name="Bob").update(member=other_member)

    response = staff_client.post(
        reverse("ingest:speaker_merge", args=[speaker("Bob").pk]),
        {"speaker": speaker("Alice").pk},
        headers=HTMX,
    )

    toast = json.loads(response["HX-Trigger"])["toast"]
    assert toast["level"] == "error"
    assert "linked to different members" in toast["message"]
    assert Speaker.objects.filter(display_name="Bob").exists()


def test_merging_into_a_speaker_merged_away_meanwhile_says_so(staff_client, slack_and_signal):
    bob = speaker("Bob").pk
    speaker("Bob").merge_into(speaker("Sam"))  # in another tab, say

    response = staff_client.post(
        reverse("ingest:speaker_merge", args=[speaker("Alice").pk]),
        {"speaker": bob},
        headers=HTMX,
    )

    toast = json.loads(response["HX-Trigger"])["toast"]
    assert toast["level"] == "error"
    assert toast["message"].startswith("That speaker is no longer here: it was merged into")
    assert 'data-testid="speaker-name">Bob<' not in response.content.decode()


def test_an_identity_can_move_to_another_speaker(staff_client, slack_and_signal):
    signal_alice = identity("Alice L. (contacts)", "signal")

    staff_client.post(
        reverse("ingest:identity_assign", args=[signal_alice.pk]), {"speaker": speaker("Alice").pk}
    )

    signal_alice.refresh_from_db()
    assert signal_alice.speaker == speaker("Alice")


def test_an_identity_can_be_split_off(staff_client, slack_and_signal):
    sam_signal = identity("Sam", "signal")

    staff_client.post(reverse("ingest:identity_split", args=[sam_signal.pk]))

    sam_signal.refresh_from_db()
    assert sam_signal.speaker != identity("Sam", "slack").speaker
    assert (sam_signal.speaker.display_name, sam_signal.speaker.slug) == ("Sam", "sam-2")


def test_a_speaker_left_with_no_one_is_removed_unless_consent_keeps_it(staff_client):
    """Splitting off (or moving) a speaker's last identity left an empty card that could only
    be merged into someone."""
    lone = Speaker.create_named("Lone")
    only = Identity.objects.create(
        source_kind="slack", external_id="U7", display_name="Lone Wolf", speaker=lone
    )
    response = staff_client.post(reverse("ingest:identity_split", args=[only.pk]), follow=True)
    assert not Speaker.objects.filter(pk=lone.pk).exists()
    assert "Lone had no one else left and was removed." in response.content.decode()

    kept = Speaker.create_named("Kept")
    Speaker.objects.filter(pk=kept.pk).update(opted_out=True)
    Identity.objects.filter(pk=only.pk).update(speaker=kept)
    staff_client.post(
        reverse("ingest:identity_assign", args=[only.pk]), {"speaker": speaker("Lone Wolf").pk}
    )
    assert Speaker.objects.filter(pk=kept.pk).exists()  # an opt-out imports still need


def test_a_speaker_can_be_renamed_and_keeps_its_slug(staff_client, slack_and_signal):
    bob = speaker("Bob")

    response = staff_client.post(
        reverse("ingest:speaker_rename", args=[bob.pk]), {"display_name": "Robert"}, headers=HTMX
    )

    bob.refresh_from_db()
    assert (bob.display_name, bob.slug) == ("Robert", "bob")
    assert response.content.decode().lstrip().startswith('<div id="speaker-list">')
    assert json.loads(response["HX-Trigger"])["toast"]["message"] == "Renamed Bob to Robert."


def test_a_blank_name_is_refused(staff_client, slack_and_signal):
    response = staff_client.post(
        reverse("ingest:speaker_rename", args=[speaker("Bob").pk]),
        {"display_name": "  "},
        follow=True,
    )

    assert "This field is required." in response.content.decode()
    assert speaker("Bob")


def test_a_name_of_direction_controls_alone_is_refused(staff_client, slack_and_signal):
    response = staff_client.post(
        reverse("ingest:speaker_rename", args=[speaker("Bob").pk]),
        {"display_name": "\u202e\u2066"},  # pasted from a right-to-left chat, say
        headers=HTMX,
    )

    assert json.loads(response["HX-Trigger"])["toast"] == {
        "level": "error",
        "message": "A speaker needs a name.",
    }
    assert speaker("Bob")


def test_an_identity_can_be_excluded_and_included_again(staff_client, slack_and_signal):
    bob = identity("Bob", "slack")
    url = reverse("ingest:identity_exclude", args=[bob.pk])

    staff_client.post(url, {"excluded": "on"})
    bob.refresh_from_db()
    assert bob.excluded
    staff_client.post(url, {})
    bob.refresh_from_db()
    assert not bob.excluded


def test_including_an_opted_out_friend_says_they_stay_out_of_training(
    staff_client, slack_and_signal, member
):
    alice = speaker("Alice")
    alice.member = member
    alice.save()
    consent.set_opted_out(speaker=alice, opted_out=True)
    on_slack = identity("Alice", "slack")
    on_slack.set_excluded(True)

    response = staff_client.post(
        reverse("ingest:identity_exclude", args=[on_slack.pk]), {}, headers=HTMX
    )

    message = json.loads(response["HX-Trigger"])["toast"]["message"]
    assert message == (
        "Alice (Slack export) is no longer excluded, but stays out of training: "
        "Alice opted out of training."
    )
    assert not trainable_messages().filter(identity=on_slack).exists()


def test_each_identitys_buttons_say_whose_they_are(staff_client, slack_and_signal):
    """A screen reader lists a page's buttons: "Exclude, Exclude, Exclude" said nothing of whom."""
    page = staff_client.get(SPEAKERS).content.decode()

    bob = Identity.objects.get(source_kind="slack", external_id="U2")
    for action in ("move", "split", "exclude"):
        button = re.search(rf'<button[^>]*id="{action}-{bob.pk}"[^>]*>', page).group(0)
        assert f'aria-describedby="identity-{bob.pk}"' in button
    assert re.search(rf'<td id="identity-{bob.pk}">Bob', page)
    assert "<th></th>" not in page


def test_members_cannot_change_speakers(member_client, slack_and_signal):
    response = member_client.post(
        reverse("ingest:speaker_rename", args=[speaker("Bob").pk]), {"display_name": "X"}
    )

    assert response.status_code == 403
    assert speaker("Bob")


def test_names_are_compared_without_case_accents_or_punctuation():
    assert normalise(" Zoë-Ann ") == "zoe ann"


def test_two_people_on_the_same_app_are_not_suggested(slack_and_signal):
    Speaker.create_named("Alice Cooper")
    Identity.objects.create(
        source_kind="slack",
        external_id="U9",
        display_name="Alice Cooper",
        speaker=speaker("Alice Cooper"),
    )
    speakers = list(Speaker.objects.prefetch_related("identities"))

    pairs = {(s.speaker.display_name, s.other.display_name) for s in merge_suggestions(speakers)}

    assert ("Alice", "Alice Cooper") not in pairs
    assert ("Alice", "Alice L. (contacts)") in pairs


def test_speakers_of_two_different_members_are_not_suggested(
    staff_client, slack_and_signal, member, other_member
):
    Speaker.objects.filter(display_name="Alice").update(member=member)
    Speaker.objects.filter(display_name="Alice L. (contacts)").update(member=other_member)

    page = staff_client.get(SPEAKERS).content.decode()

    assert "Alice and Alice L. (contacts)" not in page


def test_a_real_name_behind_a_nickname_is_compared_too(staff_client, tmp_path):
    """Slack's "Bobby" is "Bob Brown" in users.json; on the phone he is plain "Bob"."""
    people = [User("U7", "bobby", "Bobby", real_name="Bob Brown"), User("U8", "dee", "Dee")]
    import_path(slack_export(tmp_path / "s.zip", {"general": [("U7", "hi")]}, users=people))
    Speaker.create_named("Bob")
    Identity.objects.create(
        source_kind="signal", external_id="aci:b0b", display_name="Bob", speaker=speaker("Bob")
    )
    speakers = list(Speaker.objects.prefetch_related("identities"))

    bobby = identity("Bobby", "slack")
    suggestions = [
        ({s.speaker.display_name, s.other.display_name}, s.reason)
        for s in merge_suggestions(speakers)
    ]

    assert bobby.full_name == "Bob Brown"
    page = staff_client.get(SPEAKERS).content.decode()
    assert 'Bobby <span class="muted">(Bob Brown)</span>' in page
    assert suggestions == [({"Bobby", "Bob"}, "same first name, “bob”")]
