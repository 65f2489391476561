"""Signal contacts with no name and no number, imported as plain "Unknown" before each had a
label of its own: importing the same backup again gives them their labels, never over a name
staff chose."""

from __future__ import annotations

import pytest

from ingest import services
from ingest.models import Identity, Speaker
from joe_site.jobs import JobStatus
from tests.signal_writer import DEFAULT_PASSPHRASE
from tests.test_ingest_support import stored_export, use_tmp_upload_dir
from tests.test_signal_backup_nameless import nameless_backup

pytestmark = pytest.mark.django_db

ANN = "aci:0c9e2d4f-5b7a-4e61-9f0d-3b2a1c4d7e8a"
BEN = "aci:7f1e0a3b-2c4d-4e5f-8a9b-0c1d2e3f4a5b"
ROW = "recipient:4"


@pytest.fixture(autouse=True)
def uploads(settings, tmp_path):
    return use_tmp_upload_dir(settings, tmp_path)


def imported(path):
    export = services.import_export(export_id=stored_export(path).pk, passphrase=DEFAULT_PASSPHRASE)
    assert export.status == JobStatus.SUCCEEDED, export.error
    return export.messages_count, export.duplicates_count


def names() -> dict[str, tuple[str, str]]:
    return {
        i.external_id: (i.display_name, i.speaker.display_name)
        for i in Identity.objects.select_related("speaker").exclude(is_self=True)
    }


def test_a_reimport_labels_the_old_unknowns_and_keeps_staffs_names(tmp_path):
    backup = nameless_backup(tmp_path / "phone.backup")
    assert imported(backup) == (3, 0)
    # As an older joe left them: each "Unknown", and staff named one of them since.
    Identity.objects.filter(external_id__in=[ANN, BEN, ROW]).update(display_name="Unknown")
    Speaker.objects.filter(identities__external_id__in=[ANN, ROW]).update(display_name="Unknown")
    Speaker.objects.filter(identities__external_id=BEN).update(display_name="Uncle Ben")

    assert imported(backup) == (0, 3)
    expected = {
        ANN: ("Unknown (…7e8a)", "Unknown (…7e8a)"),
        BEN: ("Unknown (…4a5b)", "Uncle Ben"),
        ROW: ("Unknown (#4)", "Unknown (#4)"),
    }
    assert names() == expected

    assert imported(backup) == (0, 3)
    assert names() == expected


def test_a_speaker_holding_someone_else_keeps_its_name(tmp_path):
    """Plain "Unknown" speakers gathered people by that name: which label would be theirs?"""
    backup = nameless_backup(tmp_path / "phone.backup")
    imported(backup)
    shared = Speaker.objects.get(identities__external_id=ANN)
    Identity.objects.filter(external_id__in=[ANN, ROW]).update(
        display_name="Unknown", speaker=shared
    )
    Speaker.objects.filter(pk=shared.pk).update(display_name="Unknown")

    imported(backup)
    assert names()[ANN] == ("Unknown (…7e8a)", "Unknown")
    assert names()[ROW] == ("Unknown (#4)", "Unknown")


def test_a_name_staff_gave_an_identity_stays(tmp_path):
    backup = nameless_backup(tmp_path / "phone.backup")
    imported(backup)
    Identity.objects.filter(external_id=ROW).update(display_name="Aunt May")

    imported(backup)
    assert names()[ROW][0] == "Aunt May"
