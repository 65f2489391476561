# ruff: noqa: F811 (the trainer fixtures imported below are used as arguments)
"""The trainer pages after review: a double click starts one run, the start form refuses
unworkable settings, the runs list pages, and the redaction preview is announced and truthful."""

from __future__ import annotations

import re
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from ingest.models import Conversation, Identity, Message, Speaker
from joe_site.jobs import JobStatus
from tests.conftest import log_in
from tests.test_trainer_runs import FORM, finished_run, flagged, queued  # noqa: F401 (a fixture)
from trainer import services, views
from trainer.forms import MAX_TOKENS_PER_STEP
from trainer.models import TrainingRun

# --- 1. a double click starts one run -------------------------------------------------------------


@pytest.mark.django_db
def test_the_same_start_twice_in_a_row_makes_one_run(
    staff_client, queued, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        first = staff_client.post("/trainer/", FORM)
        second = staff_client.post("/trainer/", FORM, follow=True)
    run = TrainingRun.objects.get()
    assert first["Location"] == run.get_absolute_url()
    assert second.redirect_chain == [(run.get_absolute_url(), 302)]
    assert queued == [run.pk]  # sent to a worker once
    page = second.content.decode()
    assert "“first try” is queued" in page  # the first click's toast...
    assert "was started with these settings a moment ago: it is not started twice" in page


@pytest.mark.django_db
def test_an_unnamed_run_is_not_started_twice_either(staff_client, queued):
    staff_client.post("/trainer/", FORM | {"name": "  "})
    staff_client.post("/trainer/", FORM | {"name": ""})
    assert TrainingRun.objects.get().name == "tiny, 40 steps"


@pytest.mark.django_db
def test_other_settings_another_person_or_later_make_a_new_run(
    staff_client, django_user_model, queued
):
    staff_client.post("/trainer/", FORM)
    staff_client.post("/trainer/", FORM | {"seed": 8})  # other settings
    staff_client.post("/trainer/", FORM | {"name": "second try"})  # another name
    other = django_user_model.objects.create_user("staff2", password="x", is_staff=True)
    other_client = Client()
    other_client.force_login(other)
    other_client.post("/trainer/", FORM)  # someone else
    assert TrainingRun.objects.count() == 4

    # The same again once the first has waited in the queue a while: a deliberate second run.
    TrainingRun.objects.update(created_at=timezone.now() - timedelta(seconds=11))
    staff_client.post("/trainer/", FORM)
    assert TrainingRun.objects.count() == 5


@pytest.mark.django_db
@pytest.mark.parametrize(
    "ended",
    [{"status": JobStatus.FAILED}, {"status": JobStatus.CANCELLED}, {"cancel_requested": True}],
)
def test_a_run_that_already_ended_is_not_a_twin(staff_client, queued, ended):
    staff_client.post("/trainer/", FORM)
    TrainingRun.objects.update(**ended)
    staff_client.post("/trainer/", FORM)
    assert TrainingRun.objects.count() == 2


@pytest.mark.django_db
def test_retrain_twice_in_a_row_makes_one_run(
    staff_client, staff, queued, django_capture_on_commit_callbacks
):
    hp = services.resolved_hyperparameters({"max_steps": 77, "seed": 3})
    run = finished_run("friends v1", is_active=True, base_model="tiny", hyperparameters=hp)
    with django_capture_on_commit_callbacks(execute=True):
        first = staff_client.post(f"/trainer/{run.pk}/retrain/")
        second = staff_client.post(f"/trainer/{run.pk}/retrain/", follow=True)
    retrained = TrainingRun.objects.exclude(pk=run.pk).get()
    assert first["Location"] == retrained.get_absolute_url()
    assert second.redirect_chain == [(retrained.get_absolute_url(), 302)]
    assert retrained.name == "friends v1 (retrain)" and retrained.hyperparameters == hp
    assert retrained.created_by == staff and retrained.activate_on_success
    assert queued == [retrained.pk]
    assert "it is not started twice" in second.content.decode()

    # Later, a page left open from before still leads to that retrain, while it is queued,
    # training or done; once it failed, another click is a deliberate second one.
    TrainingRun.objects.update(created_at=timezone.now() - timedelta(seconds=11))
    staff_client.post(f"/trainer/{run.pk}/retrain/")
    assert TrainingRun.objects.filter(name="friends v1 (retrain)").count() == 1
    TrainingRun.objects.filter(pk=retrained.pk).update(status=JobStatus.FAILED)
    staff_client.post(f"/trainer/{run.pk}/retrain/")
    assert TrainingRun.objects.filter(name="friends v1 (retrain)").count() == 2


@pytest.mark.django_db(transaction=True)
def test_two_simultaneous_starts_make_one_run(staff, queued, monkeypatch):
    """The second request waits for the first to commit its run, then finds it."""
    if connection.vendor != "postgresql":
        pytest.skip("row locks: PostgreSQL (SQLite lets one writer in at a time anyway)")
    slow_start = services.start_run

    def start_run(**kwargs):
        time.sleep(0.3)  # both requests have looked for a twin by now, without the lock
        return slow_start(**kwargs)

    monkeypatch.setattr(services, "start_run", start_run)
    barrier = threading.Barrier(2)
    statuses: list[int] = []

    def click() -> None:
        try:
            browser = Client()
            browser.force_login(staff)
            barrier.wait()
            statuses.append(browser.post("/trainer/", FORM).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=click) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert statuses == [302, 302]
    run = TrainingRun.objects.get()
    assert queued == [run.pk]


# --- 2. the start form refuses unworkable settings ------------------------------------------------


def error_of(page: str, field: str) -> str:
    """The error text linked to an input through its aria-describedby."""
    tag = re.search(rf'<[^>]*name="{field}"[^>]*>', page).group(0)
    described = re.search(r'aria-describedby="([^"]*)"', tag).group(1).split()
    assert f"id_{field}_error" in described and 'aria-invalid="true"' in tag
    box = re.search(rf'<ul class="errorlist" id="id_{field}_error">(.*?)</ul>', page, re.S)
    return re.sub(r"<[^>]+>", "", box.group(1))


@pytest.mark.django_db
def test_too_many_tokens_per_step_is_refused_on_each_of_the_three_inputs(staff_client, queued):
    huge = {"batch_size": 512, "grad_accum": 256, "window_len": 8192}
    page = staff_client.post("/trainer/", FORM | huge).content.decode()
    assert not TrainingRun.objects.exists() and queued == []
    for field in huge:
        message = error_of(page, field)
        assert "is 1,073,741,824 tokens per optimizer step; the most is 4,194,304" in message
    assert "at most 4,194,304" in page  # the help text says so before anyone trips over it


@pytest.mark.django_db
def test_absurd_steps_and_learning_rate_are_refused(staff_client, queued):
    page = staff_client.post("/trainer/", FORM | {"max_steps": 1_000_000, "lr": 1.0}).content
    page = page.decode()
    assert "At most 200,000 steps" in error_of(page, "max_steps")
    assert "At most 0.01" in error_of(page, "lr")
    assert not TrainingRun.objects.exists() and queued == []


@pytest.mark.django_db
def test_the_largest_allowed_settings_still_start(staff_client, queued):
    biggest = {"max_steps": 200_000, "lr": 0.01, "batch_size": 64, "grad_accum": 64}
    staff_client.post("/trainer/", FORM | biggest | {"window_len": 1024})
    assert MAX_TOKENS_PER_STEP == 64 * 64 * 1024
    hp = TrainingRun.objects.get().hyperparameters
    assert (hp["max_steps"], hp["lr"], hp["window_len"]) == (200_000, 0.01, 1024)


# --- 3. the runs list pages -----------------------------------------------------------------------


def make_runs(n: int) -> list[TrainingRun]:
    now = timezone.now()
    return TrainingRun.objects.bulk_create(
        TrainingRun(
            name=f"run {i}", status=JobStatus.SUCCEEDED, created_at=now - timedelta(minutes=n - i)
        )
        for i in range(n)
    )


@pytest.mark.django_db
def test_runs_list_pages_through_every_run(staff_client, django_assert_max_num_queries):
    make_runs(57)
    with django_assert_max_num_queries(8):
        first = staff_client.get("/trainer/").content.decode()
    assert first.count('data-testid="run-row"') == views.RUNS_PER_PAGE
    assert ">run 56<" in first and ">run 7<" in first and ">run 6<" not in first
    pager = re.search(r'<nav class="pager"[^>]*>(.*?)</nav>', first, re.S)
    assert 'aria-label="Training runs pages"' in pager.group(0)
    assert '<a href="?page=2" rel="next">Older runs</a>' in pager.group(1)
    assert "1–50 of 57" in pager.group(1) and "Newer" not in pager.group(1)

    second = staff_client.get("/trainer/?page=2").content.decode()
    assert second.count('data-testid="run-row"') == 7 and ">run 0<" in second
    assert '<a href="?page=1" rel="prev">Newer runs</a>' in second and "51–57 of 57" in second
    assert "Older runs" not in second
    assert "Start a run" in second
    # Out of range: the last page rather than an error.
    assert staff_client.get("/trainer/?page=99").content.decode().count("run-row") == 7


@pytest.mark.django_db
def test_one_page_has_no_pager(staff_client):
    make_runs(3)
    page = staff_client.get("/trainer/").content.decode()
    assert page.count('data-testid="run-row"') == 3 and 'class="pager"' not in page


@pytest.mark.django_db
def test_an_older_page_keeps_its_page_while_it_refreshes(staff_client):
    runs = make_runs(55)
    TrainingRun.objects.filter(pk=runs[0].pk).update(status=JobStatus.RUNNING)  # on page 2
    second = staff_client.get("/trainer/?page=2").content.decode()
    assert 'hx-get="/trainer/?page=2" hx-trigger="every 3s"' in second
    live = staff_client.get("/trainer/?page=2", headers={"HX-Request": "true"})
    assert live.status_code == 200 and live.content.decode().count("run-row") == 5
    assert "Older" not in live.content.decode() and "Newer runs" in live.content.decode()
    # Page one has nothing moving: it does not poll.
    assert "hx-trigger" not in staff_client.get("/trainer/").content.decode().split("Start a")[0]


# --- 4. the redaction preview's live region stays -------------------------------------------------


@pytest.mark.django_db
def test_redaction_preview_swaps_into_a_live_region_that_stays(staff_client):
    page = staff_client.get("/trainer/").content.decode()
    region = re.search(r'<div id="redaction-preview"[^>]*>', page).group(0)
    assert 'aria-live="polite"' in region
    trigger = re.search(r"<div hx-post=\"/trainer/redaction-preview/\"[^>]*>", page).group(0)
    assert 'hx-target="#redaction-preview"' in trigger and 'hx-swap="innerHTML"' in trigger
    preview = staff_client.post("/trainer/redaction-preview/", {"redact": "on"}).content.decode()
    # Only the inside: no second live region, no second element with the region's id.
    assert "aria-live" not in preview and 'id="redaction-preview"' not in preview


# --- 5. the redaction preview says what is true ---------------------------------------------------

ON = {"redact": "on", "redact_emails": "on", "redact_phones": "on", "redact_urls": "on"}


@pytest.fixture
def corpus(db):
    conv = Conversation.objects.create(source_kind="slack", external_id="C", title="general")
    alice = Speaker.objects.create(display_name="Alice", slug="alice")
    ident = Identity.objects.create(
        source_kind="slack", external_id="U1", display_name="Alice", speaker=alice
    )
    texts = ["Geraldine is late again", "nothing to hide here", "see you at 9"]
    for i, text in enumerate(texts):
        Message.objects.create(
            conversation=conv, identity=ident, source_kind="slack", external_id=str(i),
            sent_at=datetime(2024, 1, 1, 12, i, tzinfo=UTC), text=text,
        )  # fmt: skip


def summary(client, data: dict) -> str:
    page = client.post("/trainer/redaction-preview/", data).content.decode()
    found = re.search(r'data-testid="redaction-summary">(.*?)</p>', page, re.S)
    assert found, page
    return found.group(1)


@pytest.mark.django_db
def test_preview_of_an_empty_corpus_says_so(staff_client):
    assert summary(staff_client, ON | {"redact_words": "Gerald"}) == (
        "There are no messages to train on yet, so there is nothing to preview: upload an "
        "export and map its people to speakers first."
    )


def test_preview_with_only_words_that_match_nothing_talks_about_the_words(staff_client, corpus):
    assert summary(staff_client, {"redact": "on", "redact_words": "Moe, Barney"}) == (
        "No message in the corpus could mention one of the 2 words you listed: "
        "these settings change nothing."
    )


def test_preview_with_kinds_and_a_word_that_match_nothing(staff_client, corpus):
    text = summary(staff_client, ON | {"redact_words": "Moe"})
    assert text == (
        "No message in the corpus could hold an email address, a phone number or a link, or "
        "mention the word you listed: these settings change nothing."
    )
    assert summary(staff_client, {"redact": "on", "redact_urls": "on"}) == (
        "No message in the corpus could hold a link: these settings change nothing."
    )


def test_preview_when_candidates_change_nothing(staff_client, corpus):
    # "Gerald" is inside "Geraldine": the database finds it, the whole-word redactor leaves it.
    assert summary(staff_client, {"redact": "on", "redact_words": "Gerald"}) == (
        "The one message that could mention the word you listed would not change "
        "(a listed word counts only on its own, not inside a longer word)."
    )
    Message.objects.filter(text="see you at 9").update(text="Geraldo 123")
    assert summary(staff_client, ON | {"redact_words": "Gerald"}).startswith(
        "None of the 2 messages that could hold an email address, a phone number or a link, or "
        "mention the word you listed would change"
    )


def test_preview_with_nothing_chosen_says_so(staff_client, corpus):
    assert summary(staff_client, {"redact": "on"}).startswith(
        "Redaction is on, but nothing is chosen"
    )


def test_preview_still_shows_examples_and_says_when_it_is_off(staff_client, corpus):
    page = staff_client.post(
        "/trainer/redaction-preview/", {"redact": "on", "redact_words": "Geraldine"}
    ).content.decode()
    assert "<td>&lt;redacted&gt; is late again</td>" in page and "redaction-summary" not in page
    page = staff_client.post("/trainer/redaction-preview/", {}).content.decode()
    assert "Redaction is off" in page


# --- in a real browser: one click's worth of posts ------------------------------------------------


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_browser_double_click_sends_the_start_form_once(new_page, staff, queued, monkeypatch):
    # Only the page's guard stands between a double click and two runs here.
    monkeypatch.setattr(views, "DOUBLE_SUBMIT_WINDOW", timedelta(0))
    slow_start = services.start_run

    def start_run(**kwargs):
        time.sleep(2)  # time for a second click while the first post is on its way
        return slow_start(**kwargs)

    monkeypatch.setattr(services, "start_run", start_run)
    page = new_page()
    log_in(page, "staff", "correct horse 3")
    page.goto("/trainer/")
    page.select_option("select[name=base_model]", "tiny")
    page.fill("[name=name]", "double click")
    # Two clicks in a row, then a look at the button while the post is on its way.
    state = page.evaluate(
        """async () => {
      const b = document.querySelector("#start-run button[type=submit]");
      b.click();
      // Long enough for the first post to be on the wire, as with a real double click.
      await new Promise((resolve) => setTimeout(resolve, 300));
      b.click();
      return [b.getAttribute("aria-disabled"), b.disabled, b.textContent,
              b.form.getAttribute("aria-busy")];
    }"""
    )
    assert state == ["true", True, "Starting…", "true"]
    page.wait_for_url("**/trainer/*/")
    assert page.evaluate("() => !!document.querySelector('button[disabled]')") is False
    assert TrainingRun.objects.filter(name="double click").count() == 1

    # Back to the form (from memory or not), it can be sent again; a real double click.
    page.go_back()
    page.wait_for_url("**/trainer/")
    again = page.locator("#start-run button[type=submit]")
    assert again.is_enabled() and again.inner_text() == "Start training"
    page.fill("[name=name]", "double click again")
    again.dblclick()
    page.wait_for_url("**/trainer/*/")
    assert TrainingRun.objects.filter(name="double click again").count() == 1
    assert len(queued) == 2

    # A named submit button's value still goes with the post (Approve or Reject, say).
    page.evaluate(
        """() => {
      const form = document.createElement("form");
      form.method = "post";
      form.action = "/trainer/redaction-preview/";
      form.innerHTML = '<input type="hidden" name="csrfmiddlewaretoken">' +
        '<button type="submit" id="named" name="redact" value="on">Preview</button>';
      form.firstChild.value = document.querySelector("[name=csrfmiddlewaretoken]").value;
      document.body.appendChild(form);
    }"""
    )
    page.click("#named")
    page.wait_for_url("**/redaction-preview/")
    assert "Redaction is on, but nothing is chosen" in page.content()


@pytest.mark.django_db
def test_the_admin_shows_which_run_a_retrain_came_from_without_letting_it_be_changed(
    staff_client, queued
):
    """An editable select of every run: changing it would link the wrong runs on their pages."""
    from django.urls import reverse

    run = flagged(finished_run("v1"), "Bo opted out.")
    retrain = services.retrain(run)

    page = staff_client.get(reverse("admin:trainer_trainingrun_change", args=[retrain.pk]))

    assert 'name="retrain_of"' not in page.content.decode() and "v1" in page.content.decode()
