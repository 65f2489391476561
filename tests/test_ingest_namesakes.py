"""Who becomes one speaker: namesakes on one app stay apart, an opt-out survives a split."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse
from django.utils import timezone

from ingest.models import Identity, Speaker
from tests.builders.slack import User
from tests.signal_writer import FIXTURE_MESSAGES, write_backup
from tests.test_ingest_support import PASSPHRASE, import_path, slack_export, use_tmp_upload_dir

pytestmark = pytest.mark.django_db
HTMX = {"HX-Request": "true"}


@pytest.fixture(autouse=True)
def uploads(settings, tmp_path):
    return use_tmp_upload_dir(settings, tmp_path)


def speakers_of(kind: str) -> dict[str, str]:
    """external id -> speaker name, for one app's identities."""
    return dict(
        Identity.objects.filter(source_kind=kind).values_list(
            "external_id", "speaker__display_name"
        )
    )


def test_two_people_of_one_workspace_with_one_name_get_two_speakers(tmp_path):
    users = [
        User("US1", "sam.king", display_name="Sam", real_name="Sam King"),
        User("US2", "sam.park", display_name="Sam", real_name="Sam Park"),
        User("US3", "sam.lee", display_name="Sam", real_name="Sam"),  # nothing else to go by
    ]
    export = import_path(
        slack_export(
            tmp_path / "sams.zip",
            {"general": [("US1", "hi"), ("US2", "hello"), ("US3", "hey"), ("US1", "again")]},
            users=users,
        )
    )

    assert speakers_of("slack") == {"US1": "Sam", "US2": "Sam Park", "US3": "Sam"}
    assert len({i.speaker_id for i in Identity.objects.all()}) == 3
    assert export.identities_count == Speaker.objects.count() == 3


def test_one_name_in_two_workspaces_or_on_two_apps_is_one_friend(tmp_path):
    """Across exports a name still matches: the same friend in a second workspace (another
    user id) and on Signal."""
    for workspace, user_id in (("a", "UA1"), ("b", "UB7")):
        import_path(
            slack_export(
                tmp_path / f"{workspace}.zip",
                {"general": [(user_id, "hi")]},
                users=[User(user_id, "sam", "Sam")],
            )
        )
    path = tmp_path / "signal.backup"
    write_backup(path, messages=FIXTURE_MESSAGES)
    import_path(path, passphrase=PASSPHRASE, owner_name="Sam")

    sam = Speaker.objects.get(display_name="Sam")
    assert sorted(sam.identities.values_list("source_kind", "external_id")) == [
        ("signal", Identity.objects.get(source_kind="signal", is_self=True).external_id),
        ("slack", "UA1"),
        ("slack", "UB7"),
    ]


@pytest.fixture
def opted_out_alice(tmp_path, member):
    """Alice on Slack and on Signal, one speaker, claimed by a member who opted out."""
    import_path(slack_export(tmp_path / "s.zip", {"general": [("U1", "hi"), ("U2", "yo")]}))
    path = tmp_path / "signal.backup"
    write_backup(path, messages=FIXTURE_MESSAGES)
    import_path(path, passphrase=PASSPHRASE, owner_name="Sam")
    alice = Speaker.objects.get(identities__source_kind="slack", identities__external_id="U1")
    Identity.objects.filter(display_name__startswith="Alice").update(speaker=alice)
    alice.member = member
    alice.opted_out, alice.opted_out_at = True, timezone.now()
    alice.game_opt_in = True
    alice.save()
    return alice


def test_splitting_an_opted_out_speaker_keeps_the_opt_out(staff_client, opted_out_alice):
    on_signal = opted_out_alice.identities.get(source_kind="signal")

    response = staff_client.post(
        reverse("ingest:identity_split", args=[on_signal.pk]), headers=HTMX
    )

    on_signal.refresh_from_db()
    new = on_signal.speaker
    assert new != opted_out_alice
    assert (new.opted_out, new.opted_out_at) == (True, opted_out_alice.opted_out_at)
    assert new.member is None and not new.game_opt_in  # the new speaker's owner decides
    message = json.loads(response["HX-Trigger"])["toast"]["message"]
    assert message.endswith(f"It stays opted out of training, as {opted_out_alice} is.")


def test_moving_an_identity_off_an_opted_out_speaker_says_what_it_means(
    staff_client, opted_out_alice
):
    on_signal = opted_out_alice.identities.get(source_kind="signal")
    bob = Speaker.objects.get(display_name="Bob")

    response = staff_client.post(
        reverse("ingest:identity_assign", args=[on_signal.pk]), {"speaker": bob.pk}, headers=HTMX
    )

    message = json.loads(response["HX-Trigger"])["toast"]["message"]
    assert message == (
        f"{on_signal} now speaks as Bob. {opted_out_alice} opted out of training; these messages"
        f" now train as Bob's. Exclude the identity if they are still {opted_out_alice}'s."
    )
