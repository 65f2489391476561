"""The upload form asks whose export it is where the file cannot say: iMessage and signal-export
call every owner "me"."""

from __future__ import annotations

import pytest

from ingest.models import Export, Identity
from tests.builders.signal_desktop import build_sigexport, sig
from tests.test_browser_ingest import upload_page
from tests.test_ingest_all_sources import WHEN, owner_chat_db
from tests.test_ingest_support import use_tmp_upload_dir

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def uploads(settings, tmp_path):
    return use_tmp_upload_dir(settings, tmp_path / "server")


def test_a_chat_db_asks_whose_it_is_before_it_is_sent(
    new_page, staff, tmp_path, celery_worker_on_redis
):
    page = upload_page(new_page, owner_chat_db(tmp_path / "chat.db", "hi"))
    owner = page.locator("input[name=owner_name]")
    assert owner.is_visible()
    assert owner.evaluate("el => el.required")
    assert not page.locator("input[name=passphrase]").is_visible()

    owner.fill("Dana")
    page.click("text=Upload and import")
    page.locator("[data-testid=export-status]", has_text="Succeeded").wait_for()
    assert Identity.objects.get(source_kind="imessage", is_self=True).display_name == "Dana"


def test_a_zip_that_turns_out_to_be_signal_export_asks_on_the_way_back(new_page, staff, tmp_path):
    """A zip could be anything until the server looks: it asks then, and shows the field."""
    path = build_sigexport(tmp_path / "backup.zip", {"Chat": [sig(WHEN, "Me", "hi")]})
    page = upload_page(new_page, path)
    assert not page.locator("input[name=owner_name]").is_visible()

    page.click("text=Upload and import")

    page.locator("text=Nothing was imported: say whose it is and choose the file again.").wait_for()
    owner = page.locator("input[name=owner_name]")
    assert owner.is_visible() and owner.evaluate("el => el.required")
    assert "calls its owner “me”" in page.locator("#upload-form").inner_text()
    assert not Export.objects.exists()


def test_the_owner_field_stays_when_the_same_zip_is_chosen_again(
    new_page, staff, tmp_path, celery_worker_on_redis
):
    """Choosing the file again, as the form asks, hid the field it had just shown (and made it
    optional): a zip's name says nothing, so the page forgot what the server had found."""
    path = build_sigexport(tmp_path / "backup.zip", {"Chat": [sig(WHEN, "Me", "hi")]})
    page = upload_page(new_page, path)
    page.click("text=Upload and import")
    page.locator("text=Nothing was imported: say whose it is and choose the file again.").wait_for()

    page.set_input_files("input[type=file]", str(path))

    owner = page.locator("input[name=owner_name]")
    assert owner.is_visible() and owner.evaluate("el => el.required")
    owner.fill("Dana")
    page.click("text=Upload and import")
    page.locator("[data-testid=export-status]", has_text="Succeeded").wait_for()
    assert Identity.objects.get(source_kind="signal_desktop", is_self=True).display_name == "Dana"
