"""In a real browser: staff start a run, watch it train without reloading, make it active."""

from __future__ import annotations

import time

import pytest
from django.utils import timezone

from ingest.models import Conversation, Identity, Message
from joe_site.jobs import JobStatus
from tests.conftest import log_in, screenshot
from tests.test_trainer_runs import flagged, make_corpus, models_dir, tiny_base  # noqa: F401 - fixtures
from trainer.models import TrainingRun

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def bar_and_status(page) -> tuple[float, str]:
    """Both read in one go: read one after the other, a refresh landing between the two reads
    paired the last running width (70%) with "Succeeded" (CI on 2b8fbe2 failed so)."""
    style, status = page.evaluate(
        """() => [
            document.querySelector('[data-testid=progress-bar]').getAttribute('style') || '',
            document.querySelector('[data-testid=run-status]').innerText,
        ]"""
    )
    return float(style.split("width:")[1].strip().rstrip("%;")), status.strip()


def test_staff_watch_a_run_train_and_make_it_active(
    new_page,
    staff,
    models_dir,  # noqa: F811
    celery_worker_on_redis,
):
    make_corpus()
    page = new_page()
    log_in(page, "staff", "correct horse 3")
    page.goto("/trainer/")
    page.select_option("select[name=base_model]", "tiny")
    for name, value in {"name": "browser run", "max_steps": "60", "batch_size": "2",
                        "grad_accum": "1", "lr": "0.003", "warmup_steps": "2",
                        "window_len": "32"}.items():  # fmt: skip
        page.fill(f"[name={name}]", value)
    page.click("text=Start training")
    page.wait_for_url("**/trainer/*/")
    assert "is queued" in page.content()
    page.evaluate("window.stillTheSamePage = true")

    widths: list[float] = []
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        width, status = bar_and_status(page)
        widths.append(width)
        if status not in ("Queued", "Running"):
            break
        if 0 < widths[-1] < 100 and len(set(widths)) == 2:
            screenshot(page, "trainer-run-progress")
        time.sleep(0.2)

    assert page.locator("[data-testid=run-status]").inner_text() == "Succeeded", page.content()
    # A screen reader hears the end, from a live region the refreshes leave in place.
    page.wait_for_function(
        "document.getElementById('status-announcer').textContent.includes('succeeded')"
    )
    assert "browser run: succeeded" in page.locator("#status-announcer").text_content()
    assert any(0 < w < 100 for w in widths), widths  # it moved through the middle...
    assert widths[-1] == 100 and widths == sorted(widths)  # ...forwards only, to the end
    assert page.evaluate("window.stillTheSamePage") is True  # all of it without a reload
    assert page.locator("svg.loss-plot polyline").count() == 2
    assert page.locator("[data-testid=final-val-loss]").is_visible()

    page.click("text=Make this the active model")
    page.locator(".badge", has_text="active model").wait_for()
    assert page.evaluate("window.stillTheSamePage") is True
    run = TrainingRun.objects.get()
    assert run.status == JobStatus.SUCCEEDED and run.is_active
    screenshot(page, "trainer-run-finished")


def test_the_focused_button_keeps_the_focus_while_the_page_refreshes(new_page, staff, tmp_path):
    """The panel is swapped every two seconds while a run trains or waits for its report: a
    keyboard user on "Make this the active model" or "Retrain" was thrown back to the top of the
    page before they could press it (only Cancel had an id for htmx to give the focus back to)."""
    finished = TrainingRun.objects.create(
        name="just done", status=JobStatus.SUCCEEDED, checkpoint_dir=str(tmp_path),
        finished_at=timezone.now(),  # its report is still to come: the page polls
    )  # fmt: skip
    training = flagged(
        TrainingRun.objects.create(
            name="training", status=JobStatus.RUNNING, heartbeat_at=timezone.now()
        ),
        "Ann opted out after this run was trained on their messages.",
    )
    page = new_page()
    log_in(page, "staff", "correct horse 3")
    for run, button in ((finished, "Make this the active model"), (training, "Retrain")):
        page.goto(run.get_absolute_url())
        page.get_by_role("button", name=button).focus()
        with page.expect_response(run.get_absolute_url()):  # one refresh of the panel
            pass
        page.wait_for_timeout(300)  # settled
        assert page.evaluate("document.activeElement.textContent").startswith(button)


def test_after_cancel_by_keyboard_the_focus_stays_on_the_run(new_page, staff):
    """Enter on Cancel swapped in a panel without that button: the focus fell to the page
    itself, and the next Tab started again at the top, above the navigation."""
    run = TrainingRun.objects.create(
        name="training", status=JobStatus.RUNNING, heartbeat_at=timezone.now()
    )
    page = new_page()
    log_in(page, "staff", "correct horse 3")
    page.goto(run.get_absolute_url())
    page.get_by_role("button", name="Cancel run").focus()
    page.keyboard.press("Enter")
    page.get_by_text("Cancelling…").wait_for()
    with page.expect_response(run.get_absolute_url()):  # and through the next refresh
        pass
    page.wait_for_timeout(300)

    assert page.evaluate("document.activeElement.id") == "run-state"
    page.keyboard.press("Shift+Tab")  # back to where they were, not from the top of the page
    assert page.evaluate("document.activeElement.textContent").strip() == "← All runs"


