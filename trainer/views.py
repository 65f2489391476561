"""Staff pages for training: the runs list with a start form, and each run's live page."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.views.decorators.http import require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseStopPolling, trigger_client_event

from accounts.decorators import staff_required
from ingest.models import Speaker
from joe_site.jobs import ACTIVE_STATUSES, JobStatus
from trainer import services
from trainer.forms import StartRunForm
from trainer.loss_plot import loss_plot_svg
from trainer.models import TrainingRun


@staff_required
@vary_on_headers("HX-Request")
def runs(request: HttpRequest) -> HttpResponse:
    form = StartRunForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        run = services.start_run(
            name=form.cleaned_data["name"],
            base_model=form.chosen_base_model(),
            hyperparameters=form.hyperparameters(),
            created_by=request.user,
        )
        messages.success(request, f"“{run}” is queued: a GPU worker will pick it up.")
        return redirect(run)
    context = {
        "form": form,
        "runs": TrainingRun.objects.select_related("created_by")[:50],
        "any_in_progress": TrainingRun.objects.filter(status__in=ACTIVE_STATUSES).exists(),
    }
    if request.htmx:
        return _live(request, "trainer/runs.html#runs_table", context, context["any_in_progress"])
    return render(request, "trainer/runs.html", context)


@staff_required
@vary_on_headers("HX-Request")
def run(request: HttpRequest, pk: int) -> HttpResponse:
    training_run = get_object_or_404(TrainingRun, pk=pk)
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
        training_run.make_active()
    except ValueError as error:
        return _after_action(request, training_run, str(error), "error")
    note = f"“{training_run}” is now the active model: new generations use it."
    return _after_action(request, training_run, note, "success")


@staff_required
@require_POST
def retrain(request: HttpRequest, pk: int) -> HttpResponse:
    training_run = get_object_or_404(TrainingRun, pk=pk)
    new_run = services.retrain(training_run, created_by=request.user)
    messages.success(request, f"Retraining with the same settings as “{training_run}”.")
    return redirect(new_run)


def _run_context(training_run: TrainingRun) -> dict:
    return {
        "run": training_run,
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
        request, "trainer/run.html#live", _run_context(training_run), training_run.in_progress
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
        response = render(request, "trainer/run.html#live", _run_context(training_run))
        return trigger_client_event(response, "toast", {"level": level, "message": note})
    getattr(messages, level)(request, note)
    return redirect(training_run)
