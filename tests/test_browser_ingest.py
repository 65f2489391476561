"""In a real browser: staff upload exports, watch the import, read its summary."""

from __future__ import annotations

import pytest

from ingest import services
from ingest.forms import CHOOSE_AGAIN
from ingest.models import Export, Message
from tests.conftest import log_in, screenshot
from tests.signal_writer import FIXTURE_MESSAGES, write_backup
from tests.test_ingest_support import (
    SPACED_PASSPHRASE,
    import_path,
    slack_export,
    use_tmp_upload_dir,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def uploads(settings, tmp_path):
    return use_tmp_upload_dir(settings, tmp_path / "server")


def upload_page(new_page, path):
    """The Exports page, as staff, with ``path`` chosen in its upload form."""
    page = new_page()
    log_in(page, "staff", "correct horse 3")
    page.goto("/ingest/")
    page.set_input_files("input[type=file]", str(path))
    return page


def test_staff_upload_a_slack_export_and_see_its_summary(
    new_page, staff, tmp_path, celery_worker_on_redis
):
    path = slack_export(tmp_path / "team.zip", {"general": [("U1", "hi"), ("U2", "hello <@U1>")]})
    page = upload_page(new_page, path)

    assert page.locator("[data-file-info]").inner_text().startswith("team.zip · ")
    assert not page.locator("input[name=passphrase]").is_visible()  # Signal only
    page.click("text=Upload and import")

    page.wait_for_url("**/ingest/*/")
    page.locator("[data-testid=export-status]", has_text="Succeeded").wait_for()
    assert page.locator("[data-testid=messages-count]").inner_text() == "2"
    assert page.locator("[data-testid=conversations-count]").inner_text() == "1"
    screenshot(page, "ingest-summary")

    page.click("text=Check who is who")
    assert page.locator("[data-testid=speaker-name]").all_inner_texts() == ["Alice", "Bob"]


def test_a_big_export_is_deleted_on_the_worker_while_its_page_follows(
    new_page, staff, tmp_path, celery_worker_on_redis, monkeypatch
):
    monkeypatch.setattr(services, "INLINE_DELETE_MAX_MESSAGES", 1)  # two count as big here
    path = slack_export(tmp_path / "team.zip", {"general": [("U1", "hi"), ("U2", "hello")]})
    page = upload_page(new_page, path)
    page.click("text=Upload and import")
    page.locator("[data-testid=export-status]", has_text="Succeeded").wait_for()

    page.once("dialog", lambda dialog: dialog.accept())  # "Delete team.zip and its 2 messages?"
    page.click("text=Delete export…")

    # Handed to the worker: the export's page says so, follows it, then goes to the list.
    page.locator("text=Deleting team.zip and its 2 messages on the worker").wait_for()
    screenshot(page, "export-deleting")
    page.wait_for_url("**/ingest/")
    page.locator("text=Deleted team.zip and its 2 messages.").wait_for()
    assert page.locator("[data-testid=export-row]").count() == 0
    assert not Export.objects.exists() and not Message.objects.exists()


def test_without_javascript_an_export_is_deleted_through_clean_urls(
    browser, live_server, staff, tmp_path
):
    """A plain form post end to end: no htmx, no confirm dialog, and no stray '?' on the way."""
    export = import_path(slack_export(tmp_path / "team.zip", {"general": [("U1", "hi")]}))
    context = browser.new_context(base_url=live_server.url, java_script_enabled=False)
    try:
        page = context.new_page()
        log_in(page, "staff", "correct horse 3")
        page.goto(f"/ingest/{export.pk}/")

        page.click("text=Delete export…")
        page.wait_for_url(f"{live_server.url}/ingest/{export.pk}/delete/")
        page.click("text=Delete it and its 1 message")

        page.wait_for_url(f"{live_server.url}/ingest/")
        page.locator("text=Deleted team.zip and its 1 message.").wait_for()
        assert not Export.objects.exists()
    finally:
        context.close()


def test_a_signal_backup_asks_for_its_passphrase_and_imports(
    new_page, staff, tmp_path, celery_worker_on_redis
):
    path = tmp_path / "signal-2024-05-01.backup"
    write_backup(path, messages=FIXTURE_MESSAGES)
    page = upload_page(new_page, path)

    page.fill("input[name=passphrase]", SPACED_PASSPHRASE)
    page.fill("input[name=owner_name]", "Sam")
    screenshot(page, "ingest-upload-signal")
    page.click("text=Upload and import")

    page.locator("[data-testid=export-status]", has_text="Succeeded").wait_for()
    assert int(page.locator("[data-testid=messages-count]").inner_text()) > 0
    assert SPACED_PASSPHRASE not in page.content()


def test_a_wrong_passphrase_shows_the_error_and_offers_a_retry(
    new_page, staff, tmp_path, celery_worker_on_redis
):
    path = tmp_path / "phone.backup"
    write_backup(path, messages=FIXTURE_MESSAGES)
    page = upload_page(new_page, path)
    page.fill("input[name=passphrase]", "1" * 30)
    page.click("text=Upload and import")

    page.locator("[data-testid=export-error]").wait_for()
    assert "Wrong passphrase" in page.locator("[data-testid=export-error]").inner_text()
    page.reload()  # the retry form is part of the page once the import has ended
    page.fill("input[name=passphrase]", SPACED_PASSPHRASE)
    page.click("text=Import again")
    page.locator("[data-testid=export-status]", has_text="Succeeded").wait_for()


def test_a_dropped_file_over_the_limit_is_refused_before_uploading(new_page, staff, settings):
    settings.JOE_MAX_UPLOAD_BYTES = 1024
    page = new_page()
    log_in(page, "staff", "correct horse 3")
    page.goto("/ingest/")

    drop = page.evaluate_handle(
        "() => { const d = new DataTransfer();"
        " d.items.add(new File(['x'.repeat(5000)], 'phone.backup')); return d; }"
    )
    page.dispatch_event("[data-dropzone]", "drop", {"dataTransfer": drop})

    assert "more than the 1.0 KB limit" in page.locator("[data-file-info]").inner_text()
    # Read out as it appears: the button it disables can't be reached to ask why.
    assert page.locator("[data-file-info]").get_attribute("aria-live") == "polite"
    assert page.locator("button[type=submit].primary").is_disabled()
    assert page.locator("input[name=passphrase]").is_visible()  # a .backup is a Signal backup


def test_a_mistyped_passphrase_is_caught_before_the_upload_and_shown_after_it(
    new_page, staff, tmp_path
):
    path = tmp_path / "phone.backup"
    write_backup(path, messages=FIXTURE_MESSAGES)
    page = upload_page(new_page, path)
    page.fill("input[name=passphrase]", "1234")

    page.click("text=Upload and import")  # the browser refuses to send the file
    assert page.eval_on_selector("input[name=passphrase]", "e => e.validity.patternMismatch")
    assert not page.locator("[data-upload-progress]").is_visible()

    # A browser that skips the check: the server refuses it, and the form it sends back keeps
    # the Signal fields in view, with the error and a word on choosing the file again.
    page.eval_on_selector("input[name=passphrase]", "e => e.removeAttribute('pattern')")
    page.click("text=Upload and import")
    page.get_by_text("The passphrase must be the 30 digits").wait_for()
    assert page.locator("input[name=passphrase]").is_visible()
    assert page.get_by_text(CHOOSE_AGAIN).is_visible()
    # The button pressed went with the form: the focus is on the field to fix, not the page top.
    page.wait_for_function("document.activeElement.name === 'passphrase'")
    screenshot(page, "ingest-passphrase-refused")
    assert not Export.objects.exists()


def test_the_import_is_read_out_when_it_ends_and_cancel_leaves_the_focus_on_its_status(
    new_page, staff, tmp_path
):
    from tests.test_ingest_support import stored_export

    waiting = stored_export(slack_export(tmp_path / "team.zip", {"general": [("U1", "hi")]}))
    page = new_page()
    log_in(page, "staff", "correct horse 3")
    page.goto(waiting.get_absolute_url())
    page.locator("[data-testid=export-status]", has_text="Queued").wait_for()

    services.import_export(export_id=waiting.pk)  # as the worker would, while the page polls

    page.wait_for_function(
        "document.getElementById('status-announcer').textContent.includes('succeeded')"
    )
    assert page.locator("#status-announcer").text_content() == "team.zip: succeeded, 1 new message"

    other = stored_export(slack_export(tmp_path / "more.zip", {"general": [("U2", "yo")]}))
    page.goto(other.get_absolute_url())
    page.focus("#export-cancel")
    page.keyboard.press("Enter")
    page.locator("[data-testid=export-status]", has_text="Cancelled").wait_for()
    page.wait_for_function("document.activeElement !== document.body")
    assert page.evaluate("document.activeElement.contains(document.querySelector("
                         "'[data-testid=export-status]'))")  # fmt: skip
