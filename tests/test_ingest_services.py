"""Importing exports: all or nothing, idempotent, deletable, one speaker per friend."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from ingest import services
from ingest.loader import MessageRow, OrmMessageLoader
from ingest.models import Conversation, Export, Identity, Message, Speaker
from ingest.parsers.detect import NOT_READABLE
from ingest.parsers.records import IdentityRecord, MessageRecord, Progress
from ingest.parsers.signal_crypto import TRUNCATED, WRONG_KEY
from ingest.progress import ProgressReporter
from joe_site.jobs import JobStatus
from tests.builders.slack import Conversation as SlackConversation
from tests.builders.slack import msg, ts_of
from tests.signal_writer import FIXTURE_MESSAGES, write_backup
from tests.test_ingest_support import (
    EMPTY,
    PASSPHRASE,
    corpus,
    import_path,
    slack_export,
    stored_export,
    use_tmp_upload_dir,
)
from trainer.corpus import trainable_messages

pytestmark = pytest.mark.django_db

DAY1 = dt.datetime(2024, 3, 1, 9, 0, tzinfo=dt.UTC)
DAY2 = DAY1 + dt.timedelta(days=1)


@pytest.fixture(autouse=True)
def uploads(settings, tmp_path):
    return use_tmp_upload_dir(settings, tmp_path)


def at(when: dt.datetime, minutes: int = 0) -> str:
    return ts_of(when + dt.timedelta(minutes=minutes))


def first_week(tmp_path, name="week1.zip"):
    return slack_export(
        tmp_path / name,
        {
            "general": [
                msg("U1", "morning all", at(DAY1)),
                msg("U2", "hi <@U1>", at(DAY1, 1)),
                msg("U1", "", at(DAY1, 2), subtype="channel_join"),
                msg("B1", "deployed", at(DAY1, 3), subtype="bot_message", bot_id="B1"),
            ],
            "random": [msg("U2", "lunch?", at(DAY1, 5))],
        },
    )


def two_weeks(tmp_path):
    """A newer export of the same workspace: everything in week 1, plus new messages."""
    return slack_export(
        tmp_path / "week2.zip",
        {
            "general": [
                msg("U1", "morning all", at(DAY1)),
                msg("U2", "hi <@U1>", at(DAY1, 1)),
                msg("U1", "new day", at(DAY2)),
                msg("U3", "sam here", at(DAY2, 1)),
            ],
            "random": [msg("U2", "lunch?", at(DAY1, 5))],
            "design": [msg("U3", "new logo", at(DAY2, 2))],
        },
    )


# -- importing -------------------------------------------------------------------------------


def test_slack_export_is_imported_with_its_summary(tmp_path):
    export = import_path(first_week(tmp_path))

    assert export.status == JobStatus.SUCCEEDED, export.error
    assert (export.messages_count, export.duplicates_count) == (3, 0)
    assert (export.conversations_count, export.identities_count) == (2, 2)
    assert export.skipped == {"system": 1, "bot": 1}
    assert (export.first_message_at, export.last_message_at) == (
        DAY1,
        DAY1 + dt.timedelta(minutes=5),
    )
    assert export.kind == "slack"
    texts = list(Message.objects.order_by("sent_at").values_list("identity__display_name", "text"))
    assert texts == [("Alice", "morning all"), ("Bob", "hi @Alice"), ("Bob", "lunch?")]
    assert set(Conversation.objects.values_list("title", flat=True)) == {"#general", "#random"}


def test_people_who_never_wrote_leave_no_trace(tmp_path):
    import_path(first_week(tmp_path))

    # Sam is in users.json but wrote nothing; the bot's messages were skipped.
    assert sorted(Identity.objects.values_list("display_name", flat=True)) == ["Alice", "Bob"]


def test_each_new_person_gets_a_speaker(tmp_path):
    import_path(first_week(tmp_path))

    assert sorted(Speaker.objects.values_list("display_name", "slug")) == [
        ("Alice", "alice"),
        ("Bob", "bob"),
    ]
    assert not Identity.objects.filter(speaker=None).exists()


def test_bots_are_imported_without_a_speaker_when_asked(tmp_path):
    export = import_path(first_week(tmp_path), include_bots=True)

    bot = Identity.objects.get(is_bot=True)
    assert (bot.display_name, bot.speaker) == ("Deploy Bot", None)
    assert export.messages_count == 4


def test_uploaded_file_is_deleted_after_import(tmp_path, uploads):
    export = stored_export(first_week(tmp_path))

    export = services.import_export(export_id=export.pk)

    assert export.status == JobStatus.SUCCEEDED
    assert not export.file
    assert not any(p.is_file() for p in uploads.rglob("*"))


def test_uploaded_file_is_kept_when_asked(tmp_path, uploads):
    export = stored_export(first_week(tmp_path), keep_file=True)

    export = services.import_export(export_id=export.pk)

    assert export.has_file


def test_importing_the_same_file_again_adds_nothing(tmp_path):
    path = first_week(tmp_path)
    import_path(path)
    before = corpus()

    again = import_path(path)

    assert again.status == JobStatus.SUCCEEDED
    assert (again.messages_count, again.duplicates_count) == (0, 3)
    assert corpus() == before


def test_newer_overlapping_export_adds_only_new_messages(tmp_path):
    import_path(first_week(tmp_path))

    newer = import_path(two_weeks(tmp_path))

    assert (newer.messages_count, newer.duplicates_count) == (3, 3)
    assert Message.objects.count() == 6
    assert Message.objects.filter(export=newer).count() == 3
    assert Speaker.objects.filter(display_name="Sam").exists()


def test_duplicates_within_one_file_are_counted_once(tmp_path):
    row = msg("U1", "echo", at(DAY1))
    path = slack_export(
        tmp_path / "dup.zip",
        {"general": [row]},
        extra_files={"general/2024-03-01.json": json.dumps([row, row, row])},
    )

    export = import_path(path)

    assert (export.messages_count, export.duplicates_count) == (1, 2)


def test_many_messages_are_loaded_in_batches(tmp_path, monkeypatch):
    monkeypatch.setattr("ingest.loader.BATCH_SIZE", 7)
    rows = [msg("U1" if i % 2 else "U2", f"message {i}", at(DAY1, i)) for i in range(100)]
    path = slack_export(tmp_path / "many.zip", {"general": rows})
    import_path(path)

    again = import_path(
        slack_export(tmp_path / "more.zip", {"general": rows + [msg("U3", "hi", at(DAY2))]})
    )

    assert Message.objects.count() == 101
    assert (again.messages_count, again.duplicates_count) == (1, 100)


def test_text_postgres_cannot_store_is_cleaned(tmp_path):
    path = slack_export(
        tmp_path / "odd.zip", {"general": [("U1", "nul\u0000byte"), ("U2", "half \ud83d pair")]}
    )

    export = import_path(path)

    assert export.status == JobStatus.SUCCEEDED, export.error
    assert sorted(Message.objects.values_list("text", flat=True)) == ["half ? pair", "nulbyte"]


def test_signal_backup_is_imported_with_the_owner_named(tmp_path):
    path = tmp_path / "signal.backup"
    write_backup(path, messages=FIXTURE_MESSAGES)

    export = import_path(path, passphrase=PASSPHRASE, owner_name="Sam")

    assert export.status == JobStatus.SUCCEEDED, export.error
    assert export.kind == "signal"
    me = Identity.objects.get(is_self=True)
    assert (me.display_name, me.speaker.display_name) == ("Sam", "Sam")
    assert export.messages_count == Message.objects.count() > 0
    assert "system" in export.skipped
    assert Message.objects.filter(identity=me).exists()


def test_same_friend_on_slack_and_signal_is_one_speaker(tmp_path):
    import_path(slack_export(tmp_path / "s.zip", {"general": [("U3", "sam on slack")]}))
    path = tmp_path / "signal.backup"
    write_backup(path, messages=FIXTURE_MESSAGES)

    import_path(path, passphrase=PASSPHRASE, owner_name="sam")

    sam = Speaker.objects.get(display_name="Sam")
    assert sorted(sam.identities.values_list("source_kind", flat=True)) == ["signal", "slack"]
    assert Speaker.objects.filter(display_name__iexact="sam").count() == 1


# -- bad input -------------------------------------------------------------------------------


def signal_backup(tmp_path):
    path = tmp_path / "signal.backup"
    write_backup(path, messages=FIXTURE_MESSAGES)
    return path


def truncated_backup(tmp_path):
    path = signal_backup(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


BAD_INPUTS = {
    "text that is no chat": (
        lambda tmp: (tmp / "notes.txt").write_text("shopping: milk, eggs") and tmp / "notes.txt",
        {},
        NOT_READABLE.format(why="its contents match none of the supported apps."),
    ),
    "an empty file": (
        lambda tmp: (tmp / "empty.zip").write_bytes(b"") or tmp / "empty.zip",
        {},
        NOT_READABLE.format(why="it is empty."),
    ),
    "a Slack zip without users.json": (
        lambda tmp: slack_export(
            tmp / "nousers.zip", {"general": [("U1", "hi")]}, omit=["users.json"]
        ),
        {"kind": "slack"},
        "nousers.zip is not a Slack export: it has no users.json. Upload the zip that Slack's "
        "export page gave you, unchanged.",
    ),
    "a Signal backup with the wrong passphrase": (
        signal_backup,
        {"passphrase": "1" * 30},
        WRONG_KEY,
    ),
    "a Signal backup cut in half": (
        truncated_backup,
        {"passphrase": PASSPHRASE},
        None,  # the frame number depends on the file: checked by prefix
    ),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_fails_with_its_sentence_and_leaves_nothing(tmp_path, case):
    make, options, sentence = BAD_INPUTS[case]

    export = import_path(make(tmp_path), **options)

    assert export.status == JobStatus.FAILED
    if sentence is None:
        assert export.error.startswith(TRUNCATED.split("{frame}")[0])
    else:
        assert export.error == sentence
    assert corpus() == EMPTY


def test_export_that_breaks_halfway_leaves_nothing_behind(tmp_path, monkeypatch):
    monkeypatch.setattr("ingest.loader.BATCH_SIZE", 2)  # rows are written before the break
    path = slack_export(
        tmp_path / "broken.zip",
        {"general": [("U1", f"m{i}") for i in range(10)], "zzz": [("U2", "last")]},
        extra_files={"zzz/2024-01-01.json": '{"not": "a list"}'},
    )

    export = import_path(path)

    assert export.status == JobStatus.FAILED
    assert export.error == "zzz/2024-01-01.json in broken.zip should be a list of messages."
    assert corpus() == EMPTY


def test_signal_without_passphrase_asks_for_it(tmp_path):
    export = import_path(signal_backup(tmp_path))

    assert export.error == services.SIGNAL_KEY_GONE


def test_a_bug_fails_the_export_politely_and_rolls_back(tmp_path, monkeypatch):
    def parse(path, *, progress=None, **options):
        yield IdentityRecord("x", "X")
        yield MessageRecord("x:1", "c", "x", DAY1, "hi")
        raise RuntimeError("boom")

    monkeypatch.setattr(services, "_parser", lambda kind: parse)

    with pytest.raises(RuntimeError):
        import_path(first_week(tmp_path))

    export = Export.objects.get()
    assert (export.status, export.error) == (JobStatus.FAILED, services.INTERNAL_ERROR)
    assert corpus() == EMPTY


def test_cancelled_import_keeps_nothing(tmp_path, monkeypatch):
    def parse(path, *, progress=None, **options):
        yield IdentityRecord("x", "X")
        yield MessageRecord("x:1", "c", "x", DAY1, "hi")
        progress(Progress(1, 2, "files"))

    monkeypatch.setattr(services, "_parser", lambda kind: parse)
    monkeypatch.setattr(ProgressReporter, "check", _raise_cancelled)

    export = import_path(first_week(tmp_path))

    assert export.status == JobStatus.CANCELLED
    assert corpus() == EMPTY


def _raise_cancelled(self):
    from ingest.progress import ImportCancelled

    if self.position.done:
        raise ImportCancelled


# -- deleting --------------------------------------------------------------------------------


def test_deleting_an_export_removes_exactly_its_messages(tmp_path):
    older = import_path(first_week(tmp_path))
    newer = import_path(two_weeks(tmp_path))

    deleted = services.delete_export(export_id=newer.pk)

    assert deleted == 3
    assert set(Message.objects.values_list("text", flat=True)) == {
        "morning all",
        "hi @Alice",
        "lunch?",
    }
    assert set(Conversation.objects.values_list("title", flat=True)) == {"#general", "#random"}
    assert sorted(Identity.objects.values_list("display_name", flat=True)) == ["Alice", "Bob"]
    assert not Speaker.objects.filter(display_name="Sam").exists()
    assert Export.objects.get() == older


def test_deleting_an_export_takes_what_points_at_its_messages(tmp_path, django_user_model):
    from generations.models import GameGuess

    older = import_path(first_week(tmp_path))
    newer = import_path(two_weeks(tmp_path))
    member = django_user_model.objects.create_user("m")
    for message in Message.objects.all():
        GameGuess.objects.create(
            user=member,
            speaker=message.identity.speaker,
            message=message,
            guessed_fake=False,
            correct=True,
        )

    services.delete_export(export_id=newer.pk)

    assert Message.objects.filter(export=older).count() == 3
    assert set(GameGuess.objects.values_list("message__export", flat=True)) == {older.pk}
    assert GameGuess.objects.count() == 3


def test_deleting_an_export_runs_the_same_statements_whatever_its_size(tmp_path):
    """Its messages are deleted in SQL, never fetched one by one (1M messages took 1.5 GB)."""

    def statements(n: int) -> list[str]:
        rows = [("U1" if i % 2 else "U2", f"m{i}") for i in range(n)]
        export = import_path(slack_export(tmp_path / f"{n}.zip", {"general": rows}))
        with CaptureQueriesContext(connection) as queries:
            services.delete_export(export_id=export.pk)
        assert not Message.objects.exists()
        return [q["sql"] for q in queries.captured_queries]

    small, large = statements(4), statements(400)
    assert len(small) == len(large)
    assert [sql for sql in large if sql.startswith("DELETE FROM ingest_message WHERE id IN")]


def test_deleting_every_export_empties_the_corpus(tmp_path):
    first = import_path(first_week(tmp_path))
    second = import_path(two_weeks(tmp_path))

    services.delete_export(export_id=first.pk)
    services.delete_export(export_id=second.pk)

    assert corpus() == EMPTY


def test_a_member_keeps_their_speaker_when_its_export_goes(tmp_path, member):
    export = import_path(first_week(tmp_path))
    Speaker.objects.filter(display_name="Alice").update(member=member)

    services.delete_export(export_id=export.pk)

    assert list(Speaker.objects.values_list("display_name", flat=True)) == ["Alice"]


def test_an_excluded_person_stays_excluded_when_their_export_is_imported_again(tmp_path):
    path = first_week(tmp_path)
    export = import_path(path)
    Identity.objects.filter(display_name="Bob").update(excluded=True)

    services.delete_export(export_id=export.pk)
    import_path(path)

    bob = Identity.objects.get(display_name="Bob")
    assert bob.excluded
    assert not trainable_messages().filter(identity=bob).exists()


def test_a_speaker_told_apart_from_another_goes_with_its_export(tmp_path):
    export = import_path(first_week(tmp_path))
    Speaker.objects.get(display_name="Bob").not_same_as.add(Speaker.create_named("Bob"))

    services.delete_export(export_id=export.pk)

    assert list(Speaker.objects.values_list("display_name", flat=True)) == ["Bob"]  # the other


def test_a_speaker_with_identities_elsewhere_survives(tmp_path):
    slack = import_path(first_week(tmp_path))
    path = tmp_path / "signal.backup"
    write_backup(path, messages=FIXTURE_MESSAGES)
    import_path(path, passphrase=PASSPHRASE, owner_name="Alice")  # Alice's phone

    services.delete_export(export_id=slack.pk)

    alice = Speaker.objects.get(display_name="Alice")
    assert list(alice.identities.values_list("source_kind", flat=True)) == ["signal"]


def test_a_running_export_cannot_be_deleted(tmp_path):
    export = Export.objects.create(original_name="x.zip", status=JobStatus.RUNNING)

    with pytest.raises(services.ImportInProgress):
        services.delete_export(export_id=export.pk)


def test_deleting_an_export_deletes_its_kept_file(
    tmp_path, uploads, django_capture_on_commit_callbacks
):
    export = stored_export(first_week(tmp_path), keep_file=True)
    services.import_export(export_id=export.pk)

    with django_capture_on_commit_callbacks(execute=True):
        services.delete_export(export_id=export.pk)

    assert not any(p.is_file() for p in uploads.rglob("*"))


# -- the loaders -----------------------------------------------------------------------------


def test_the_portable_loader_counts_new_and_duplicate_rows(tmp_path):
    export = Export.objects.create(original_name="x")
    identity = Identity.objects.create(source_kind="slack", external_id="U1", display_name="A")
    conversation = Conversation.objects.create(source_kind="slack", external_id="C1")

    def row(n):
        return MessageRow(
            conversation.pk, identity.pk, export.pk, "slack", f"C1:{n}", DAY1, "t", ""
        )

    earlier = Export.objects.create(original_name="earlier")
    Message.objects.create(**row(0)._replace(export_id=earlier.pk)._asdict())
    with OrmMessageLoader(export_id=export.pk, source_kind="slack", batch_size=2) as loader:
        for n in (0, 1, 2, 2, 3):
            loader.add(row(n))

    assert (loader.inserted, loader.duplicates) == (3, 2)


def test_conversations_keep_their_kind(tmp_path):
    dm = SlackConversation("D1", "d", kind="dm", members=("U1", "U2"))
    import_path(slack_export(tmp_path / "dm.zip", {dm: [("U1", "psst")]}))

    conversation = Conversation.objects.get()
    assert (conversation.title, conversation.is_group) == ("Alice, Bob", False)


def test_messages_are_found_by_export_and_by_person_through_indexes():
    """Migration 0005 indexes export_id outside Django's knowledge (BRIN on PostgreSQL): a later
    migration that rebuilds the table on SQLite would drop it silently."""
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, "ingest_message")
    indexed = {tuple(c["columns"]) for c in constraints.values() if c["index"]}
    assert {("export_id",), ("identity_id",), ("conversation_id", "sent_at")} <= indexed
