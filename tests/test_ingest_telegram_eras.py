"""A Telegram chat exported before 2021 and again since (the real tg2md samples: one channel,
its 2020 export and its 2021 one) is one conversation whose shared messages are imported once,
also when the old export was imported before such exports were read this way."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import pytest
from django.db.models import F, Value
from django.db.models.functions import Concat, Substr

from ingest import services
from ingest.models import Conversation, Identity, Message
from joe_site.jobs import JobStatus
from tests.builders.telegram import Chat, build_telegram, tg
from tests.test_ingest_support import stored_export, use_tmp_upload_dir

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "samples" / "telegram"
OLD, NEW = SAMPLES / "tg2md_result_2020-old-from_id-int.json", SAMPLES / "tg2md_result.json"

pytestmark = pytest.mark.django_db
needs_samples = pytest.mark.skipif(not SAMPLES.exists(), reason="shared samples are not available")


@pytest.fixture(autouse=True)
def uploads(settings, tmp_path):
    return use_tmp_upload_dir(settings, tmp_path)


def imported(path: Path):
    export = services.import_export(export_id=stored_export(path).pk)
    assert export.status == JobStatus.SUCCEEDED, export.error
    return export.messages_count, export.duplicates_count


@needs_samples
def test_the_2021_export_adds_only_what_the_2020_one_lacks():
    assert imported(OLD) == (9, 0)
    assert imported(NEW) == (4, 9)  # four messages from 2021; the nine of 2020 again

    assert Message.objects.count() == 13
    assert list(Conversation.objects.values_list("external_id", flat=True)) == ["1292077344"]
    assert list(Identity.objects.values_list("external_id", flat=True)) == ["channel1292077344"]


@needs_samples
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


# A one-to-one chat with Ann (user 101), exported by Me (user 100) in 2020 and again in 2024.
ANN, ME = 101, 100
SAID = [
    tg("Ann", ANN | 1 << 32, "are you coming", when=dt.datetime(2020, 5, 1, 9, 1, tzinfo=dt.UTC)),
    tg("Me", ME, "on my way", when=dt.datetime(2020, 5, 1, 9, 2, tzinfo=dt.UTC)),
    tg("Ann", ANN | 1 << 32, "hurry", when=dt.datetime(2020, 5, 1, 9, 3, tzinfo=dt.UTC)),
]
LATER = tg("Ann", ANN, "remember 2020?", id=4, when=dt.datetime(2024, 3, 1, tzinfo=dt.UTC))


def personal_chat(tmp_path: Path, name: str, style: str, number: int, *msgs: dict) -> Path:
    if style == "2021":  # today's layout names users by their bare number
        msgs = tuple({**m, "from_id": m["from_id"] & 0xFFFFFFFF} for m in msgs)
    return build_telegram(
        tmp_path / name, [Chat(number, "Ann", "personal_chat", msgs)], style=style
    )


def test_a_one_to_one_chat_exported_in_2020_and_since_is_one_chat(tmp_path):
    """The 2020 layout wrote the chat's id as user 101 with bit 32 (4294967397)."""
    old = personal_chat(tmp_path, "old.json", "2020", ANN | 1 << 32, *SAID)
    new = personal_chat(tmp_path, "new.json", "2021", ANN, *SAID, LATER)

    assert imported(old) == (3, 0)
    assert imported(new) == (1, 3)
    assert imported(old) == (0, 3)

    assert list(Conversation.objects.values_list("external_id", flat=True)) == ["101"]
    assert sorted(Identity.objects.values_list("external_id", flat=True)) == ["user100", "user101"]
    assert Message.objects.count() == 4


def test_a_2020_chat_with_user_101_is_not_the_chat_with_user_2_32_plus_101(tmp_path):
    """Users' numbers now pass 2**32: in today's layout 4294967397 is that user, not user 101."""
    old = personal_chat(tmp_path, "old.json", "2020", ANN | 1 << 32, *SAID)
    someone = tg("Zed", 2**32 + ANN, "hello", id=1, when=dt.datetime(2024, 3, 1, tzinfo=dt.UTC))
    new = build_telegram(
        tmp_path / "new.json", [Chat(2**32 + ANN, "Zed", "personal_chat", [someone])]
    )

    assert imported(old) == (3, 0)
    assert imported(new) == (1, 0)
    assert sorted(Conversation.objects.values_list("external_id", flat=True)) == [
        "101",
        "4294967397",
    ]


def test_a_2020_one_to_one_chat_imported_under_its_old_ids_is_found_again(tmp_path):
    """Rows as joe wrote them for the 2020 export before: the chat under 4294967397, its
    messages known by the time as written and Ann as "user4294967397"."""
    old = personal_chat(tmp_path, "old.json", "2020", ANN | 1 << 32, *SAID)
    imported(old)
    Conversation.objects.update(external_id="4294967397")
    Identity.objects.filter(external_id="user101").update(external_id="user4294967397")
    for message in Message.objects.select_related("identity").order_by("sent_at"):
        stamp = message.sent_at.isoformat()
        seed = f"4294967397|{stamp}|{message.identity.external_id}|0".encode()
        digest = hashlib.sha1(seed, usedforsecurity=False).hexdigest()[:16]
        Message.objects.filter(pk=message.pk).update(external_id=f"4294967397:c{digest}")

    assert imported(old) == (0, 3)
    assert list(Conversation.objects.values_list("external_id", flat=True)) == ["4294967397"]
