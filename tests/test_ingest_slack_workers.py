"""A big Slack import parsed by worker processes (``ingest.slack_import``) stores exactly what a
plain import stores, fails and cancels as cleanly, and leaves no process behind.

The workers' path is forced here on tiny exports (no size threshold, one day file per unit, a
direct COPY from the first row). It needs PostgreSQL (a binary COPY); elsewhere imports parse in
one process and these tests are skipped.
"""

from __future__ import annotations

import datetime as dt
import json
import threading

import pytest
from django.db import connection, transaction

from ingest import services, slack_import
from ingest.loader import PostgresMessageLoader
from ingest.models import Conversation, Export, Identity, Message, Speaker
from ingest.parsers import slack
from ingest.parsers.slack_workers import Unit
from ingest.progress import ImportCancelled, ProgressReporter
from joe_site.jobs import JobStatus
from tests.builders.slack import Conversation as SlackConversation
from tests.builders.slack import User, msg, ts_of
from tests.test_ingest_services import (  # noqa: F401 (run again here, through the workers)
    test_bots_are_imported_without_a_speaker_when_asked,
    test_conversations_keep_their_kind,
    test_duplicates_within_one_file_are_counted_once,
    test_each_new_person_gets_a_speaker,
    test_export_that_breaks_halfway_leaves_nothing_behind,
    test_importing_the_same_file_again_adds_nothing,
    test_many_messages_are_loaded_in_batches,
    test_newer_overlapping_export_adds_only_new_messages,
    test_people_who_never_wrote_leave_no_trace,
    test_same_friend_on_slack_and_signal_is_one_speaker,
    test_slack_export_is_imported_with_its_summary,
    test_text_postgres_cannot_store_is_cleaned,
    uploads,
)
from tests.test_ingest_support import EMPTY, PEOPLE, corpus, import_path, slack_export

pytestmark = pytest.mark.django_db

DAY1 = dt.datetime(2024, 3, 1, 9, 0, tzinfo=dt.UTC)


def at(day: int, minutes: int = 0) -> str:
    return ts_of(DAY1 + dt.timedelta(days=day, minutes=minutes))


@pytest.fixture(autouse=True)
def workers(settings, monkeypatch):
    """Every Slack import in this module goes through two workers; the calls are counted."""
    if connection.vendor != "postgresql":
        pytest.skip("the worker processes' rows go into a binary COPY: PostgreSQL only")
    settings.JOE_INGEST_WORKERS = "2"
    settings.JOE_INGEST_PARALLEL_MIN_BYTES = 0
    monkeypatch.setattr(slack_import, "UNIT_BYTES", 1)  # every day file a unit of its own
    monkeypatch.setattr(PostgresMessageLoader, "OPEN_AFTER", 1)  # straight into the table
    calls: list[slack_import.Plan] = []
    write = slack_import.write

    def counted(plan, writer, reporter):
        calls.append(plan)
        return write(plan, writer, reporter)

    monkeypatch.setattr(slack_import, "write", counted)
    yield calls
    if calls:  # (a test's own serial import may have turned them off)
        assert all(len(plan.shares) >= 1 for plan in calls)


