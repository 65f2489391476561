"""A Telegram chat exported before 2021 and again since (the real tg2md samples: one channel,
its 2020 export and its 2021 one) is one conversation whose shared messages are imported once,
also when the old export was imported before such exports were read this way."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.db.models import F, Value
from django.db.models.functions import Concat, Substr

from ingest import services
from ingest.models import Conversation, Identity, Message
from joe_site.jobs import JobStatus
from tests.test_ingest_support import stored_export, use_tmp_upload_dir

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "samples" / "telegram"
OLD, NEW = SAMPLES / "tg2md_result_2020-old-from_id-int.json", SAMPLES / "tg2md_result.json"

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(not SAMPLES.exists(), reason="shared samples are not available"),
]


@pytest.fixture(autouse=True)
def uploads(settings, tmp_path):
    return use_tmp_upload_dir(settings, tmp_path)


def imported(path: Path):
    export = services.import_export(export_id=stored_export(path).pk)
    assert export.status == JobStatus.SUCCEEDED, export.error
    return export.messages_count, export.duplicates_count


def test_the_2021_export_adds_only_what_the_2020_one_lacks():
    assert imported(OLD) == (9, 0)
    assert imported(NEW) == (4, 9)  # four messages from 2021; the nine of 2020 again

    assert Message.objects.count() == 13
    assert list(Conversation.objects.values_list("external_id", flat=True)) == ["1292077344"]
    assert list(Identity.objects.values_list("external_id", flat=True)) == ["channel1292077344"]


def test_a_2020_export_imported_under_its_old_ids_is_found_again():
    """Rows as joe wrote them for the 2020 export before: the chat and its messages under
    Telegram Desktop's old peer id (9882011936), the channel speaking as "user9882011936"."""
    imported(OLD)
    Conversation.objects.update(external_id="9882011936")
    Message.objects.update(
        external_id=Concat(Value("9882011936"), Substr(F("external_id"), len("1292077344") + 1))
    )
    Identity.objects.update(external_id="user9882011936")
    assert Message.objects.filter(external_id="9882011936:2").exists()

    assert imported(OLD) == (0, 9)
    assert imported(NEW) == (4, 9)

    assert Message.objects.count() == 13
    assert list(Conversation.objects.values_list("external_id", flat=True)) == ["9882011936"]
