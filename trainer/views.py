"""Staff pages for training: the runs list with a start form, and each run's live page."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import prefetch_related_objects
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.utils import timezone
from django.views.decorators.http import require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseStopPolling, trigger_client_event

from accounts.decorators import staff_required
from ingest.models import Speaker
from joe_site.jobs import ACTIVE_STATUSES, JobStatus
from trainer import services
from trainer.corpus import corpus_counts
from trainer.forms import StartRunForm
from trainer.loss_plot import loss_plot_svg
from trainer.models import TrainingRun
from trainer.tasks import LOST_RUNS

RUNS_PER_PAGE = 50
# A second identical start from the same person this soon after the first is a double click (or a
# resent form), not a wish for two runs: it gets the first run back.
DOUBLE_SUBMIT_WINDOW = timedelta(seconds=10)


@staff_required
@vary_on_headers("HX-Request")
def runs(request: HttpRequest) -> HttpResponse:
    form = StartRunForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        run, started = _start_once(
            request.user,
            name=form.cleaned_data["name"],
            base_model=form.chosen_base_model(),
            hyperparameters=form.hyperparameters(),
        )
        if started:
            ahead = _waits_behind(run) or "A GPU worker will pick it up."
            messages.success(request, f"“{run}” is queued. {ahead}")
        else:
            messages.info(request, _ALREADY_STARTED.format(run=run))
        return redirect(run)
    newest_first = (
        TrainingRun.objects.select_related("created_by")
        .prefetch_related("retrain_reasons")
        .order_by("-created_at", "-pk")
    )
    page = Paginator(newest_first, RUNS_PER_PAGE).get_page(request.GET.get("page"))
    flagged = [r.pk for r in page.object_list if r.needs_retrain]
    retrains = TrainingRun.current_retrains(flagged) if flagged else {}
    for r in page.object_list:
        r.retrained_as = retrains.get(r.pk)
    context = {
        "form": form,
        "page": page,
        # While a run on this page is queued or training, the table follows it.
        "any_in_progress": any(r.status in ACTIVE_STATUSES for r in page.object_list),
    }
    if request.htmx:
        return _live(request, "trainer/runs.html#runs_table", context, context["any_in_progress"])
    return render(request, "trainer/runs.html", {**context, "corpus": corpus_counts()})


@staff_required
@vary_on_headers("HX-Request")
def run(request: HttpRequest, pk: int) -> HttpResponse:
    training_run = get_object_or_404(TrainingRun, pk=pk)
    if LOST_RUNS.check_from_page(training_run):
        training_run.refresh_from_db()
    if request.htmx:
        return _run_live(request, training_run)
    return render(request, "trainer/run.html", _run_context(training_run))


@staff_required
@require_POST
def cancel(request: HttpRequest, pk: int) -> HttpResponse:
    training_run = get_object_or_404(TrainingRun, pk=pk)
    if training_run.in_progress:
        services.cancel_run(training_run)
        if training_run.status == JobStatus.CANCELLED:  # still queued, or its worker was gone
            note = training_run.progress_note
        else:
            note = "Cancelling: the run stops after its current step and keeps its last checkpoint."
    else:
        note = "That run has already ended."
    return _after_action(request, training_run, note, "info")


@staff_required
@require_POST
def make_active(request: HttpRequest, pk: int) -> HttpResponse:
    training_run = get_object_or_404(TrainingRun, pk=pk)
    try:
        # Staff chose this model: a retrain started earlier must not replace it when it ends.
        takeovers = training_run.choose_as_active()
    except ValueError as error:
        return _after_action(request, training_run, str(error), "error")
    note = f"“{training_run}” is now the active model: new generations use it."
    if takeovers:
        note += f" {withdrawn_takeovers(takeovers)}"
    return _after_action(request, training_run, note, "success")


def withdrawn_takeovers(takeovers: list[TrainingRun]) -> str:
    names = ", ".join(f"“{run}”" for run in takeovers)
    return f"{names}, still training, will not take its place when done."


@staff_required
@require_POST
def delete(request: HttpRequest, pk: int) -> HttpResponse:
    """Delete a run that is over and not the active model, with its checkpoints on disk; the
    snippets it generated stay in the gallery."""
    training_run = get_object_or_404(TrainingRun, pk=pk)
    refusal = training_run.why_not_deletable()
    if refusal:
        messages.error(request, refusal)
        return redirect(training_run)
    name = str(training_run)
    training_run.delete()  # its folder goes once this commits (trainer.models)
    messages.success(request, f"Deleted “{name}” and its checkpoints.")
    return redirect("trainer:runs")


@staff_required
@require_POST
def retrain(request: HttpRequest, pk: int) -> HttpResponse:
    training_run = get_object_or_404(TrainingRun, pk=pk)
    earlier = training_run.current_retrain()
    if earlier is not None:  # a page left open from before the first click
        messages.info(request, _ALREADY_RETRAINED.format(run=training_run, retrain=earlier))
        return redirect(earlier)
    new_run, started = _start_once(
        request.user,
        name=services.retrain_name(training_run),
        base_model=training_run.base_model,
        hyperparameters=training_run.hyperparameters,
        start=lambda: services.retrain(training_run, created_by=request.user),
    )
    if not started:
        messages.info(request, _ALREADY_STARTED.format(run=new_run))
    elif new_run.created_by_id != request.user.pk:  # another person's click came first
        messages.info(request, _ALREADY_RETRAINED.format(run=training_run, retrain=new_run))
    else:
        note = f"Retraining with the same settings as “{training_run}”. {_waits_behind(new_run)}"
        messages.success(request, note.strip())
    return redirect(new_run)


def _waits_behind(new_run: TrainingRun) -> str:
    """A word on the run a new one waits for ("" if none): the one training, else the oldest
    of those queued before it."""
    ahead = (
        services.training_now(other_than=new_run)
        or TrainingRun.objects.filter(status=JobStatus.QUEUED)
        .exclude(pk=new_run.pk)
        .order_by("created_at", "pk")
        .first()
    )
    if ahead is None:
        return ""
    return (
        f"It waits in the queue until “{ahead}” has finished: the GPU worker trains one run at "
        "a time."
    )


_ALREADY_STARTED = "“{run}” was started with these settings a moment ago: it is not started twice."
_ALREADY_RETRAINED = "“{run}” is already retrained as “{retrain}”: it is not started twice."


def _start_once(
    user: Any,
    *,
    name: str,
    base_model: str,
    hyperparameters: dict[str, Any],
    start: Callable[[], TrainingRun] | None = None,
) -> tuple[TrainingRun, bool]:
    """Start a run, unless this person started the very same one a moment ago and it has not
    ended yet: then that run, so a double click or a resent form does not train twice.

    Returns the run and whether it is new. Each person's starts take turns on a lock on their
    user row: the second of two simultaneous requests waits until the first has committed its
    run, then finds it. (SQLite has no row locks, but lets one writer in at a time; the window
    left there is the few milliseconds between the second request's look and its write.)
    """
    stored_name, stored_base, hp = services.stored_settings(name, base_model, hyperparameters)
    with transaction.atomic():
        list(get_user_model().objects.select_for_update().filter(pk=user.pk).values_list("pk"))
        recent = TrainingRun.objects.filter(
            created_by=user,
            name=stored_name,
            base_model=stored_base,
            status__in=ACTIVE_STATUSES,
            cancel_requested=False,
            created_at__gte=timezone.now() - DOUBLE_SUBMIT_WINDOW,
        ).order_by("-created_at", "-pk")
        # Compared here rather than in SQL: JSON equality differs between databases.
        twin = next((r for r in recent if r.hyperparameters == hp), None)
        if twin is not None:
            return twin, False
        if start is None:
            run = services.start_run(
                name=name, base_model=base_model, hyperparameters=hyperparameters, created_by=user
            )
        else:
            run = start()
        return run, True


def _run_context(training_run: TrainingRun) -> dict:
    queue_note, queue_stuck = services.queue_note(training_run)
    prefetch_related_objects([training_run], "retrain_reasons")  # the page asks three times
    return {
        "run": training_run,
        "retrained_as": training_run.current_retrain() if training_run.needs_retrain else None,
        "queue_note": queue_note,
        "queue_stuck": queue_stuck,
        "deletable": not training_run.why_not_deletable(),
        "loss_plot": loss_plot_svg(training_run.loss_history),
        "not_held_out": _not_held_out(training_run),
    }


def _not_held_out(training_run: TrainingRun) -> list[str]:
    """The names of speakers the run trained on that its report's perplexity table has no row
    for: none of their messages fell in the held-out latest sessions."""
    rows = (training_run.report or {}).get("perplexity") or []
    if not rows or not training_run.speaker_ids:
        return []
    measured = {row.get("speaker") for row in rows}
    trained = Speaker.objects.filter(pk__in=training_run.speaker_ids).order_by("display_name")
    return [s.display_name for s in trained if s.slug not in measured]


def _run_live(request: HttpRequest, training_run: TrainingRun) -> HttpResponse:
    return _live(
        request, "trainer/run.html#live", _run_context(training_run), training_run.keeps_polling
    )


def _live(request: HttpRequest, template: str, context: dict, polling: bool) -> HttpResponse:
    """A polled partial; once nothing moves any more, the last one tells htmx to stop (286)."""
    if polling:
        return render(request, template, context)
    return HttpResponseStopPolling(render_to_string(template, context, request=request))


def _after_action(
    request: HttpRequest, training_run: TrainingRun, note: str, level: str
) -> HttpResponse:
    """htmx gets the run's live panel back with a toast; a plain form post, the page."""
    if request.htmx:
        training_run.refresh_from_db()
        # The panel replaces itself; without the polling trigger in it, polling ends there too.
        context = {**_run_context(training_run), "after_action": True}
        response = render(request, "trainer/run.html#live", context)
        return trigger_client_event(response, "toast", {"level": level, "message": note})
    getattr(messages, level)(request, note)
    return redirect(training_run)
