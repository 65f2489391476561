"""On SQLite (the demo) an open import holds the only write lock: progress and cancel go through
the cache, and the export page still moves."""

from __future__ import annotations

import pytest
from django.db import connection

from ingest.models import Export
from ingest.parsers.records import Progress
from ingest.progress import ImportCancelled, ProgressReporter
from joe_site.jobs import JobStatus

pytestmark = pytest.mark.django_db


@pytest.fixture
def as_sqlite(monkeypatch):
    monkeypatch.setattr(connection, "vendor", "sqlite")


def test_progress_reaches_the_page_through_the_cache(as_sqlite, staff_client):
    export = Export.objects.create(original_name="big.zip", status=JobStatus.RUNNING)
    with ProgressReporter(export, interval=0) as reporter:
        reporter.messages = 1234
        reporter.parser_progress(Progress(done=5, total=10, unit="files"))
    export.refresh_from_db()
    assert export.progress_done == 0  # the row itself was not written
    page = staff_client.get(f"/ingest/{export.pk}/").content.decode()
    assert "5 of 10 files read · 1,234 messages found" in page


def test_cancel_reaches_the_import_through_the_cache(as_sqlite, staff_client):
    export = Export.objects.create(original_name="big.zip", status=JobStatus.RUNNING)
    with ProgressReporter(export, interval=0) as reporter:
        staff_client.post(f"/ingest/{export.pk}/cancel/")
        with pytest.raises(ImportCancelled):
            reporter.parser_progress(Progress(done=6, total=10, unit="files"))


def test_a_cancel_of_an_earlier_attempt_does_not_stop_the_retry(as_sqlite, staff_client):
    export = Export.objects.create(original_name="big.zip", status=JobStatus.RUNNING)
    staff_client.post(f"/ingest/{export.pk}/cancel/")  # the first attempt, cancelled

    with ProgressReporter(export, interval=0) as reporter:  # "Import again", within the hour
        reporter.parser_progress(Progress(done=1, total=10, unit="files"))

    assert not reporter.cancelled.is_set()
