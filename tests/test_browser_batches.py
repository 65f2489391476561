"""In a real browser: staff start a batch, watch it fill without reloading, and hear it end."""

from __future__ import annotations

import pytest

from generations.models import GenerationBatch
from joe_site.jobs import JobStatus
from tests.builders.generation import (
    checkpoint_copy,
    make_friends,
    make_run,
    tiny_checkpoint,
    wait_for_gpu_worker,
)
from tests.conftest import log_in

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_staff_watch_a_batch_fill_and_its_end_is_read_out(
    new_page, staff, tmp_path, celery_worker_on_redis
):
    wait_for_gpu_worker()
    friends = make_friends()
    make_run(checkpoint_copy(tiny_checkpoint(), tmp_path / "checkpoint"), friends)
    page = new_page()
    log_in(page, "staff", "correct horse 3")
    page.goto("/batches/")
    for slug in ("ann", "bo", "cy"):
        page.fill(f"input[name=quota_{slug}]", "2")
    page.fill("input[name=max_new_tokens]", "8")
    page.click("text=Start batch")
    page.wait_for_url("**/batches/*/")
    page.evaluate("window.stillTheSamePage = true")

    status = page.locator("[data-testid=batch-status]")
    status.filter(has_text="Succeeded").wait_for(timeout=60_000)

    batch = GenerationBatch.objects.get()
    assert batch.status == JobStatus.SUCCEEDED
    assert page.evaluate("window.stillTheSamePage") is True
    # Read out once, from a live region the refreshes leave in place; the swapped panel is none.
    page.wait_for_function(
        "document.getElementById('status-announcer').textContent.includes('succeeded')"
    )
    kept = batch.stats["kept"]
    assert page.locator("#status-announcer").text_content() == (
        f"Batch #{batch.pk}: succeeded, {kept} of 6 snippets kept"
    )
    assert page.locator("#batch-progress[aria-live], #batch-progress [aria-live]").count() == 0


def test_the_cancel_button_keeps_keyboard_focus_while_the_page_refreshes(new_page, staff, tmp_path):
    from generations.services import create_batch

    friends = make_friends()
    run = make_run(checkpoint_copy(tiny_checkpoint(), tmp_path / "checkpoint"), friends)
    batch = create_batch(
        run=run, per_speaker={"ann": 3}, conversations=0, temperature=0.9, top_p=0.95,
        top_k=50, max_new_tokens=8, prompt="", base_seed=1,
    )  # fmt: skip
    page = new_page()
    log_in(page, "staff", "correct horse 3")
    page.goto(batch.get_absolute_url())
    page.get_by_role("button", name="Cancel batch").focus()

    with page.expect_response(lambda r: r.url.endswith(batch.get_absolute_url())):
        pass  # the panel is swapped for a fresh one (every second while queued or running)
    page.wait_for_timeout(300)
    page.keyboard.press("Enter")

    page.locator("[data-testid=batch-status]", has_text="Cancelled").wait_for()
    batch.refresh_from_db()
    assert batch.status == JobStatus.CANCELLED


def test_picking_another_model_asks_for_its_friends(new_page, staff, tmp_path):
    from ingest.models import Speaker

    friends = make_friends()
    checkpoint = checkpoint_copy(tiny_checkpoint(), tmp_path / "checkpoint")
    make_run(checkpoint, friends)
    dee = Speaker.create_named("Dee")
    older = make_run(checkpoint, {"ann": friends["ann"], "dee": dee}, active=False)
    page = new_page()
    log_in(page, "staff", "correct horse 3")
    page.goto("/batches/")
    assert page.locator("input[name=quota_bo]").count() == 1

    page.select_option("select[name=run]", str(older.pk))

    page.locator("input[name=quota_dee]").wait_for()
    assert page.locator("input[name=quota_bo]").count() == 0
    page.fill("input[name=quota_dee]", "1")
    page.fill("input[name=quota_ann]", "0")
    page.click("text=Start batch")
    page.wait_for_url("**/batches/*/")
    batch = GenerationBatch.objects.get()
    assert (batch.run_id, batch.per_speaker) == (older.pk, {"dee": 1})
