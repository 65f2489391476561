"""Importing a Telegram one-to-one chat the corpus holds reads only what it must of it: the
messages it reads ahead, by their ids under the chat's usual reading of their times (one indexed
lookup), where the corpus holds them so; every held message's words only where the chat is held
under another reading (another layout, another zone). By query shape and rows read, not timing
(benchmarks/telegram_reimport.py times it)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection

from ingest import services
from ingest.models import Message
from tests.test_ingest_support import stored_export, use_tmp_upload_dir
from tests.test_telegram_eras import ANN, BERLIN, ME, chat_export

pytestmark = pytest.mark.django_db

START = dt.datetime(2021, 1, 5, 9, 0, tzinfo=dt.UTC)
# 120 messages three days apart: a year, both sides of summer time; more than the few that are
# looked for by id under other readings (telegram._FEW_LEFT).
SAID = [
    (ANN if i % 3 else ME, f"message {i}", START + dt.timedelta(days=3 * i)) for i in range(120)
]
NEW = [(ANN, f"new {i}", SAID[-1][2] + dt.timedelta(minutes=1 + i)) for i in range(5)]


@pytest.fixture(autouse=True)
def uploads(settings, tmp_path):
    return use_tmp_upload_dir(settings, tmp_path)


@pytest.fixture
def held(monkeypatch):
    """What each import asked of the chats it holds (services.HeldMessages)."""
    asked: list[services.HeldMessages] = []
    real = services.CorpusWriter.held_messages

    def recording(writer: services.CorpusWriter, external_id: str) -> services.HeldMessages:
        answer = real(writer, external_id)
        asked.append(answer)
        return answer

    monkeypatch.setattr(services.CorpusWriter, "held_messages", recording)
    return asked


def imported(path, zone: str = "UTC") -> tuple[tuple[int, int], list[str]]:
    """(added, duplicates), and the SQL of the queries that read held messages' words."""
    sql: list[str] = []

    def record(execute, query, params, many, context):  # every statement, named cursors' too
        sql.append(str(query))
        return execute(query, params, many, context)

    with connection.execute_wrapper(record):
        export = services.import_export(export_id=stored_export(path).pk, time_zone=zone)
    assert export.status == "succeeded", export.error
    words = [q for q in sql if q.startswith("SELECT") and '"ingest_message"."text"' in q]
    return (export.messages_count, export.duplicates_count), words


def whole(words: list[str]) -> list[str]:
    """The queries among these that read a chat's words whole (not by id)."""
    return [sql for sql in words if '"ingest_message"."external_id" IN' not in sql]


def test_the_same_file_again_reads_its_messages_by_id_only(tmp_path, held):
    new = chat_export(tmp_path, "new.json", "2021", SAID, zone=BERLIN)
    assert imported(new)[0] == (120, 0)

    counts, words = imported(new)
    assert counts == (0, 120)
    assert words and not whole(words)
    assert [h.loaded for h in held] == [120]  # the file's messages, not more


def test_new_messages_after_the_held_ones_are_looked_for_by_id(tmp_path, held):
    """Within two days of the last held message, they are looked for under the other readings
    too, by their ids: not found, the chat's words are not read."""
    assert imported(chat_export(tmp_path, "new.json", "2021", SAID, zone=BERLIN))[0] == (120, 0)

    counts, words = imported(chat_export(tmp_path, "more.json", "2021", SAID + NEW, zone=BERLIN))
    assert counts == (5, 120)
    assert not whole(words)
    assert [h.loaded for h in held] == [120]


def test_an_old_export_twice_reads_by_id_only(tmp_path, held):
    old = chat_export(tmp_path, "old.json", "2020", SAID, zone=BERLIN)
    assert imported(old, "Europe/Berlin")[0] == (120, 0)

    counts, words = imported(old, "America/New_York")
    assert counts == (0, 120)
    assert not whole(words)


def test_the_other_layout_reads_the_chats_words_whole_once(tmp_path, held):
    """Held under the Unix times of Berlin's local dates, the old export (read in UTC) is held
    under another reading: the words of all the chat holds are needed, and read once."""
    assert imported(chat_export(tmp_path, "new.json", "2021", SAID, zone=BERLIN))[0] == (120, 0)

    counts, words = imported(chat_export(tmp_path, "old.json", "2020", SAID, zone=BERLIN))
    assert counts == (0, 120)
    assert len(whole(words)) == 1
    assert Message.objects.count() == 120
