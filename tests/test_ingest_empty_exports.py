"""An export in which nobody says anything: only the app's own notices (WhatsApp's encryption
notice, Slack's joins and leaves) is as empty as a file with no line at all, and fails as one."""

from __future__ import annotations

import datetime as dt

import pytest

from ingest import services
from joe_site.jobs import JobStatus
from tests.builders.slack import msg
from tests.builders.whatsapp import build_whatsapp
from tests.test_ingest_support import EMPTY, corpus, slack_export, stored_export, use_tmp_upload_dir

pytestmark = pytest.mark.django_db

WHEN = dt.datetime(2024, 3, 1, 9, 0)
ENCRYPTED = (
    "Messages and calls are end-to-end encrypted. No one outside of this chat, not even "
    "WhatsApp, can read or listen to them. Tap to learn more."
)


@pytest.fixture(autouse=True)
def uploads(settings, tmp_path):
    return use_tmp_upload_dir(settings, tmp_path)


def test_a_whatsapp_chat_of_only_the_encryption_notice_is_empty(tmp_path):
    path = build_whatsapp(tmp_path / "WhatsApp Chat with Bob.txt", [(WHEN, None, ENCRYPTED)])

    export = services.import_export(export_id=stored_export(path).pk)

    assert (export.status, export.messages_count) == (JobStatus.FAILED, 0)
    assert export.error == "WhatsApp Chat with Bob.txt contains no messages."
    assert corpus() == EMPTY


def test_a_slack_channel_of_only_joins_and_leaves_is_empty(tmp_path):
    path = slack_export(
        tmp_path / "slack.zip",
        {
            "general": [
                msg("U1", "<@U1> has joined the channel", subtype="channel_join"),
                msg("U2", "<@U2> has left the channel", subtype="channel_leave"),
            ]
        },
    )

    export = services.import_export(export_id=stored_export(path).pk)

    assert (export.status, export.messages_count) == (JobStatus.FAILED, 0)
    assert export.error == "slack.zip contains no messages."
    assert corpus() == EMPTY


def test_a_chat_whose_words_were_all_left_out_for_a_reason_of_their_own_still_imports(tmp_path):
    """Only notices is empty; a chat of photos alone was not empty, just not text: its summary
    says what was left out, as before."""
    path = build_whatsapp(
        tmp_path / "WhatsApp Chat with Bob.txt",
        [(WHEN, None, ENCRYPTED), (WHEN, "Bob", "<Media omitted>")],
    )

    export = services.import_export(export_id=stored_export(path).pk)

    assert export.status == JobStatus.SUCCEEDED
    assert export.skipped == {"system": 1, "media-only": 1}
