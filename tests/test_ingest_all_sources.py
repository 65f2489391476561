"""Every chat app joe reads uploads through the same page, and its people land on the same
speakers as the group's Slack and Signal identities."""

from __future__ import annotations

import datetime as dt

import pytest

from ingest.models import Export, Identity, Message, Speaker
from ingest.services import import_export
from tests.builders.discord import author, build_discord, dc
from tests.builders.imessage import build_chat_db
from tests.builders.messenger import build_messenger, fb
from tests.builders.signal_desktop import build_sigexport, sig
from tests.builders.slack import User, build_slack, msg, ts_of
from tests.builders.telegram import Chat, build_telegram, tg
from tests.builders.whatsapp import build_whatsapp
from tests.signal_writer import write_backup
from tests.test_ingest_support import PASSPHRASE, use_tmp_upload_dir

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


def upload(client, path, **fields) -> Export:
    with path.open("rb") as handle:
        response = client.post("/ingest/", {"file": handle, **fields})
    assert response.status_code in (200, 302), response.content[:500]
    return Export.objects.latest("pk")


@pytest.fixture(autouse=True)
def uploads(settings, tmp_path):
    return use_tmp_upload_dir(settings, tmp_path / "server")


@pytest.mark.parametrize("kind", EXPORTS)
def test_each_app_uploads_and_merges_with_the_same_friend(staff_client, tmp_path, kind):
    slack = upload(staff_client, EXPORTS["slack"](tmp_path))
    import_export(export_id=slack.pk)
    export = upload(staff_client, EXPORTS[kind](tmp_path))
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
    export = import_export(export_id=upload(staff_client, db).pk)
    assert export.status == "succeeded", export.error
    handle = Identity.objects.get(source_kind="imessage", is_self=False)
    alice = Speaker.objects.get(display_name=ALICE)
    staff_client.post(f"/ingest/identities/{handle.pk}/speaker/", {"speaker": alice.pk})
    assert set(alice.identities.values_list("source_kind", flat=True)) == {"slack", "imessage"}
