"""A pre-2021 Telegram export (local dates, no offset) imported over the same chat held from a
newer export (ids from Unix times) finds every held message, read in the zone the exporting
computer was in: in the hour repeated when the clocks go back (its second pass too), and after
a change of season the read-ahead did not reach (a zone that agrees with the computer's all
winter but keeps no summer time is not taken for it)."""

from __future__ import annotations

import datetime as dt

import pytest

from ingest.models import Message
from ingest.parsers import telegram
from tests.test_telegram_eras import ANN, BERLIN, ME, chat_export, imported

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def uploads(settings, tmp_path):
    from tests.test_ingest_support import use_tmp_upload_dir

    return use_tmp_upload_dir(settings, tmp_path)


def said(times: list[dt.datetime]) -> list[tuple[int, str, dt.datetime]]:
    return [(ANN if i % 3 else ME, f"message {i}", when) for i, when in enumerate(times)]


# 25 October 2020, Berlin: 03:00 summer time became 02:00 again, 02:00-02:59 happened twice
# (00:00-00:59 and 01:00-01:59 UTC). Every ten minutes from 20:00 UTC the day before: the first
# 20 (read ahead, below) before it; each a second later in its minute than the one before, so no
# local time read in the wrong zone is another message's time.
AUTUMN = said(
    [dt.datetime(2020, 10, 24, 20, 0, tzinfo=dt.UTC) + dt.timedelta(minutes=10 * i, seconds=i)
     for i in range(48)]
)  # fmt: skip


@pytest.mark.parametrize("zone", ["Europe/Berlin", "UTC"])
def test_the_repeated_hour_when_the_clocks_go_back_is_found_held(tmp_path, monkeypatch, zone):
    """Read in the import's zone (Berlin) or in one found from the messages read ahead (UTC):
    either way the second pass of 02:00-02:59 is read as such where the first pass's reading
    finds nothing."""
    monkeypatch.setattr(telegram, "_MATCH_PEEK", 20)
    new = chat_export(tmp_path, "new.json", "2021", AUTUMN, zone=BERLIN)
    assert imported(new) == (48, 0)

    old = chat_export(tmp_path, "old.json", "2020", AUTUMN, zone=BERLIN)
    assert imported(old, zone) == (0, 48)
    assert Message.objects.count() == 48
    assert len(set(Message.objects.values_list("text", flat=True))) == 48


def test_a_zone_agreeing_all_winter_is_not_taken_past_the_summer_time_switch(tmp_path, monkeypatch):
    """The read-ahead (60 messages, all in January) agrees with Berlin and with Algiers (UTC+1
    all year, first by name); the messages of July after it are held under Berlin's summer
    time."""
    monkeypatch.setattr(telegram, "_MATCH_PEEK", 60)
    monkeypatch.setattr(telegram, "_ZONE_SAMPLE", 20)
    winter = dt.datetime(2020, 1, 6, 9, 0, tzinfo=dt.UTC)
    summer = dt.datetime(2020, 7, 6, 9, 0, tzinfo=dt.UTC)
    times = [winter + dt.timedelta(hours=3 * i) for i in range(60)]
    times += [summer + dt.timedelta(hours=3 * i) for i in range(20)]
    chat = said(times)
    assert imported(chat_export(tmp_path, "new.json", "2021", chat, zone=BERLIN)) == (80, 0)

    assert imported(chat_export(tmp_path, "old.json", "2020", chat, zone=BERLIN)) == (0, 80)
    assert Message.objects.count() == 80
