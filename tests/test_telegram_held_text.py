"""A pre-2021 Telegram export read as UTC over its chat held from a newer export made in
another zone (Berlin, UTC+1 in winter): Ann's 10:00 UTC reads 11:00 in the old export, which
read as UTC is the Unix time of her 11:00 UTC message, so its usual id is that message's id
(the same sender, first in its second). A held id is kept only with its words; otherwise the
message is looked for under the chat's other readings, as one whose usual id is not held."""

from __future__ import annotations

import datetime as dt

import pytest

from ingest.models import Message
from tests.test_telegram_eras import ANN, BERLIN, ME, chat_export, imported

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def uploads(settings, tmp_path):
    from tests.test_ingest_support import use_tmp_upload_dir

    return use_tmp_upload_dir(settings, tmp_path)


def at(hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2020, 1, 6, hour, minute, tzinfo=dt.UTC)


# Whole minutes: each of Ann's on the hour is another's usual id an hour earlier.
SAID = sorted(
    [(ANN, f"on the hour {h}", at(h)) for h in range(8, 15) if h != 10]
    + [(ME, f"reply {h}", at(h, 30)) for h in range(8, 15)],
    key=lambda said: said[2],
)
# Sent at 10:00 UTC and deleted before the newer export: the old export is all that has it.
DELETED = (ANN, "deleted since", at(10))


def texts() -> list[str]:
    return sorted(Message.objects.values_list("text", flat=True))


def test_a_held_id_with_other_words_is_not_taken(tmp_path):
    """Every message the corpus holds is found again (none added, none doubled), and the one
    only the old export has is added, not taken for the held 11:00 message (before: 0 added,
    "deleted since" lost)."""
    new = chat_export(tmp_path, "new.json", "2021", SAID, zone=BERLIN)
    assert imported(new) == (13, 0)

    old_said = sorted([*SAID, DELETED], key=lambda said: said[2])
    old = chat_export(tmp_path, "old.json", "2020", old_said, zone=BERLIN)
    assert imported(old) == (1, 13)
    assert texts() == sorted(text for _, text, _ in old_said)

    # The same old export again: all held now, every text still there once.
    assert imported(chat_export(tmp_path, "again.json", "2020", old_said, zone=BERLIN)) == (0, 14)
    assert texts() == sorted(text for _, text, _ in old_said)


def test_held_messages_alone_keep_their_ids(tmp_path):
    """The same messages in both exports: nothing added, every text once, and each message
    under the id the newer export gave it."""
    new = chat_export(tmp_path, "new.json", "2021", SAID, zone=BERLIN)
    assert imported(new) == (13, 0)
    ids = dict(Message.objects.values_list("text", "external_id"))

    old = chat_export(tmp_path, "old.json", "2020", SAID, zone=BERLIN)
    assert imported(old) == (0, 13)
    assert dict(Message.objects.values_list("text", "external_id")) == ids
