"""A Signal backup's passphrase reaches the worker only through the cache (Redis in production):
uploaded while Redis is down, the backup is kept and its page asks for the passphrase again,
rather than queueing an import bound to fail; a passphrase that expired before a busy worker got
to it is asked for again the same way; typed again with Redis back, the import runs. Nowhere on
the way does the passphrase land in the database, the broker or the log."""

from __future__ import annotations

import logging
import re
from contextlib import contextmanager

import pytest
from celery.signals import before_task_publish
from django.apps import apps
from django.urls import reverse
from django.utils.html import escape

from ingest import passphrases, services
from ingest.models import Export
from joe_site import cache as fail_soft
from joe_site.jobs import SEND_FAILED, JobStatus
from tests.builders.waiting import wait_for
from tests.signal_writer import FIXTURE_MESSAGES, write_backup
from tests.test_ingest_support import (
    PASSPHRASE,
    SPACED_PASSPHRASE,
    upload,
    use_tmp_upload_dir,
)
from tests.test_jobs_lost_messages import CLOSED_PORT, broker_at
from tests.test_redis_down import cache_at

SECRETS = (PASSPHRASE, SPACED_PASSPHRASE)
NOT_KEPT = escape(services.SIGNAL_KEY_NOT_KEPT)


@pytest.fixture(autouse=True)
def uploads(settings, tmp_path):
    return use_tmp_upload_dir(settings, tmp_path)


@pytest.fixture
def backup(tmp_path):
    path = tmp_path / "signal.backup"
    write_backup(path, messages=FIXTURE_MESSAGES)
    return path


@contextmanager
def redis_unreachable(settings):
    """Redis does not answer: Django's cache and Celery's broker both point at a closed port."""
    previous = settings.CACHES
    cache_at(settings, CLOSED_PORT)
    fail_soft._warned_at = 0.0
    try:
        with broker_at(CLOSED_PORT):
            yield
    finally:
        settings.CACHES = previous
        fail_soft._warned_at = 0.0


@pytest.fixture
def published():
    """Every task message sent meanwhile, as text (headers, arguments and all)."""
    sent = []

    def record(sender=None, body=None, headers=None, **kwargs):
        sent.append(repr((body, headers)))

    before_task_publish.connect(record, weak=False)
    yield sent
    before_task_publish.disconnect(record)


def text_of(page) -> str:
    return page.content.decode()


def polls(html: str) -> bool:
    return 'hx-trigger="every 1s"' in html


def retry(client, export: Export, passphrase: str):
    return client.post(reverse("ingest:export_retry", args=[export.pk]), {"passphrase": passphrase})


def assert_passphrase_nowhere(caplog, *pages: str, messages: tuple[str, ...] = ()) -> None:
    assert not any(s in caplog.text for s in SECRETS)
    assert not any(s in page for s in SECRETS for page in pages)
    assert not any(s in message for s in SECRETS for message in messages)
    for model in apps.get_models():
        for row in model._base_manager.values_list():
            assert not any(s in str(row) for s in SECRETS), model


# -- Redis down when the backup is uploaded ---------------------------------------------------


@pytest.mark.django_db
def test_a_backup_uploaded_while_redis_is_down_is_kept_and_its_page_asks_for_the_passphrase(
    settings, staff_client, backup, caplog, published, django_capture_on_commit_callbacks
):
    caplog.set_level(logging.DEBUG)
    with redis_unreachable(settings):
        with backup.open("rb") as stream, django_capture_on_commit_callbacks(execute=True):
            response = staff_client.post(
                reverse("ingest:exports"), {"file": stream, "passphrase": SPACED_PASSPHRASE}
            )
        export = Export.objects.get()
        page = text_of(staff_client.get(response.url))

    assert response.status_code == 302 and response.url == export.get_absolute_url()
    export.refresh_from_db()
    # Not queued, so not "waiting" for a queue that would hand the worker no passphrase.
    assert (export.status, export.error) == (JobStatus.FAILED, services.SIGNAL_KEY_NOT_KEPT)
    assert export.has_file and export.can_retry
    assert published == [] and SEND_FAILED not in caplog.text
    assert NOT_KEPT in page and not polls(page)
    assert "importing it now" not in page
    assert re.search(r'<form method="post" action="/ingest/\d+/retry/"', page)
    assert '<input type="password" name="passphrase"' in page
    [line] = [r for r in caplog.records if r.name == "ingest.services"]
    assert line.levelname == "WARNING" and "did not keep its passphrase" in line.getMessage()
    assert_passphrase_nowhere(caplog, page)


