"""One Telegram chat exported in the pre-2021 layout (integer ids, local "date" only) and again
since (bare ids, "date_unixtime") is imported once, whatever zone each import reads local times
in; a basic group too. Synthetic exports built here (no real messages) and the shared samples."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.urls import reverse

from ingest import services
from ingest.models import Conversation, Export, Identity, Message
from ingest.parsers.telegram import content_key
from joe_site.jobs import JobStatus
from tests.builders.telegram import Chat, build_telegram, tg
from tests.test_ingest_support import stored_export, use_tmp_upload_dir

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "samples" / "telegram"
pytestmark = pytest.mark.django_db
needs_samples = pytest.mark.skipif(not SAMPLES.exists(), reason="shared samples are not available")

BERLIN, NEW_YORK = ZoneInfo("Europe/Berlin"), ZoneInfo("America/New_York")
ANN, ME, BEN = 101, 100, 102
USER, CHAT = 1 << 32, 2 << 32


@pytest.fixture(autouse=True)
def uploads(settings, tmp_path):
    return use_tmp_upload_dir(settings, tmp_path)


def imported(path: Path, zone: str = "UTC") -> tuple[int, int]:
    export = services.import_export(export_id=stored_export(path).pk, time_zone=zone)
    assert export.status == JobStatus.SUCCEEDED, export.error
    return export.messages_count, export.duplicates_count


def at(month: int, day: int, hour: int, minute: int = 0, year: int = 2020) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=dt.UTC)


# A chat with Ann, sent in summer and winter (both sides of daylight saving time), one second
# holding two of Ann's messages.
SAID = [
    (ANN, "are you coming", at(7, 1, 9, 1)),
    (ME, "on my way", at(7, 1, 9, 2)),
    (ANN, "hurry", at(7, 1, 9, 3)),
    (ANN, "really", at(7, 1, 9, 3)),
    (ANN, "happy new year", at(12, 31, 23, 30)),
]
LATER = (ANN, "remember 2020?", at(3, 1, 12, year=2024))


def chat_export(
    tmp_path: Path, name: str, layout: str, said: list, *, kind: str = "personal_chat",
    number: int = ANN, zone: dt.tzinfo = dt.UTC,
) -> Path:  # fmt: skip
    """``layout`` "2020": the chat's id and senders with their kind in bits 32-33, no Unix time;
    "2021": bare ids and Unix times. The local dates are those of a computer in ``zone``."""
    old = layout == "2020"
    msgs = [
        tg(
            "Ann" if who == ANN else "Me",
            who | USER if old and who != ME else who,
            text,
            id=i,
            when=when,
        )  # fmt: skip
        for i, (who, text, when) in enumerate(said, start=1)
    ]
    shift = (CHAT if kind == "private_group" else USER) if old else 0
    return build_telegram(
        tmp_path / name, [Chat(number | shift, "Ann", kind, msgs)], style=layout, zone=zone
    )


def keys() -> set[str]:
    return set(Message.objects.values_list("external_id", flat=True))


# -- 1. the old layout's ids do not depend on the import's zone --------------------------------


def test_an_old_export_imported_in_two_zones_is_imported_once(tmp_path):
    """Its dates have no offset; they used to become Unix times in the import's zone, so the
    second import (another TIME_ZONE, another --timezone) doubled every message."""
    old = chat_export(tmp_path, "old.json", "2020", SAID, zone=BERLIN)

    assert imported(old, "Europe/Berlin") == (5, 0)
    assert imported(old, "America/New_York") == (0, 5)
    assert imported(old, "UTC") == (0, 5)
    assert Message.objects.count() == 5
    # The times are placed in the zone the first import said (the computer's): right.
    assert Message.objects.filter(sent_at=at(12, 31, 23, 30)).exists()


def test_the_old_layouts_ids_are_the_same_in_every_zone(tmp_path):
    old = chat_export(tmp_path, "old.json", "2020", SAID, zone=BERLIN)
    imported(old, "Europe/Berlin")
    in_berlin = keys()
    Message.objects.all().delete()

    imported(old, "America/New_York")
    assert keys() == in_berlin


def test_old_then_new_meet_though_the_computer_was_not_on_utc(tmp_path):
    """The newer export's own local dates meet the old one's (the same computer's zone), read
    in no zone: the import's zone can be anything."""
    old = chat_export(tmp_path, "old.json", "2020", SAID, zone=BERLIN)
    new = chat_export(tmp_path, "new.json", "2021", [*SAID, LATER], zone=BERLIN)

    assert imported(old, "UTC") == (5, 0)
    assert imported(new, "UTC") == (1, 5)
    assert imported(new, "America/New_York") == (0, 6)
    assert imported(old, "America/New_York") == (0, 5)
    assert list(Conversation.objects.values_list("external_id", flat=True)) == ["101"]
    assert sorted(Identity.objects.values_list("external_id", flat=True)) == ["user100", "user101"]


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin", "Asia/Kolkata"])
def test_new_then_old_meet_in_any_zone(tmp_path, zone):
    """The old export's local times are found in the zone whose Unix times the corpus holds
    them under (the computer's, New York's here), not the zone the import was told."""
    new = chat_export(tmp_path, "new.json", "2021", [*SAID, LATER], zone=NEW_YORK)
    old = chat_export(tmp_path, "old.json", "2020", SAID, zone=NEW_YORK)

    assert imported(new) == (6, 0)
    assert imported(old, zone) == (0, 5)
    assert imported(old, "Europe/Berlin") == (0, 5)
    assert Message.objects.count() == 6


def test_rows_imported_in_a_zone_before_keep_their_ids(tmp_path):
    """Rows as imports of the old layout wrote them until now: the Unix time of the local date
    in the import's zone (Berlin's), in the chat of Ann's bare number. Re-importing in any zone
    adds nothing, and the newer export joins them."""
    old = chat_export(tmp_path, "old.json", "2020", SAID, zone=BERLIN)
    imported(old, "Europe/Berlin")
    places: dict[tuple, int] = {}
    for message in Message.objects.select_related("identity").order_by("pk"):
        local = message.sent_at.astimezone(BERLIN).replace(tzinfo=None)
        stamp = str(int(local.replace(tzinfo=BERLIN).timestamp()))
        sender = message.identity.external_id
        n = places[stamp, sender] = places.get((stamp, sender), -1) + 1
        Message.objects.filter(pk=message.pk).update(
            external_id=content_key("101", stamp, sender, n)
        )
    before = keys()

    assert imported(old, "Europe/Berlin") == (0, 5)
    assert imported(old, "America/New_York") == (0, 5)
    assert imported(chat_export(tmp_path, "new.json", "2021", [*SAID, LATER], zone=BERLIN)) == (
        1,
        5,
    )
    assert before <= keys() and Message.objects.count() == 6


def test_a_message_is_matched_by_its_text_too(tmp_path):
    """Another reading of the time meets a held message only with its sender's words: a
    different message at that second stays a message of its own."""
    new = chat_export(tmp_path, "new.json", "2021", SAID, zone=NEW_YORK)
    changed = [(who, text + " (edited)" if i == 0 else text, when)
               for i, (who, text, when) in enumerate(SAID)]  # fmt: skip
    old = chat_export(tmp_path, "old.json", "2020", changed, zone=NEW_YORK)

    assert imported(new) == (5, 0)
    assert imported(old) == (1, 4)


# -- 2. basic groups --------------------------------------------------------------------------


def group_export(tmp_path: Path, name: str, layout: str, said: list, zone=dt.UTC) -> Path:
    return chat_export(tmp_path, name, layout, said, kind="private_group", number=777, zone=zone)


@pytest.mark.parametrize("first", ["2020", "2021"])
def test_a_basic_group_exported_in_both_layouts_is_one_chat(tmp_path, first):
    """Its pre-2021 id was 777 with bit 33 and its senders carried bit 32; both are read as
    today's, and its messages meet like a one-to-one chat's."""
    old = group_export(tmp_path, "old.json", "2020", SAID, zone=BERLIN)
    new = group_export(tmp_path, "new.json", "2021", [*SAID, LATER], zone=BERLIN)
    one, other = (old, new) if first == "2020" else (new, old)

    imported(one, "UTC")
    imported(other, "Asia/Tokyo")
    assert Message.objects.count() == 6
    assert list(Conversation.objects.values_list("external_id", flat=True)) == ["777"]
    assert sorted(Identity.objects.values_list("external_id", flat=True)) == ["user100", "user101"]


def held_under_the_old_id(tmp_path: Path) -> Path:
    """The old group export, with rows as imports wrote them before: the chat under 777 with
    bit 33, its messages keyed by the local time as written, senders as written."""
    old = group_export(tmp_path, "old.json", "2020", SAID, zone=BERLIN)
    imported(old, "Europe/Berlin")
    legacy = str(777 | CHAT)
    Conversation.objects.update(external_id=legacy)
    Identity.objects.filter(external_id="user101").update(external_id=f"user{ANN | USER}")
    places: dict[tuple, int] = {}
    for message in Message.objects.select_related("identity").order_by("pk"):
        local = message.sent_at.astimezone(BERLIN).replace(tzinfo=None)
        stamp = local.replace(tzinfo=dt.UTC).isoformat()
        sender = message.identity.external_id
        n = places[stamp, sender] = places.get((stamp, sender), -1) + 1
        Message.objects.filter(pk=message.pk).update(
            external_id=content_key(legacy, stamp, sender, n)
        )
    return old


def test_a_basic_group_held_under_its_old_id_keeps_it(tmp_path):
    old = held_under_the_old_id(tmp_path)

    assert imported(old, "Asia/Tokyo") == (0, 5)
    new = group_export(tmp_path, "new.json", "2021", [*SAID, LATER], zone=BERLIN)
    assert imported(new) == (1, 5)
    assert list(Conversation.objects.values_list("external_id", flat=True)) == [str(777 | CHAT)]
    assert not Export.objects.exclude(notices=[]).exists()


def test_a_newer_export_that_cannot_be_matched_to_the_old_id_says_so(tmp_path, staff_client):
    """Exported again from a computer in another zone, its local dates meet nothing held under
    the old id: it is imported as the group it is today, and the page says it may be doubled."""
    held_under_the_old_id(tmp_path)
    new = group_export(tmp_path, "new.json", "2021", [*SAID, LATER], zone=NEW_YORK)
    export = services.import_export(export_id=stored_export(new).pk)

    assert (export.messages_count, export.duplicates_count) == (6, 0)
    assert export.notices == [
        'The chat "Ann" may already be here from an older export (under the id Telegram gave it '
        "before 2021): none of its messages could be matched to it, so any that are in both "
        "exports now appear twice."
    ]
    page = staff_client.get(reverse("ingest:export", args=[export.pk]))
    assert 'data-testid="export-notice"' in page.content.decode()
    assert "may already be here from an older export" in page.content.decode()


# -- 3. the layout and the old ids are told by structure, not by date ------------------------


def test_an_old_export_does_not_join_a_64_bit_users_chat_of_any_date(tmp_path):
    """User 2**32 + 101 has the number the old layout gave user 101's chat. Whether a chat held
    under it is that old chat is told by its messages, not by their dates (2020 here)."""
    zed = [(2**32 + ANN, "hello", at(7, 1, 9, 1))]
    msgs = [tg("Zed", who, text, id=1, when=when) for who, text, when in zed]
    imported(
        build_telegram(tmp_path / "zed.json", [Chat(2**32 + ANN, "Zed", "personal_chat", msgs)])
    )

    assert imported(chat_export(tmp_path, "old.json", "2020", SAID)) == (5, 0)
    assert sorted(Conversation.objects.values_list("external_id", flat=True)) == [
        "101",
        "4294967397",
    ]


@needs_samples
@pytest.mark.parametrize("sample", ["tg2md_result.json", "tg2md_result_2020-old-from_id-int.json"])
def test_the_shared_samples_import_once_in_two_zones(sample):
    """Real exports with local dates only (2021 and 2020 layouts of one channel)."""
    first = imported(SAMPLES / sample, "Europe/Berlin")
    assert imported(SAMPLES / sample, "America/New_York") == (0, first[0])