def rich_export(tmp_path):
    """Everything a Slack parse handles, spread over several days and conversations so that
    each worker gets some of it: edits and deletions days later, threads, mentions, a private
    channel, a DM, a group DM, a sender users.json does not list, a bot, a folder with no
    metadata, an empty day."""
    dm = SlackConversation("D1", "d", kind="dm", members=("U1", "U2"))
    mpim = SlackConversation(
        "G2", "mpdm-alice--bob--sam-1", kind="mpim", members=("U1", "U2", "U3")
    )
    private = SlackConversation("G1", "secret", kind="group")
    edited, deleted, parent = at(0, 1), at(0, 2), at(1)
    general = [
        msg("U1", "morning <@U2> &amp; <@U3>", at(0)),
        msg("U2", "typo here", edited),
        msg("U3", "oops", deleted),
        msg("U1", "thread start", parent),
        msg("U2", "a reply", at(1, 1), thread_ts=parent),
        msg("U9", "who am i", at(1, 2), user_profile={"display_name": "Ghost"}),
        msg("B1", "deployed", at(1, 3), subtype="bot_message", bot_id="B1"),
        msg("U1", "", at(1, 4), subtype="channel_join"),
        msg("U2", "see <#CRANDOM|random> and <https://x.org|this>", at(2)),
        msg(
            "U2",
            "",
            at(3),
            subtype="message_changed",
            message={"user": "U2", "text": "fixed text", "ts": edited},
        ),
        msg("U3", "", at(3, 1), subtype="message_deleted", deleted_ts=deleted),
        msg("U9", "ghost again", at(4)),
    ]
    return slack_export(
        tmp_path / "rich.zip",
        {
            "general": general,
            "random": [msg("U3", f"random {i}", at(i)) for i in range(5)],
            private: [msg("U1", "just us", at(2))],
            dm: [msg("U2", "psst", at(0)), msg("U1", "what", at(3))],
            mpim: [msg("U3", "all three", at(1))],
        },
        users=[*PEOPLE, User("U4", "quiet", "Quiet")],
        extra_files={
            "orphan/2024-03-02.json": json.dumps([msg("U1", "no metadata", at(1, 30))]),
            "random/2024-03-09.json": "[]",
        },
    )


def stored(export: Export) -> dict:
    """What an import stored, without database ids."""
    rows = Message.objects.filter(export=export).order_by("external_id")
    return {
        "summary": Export.objects.filter(pk=export.pk)
        .values(
            "status",
            "messages_count",
            "duplicates_count",
            "conversations_count",
            "identities_count",
            "skipped",
            "first_message_at",
            "last_message_at",
        )
        .get(),
        "messages": list(
            rows.values_list(
                "conversation__external_id",
                "conversation__title",
                "conversation__is_group",
                "identity__external_id",
                "identity__display_name",
                "identity__is_bot",
                "identity__speaker__display_name",
                "external_id",
                "sent_at",
                "text",
                "reply_to_external_id",
            )
        ),
        "identities": sorted(Identity.objects.values_list("external_id", "display_name")),
        "conversations": sorted(Conversation.objects.values_list("external_id", "title")),
        "speakers": sorted(Speaker.objects.values_list("display_name", "slug")),
    }


@pytest.mark.parametrize("include_bots", [False, True])
def test_workers_store_exactly_what_a_plain_import_stores(
    tmp_path, settings, workers, include_bots
):
    path = rich_export(tmp_path)
    settings.JOE_INGEST_WORKERS = "0"
    savepoint = transaction.savepoint()
    plain = stored(import_path(path, include_bots=include_bots))
    transaction.savepoint_rollback(savepoint)
    assert not workers and corpus() == EMPTY
    settings.JOE_INGEST_WORKERS = "2"

    split = stored(import_path(path, include_bots=include_bots))

    assert len(workers) == 1 and len(workers[0].shares) == 2
    assert split == plain
    assert plain["summary"]["status"] == JobStatus.SUCCEEDED
    texts = {row[9] for row in plain["messages"]}
    assert {"fixed text", "morning @Bob & @Sam", "ghost again", "no metadata"} <= texts
    assert "oops" not in texts and "typo here" not in texts
    assert ("deployed" in texts) == include_bots
    assert ("U4", "Quiet") not in plain["identities"]  # never wrote: no trace


def test_a_reimport_through_workers_adds_nothing_and_counts_every_duplicate(tmp_path):
    path = rich_export(tmp_path)
    first = import_path(path)
    before = corpus()

    again = import_path(path)

    assert (again.status, again.messages_count) == (JobStatus.SUCCEEDED, 0)
    assert again.duplicates_count == first.messages_count
    assert corpus() == before


