"""The Slack worker-process import (ingest.slack_import) at its edges: ids that clean alike,
duplicates and speaker names in reading order, folder names shared by two conversations, dying
workers, an empty setting. Most tests import the same export plainly (JOE_INGEST_WORKERS=0,
rolled back) and through the workers, and compare. (Written by a review of the first version;
each failed then.)

The ``workers`` fixture (two workers, every day file its own unit, direct COPY from the first
row) comes from tests/test_ingest_slack_workers.py.
"""

from __future__ import annotations

import datetime as dt
import json
import pickle

import pytest
from django.db import transaction

from ingest import slack_import
from ingest.models import Identity, Message
from ingest.parsers import slack
from ingest.parsers.archive import open_archive
from ingest.parsers.slack_workers import Job, Unit, run
from tests.builders.slack import User, msg
from tests.test_ingest_slack_workers import DAY1, at, stored, workers  # noqa: F401 (fixture)
from tests.test_ingest_support import EMPTY, PEOPLE, corpus, import_path, slack_export

pytestmark = pytest.mark.django_db


def plain_then_split(settings, workers, path, **options):  # noqa: F811
    settings.JOE_INGEST_WORKERS = "0"
    savepoint = transaction.savepoint()
    plain = stored(import_path(path, **options))
    transaction.savepoint_rollback(savepoint)
    assert not workers and corpus() == EMPTY
    settings.JOE_INGEST_WORKERS = "2"
    split_export = import_path(path, **options)
    assert len(workers) == 1
    return plain, stored(split_export), split_export


def test_unlisted_sender_whose_id_cleans_to_a_listed_one_gets_no_dangling_identity(
    tmp_path,
    settings,
    workers,  # noqa: F811
):
    """users.json lists U1; a message names "U1\\u0000" (cleaned to "U1"). A plain import maps
    both to the one U1 row. Through the workers the unlisted id gets its own reserved pk, but
    create_identity() finds U1's row and returns U1's pk, so the messages keep a pk no row has
    (Message has no database foreign key)."""
    path = slack_export(
        tmp_path / "nul.zip",
        {
            "general": [msg("U1", "listed", at(0)), msg("U2", "other", at(0, 1))],
            "random": [msg("U1\u0000", "unlisted twin", at(1))],
        },
    )

    plain, split, export = plain_then_split(settings, workers, path)

    orphans = Message.objects.filter(export=export).exclude(
        identity_id__in=Identity.objects.values("pk")
    )
    assert list(orphans.values_list("text", flat=True)) == []
    assert split == plain


def test_two_unlisted_ids_that_clean_to_one_share_its_row(
    tmp_path,
    settings,
    workers,  # noqa: F811
):
    """Neither U9 nor "U9\\u0000" is in users.json: each reserves its own pk (the row is made
    only at the end, so _ids() cannot see the first one's), and the second one's messages point
    at a pk that never gets a row."""
    path = slack_export(
        tmp_path / "nul2.zip",
        {
            "general": [msg("U9", "ghost", at(0))],
            "random": [msg("U9\u0000", "ghost twin", at(1))],
        },
    )

    plain, split, export = plain_then_split(settings, workers, path)

    orphans = Message.objects.filter(export=export).exclude(
        identity_id__in=Identity.objects.values("pk")
    )
    assert list(orphans.values_list("text", flat=True)) == []
    assert split == plain


def test_a_duplicate_keeps_the_first_copy_in_reading_order(
    tmp_path,
    settings,
    workers,  # noqa: F811
):
    """Two messages with one ts in one day file, the first from a sender users.json does not
    list (an R frame), the second from a listed one (a D frame). A plain import keeps the first;
    the worker sends its D frames before its buffered R frame, so the second wins."""
    ts = at(0)
    day = [msg("U9", "first copy", ts), msg("U1", "second copy", ts)]
    path = slack_export(
        tmp_path / "dup.zip",
        {"general": day},
        extra_files={"general/2024-03-01.json": json.dumps(day)},
    )

    plain, split, _export = plain_then_split(settings, workers, path)

    assert [m[9] for m in plain["messages"]] == ["first copy"]
    assert split == plain