@pytest.mark.django_db
def test_a_cache_that_does_not_answer_queues_nothing_even_with_the_queue_up(
    settings, staff_client, backup, queued
):
    """A worker handed a key to a passphrase that was never kept could only fail."""
    cache_at(settings, CLOSED_PORT)  # the queue (the ``queued`` fixture) takes messages

    upload(staff_client, backup, passphrase=SPACED_PASSPHRASE)

    export = Export.objects.get()
    assert queued == []
    assert (export.status, export.error) == (JobStatus.FAILED, services.SIGNAL_KEY_NOT_KEPT)


@pytest.mark.django_db
def test_typing_the_passphrase_again_while_redis_is_still_down_says_so_again(
    settings, staff_client, backup, caplog, published, django_capture_on_commit_callbacks
):
    caplog.set_level(logging.DEBUG)
    with redis_unreachable(settings):
        upload(staff_client, backup, passphrase=SPACED_PASSPHRASE)
        export = Export.objects.get()
        with django_capture_on_commit_callbacks(execute=True):
            again = retry(staff_client, export, SPACED_PASSPHRASE)
        page = text_of(staff_client.get(again.url))

    export.refresh_from_db()
    assert again.status_code == 302
    assert (export.status, export.error) == (JobStatus.FAILED, services.SIGNAL_KEY_NOT_KEPT)
    assert export.has_file and published == []
    assert NOT_KEPT in page and "Importing again." not in page and not polls(page)
    assert '<input type="password" name="passphrase"' in page
    assert_passphrase_nowhere(caplog, page)


@pytest.mark.django_db(transaction=True)
def test_once_redis_is_back_the_passphrase_typed_again_imports_the_backup(
    request, settings, redis_url, staff_client, backup, caplog, published
):
    caplog.set_level(logging.DEBUG)
    with redis_unreachable(settings):
        upload(staff_client, backup, passphrase=SPACED_PASSPHRASE)
    export = Export.objects.get()
    request.getfixturevalue("celery_worker_on_redis")  # Redis, and a worker on it, are back

    again = retry(staff_client, export, SPACED_PASSPHRASE)
    assert wait_for(lambda: not Export.objects.get(pk=export.pk).is_active)
    page = text_of(staff_client.get(again.url))

    export.refresh_from_db()
    assert export.status == JobStatus.SUCCEEDED, export.error
    assert export.messages_count > 0 and Export.objects.count() == 1  # no second upload
    assert 'data-testid="summary"' in page and NOT_KEPT not in page
    assert passphrases.key_for(export.pk) is None  # discarded when the import ended
    assert len(published) == 1
    assert_passphrase_nowhere(caplog, page, messages=tuple(published))


# -- the passphrase expired before a busy worker got to it ------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_passphrase_that_expired_in_the_queue_is_asked_for_again_without_a_new_upload(
    request, settings, redis_url, staff_client, backup, caplog, published, monkeypatch
):
    caplog.set_level(logging.DEBUG)
    cache_at(settings, redis_url)
    monkeypatch.setattr(passphrases, "TTL_SECONDS", 1)
    upload(staff_client, backup, passphrase=SPACED_PASSPHRASE)  # no worker yet: it waits
    export = Export.objects.get()
    assert wait_for(lambda: passphrases.key_for(export.pk) is None, 10)  # Redis let it expire
    monkeypatch.undo()
    request.getfixturevalue("celery_worker_on_redis")  # the busy worker gets to it now

    assert wait_for(lambda: not Export.objects.get(pk=export.pk).is_active)
    page = text_of(staff_client.get(export.get_absolute_url()))
    export.refresh_from_db()
    assert (export.status, export.error) == (JobStatus.FAILED, services.SIGNAL_KEY_GONE)
    assert export.has_file and not polls(page)
    assert escape(services.SIGNAL_KEY_GONE) in page
    assert '<input type="password" name="passphrase"' in page

    retry(staff_client, export, SPACED_PASSPHRASE)
    assert wait_for(lambda: not Export.objects.get(pk=export.pk).is_active)

    export.refresh_from_db()
    assert export.status == JobStatus.SUCCEEDED, export.error
    assert export.messages_count > 0 and Export.objects.count() == 1
    assert len(published) == 2
    assert_passphrase_nowhere(caplog, page, messages=tuple(published))