def test_ids_are_kept_for_people_and_conversations_already_known(tmp_path):
    import_path(slack_export(tmp_path / "a.zip", {"general": [("U1", "first")]}))
    alice, general = Identity.objects.get(), Conversation.objects.get()

    import_path(rich_export(tmp_path))

    assert Identity.objects.filter(external_id="U1").get() == alice
    assert Conversation.objects.filter(external_id=general.external_id).get() == general
    assert Message.objects.filter(text="no metadata", identity=alice).exists()


def test_a_day_file_with_bad_json_fails_the_import_with_its_sentence(tmp_path):
    path = slack_export(
        tmp_path / "bad.zip",
        {"general": [("U1", f"m{i}") for i in range(20)], "random": [("U2", "x")]},
        extra_files={"random/2024-01-02.json": b"\xff{not json"},
    )

    export = import_path(path)

    assert export.status == JobStatus.FAILED
    assert export.error == (
        "random/2024-01-02.json is not UTF-8 text (bad byte at position 0); the export may be "
        "damaged or re-saved in another encoding."
    )
    assert corpus() == EMPTY


def test_an_export_whose_day_files_are_all_empty_fails_as_a_plain_one_does(tmp_path):
    path = slack_export(
        tmp_path / "hollow.zip",
        {"general": [("U1", "x")]},
        extra_files={"general/2024-01-01.json": "[]", "random/2024-01-02.json": "[]"},
    )

    export = import_path(path)

    assert export.error == slack.EMPTY_DAYS.format(name="hollow.zip")
    assert corpus() == EMPTY


def test_a_cancel_stops_the_workers_and_keeps_nothing(tmp_path, monkeypatch):
    def check(self):
        if self.position.done:
            raise ImportCancelled

    monkeypatch.setattr(ProgressReporter, "check", check)
    threads = threading.active_count()

    export = import_path(rich_export(tmp_path))

    assert export.status == JobStatus.CANCELLED
    assert corpus() == EMPTY
    assert threading.active_count() == threads  # the pipe readers are gone


def test_a_worker_that_dies_fails_the_import_politely(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(
        slack_import,
        "WORKER_ARGS",
        ["-c", "import sys; print('boom', file=sys.stderr); sys.exit(3)"],
    )

    with pytest.raises(RuntimeError, match="exit status 3"):
        import_path(rich_export(tmp_path))

    export = Export.objects.get()
    assert (export.status, export.error) == (JobStatus.FAILED, services.INTERNAL_ERROR)
    assert corpus() == EMPTY
    assert "boom" in caplog.text


def test_the_plan_gives_every_day_file_to_one_worker_in_reading_order(tmp_path, settings):
    path = rich_export(tmp_path)
    settings.JOE_INGEST_WORKERS = "3"

    plan = slack_import.plan(path, include_bots=False)

    assert plan is not None and len(plan.shares) == 3
    units = [unit for share in plan.shares for unit in share]
    covered = [(u.conversation, i) for u in units for i in range(u.start, u.stop)]
    assert len(covered) == len(set(covered)) == plan.files
    assert covered == sorted(covered)  # in reading order, each conversation's units together
    assert all(isinstance(u, Unit) for u in units)


@pytest.mark.parametrize(
    ("setting", "min_bytes"), [("0", 0), ("2", 10**9)], ids=["no workers", "too small"]
)
def test_small_exports_and_no_workers_mean_a_plain_import(tmp_path, settings, setting, min_bytes):
    settings.JOE_INGEST_WORKERS = setting
    settings.JOE_INGEST_PARALLEL_MIN_BYTES = min_bytes

    assert slack_import.plan(rich_export(tmp_path), include_bots=False) is None


def test_auto_uses_one_worker_per_spare_core_up_to_four(settings, monkeypatch):
    settings.JOE_INGEST_WORKERS = "auto"
    counts = {}
    for cores in (1, 2, 3, 8, 64):
        monkeypatch.setattr(slack_import, "cpu_count", lambda cores=cores: cores)
        counts[cores] = slack_import.worker_count()

    assert counts == {1: 0, 2: 1, 3: 2, 8: 4, 64: 4}
