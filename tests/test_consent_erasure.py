"""A friend who deletes their messages deletes them for good: no import brings them back, and
staff cannot put them back into training."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.urls import reverse

from accounts import consent
from ingest import services, slack_import
from ingest.models import Identity, Message, Speaker
from tests.builders.slack import User, msg
from tests.test_ingest_support import PEOPLE, import_path, slack_export, use_tmp_upload_dir

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def uploads(settings, tmp_path):
    return use_tmp_upload_dir(settings, tmp_path)


CHANNELS = {
    "general": [("U1", "hi"), ("U2", "yo"), ("U1", "again"), ("U9", "a guest says hi")],
    "random": [("U2", "lunch?"), ("U1", "yes")],
}
GUEST = User("U9", "guest", "Guest")  # listed in the first export only


def erase(name: str) -> int:
    speaker = Speaker.objects.get(display_name=name)
    return consent.delete_messages(speaker=speaker)


def reimport(tmp_path, name: str, users=PEOPLE):
    return import_path(slack_export(tmp_path / name, CHANNELS, users=users))


@pytest.fixture(params=["plain", "workers"])
def way(request, settings, monkeypatch):
    if request.param == "workers":
        if connection.vendor != "postgresql":
            pytest.skip("worker processes: PostgreSQL only")
        settings.JOE_INGEST_WORKERS = "2"
        settings.JOE_INGEST_PARALLEL_MIN_BYTES = 0
        monkeypatch.setattr(slack_import, "UNIT_BYTES", 1)
    else:
        settings.JOE_INGEST_WORKERS = "0"
    return request.param


def test_a_re_upload_does_not_bring_deleted_messages_back(tmp_path, way):
    import_path(slack_export(tmp_path / "first.zip", CHANNELS, users=[*PEOPLE, GUEST]))
    assert erase("Alice") == 3
    assert erase("Guest") == 1

    # The same workspace again; the guest is no longer in users.json (an unlisted sender now).
    export = reimport(tmp_path, "again.zip")

    assert not Message.objects.filter(identity__speaker__display_name="Alice").exists()
    assert not Message.objects.filter(identity__external_id="U9").exists()
    assert Message.objects.count() == 2  # Bob's, still there from the first import
    assert export.skipped.get(services.ERASED_REASON) == 4
    assert export.messages_count == 0 and export.duplicates_count == 2
    assert export.identities_count == 1  # Bob: the two who deleted theirs are not counted
    alice = Identity.objects.get(external_id="U1")
    assert alice.excluded and alice.messages_deleted_at is not None


def test_a_new_export_with_more_of_their_messages_skips_them_too(tmp_path, way):
    import_path(slack_export(tmp_path / "first.zip", {"general": [("U1", "hi")]}))
    erase("Alice")

    export = reimport(tmp_path, "later.zip")

    assert export.skipped.get(services.ERASED_REASON) == 3
    assert set(Message.objects.values_list("identity__external_id", flat=True)) == {"U2", "U9"}


def test_staff_cannot_include_an_identity_whose_messages_were_deleted(staff_client, tmp_path):
    import_path(slack_export(tmp_path / "first.zip", CHANNELS))
    erase("Alice")
    alice = Identity.objects.get(external_id="U1")

    page = staff_client.get(reverse("ingest:speakers")).content.decode()
    response = staff_client.post(
        reverse("ingest:identity_exclude", args=[alice.pk]), {}, headers={"HX-Request": "true"}
    )

    assert 'data-testid="messages-deleted"' in page
    assert f'id="exclude-{alice.pk}"' not in page  # no Include button for them
    toast = json.loads(response["HX-Trigger"])["toast"]
    assert toast["level"] == "error" and "deleted by their owner" in toast["message"]
    alice.refresh_from_db()
    assert alice.excluded


def test_their_account_in_another_workspace_is_skipped_too(tmp_path, way):
    """Alice deletes her messages. A second workspace lists her under another user id; a third
    has her only as a guest that users.json does not list. Both are Alice by name, so both
    are skipped; Bob is not."""
    import_path(slack_export(tmp_path / "first.zip", {"general": [("U1", "hi"), ("U2", "yo")]}))
    erase("Alice")
    people = [User("UA7", "alice", "Alice"), User("UB8", "bob", "Bob")]
    guest = msg("UX9", "alice again, as a guest", user_profile={"display_name": "Alice"})

    second = import_path(
        slack_export(
            tmp_path / "second.zip",
            {"team-two": [("UA7", "new workspace, same alice"), ("UB8", "and bob")]},
            users=people,
        )
    )
    third = import_path(
        slack_export(
            tmp_path / "third.zip", {"team-three": [guest, ("UB8", "bob")]}, users=people[1:]
        )
    )

    assert second.skipped.get(services.ERASED_REASON) == 1
    assert third.skipped.get(services.ERASED_REASON) == 1
    assert set(Message.objects.values_list("identity__external_id", flat=True)) == {"U2", "UB8"}
    for external_id in ("UA7", "UX9"):
        account = Identity.objects.get(external_id=external_id)
        assert account.speaker.display_name == "Alice" and account.messages_deleted_at
    assert Identity.objects.get(external_id="UB8").speaker.display_name == "Bob"
    assert Speaker.objects.get(display_name="Alice").messages_deleted_at is not None


def test_a_merge_or_a_split_keeps_the_deletion(tmp_path):
    import_path(slack_export(tmp_path / "first.zip", CHANNELS))
    erase("Alice")
    alice, bob = (Speaker.objects.get(display_name=n) for n in ("Alice", "Bob"))

    split = Identity.objects.get(external_id="U1").split_off()
    merged = Speaker.objects.get(pk=split.pk).merge_into(bob)

    assert split.messages_deleted_at == alice.messages_deleted_at is not None
    assert merged.pk == bob.pk and merged.messages_deleted_at == alice.messages_deleted_at


def test_merging_a_friend_who_deleted_their_messages_into_another_speaker_warns(
    staff_client, tmp_path
):
    import_path(slack_export(tmp_path / "first.zip", CHANNELS))
    erase("Alice")
    alice, bob = (Speaker.objects.get(display_name=n) for n in ("Alice", "Bob"))

    response = staff_client.post(
        reverse("ingest:speaker_merge", args=[alice.pk]),
        {"speaker": bob.pk},
        headers={"HX-Request": "true"},
    )

    message = json.loads(response["HX-Trigger"])["toast"]["message"]
    assert message == (
        "Merged Alice into Bob. Alice had deleted their messages from joe; Bob's are still in the"
        " corpus: exclude its identities, or ask Bob to delete again from their Me page."
    )


def test_moving_an_identity_onto_a_friend_who_deleted_their_messages_warns(staff_client, tmp_path):
    import_path(slack_export(tmp_path / "first.zip", CHANNELS))
    erase("Alice")
    bob_identity = Identity.objects.get(external_id="U2")
    alice = Speaker.objects.get(display_name="Alice")

    response = staff_client.post(
        reverse("ingest:identity_assign", args=[bob_identity.pk]),
        {"speaker": alice.pk},
        headers={"HX-Request": "true"},
    )

    message = json.loads(response["HX-Trigger"])["toast"]["message"]
    assert "Alice deleted their messages from joe; this identity's are still in the corpus" in (
        message
    )


@pytest.mark.django_db
def test_runs_trained_before_a_merge_or_a_split_are_flagged_when_the_friend_opts_out():
    """Runs record the speaker ids they trained on: once a speaker was merged into another (or
    split off), the friend's opt-out under the new speaker flagged none of those runs."""
    from joe_site.jobs import JobStatus
    from tests.test_trainer_runs import reasons
    from trainer.models import RetrainReason, TrainingRun

    slack_self = Speaker.create_named("Ann")
    phone_self = Speaker.create_named("Ann P")
    other = Speaker.create_named("Bo")
    run = TrainingRun.objects.create(
        name="before", status=JobStatus.SUCCEEDED, speaker_ids=[slack_self.pk, other.pk]
    )
    consent.merge_speakers(speaker=slack_self, target=phone_self)
    phone_self.refresh_from_db()
    consent.set_opted_out(speaker=phone_self, opted_out=True)
    assert "Ann P opted out after this run was trained on their messages." in reasons(run)

    RetrainReason.objects.filter(run=run).delete()
    identity = Identity.objects.create(
        source_kind="slack", external_id="U9", display_name="Bo's brother", speaker=other
    )
    split = identity.split_off()  # it was Bo's when the run trained
    consent.set_opted_out(speaker=split, opted_out=True)
    assert reasons(run) == [f"{split} opted out after this run was trained on their messages."]


def test_runs_trained_before_an_identity_was_moved_are_flagged_when_its_friend_opts_out(
    staff_client,
):
    """Staff found that Sam's Slack identity was Ann's and moved it onto Ann: a run trained on
    Sam (so on those messages) stayed unflagged when Ann opted out, and Sam, left empty, was
    removed with nothing remembering the run."""
    from joe_site.jobs import JobStatus
    from tests.test_trainer_runs import reasons
    from trainer.models import TrainingRun

    sam = Speaker.create_named("Sam")
    ann = Speaker.create_named("Ann")
    identity = Identity.objects.create(
        source_kind="slack", external_id="U7", display_name="Sam", speaker=sam
    )
    run = TrainingRun.objects.create(
        name="before", status=JobStatus.SUCCEEDED, speaker_ids=[sam.pk]
    )

    response = staff_client.post(
        reverse("ingest:identity_assign", args=[identity.pk]),
        {"speaker": ann.pk},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200
    assert not Speaker.objects.filter(pk=sam.pk).exists()  # emptied, so removed
    ann.refresh_from_db()
    consent.set_opted_out(speaker=ann, opted_out=True)

    assert "Ann opted out after this run was trained on their messages." in reasons(run)
