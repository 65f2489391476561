"""Every chat app joe reads uploads through the same page, and its people land on the same
speakers as the group's Slack and Signal identities."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from ingest.models import OWNER_NAMED_KINDS, Export, Identity, Message, Speaker
from ingest.services import import_export
from tests.builders.discord import author, build_discord, dc
from tests.builders.imessage import build_chat_db
from tests.builders.messenger import build_messenger, fb
from tests.builders.signal_desktop import build_sigexport, sig
from tests.builders.slack import User, build_slack, msg, ts_of
from tests.builders.telegram import Chat, build_telegram, tg
from tests.builders.whatsapp import build_whatsapp
from tests.signal_writer import write_backup
from tests.test_ingest_support import PASSPHRASE, upload, use_tmp_upload_dir

pytestmark = pytest.mark.django_db
WHEN = dt.datetime(2024, 1, 1, 9, tzinfo=dt.UTC)
ALICE = "Alice Smith"

EXPORTS = {
    "slack": lambda p: build_slack(
        p / "slack.zip",
        users=[User("U1", "alice", ALICE), User("U2", "bob", "Bob")],
        channels={"general": [msg("U1", "hi from slack", ts=ts_of(WHEN)), ("U2", "yo")]},
    ),
    "whatsapp": lambda p: build_whatsapp(
        p / "WhatsApp Chat with Alice Smith.zip",
        [(WHEN, ALICE, "hi from whatsapp"), (WHEN, "Bob", "hey")],
        platform="ios",
    ),
    "telegram": lambda p: build_telegram(
        p / "telegram.zip", [Chat(7, "Friends", messages=[tg(ALICE, 1, "hi from telegram")])]
    ),
    "discord": lambda p: build_discord(
        p / "discord.json", [dc("1", author("42", "alice", nickname=ALICE), "hi from discord")]
    ),
    "messenger": lambda p: build_messenger(
        p / "messenger.zip", {"Friends": ([ALICE, "Bob"], [fb(ALICE, "hi from messenger")])}
    ),
    "signal_desktop": lambda p: build_sigexport(
        p / "sigexport.zip", {"Friends": [sig(WHEN, ALICE, "hi from signal desktop")]}
    ),
}


@pytest.fixture(autouse=True)
def uploads(settings, tmp_path):
    return use_tmp_upload_dir(settings, tmp_path / "server")


@pytest.mark.parametrize("kind", EXPORTS)
def test_each_app_uploads_and_merges_with_the_same_friend(staff_client, tmp_path, kind):
    slack = upload(staff_client, EXPORTS["slack"](tmp_path))
    import_export(export_id=slack.pk)
    # iMessage and signal-export call the owner "me": the form asks whose it is.
    owner = {"owner_name": "Bob"} if kind in OWNER_NAMED_KINDS else {}
    export = upload(staff_client, EXPORTS[kind](tmp_path), **owner)
    export = import_export(export_id=export.pk)
    assert export.status == "succeeded", export.error
    assert export.kind == kind  # detected, not chosen
    alice = Speaker.objects.get(display_name=ALICE)
    assert set(alice.identities.values_list("source_kind", flat=True)) == {"slack", kind}
    assert Message.objects.filter(identity__speaker=alice, source_kind=kind).exists()


def test_signal_backup_owner_merges_by_the_name_staff_type(staff_client, tmp_path):
    slack = upload(staff_client, EXPORTS["slack"](tmp_path))
    import_export(export_id=slack.pk)
    path = tmp_path / "signal-2024.backup"
    write_backup(path, passphrase=PASSPHRASE, n_messages=20)
    export = upload(staff_client, path, passphrase=PASSPHRASE, owner_name=ALICE)
    export = import_export(export_id=export.pk, passphrase=PASSPHRASE, owner_name=ALICE)
    assert export.status == "succeeded", export.error
    alice = Speaker.objects.get(display_name=ALICE)
    assert set(alice.identities.values_list("source_kind", flat=True)) == {"slack", "signal"}


def test_imessage_handles_are_mapped_to_a_friend_on_the_speakers_page(staff_client, tmp_path):
    slack = upload(staff_client, EXPORTS["slack"](tmp_path))
    import_export(export_id=slack.pk)
    db = build_chat_db(
        tmp_path / "chat.db",
        {
            "handle": [{"ROWID": 1, "id": "+15550001111"}],
            "chat": [{"ROWID": 1, "chat_identifier": "+15550001111", "display_name": ""}],
            "message": [{"ROWID": 1, "text": "hi from imessage", "handle_id": 1, "date": 0}],
            "chat_message_join": [{"chat_id": 1, "message_id": 1}],
            "chat_handle_join": [{"chat_id": 1, "handle_id": 1}],
        },
    )
    export = import_export(export_id=upload(staff_client, db, owner_name="Bob").pk)
    assert export.status == "succeeded", export.error
    handle = Identity.objects.get(source_kind="imessage", is_self=False)
    alice = Speaker.objects.get(display_name=ALICE)
    staff_client.post(f"/ingest/identities/{handle.pk}/speaker/", {"speaker": alice.pk})
    assert set(alice.identities.values_list("source_kind", flat=True)) == {"slack", "imessage"}


def owner_chat_db(path, text: str):
    """A chat.db with one message from its owner and one from a friend's handle."""
    return build_chat_db(
        path,
        {
            "handle": [{"ROWID": 1, "id": "+15550001111"}],
            "chat": [{"ROWID": 1, "chat_identifier": "+15550001111", "display_name": ""}],
            "message": [
                {"ROWID": 1, "guid": f"{text}-1", "text": text, "is_from_me": 1, "date": 0},
                {"ROWID": 2, "guid": f"{text}-2", "text": "ok", "handle_id": 1, "date": 1},
            ],
            "chat_message_join": [{"chat_id": 1, "message_id": 1}, {"chat_id": 1, "message_id": 2}],
            "chat_handle_join": [{"chat_id": 1, "handle_id": 1}],
        },
    )


