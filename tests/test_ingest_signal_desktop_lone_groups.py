"""A Signal Desktop group uploaded as its lone data.json (signal-export writes no group id or name
into it) and again later: a longer export, its chat.md, or the same file as the browser saved it
a second time ("data (1).json") finds the group it imported before instead of doubling it."""

from __future__ import annotations

import datetime as dt

import pytest

from ingest.models import Conversation, Message
from ingest.parsers import signal_desktop
from ingest.services import import_export
from tests.builders.signal_desktop import chat_files, sig
from tests.test_ingest_support import upload, use_tmp_upload_dir

pytestmark = pytest.mark.django_db
WHEN = dt.datetime(2024, 3, 1, 9, tzinfo=dt.UTC)
FAMILY = [sig(WHEN, "Me", "dinner?"), sig(WHEN, "Mum", "7pm"), sig(WHEN, "Dad", "ok")]


@pytest.fixture(autouse=True)
def uploads(settings, tmp_path):
    return use_tmp_upload_dir(settings, tmp_path / "server")


def upload_chat(client, tmp_path, rows, name="data.json"):
    """Upload one chat's file as signal-export wrote it; the import's (new, duplicates)."""
    path = tmp_path / name
    path.write_text(chat_files(rows)["chat.md" if name.endswith(".md") else "data.json"])
    export = import_export(export_id=upload(client, path, owner_name="Al").pk)
    assert export.status == "succeeded", export.error
    return export.messages_count, export.duplicates_count


def days(n: int) -> dt.timedelta:
    return dt.timedelta(days=n)


def test_a_later_export_reaching_further_back_joins_the_group(staff_client, tmp_path):
    """Signal Desktop holds what it received since it was linked (or what the phone handed it
    since): a later export of the group can start earlier than the one imported before."""
    assert upload_chat(staff_client, tmp_path, FAMILY) == (3, 0)
    earlier = [sig(WHEN - days(30), "Mum", "welcome!"), sig(WHEN - days(29), "Me", "thanks")]
    later = [sig(WHEN + days(1), "Dad", "next week?")]

    assert upload_chat(staff_client, tmp_path, [*earlier, *FAMILY, *later]) == (3, 3)

    assert Message.objects.count() == 6
    assert Conversation.objects.count() == 1


@pytest.mark.parametrize("name", ["data (1).json", "data-2.json", "chat.md"])
def test_the_same_group_saved_under_another_generic_name_adds_nothing(staff_client, tmp_path, name):
    assert upload_chat(staff_client, tmp_path, FAMILY) == (3, 0)

    assert upload_chat(staff_client, tmp_path, FAMILY, name=name) == (0, 3)

    assert Conversation.objects.count() == 1


def test_a_group_named_by_its_file_is_still_its_own(staff_client, tmp_path):
    """A file the person named after the group ("Family.json") keeps that name, as a folder of
    the whole export does."""
    upload_chat(staff_client, tmp_path, FAMILY, name="Family.json")
    assert upload_chat(staff_client, tmp_path, FAMILY) == (3, 0)
    assert sorted(Conversation.objects.values_list("external_id", flat=True)) == [
        "Family",
        "data 2024-03-01T09:00:00",
    ]


def test_a_group_imported_from_data_1_json_before_keeps_its_ids(
    staff_client, tmp_path, monkeypatch
):
    """Before, "data (1).json" made a conversation named "data (1)": uploading that file again
    still finds it."""
    with monkeypatch.context() as earlier_joe:
        generic_was = signal_desktop.re.compile("(data|chat)")
        earlier_joe.setattr(signal_desktop, "_GENERIC_NAME", generic_was)
        assert upload_chat(staff_client, tmp_path, FAMILY, name="data (1).json") == (3, 0)
    assert list(Conversation.objects.values_list("external_id", flat=True)) == ["data (1)"]

    assert upload_chat(staff_client, tmp_path, FAMILY, name="data (1).json") == (0, 3)
    assert Conversation.objects.count() == 1
