"""The whole product through the real UI: upload an export, map speakers, train a tiny model,
generate a batch, vote, favourite, share, and open the share link logged out. A real Celery
worker on Redis runs every job; the database is PostgreSQL in CI."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from generations.models import ShareLink, Snippet, Vote
from tests.builders.slack import User, build_slack, msg, ts_of
from tests.conftest import log_in, screenshot
from tests.test_ingest_support import use_tmp_upload_dir
from tests.test_trainer_runs import models_dir, tiny_base  # noqa: F401 - fixtures
from trainer.models import TrainingRun

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]
T0 = dt.datetime(2024, 3, 1, 18, tzinfo=dt.UTC)
FRIENDS = [User("U1", "ann", "Ann"), User("U2", "ben", "Ben"), User("U3", "cy", "Cy")]
HABITS = {"U1": "pho tonight?", "U2": "always, see you there", "U3": "ramen instead"}


def group_chat(path):
    """Thirty evenings of the same three habits: easy for a tiny model to pick up."""
    messages = []
    for evening in range(30):
        for turn, user in enumerate(["U1", "U2", "U3", "U1", "U2", "U3"]):
            when = T0 + dt.timedelta(days=evening, minutes=turn)
            messages.append(msg(user, HABITS[user], ts=ts_of(when)))
    return build_slack(path, users=FRIENDS, channels={"food": messages})


def wait_for_status(page, testid: str, text: str, timeout_ms: int = 240_000) -> None:
    page.locator(f"[data-testid={testid}]", has_text=text).wait_for(timeout=timeout_ms)


def test_upload_train_generate_vote_share(
    new_page,
    staff,
    member,
    settings,
    tmp_path,
    models_dir,  # noqa: F811
    celery_worker_on_redis,
):
    use_tmp_upload_dir(settings, tmp_path / "server")
    export_path = group_chat(tmp_path / "friends-slack.zip")
    admin = new_page()
    log_in(admin, "staff", "correct horse 3")

    # 1. upload the export and watch it import
    admin.goto("/ingest/")
    admin.set_input_files("input[type=file]", str(export_path))
    admin.click("text=Upload and import")
    wait_for_status(admin, "export-status", "Succeeded")
    assert admin.locator("[data-testid=messages-count]").inner_text() == "180"

    # 2. map speakers: give Cy their full name
    admin.goto("/ingest/speakers/")
    admin.fill("input[aria-label='New name for Cy']", "Cyrus")
    admin.locator("input[aria-label='New name for Cy']").press("Enter")
    admin.locator("[data-testid=speaker-name]", has_text="Cyrus").wait_for()

    # 3. train a tiny model and make it the active one
    admin.goto("/trainer/")
    admin.select_option("select[name=base_model]", "tiny")
    settings_to_type = {
        "name": "e2e",
        "max_steps": "40",
        "batch_size": "4",
        "grad_accum": "1",
        "lr": "0.003",
        "warmup_steps": "2",
        "window_len": "64",
    }
    for name, value in settings_to_type.items():
        admin.fill(f"[name={name}]", value)
    admin.click("text=Start training")
    admin.wait_for_url(re.compile(r".*/trainer/\d+/$"))
    wait_for_status(admin, "run-status", "Succeeded")
    admin.click("text=Make this the active model")
    admin.locator(".badge", has_text="active model").wait_for()
    run = TrainingRun.active()
    assert run is not None and run.final_val_loss is not None

    # 4. generate a batch and watch it fill the gallery
    admin.goto("/batches/")
    for field in admin.locator("input[name^='quota_']").all():
        field.fill("3")
    admin.fill("input[name=conversations]", "1")
    admin.fill("input[name=max_new_tokens]", "12")
    admin.click("text=Start batch")
    wait_for_status(admin, "batch-status", "Succeeded")
    screenshot(admin, "e2e-batch")
    visible = list(Snippet.objects.visible())
    assert visible, "the batch kept no snippet"
    assert {s.speaker.display_name for s in visible if s.speaker} <= {"Ann", "Ben", "Cyrus"}

    # 5. a member votes and favourites without reloading, then shares
    friend = new_page()
    log_in(friend, "alice", "correct horse 1")
    friend.goto("/gallery/?sort=new")
    friend.evaluate("window.stillHere = true")
    target = visible[0]
    friend.locator(f"#vote-up-{target.pk}").click()
    friend.locator(f"#vote-up-{target.pk}[aria-pressed=true]").wait_for()
    friend.locator(f"#star-{target.pk}").click()
    friend.locator(f"#star-{target.pk}[aria-pressed=true]").wait_for()
    assert friend.evaluate("window.stillHere") is True
    assert Vote.objects.get(user=member, snippet=target).value == 1
    screenshot(friend, "e2e-gallery")
    friend.goto(target.get_absolute_url())
    friend.click("text=Create share link")
    url = friend.locator("[data-testid=share-link]").first.input_value()
    assert ShareLink.objects.filter(snippet=target, created_by=member).exists()

    # 6. a stranger opens the share link, logged out
    stranger = new_page()
    assert stranger.goto(url).status == 200
    assert "AI parody of" in stranger.content()
    assert stranger.locator("nav").count() == 0
    screenshot(stranger, "e2e-share")
