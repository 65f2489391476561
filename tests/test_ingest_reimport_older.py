"""Exports imported before joe changed how it knows some messages (Telegram's one-to-one chats
and basic groups, signal-export's owner) import again without doubling: the chats already in
the corpus keep the ids they were imported under."""

from __future__ import annotations

import datetime as dt

import pytest

from ingest import forms, services
from ingest.models import Conversation, Message
from ingest.parsers import telegram
from ingest.services import import_export
from tests.builders.signal_desktop import build_sigexport, sig
from tests.builders.telegram import Chat, build_telegram, tg
from tests.test_ingest_support import upload, use_tmp_upload_dir

pytestmark = pytest.mark.django_db
DAY = dt.datetime(2024, 3, 1, 9, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def uploads(settings, tmp_path):
    return use_tmp_upload_dir(settings, tmp_path / "server")


def telegram_account(path, days: int, me: int = 101, other: int = 102):
    said = [
        tg("Ann" if i % 2 else "Ben", 101 if i % 2 else 102, f"day {i}", when=DAY + dt.timedelta(i))
        for i in range(days)
    ]
    chats = [
        Chat(other, "Friend", "personal_chat", said),
        Chat(777, "Old group", "private_group", said),
        Chat(888, "Big group", "private_supergroup", said),
    ]
    return build_telegram(path, chats, me=(me, "Me", "X"))


def test_a_telegram_account_imported_before_content_ids_adds_only_what_is_new(
    staff_client, tmp_path, monkeypatch
):
    """Its one-to-one chats and basic groups were imported under Telegram's numbers; the same
    account's next export doubled them (new ids, and a second conversation for each friend)."""
    with monkeypatch.context() as before:
        before.setattr(telegram, "_PER_ACCOUNT_IDS", set())  # how every import read them then
        first = telegram_account(tmp_path / "march.zip", days=3)
        assert import_export(export_id=upload(staff_client, first).pk).messages_count == 9

    later = telegram_account(tmp_path / "april.zip", days=4)
    export = import_export(export_id=upload(staff_client, later).pk)

    assert export.status == "succeeded", export.error
    assert export.messages_count == 3  # the fourth day, in each of the three chats
    assert Message.objects.count() == 12
    assert sorted(Conversation.objects.values_list("external_id", flat=True)) == [
        "102",
        "777",
        "888",
    ]


def test_two_friends_telegram_accounts_imported_now_still_share_their_chats(staff_client, tmp_path):
    ann = telegram_account(tmp_path / "ann.zip", days=3)
    assert import_export(export_id=upload(staff_client, ann).pk).messages_count == 9
    ben = telegram_account(tmp_path / "ben.zip", days=3, me=102, other=101)

    export = import_export(export_id=upload(staff_client, ben).pk)

    assert export.status == "succeeded", export.error
    assert export.messages_count == 0


def sigexport(path, days: int):
    said = [sig(DAY + dt.timedelta(i), "Me" if i % 2 else "Bob", f"day {i}") for i in range(days)]
    return build_sigexport(path, {"Bob": said, "Friends": said})


def test_a_signal_export_imported_before_owners_had_names_adds_only_what_is_new(
    staff_client, tmp_path, monkeypatch
):
    """Its owner's messages were imported as the plain "Me"; the next export, imported with
    the owner's name as the form now asks, doubled every one of them."""
    with monkeypatch.context() as before:
        for module in (forms, services):  # no owner asked for, none used
            before.setattr(module, "OWNER_NAMED_KINDS", {})
        first = sigexport(tmp_path / "march.zip", days=4)
        assert import_export(export_id=upload(staff_client, first).pk).messages_count == 8

    later = sigexport(tmp_path / "april.zip", days=5)
    export = import_export(export_id=upload(staff_client, later, owner_name="Alice").pk)

    assert export.status == "succeeded", export.error
    assert export.messages_count == 2  # the fifth day, in both chats
    assert Message.objects.filter(identity__is_self=True).count() == 4