@pytest.mark.parametrize("kind", sorted(OWNER_NAMED_KINDS))
def test_two_friends_exports_keep_their_owners_apart(staff_client, tmp_path, kind):
    """Both apps call the owner "me" in every export: Alice's and Bob's used to make one
    person, and Bob's messages went to Alice's voice."""
    for owner in ("Alice", "Bob"):
        folder = tmp_path / owner
        folder.mkdir()
        if kind == "imessage":
            path = owner_chat_db(folder / "chat.db", f"{owner} here")
        else:
            path = build_sigexport(
                folder / "sigexport.zip", {"Chat": [sig(WHEN, "Me", f"{owner} here")]}
            )
        export = import_export(export_id=upload(staff_client, path, owner_name=owner).pk)
        assert export.status == "succeeded", export.error

    owners = Identity.objects.filter(source_kind=kind, is_self=True)
    assert sorted(owners.values_list("display_name", flat=True)) == ["Alice", "Bob"]
    for owner in ("Alice", "Bob"):
        speaker = Speaker.objects.get(display_name=owner)
        texts = Message.objects.filter(identity__speaker=speaker).values_list("text", flat=True)
        assert list(texts) == [f"{owner} here"]

    # Alice's next export finds her identity again: nothing new, nobody new.
    path = (
        owner_chat_db(tmp_path / "again.db", "Alice here")
        if kind == "imessage"
        else build_sigexport(tmp_path / "again.zip", {"Chat": [sig(WHEN, "Me", "Alice here")]})
    )
    export = import_export(export_id=upload(staff_client, path, owner_name=" alice ").pk)
    assert export.status == "succeeded", export.error
    assert export.messages_count == 0
    assert Identity.objects.filter(source_kind=kind, is_self=True).count() == 2


@pytest.mark.parametrize("kind", sorted(OWNER_NAMED_KINDS))
def test_without_whose_it_is_the_form_asks_and_nothing_is_imported(staff_client, tmp_path, kind):
    path = (
        owner_chat_db(tmp_path / "chat.db", "hi")
        if kind == "imessage"
        else build_sigexport(tmp_path / "sigexport.zip", {"Chat": [sig(WHEN, "Me", "hi")]})
    )
    with path.open("rb") as handle:
        response = staff_client.post("/ingest/", {"file": handle})

    html = response.content.decode()
    assert response.status_code == 200
    assert "calls its owner “me”, whoever they are: say whose it is" in html
    assert "Nothing was imported: say whose it is and choose the file again." in html
    assert not Export.objects.exists()


def test_an_owner_named_export_without_an_owner_fails_and_retries_with_one(
    staff_client, tmp_path, staff
):
    """An export made before the form asked (or by code that did not say): the import says
    what is missing, and the retry form asks for it."""
    from ingest import services

    path = owner_chat_db(tmp_path / "chat.db", "hi")
    with path.open("rb") as handle:
        export = services.create_export(
            upload=SimpleUploadedFile("chat.db", handle.read()),
            sha256="0" * 64,
            kind="",
            uploaded_by=staff,
        )
    export = import_export(export_id=export.pk)
    assert export.status == "failed"
    assert export.error.startswith("An iMessage chat.db calls its owner “me”, whoever they are")
    assert not Message.objects.exists()

    page = staff_client.get(export.get_absolute_url()).content.decode()
    assert 'name="owner_name"' in page and "Say whose it is." in page
    response = staff_client.post(f"/ingest/{export.pk}/retry/", {"kind": "imessage"})
    assert "calls its owner “me”" in response.content.decode()  # still not said: asked again

    staff_client.post(f"/ingest/{export.pk}/retry/", {"kind": "imessage", "owner_name": "Cy"})
    export.refresh_from_db()
    assert export.owner_name == "Cy"
    export = import_export(export_id=export.pk)
    assert export.status == "succeeded", export.error
    assert Identity.objects.get(source_kind="imessage", is_self=True).display_name == "Cy"