def test_on_a_phone_the_retrain_reason_reads_as_a_sentence(new_page, staff):
    """The reason squeezed into a first column a word or two wide, many lines tall: the table
    now scrolls sideways instead."""
    flagged(
        TrainingRun.objects.create(name="v1", status=JobStatus.SUCCEEDED),
        "Ann opted out after this run was trained on their messages.",
    )
    page = new_page(viewport={"width": 375, "height": 800})
    log_in(page, "staff", "correct horse 3")
    page.goto("/trainer/")

    why = page.get_by_test_id("needs-retrain-why").bounding_box()
    assert why["width"] >= 200, why
    assert why["height"] < 80, why  # three lines at most


def add_message(text: str) -> Message:
    """One more message in make_corpus()'s conversation, for the redaction preview to show."""
    return Message.objects.create(
        conversation=Conversation.objects.get(), identity=Identity.objects.first(),
        source_kind="slack", external_id=f"extra-{Message.objects.count()}",
        sent_at=timezone.now(), text=text,
    )  # fmt: skip


def test_on_a_phone_the_redaction_preview_stays_inside_the_screen(new_page, staff):
    """A message with a long path in the preview widened the whole start form (a fieldset is
    as wide as its widest content) and the page scrolled sideways; its table scrolls instead."""
    make_corpus()
    add_message("ring 06 12 34 56 78, log in /home/alice/src/project/" + "very-long-folder/" * 8)
    page = new_page(viewport={"width": 390, "height": 844})
    log_in(page, "staff", "correct horse 3")
    page.goto("/trainer/")
    page.locator("#redaction-examples table").wait_for()

    assert page.evaluate("document.documentElement.scrollWidth") <= 390


def test_the_redaction_preview_reads_out_one_sentence_not_its_table(new_page, staff):
    """Each pause in typing words to redact had a screen reader read out the whole table of
    examples (thousands of characters): the live region now holds only the sentence."""
    make_corpus()
    add_message("ring me on 06 12 34 56 78 " + "and then some more words " * 20)
    page = new_page()
    log_in(page, "staff", "correct horse 3")
    page.goto("/trainer/")
    table = page.locator("#start-run fieldset table")
    table.wait_for()
    assert "<phone>" in table.inner_text()

    region = page.locator("#redaction-preview[aria-live=polite]")
    assert region.locator("table").count() == 0
    assert len(region.inner_text()) < 120
    page.locator("#id_redact_words").press_sequentially("ring")  # as typed: keyup
    page.locator("#start-run fieldset td", has_text="<redacted>").first.wait_for()
    assert region.locator("table").count() == 0


def plot_texts(page) -> list[dict]:
    """Each text of the loss plot: its size as drawn on screen (the SVG scales its font size
    with the plot) and its box, against the plot's."""
    return page.evaluate(
        """() => {
            const svg = document.querySelector('svg.loss-plot');
            const plot = svg.getBoundingClientRect();
            return [...svg.querySelectorAll(':scope > text')].map(text => {
                const box = text.getBoundingClientRect();
                return {
                    text: text.textContent,
                    px: parseFloat(getComputedStyle(text).fontSize) * svg.getScreenCTM().a,
                    left: box.left - plot.left, right: plot.right - box.right,
                    top: box.top - plot.top, bottom: plot.bottom - box.bottom,
                    box: [box.left, box.top, box.right, box.bottom],
                };
            });
        }"""
    )


def overlapping(texts: list[dict]) -> list[tuple[str, str]]:
    return [
        (a["text"], b["text"])
        for i, a in enumerate(texts)
        for b in texts[i + 1 :]
        if a["box"][0] < b["box"][2] and b["box"][0] < a["box"][2]
        and a["box"][1] < b["box"][3] and b["box"][1] < a["box"][3]
    ]  # fmt: skip


@pytest.mark.parametrize("width", [360, 420, 480, 600, 720, 1280])
def test_the_loss_plot_labels_are_readable_on_a_phone_and_a_desktop(new_page, staff, width):
    """On a 360 px phone the plot shrank to half its drawn size, and its 11 px labels with it."""
    history = [
        {"step": step, "train_loss": 4.0 - step / 400, "val_loss": 4.2 - step / 450}
        for step in range(0, 1001, 50)
    ]
    run = TrainingRun.objects.create(
        name="v1", status=JobStatus.SUCCEEDED, loss_history=history, final_val_loss=2.0
    )
    page = new_page(viewport={"width": width, "height": 800})
    log_in(page, "staff", "correct horse 3")
    page.goto(f"/trainer/{run.pk}/")

    texts = plot_texts(page)

    assert "1000" in {t["text"] for t in texts}
    small = [(t["text"], round(t["px"], 1)) for t in texts if t["px"] < 11]
    assert not small
    assert max(t["px"] for t in texts) <= 16  # not shouting on a wide screen either
    outside = [t["text"] for t in texts if min(t["left"], t["right"], t["top"], t["bottom"]) < 0]
    assert not outside
    assert not overlapping(texts)
    legend = page.locator(".loss-plot-legend")
    assert legend.inner_text() == "Loss by step: training validation"
    assert float(legend.evaluate("e => parseFloat(getComputedStyle(e).fontSize)")) >= 11
    screenshot(page, f"loss-plot-{width}")
