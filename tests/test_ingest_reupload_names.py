"""A chat app whose conversation is named by its file (WhatsApp) is named by the file the person
uploaded, not by the name the server stored it under: re-uploading never doubles a chat."""

from __future__ import annotations

import datetime as dt

import pytest

from ingest.models import Conversation, Export, Message
from ingest.services import import_export
from tests.builders.messenger import e2ee_thread, fb
from tests.builders.signal_desktop import chat_files, sig
from tests.builders.whatsapp import build_whatsapp
from tests.test_ingest_support import upload, use_tmp_upload_dir

pytestmark = pytest.mark.django_db
WHEN = dt.datetime(2024, 1, 1, 9, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def uploads(settings, tmp_path):
    return use_tmp_upload_dir(settings, tmp_path / "server")


def test_a_kept_whatsapp_chat_uploaded_again_adds_nothing(staff_client, tmp_path):
    path = build_whatsapp(
        tmp_path / "WhatsApp Chat with Bob.txt",
        [(WHEN, "Alice", "hi"), (WHEN, "Bob", "hey")],
        platform="android",
    )
    first = import_export(export_id=upload(staff_client, path, keep_file="on").pk)
    again = upload(staff_client, path)
    assert again.file.name != first.file.name  # the first file is still there

    again = import_export(export_id=again.pk)

    assert (again.messages_count, again.duplicates_count) == (0, 2)
    assert Message.objects.count() == 2
    assert list(Conversation.objects.values_list("title", flat=True)) == ["Bob"]


def test_a_kept_messenger_chat_uploaded_again_adds_nothing(staff_client, tmp_path):
    """The end-to-end encrypted chats' download has no thread path: its file names the chat."""
    path = tmp_path / "Bob Example.json"
    path.write_text(e2ee_thread("Bob Example", ["Alice", "Bob Example"], [fb("Alice", "hi")]))
    import_export(export_id=upload(staff_client, path, keep_file="on").pk)

    again = import_export(export_id=upload(staff_client, path).pk)

    assert (again.messages_count, again.duplicates_count) == (0, 1)
    assert Conversation.objects.count() == 1


def test_one_signal_desktop_chat_uploaded_next_month_adds_nothing(
    staff_client, tmp_path, monkeypatch
):
    """Uploads are stored in a folder per month, which is no chat's name."""
    path = tmp_path / "data.json"
    path.write_text(chat_files([sig(WHEN, "Me", "hi"), sig(WHEN, "Bob", "hey")])["data.json"])
    first = import_export(export_id=upload(staff_client, path, owner_name="Alice").pk)
    monkeypatch.setattr(Export._meta.get_field("file"), "upload_to", "exports/next-month/")

    again = import_export(export_id=upload(staff_client, path, owner_name="Alice").pk)

    assert (first.messages_count, again.messages_count, again.duplicates_count) == (2, 0, 2)
    assert Conversation.objects.count() == 1


def test_a_lone_data_json_is_named_by_its_people_not_data(staff_client, tmp_path):
    """Two chats' data.json uploaded one by one were one conversation called "data"; a
    one-to-one chat's file now gets the name (and so the ids) its folder has in the whole
    export, so uploading that export later adds nothing."""
    from tests.builders.signal_desktop import build_sigexport

    bob = [sig(WHEN, "Me", "hi"), sig(WHEN, "Bob", "hey")]
    group = [sig(WHEN, "Me", "all"), sig(WHEN, "Bob", "of"), sig(WHEN, "Cy", "us")]
    for rows in (bob, group):
        path = tmp_path / "data.json"
        path.write_text(chat_files(rows)["data.json"])
        export = import_export(export_id=upload(staff_client, path, owner_name="Al").pk)
        assert export.status == "succeeded", export.error
    assert sorted(Conversation.objects.values_list("external_id", "title")) == [
        ("Bob", "Bob"),
        # A group's title is not in its file: its people show instead.
        ("data 2024-01-01T09:00:00", "Bob, Cy"),
    ]
    # Someone new speaks in the group: its re-upload still finds what it had (the name a
    # group's file keeps does not hang on who has spoken).
    path = tmp_path / "data.json"
    path.write_text(chat_files([*group, sig(WHEN, "Dee", "hello")])["data.json"])
    again = import_export(export_id=upload(staff_client, path, owner_name="Al").pk)
    assert (again.messages_count, again.duplicates_count) == (1, 3)

    whole = build_sigexport(tmp_path / "signal-export.zip", {"Bob": bob})
    again = import_export(export_id=upload(staff_client, whole, owner_name="Al").pk)
    assert (again.messages_count, again.duplicates_count) == (0, 2)


def test_two_groups_uploaded_as_data_json_stay_two_conversations(staff_client, tmp_path):
    """Every group's lone file is called data.json: keyed by that name alone, the second group
    was poured into the first (its title replacing the first's, and a message sent to both in
    one second taken for a duplicate). A group is known by its file and its first message."""
    family = [sig(WHEN, "Me", "dinner?"), sig(WHEN, "Mum", "7pm"), sig(WHEN, "Dad", "ok")]
    earlier = WHEN - dt.timedelta(days=3)
    work = [sig(earlier, "Kim", "standup"), sig(WHEN, "Me", "dinner?"), sig(WHEN, "Lee", "10")]
    path = tmp_path / "data.json"
    for rows in (family, work):
        path.write_text(chat_files(rows)["data.json"])
        export = import_export(export_id=upload(staff_client, path, owner_name="Al").pk)
        assert (export.messages_count, export.duplicates_count) == (3, 0)

    assert sorted(Conversation.objects.values_list("title", flat=True)) == [
        "Dad, Mum",
        "Kim, Lee",
    ]
    # Each group uploaded again, with a new voice, still finds what it had.
    path.write_text(chat_files([*work, sig(WHEN, "Sol", "hi")])["data.json"])
    again = import_export(export_id=upload(staff_client, path, owner_name="Al").pk)
    assert (again.messages_count, again.duplicates_count) == (1, 3)
    assert Conversation.objects.count() == 2
