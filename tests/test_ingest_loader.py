"""The PostgreSQL message loader: COPY straight into the table, staging only around duplicates."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection, transaction

from ingest.loader import MessageRow, PostgresMessageLoader, message_loader
from ingest.models import Conversation, Export, Identity, Message

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the COPY loader is PostgreSQL's"),
]

DAY1 = dt.datetime(2024, 3, 1, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
def make_row():
    export = Export.objects.create(original_name="x")
    identity = Identity.objects.create(source_kind="slack", external_id="U1", display_name="A")
    conversation = Conversation.objects.create(source_kind="slack", external_id="C1")

    def row(n: int, export_id: int = export.pk) -> MessageRow:
        return MessageRow(
            conversation.pk,
            identity.pk,
            export_id,
            "slack",
            f"C1:{n}",
            DAY1 + dt.timedelta(seconds=n),
            f"text {n}\twith\\odd\nbits",
            f"C1:{n - 1}" if n % 3 else "",
        )

    row.export_id = export.pk
    return row


def store_earlier(row, *numbers: int) -> None:
    earlier = Export.objects.create(original_name="earlier")
    Message.objects.bulk_create(
        [Message(**row(n)._replace(export_id=earlier.pk)._asdict()) for n in numbers]
    )


def load(row, numbers, *, batch_size: int, open_after: int, monkeypatch, **limits):
    monkeypatch.setattr(PostgresMessageLoader, "OPEN_AFTER", open_after)
    for name, value in limits.items():
        monkeypatch.setattr(PostgresMessageLoader, name, value)
    with (
        transaction.atomic(),
        message_loader(
            export_id=row.export_id, source_kind="slack", batch_size=batch_size
        ) as loader,
    ):
        assert isinstance(loader, PostgresMessageLoader)
        for n in numbers:
            loader.add(row(n))
    return loader


def stored(row) -> list[tuple]:
    return list(
        Message.objects.filter(export_id=row.export_id)
        .order_by("sent_at")
        .values_list(
            "conversation_id",
            "identity_id",
            "export_id",
            "source_kind",
            "external_id",
            "sent_at",
            "text",
            "reply_to_external_id",
        )
    )


def test_new_rows_go_straight_into_the_table_exactly(make_row, monkeypatch):
    loader = load(make_row, range(25), batch_size=10, open_after=3, monkeypatch=monkeypatch)

    assert (loader.inserted, loader.duplicates) == (25, 0)
    assert (loader.direct_batches, loader.staged_batches) == (3, 0)
    assert stored(make_row) == [tuple(make_row(n)) for n in range(25)]


def test_a_batch_holding_a_stored_message_is_staged_and_keeps_only_new_rows(make_row, monkeypatch):
    store_earlier(make_row, 12, 30)

    loader = load(make_row, range(40), batch_size=10, open_after=3, monkeypatch=monkeypatch)

    # 0-9 direct; 10-19 hits 12 and is staged; 20-29 staged (clean, so back to COPY);
    # 30-39 direct, hits 30, staged.
    assert (loader.inserted, loader.duplicates) == (38, 2)
    assert (loader.direct_batches, loader.staged_batches) == (1, 3)
    assert Message.objects.count() == 40
    expected = [tuple(make_row(n)) for n in range(40) if n not in (12, 30)]
    assert stored(make_row) == expected


def test_the_same_message_twice_in_one_batch_is_stored_once(make_row, monkeypatch):
    loader = load(make_row, [1, 2, 3, 2, 4], batch_size=10, open_after=1, monkeypatch=monkeypatch)

    assert (loader.inserted, loader.duplicates) == (4, 1)
    assert Message.objects.count() == 4


def test_a_conflict_the_server_reports_mid_stream_is_handled(make_row, monkeypatch):
    """A big batch: the server rejects the COPY early on but reads on to its end."""
    store_earlier(make_row, 0)

    loader = load(
        make_row, range(60_000), batch_size=100_000, open_after=1, monkeypatch=monkeypatch
    )

    assert (loader.inserted, loader.duplicates) == (59_999, 1)
    assert Message.objects.count() == 60_000


def test_a_short_batch_cut_by_a_pause_is_staged_without_a_savepoint(make_row, monkeypatch):
    monkeypatch.setattr(PostgresMessageLoader, "OPEN_AFTER", 3)
    with (
        transaction.atomic(),
        message_loader(export_id=make_row.export_id, source_kind="slack", batch_size=10) as loader,
    ):
        loader.add(make_row(1))
        loader.add(make_row(2))
        loader.pause()  # a new person: the connection must be free for the ORM
        assert Identity.objects.count() == 1
        for n in range(3, 8):
            loader.add(make_row(n))

    assert (loader.inserted, loader.direct_batches, loader.staged_batches) == (7, 1, 1)


def test_after_its_savepoint_budget_the_import_stays_on_the_staging_path(make_row, monkeypatch):
    loader = load(
        make_row, range(20), batch_size=5, open_after=1, monkeypatch=monkeypatch,
        MAX_SAVEPOINTS=2,
    )  # fmt: skip

    assert (loader.direct_batches, loader.staged_batches, loader.inserted) == (2, 2, 20)
    assert stored(make_row) == [tuple(make_row(n)) for n in range(20)]


def test_an_error_after_a_fallback_still_rolls_the_whole_import_back(make_row, monkeypatch):
    store_earlier(make_row, 5)
    monkeypatch.setattr(PostgresMessageLoader, "OPEN_AFTER", 1)

    with (
        pytest.raises(RuntimeError),
        transaction.atomic(),
        message_loader(export_id=make_row.export_id, source_kind="slack", batch_size=10) as loader,
    ):
        for n in range(25):
            loader.add(make_row(n))
        raise RuntimeError("the parser found a bad file")

    assert Message.objects.count() == 1  # only the earlier export's message


def test_the_message_table_is_indexed_for_big_imports():
    """Migration 0005: what a big import keeps up to date is what the site reads by (the
    other databases: tests/test_ingest_services.py)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE tablename = 'ingest_message'")
        definitions = sorted(row[0].split(" USING ", 1)[1] for row in cursor.fetchall())
        cursor.execute(
            "SELECT collation_name FROM information_schema.columns"
            " WHERE table_name = 'ingest_message' AND column_name = 'external_id'"
        )
        collation = cursor.fetchone()[0]
    assert definitions == [
        "brin (export_id) WITH (autosummarize='on')",
        "btree (conversation_id, sent_at)",
        "btree (id)",
        "btree (identity_id)",
        "btree (source_kind, external_id)",
    ]
    assert collation == "C"