def test_speakers_are_named_after_the_first_person_to_write(
    tmp_path,
    settings,
    workers,  # noqa: F811
):
    """U1 "bob" and U2 "Bob" are two people of one workspace whose names match
    case-insensitively: the first to write (U2) gets the speaker "Bob", the other one of their
    own, named by their full name. A plain import creates identities at their first message;
    the workers' path must create them in the same order, or the names and slugs ("bob" /
    "bob-2" for names that slugify alike) would swap."""
    users = [User("U1", "bob1", "bob"), User("U2", "bob2", "Bob"), *PEOPLE[2:]]
    path = slack_export(
        tmp_path / "order.zip",
        {"general": [msg("U2", "I write first", at(0)), msg("U1", "then me", at(1))]},
        users=users,
    )

    plain, split, _export = plain_then_split(settings, workers, path)

    assert plain["speakers"] == [("Bob", "bob"), ("bob1", "bob1")]
    assert split == plain


def test_a_frame_cut_short_by_a_dying_worker_is_reported_as_the_worker_failure(
    tmp_path, monkeypatch, caplog
):
    """The reader checks only that a frame's 5-byte header is whole: a body cut short (the
    worker killed mid-write) is handed on, here unpickled, and the import fails on that
    (UnpicklingError) instead of "a Slack worker process stopped", with the worker's stderr
    never logged."""
    script = (
        "import sys; sys.stdin.buffer.read(); "
        "sys.stdout.buffer.write(b'R' + (1000).to_bytes(4, 'big') + b'\\x80\\x05partial'); "
        "sys.stdout.flush(); print('killed', file=sys.stderr); sys.exit(9)"
    )
    monkeypatch.setattr(slack_import, "WORKER_ARGS", ["-c", script])
    path = slack_export(tmp_path / "a.zip", {"general": [("U1", "x")], "random": [("U2", "y")]})

    with pytest.raises(RuntimeError, match="exit status 9"):
        import_path(path)
    assert "killed" in caplog.text
    assert corpus() == EMPTY


