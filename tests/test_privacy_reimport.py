"""A friend's no survives their export being deleted and uploaded again: an opt-out, or staff's
exclusion, is not forgotten with the rows that carried it."""

from __future__ import annotations

import datetime as dt

import pytest

from accounts import consent
from ingest import services
from ingest.models import Identity, Speaker
from tests.builders.slack import msg, ts_of
from tests.test_ingest_support import import_path, slack_export, use_tmp_upload_dir
from trainer.corpus import trainable_messages, trainable_speakers

pytestmark = pytest.mark.django_db

DAY = dt.datetime(2024, 3, 1, 9, 0, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def uploads(settings, tmp_path):
    return use_tmp_upload_dir(settings, tmp_path)


def chat(tmp_path):
    return slack_export(
        tmp_path / "chat.zip",
        {
            "general": [
                msg("U1", "morning all", ts_of(DAY)),
                msg("U2", "morning alice", ts_of(DAY + dt.timedelta(minutes=1))),
            ]
        },
    )


def trained_names() -> set[str]:
    return set(
        trainable_messages()
        .filter(identity__speaker__in=trainable_speakers())
        .values_list("identity__speaker__display_name", flat=True)
    )


def test_a_member_who_opted_out_stays_out_when_their_only_export_comes_back(tmp_path, member):
    path = chat(tmp_path)
    export = import_path(path)
    bob = Speaker.objects.get(display_name="Bob")
    Speaker.objects.filter(pk=bob.pk).update(member=member)
    bob.refresh_from_db()
    consent.set_opted_out(speaker=bob, opted_out=True)
    bob.rename("Bobby")  # the name staff gave him is not the one the export carries
    assert trained_names() == {"Alice"}

    services.delete_export(export_id=export.pk)
    import_path(path)

    assert trained_names() == {"Alice"}
    bob.refresh_from_db()
    assert bob.opted_out
    assert Identity.objects.get(external_id="U2").speaker == bob


def test_a_speaker_staff_opted_out_stays_out_when_its_only_export_comes_back(tmp_path):
    """No member holds this speaker (staff opted it out, or its member left): it and its
    identity used to go with the export, and the re-import made a fresh speaker that trained."""
    path = chat(tmp_path)
    export = import_path(path)
    Speaker.objects.filter(display_name="Bob").update(opted_out=True)

    services.delete_export(export_id=export.pk)
    import_path(path)

    assert trained_names() == {"Alice"}
    assert list(Speaker.objects.filter(display_name="Bob").values_list("opted_out", flat=True)) == [
        True
    ]


def test_a_friend_who_deleted_their_messages_is_skipped_when_the_export_comes_back(
    tmp_path, member
):
    path = chat(tmp_path)
    export = import_path(path)
    bob = Speaker.objects.get(display_name="Bob")
    Speaker.objects.filter(pk=bob.pk).update(member=member)
    bob.refresh_from_db()
    consent.delete_messages(speaker=bob)

    services.delete_export(export_id=export.pk)
    import_path(path)

    assert trained_names() == {"Alice"}
    assert not trainable_messages().filter(identity__speaker=bob).exists()
    assert Identity.objects.get(external_id="U2").messages_deleted_at is not None


def test_an_ordinary_speaker_still_goes_with_their_only_export(tmp_path):
    export = import_path(chat(tmp_path))

    services.delete_export(export_id=export.pk)

    assert not Speaker.objects.exists() and not Identity.objects.exists()