def test_overlap_through_the_staging_table_after_max_savepoints(
    tmp_path,
    settings,
    workers,  # noqa: F811
    monkeypatch,
):
    """Packed bytes through every loader path: direct batches, a UniqueViolation mid-batch
    (rolled back and staged), and the staging path once MAX_SAVEPOINTS is spent."""
    from ingest.loader import PostgresMessageLoader

    monkeypatch.setattr("ingest.loader.BATCH_SIZE", 5)
    monkeypatch.setattr(PostgresMessageLoader, "MAX_SAVEPOINTS", 2)
    rows = [msg("U1" if i % 2 else "U2", f"m{i}", at(i // 10, i)) for i in range(60)]
    old = slack_export(tmp_path / "old.zip", {"general": rows[10:30]})
    new = slack_export(
        tmp_path / "new.zip", {"general": rows, "random": [msg("U9", "ghost", at(7))]}
    )
    settings.JOE_INGEST_WORKERS = "0"
    savepoint = transaction.savepoint()
    import_path(old)
    plain = stored(import_path(new))
    transaction.savepoint_rollback(savepoint)
    settings.JOE_INGEST_WORKERS = "2"
    import_path(old)
    workers.clear()
    split = stored(import_path(new))

    assert len(workers) == 1
    assert (plain["summary"]["messages_count"], plain["summary"]["duplicates_count"]) == (41, 20)
    assert split == plain


def test_a_crashed_worker_fails_the_import_without_waiting_for_the_others(tmp_path, monkeypatch):
    """One worker dies at once (a bug, a MemoryError: exit status 1, no S or E frame); the
    parent keeps forwarding the other workers' output until every one of them has finished,
    and only then looks at exit statuses. On a big export that is minutes of work, inside the
    transaction and under the import lock, for an import already lost. A worker whose pipe
    ends without an S or E frame could fail the import when its _END arrives."""
    import time

    script = (
        "import pickle, sys, time; from ingest.parsers import slack_workers; "
        "job = pickle.load(sys.stdin.buffer); "
        "sys.exit(3) if job.units[0].conversation == 0 else time.sleep(6)"
    )
    monkeypatch.setattr(slack_import, "WORKER_ARGS", ["-c", script])
    path = slack_export(tmp_path / "a.zip", {"general": [("U1", "x")], "random": [("U2", "y")]})

    started = time.monotonic()
    with pytest.raises(RuntimeError, match="exit status 3"):
        import_path(path)
    assert time.monotonic() - started < 3


def test_an_empty_workers_setting_means_the_default(tmp_path, settings):
    """JOE_INGEST_WORKERS= (set but empty, as in an .env file) is "" here: int("") raises in
    worker_count(), before the PostgreSQL check, so every Slack import fails with the internal
    error, on SQLite too. env_int treats an empty value as its default; so could this."""
    settings.JOE_INGEST_WORKERS = ""
    path = slack_export(tmp_path / "a.zip", {"general": [("U1", "x")]})

    export = import_path(path)

    assert export.error == ""


def test_two_conversations_with_one_folder_are_told_apart(
    tmp_path,
    settings,
    workers,  # noqa: F811
):
    """A public and a private channel both named "general" (channels.json and groups.json):
    a plain parse reads the folder once as each. A Unit names only its folder, and the worker
    maps a folder to the last conversation with that name (by_folder), so every message is
    stored under the private one, twice (counted as duplicates), and the public one is lost."""
    from tests.builders.slack import Conversation as SlackConversation

    private = SlackConversation("G1", "general", kind="group")
    path = slack_export(
        tmp_path / "twins.zip",
        {"general": [msg("U1", "public", at(0))], private: [msg("U2", "private", at(1))]},
    )

    plain, split, _export = plain_then_split(settings, workers, path)

    assert split == plain


def test_of_two_bad_files_the_first_in_reading_order_is_reported(
    tmp_path,
    settings,
    workers,  # noqa: F811
):
    """A plain parse stops at the first bad day file; the workers report the same one, even
    when a later share's error comes first: here the first worker reads 39 good days of
    #general before its bad last day, the second fails on #random's first day."""
    days = 40
    name = "{}/{:%Y-%m-%d}.json".format
    path = slack_export(
        tmp_path / "two-bad.zip",
        {
            "general": [msg("U1", f"g{i}", at(i)) for i in range(days)],
            "random": [msg("U2", f"r{i}", at(i)) for i in range(days)],
        },
        extra_files={
            # (padded, so that #general is the bigger half and the cut falls between the two)
            name("general", DAY1 + dt.timedelta(days=days - 1)): '{"not": "a list"}' + " " * 3000,
            name("random", DAY1): '{"not": "a list"}',
        },
    )
    settings.JOE_INGEST_WORKERS = "0"
    savepoint = transaction.savepoint()
    plain = import_path(path).error
    transaction.savepoint_rollback(savepoint)
    settings.JOE_INGEST_WORKERS = "2"

    assert import_path(path).error == plain
    assert plain.startswith(name("general", DAY1 + dt.timedelta(days=days - 1)))
    assert [len(share) for share in workers[0].shares] == [days, days]


def test_alternating_listed_and_unlisted_senders_travel_in_few_frames(tmp_path):
    """U1 is in users.json, U9 is not (a bot, a guest, a deleted account), and they alternate:
    reading order is kept inside one frame's segments, not by a frame per message (a review
    measured 100k such messages at 4 s against 1 s for a plain import when it was)."""
    n = 2_000
    path = slack_export(
        tmp_path / "alternating.zip",
        {"general": [msg("U9" if i % 2 else "U1", f"m{i}", at(0, i)) for i in range(n)]},
    )
    with open_archive(str(path)) as archive:
        _export, identities, conversations, days = slack.layout(archive, False)
    members = sorted(days[conversations[0].folder])
    job = Job(
        path=str(path),
        include_bots=False,
        limits=None,
        export_id=1,
        kind="slack",
        identity_ids={r.external_id: i for i, r in enumerate(identities, 1)},  # U9 is not there
        conversation_ids={c.external_id: i for i, c in enumerate(conversations, 1)},
        units=[Unit(0, 0, len(members))],
    )
    frames: list[bytes] = []

    summary = run(job, frames.append)

    assert summary.records == n  # messages and skipped ones; U9's announcement is no record
    batches = [pickle.loads(f[5:]) for f in frames if f[:1] == b"M"]  # noqa: S301
    assert len(batches) == 1
    kinds = ["rows" if type(s) is tuple else "records" for s in batches[0]]
    assert kinds[:4] == ["rows", "records", "rows", "records"]  # in reading order
    assert sum(s[1] for s in batches[0] if type(s) is tuple) == n // 2


def test_alternating_senders_store_what_a_plain_import_stores(
    tmp_path,
    settings,
    workers,  # noqa: F811
):
    path = slack_export(
        tmp_path / "alternating.zip",
        {
            "general": [msg("U9" if i % 2 else "U1", f"g{i}", at(i // 20, i)) for i in range(60)],
            "random": [msg("U8" if i % 3 else "U2", f"r{i}", at(i // 20, i)) for i in range(60)],
        },
    )

    plain, split, _export = plain_then_split(settings, workers, path)

    assert split == plain
    assert {row[3] for row in plain["messages"]} == {"U1", "U2", "U8", "U9"}
