"""Generation pages: staff batches with live progress, and members' live generation."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseStopPolling

from accounts.decorators import staff_required
from generations import live, services
from generations.forms import BatchForm, LiveForm
from generations.models import GenerationBatch, LiveGeneration
from generations.services import GenerationError, start_batch
from generations.tasks import LOST_BATCHES, LOST_LIVE
from ingest.models import Speaker
from joe_site.jobs import NEVER_STARTED, JobStatus
from trainer.models import TrainingRun

RECENT = 20


def _partial(request: HttpRequest, template: str, context: dict, *, done: bool) -> HttpResponse:
    """An htmx poll's answer; 286 once the job has ended, which stops the polling."""
    response = render(request, template, context)
    if done:
        return HttpResponseStopPolling(response.content)
    return response


# ------------------------------------------------------------------------------ batches (staff)
@staff_required
@vary_on_headers("HX-Request")
def batches(request: HttpRequest) -> HttpResponse:
    data = request.POST if request.method == "POST" else request.GET
    run = BatchForm.chosen_run(data)
    if request.htmx and request.method == "GET" and request.GET.get("quotas"):
        # Another model picked in the form: its voices' quotas.
        form = BatchForm(speakers=BatchForm.speakers_for(None, run), run=run)
        return render(request, "generations/batches.html#quotas", {"form": form})
    if request.htmx and request.method == "GET":  # the table polling itself
        context = _recent_batches()
        partial = render(request, "generations/batches.html#batches_table", context)
        return partial if context["any_in_progress"] else HttpResponseStopPolling(partial.content)
    form = BatchForm(
        request.POST or None, speakers=BatchForm.speakers_for(request.POST, run), run=run
    )
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            batch = start_batch(
                run=data["run"],
                per_speaker=form.per_speaker(),
                conversations=data["conversations"],
                temperature=data["temperature"],
                top_p=data["top_p"],
                top_k=data["top_k"],
                max_new_tokens=data["max_new_tokens"],
                prompt=data["prompt"],
                base_seed=data["base_seed"],
                created_by=request.user,
            )
        except GenerationError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, "Batch queued for the generation worker.")
            return redirect(batch)
    has_model = form.fields["run"].queryset.exists()
    context = {
        "form": form,
        "has_model": has_model,
        "first_run": None if has_model else TrainingRun.first_in_training(),
        **_recent_batches(),
    }
    return render(request, "generations/batches.html", context)


def _recent_batches() -> dict:
    """The recent-batches table's rows, and whether any of them still moves (it polls then)."""
    recent = list(GenerationBatch.objects.select_related("run", "created_by")[:RECENT])
    return {"batches": recent, "any_in_progress": any(b.is_active for b in recent)}


def _batch_snippets(batch: GenerationBatch) -> list:
    """The first snippets of a batch, with what their badges need (who vetoed, which voices)."""
    snippets = batch.snippets.select_related("speaker", "vetoed_by").prefetch_related("speakers")
    return list(snippets[:50])


@staff_required
def batch(request: HttpRequest, pk: int) -> HttpResponse:
    batch = get_object_or_404(GenerationBatch.objects.select_related("run"), pk=pk)
    if LOST_BATCHES.check_from_page(batch):
        batch.refresh_from_db()
    context = {"batch": batch, "snippets": _batch_snippets(batch)}
    if request.htmx:
        done = not batch.is_active
        return _partial(request, "generations/batch.html#progress", context, done=done)
    return render(request, "generations/batch.html", context)


@staff_required
@require_POST
def cancel_batch(request: HttpRequest, pk: int) -> HttpResponse:
    batch = get_object_or_404(GenerationBatch, pk=pk)
    if batch.is_active:
        services.cancel_batch(batch)
    if request.htmx:
        context = {"batch": batch, "snippets": _batch_snippets(batch)}
        return render(request, "generations/batch.html#progress", context)
    if batch.status == JobStatus.CANCELLED and batch.progress_note == NEVER_STARTED:
        messages.success(request, "Cancelled: the batch had not started.")
    elif batch.status == JobStatus.CANCELLED:
        messages.success(request, "Cancelled; what it kept stays.")
    else:
        messages.success(request, "Asked the worker to stop; what it kept stays.")
    return redirect(batch)


# ------------------------------------------------------------------------------ live (members)
def _voices(generation: LiveGeneration) -> set[int]:
    """The speakers a live generation writes as."""
    return {
        *(generation.speaker_ids or ()),
        *([generation.speaker_id] if generation.speaker_id else []),
    }


def _live_context(request: HttpRequest, form: LiveForm, generation: LiveGeneration | None) -> dict:
    if generation is not None:
        live.give_up_if_stuck(generation)  # waited a minute: ended, not sent again
        if LOST_LIVE.check_from_page(generation):
            generation.refresh_from_db()
    speakers = {s.slug: s for s in Speaker.objects.all()}
    opted_out = {s.pk: s for s in speakers.values() if s.opted_out}
    # A friend who opted out has every fake in their voice hidden at once: live ones too (one
    # still being written is stopped), and they leave the member's recent list.
    hidden = (
        [opted_out[pk] for pk in sorted(_voices(generation)) if pk in opted_out]
        if generation
        else []
    )
    if hidden and generation.is_active and not generation.cancel_requested:
        generation.request_cancel()
    has_model = TrainingRun.active() is not None
    return {
        "form": form,
        "generation": generation,
        "hidden_voices": hidden,
        "bubbles": live.bubbles(generation.lines, speakers) if generation and not hidden else [],
        "waiting_too_long": generation is not None and live.waiting_too_long(generation),
        # Cancelled by the worker as its member's account was deactivated, not stopped by them.
        "member_was_gone": generation is not None
        and generation.status == JobStatus.CANCELLED
        and generation.progress_note == live.MEMBER_GONE,
        "no_worker_yet": live.NO_WORKER_YET,
        "opted_out": opted_out,
        "has_model": has_model,
        "first_run": None if has_model else TrainingRun.first_in_training(),
        "no_model": live.no_model_message,  # called by the page only when there is none
    }


def _recent_live(request: HttpRequest, opted_out: dict) -> list[LiveGeneration]:
    """The member's recent live generations, less those in the voice of a friend who opted out."""
    recent = LiveGeneration.objects.filter(member=request.user).select_related("speaker")
    return [g for g in recent[: RECENT * 3] if not _voices(g) & opted_out.keys()][:RECENT]


def _render_live(
    request: HttpRequest, part: str, context: dict, *, recent: bool = True
) -> HttpResponse:
    """A part of the live page for htmx; with `recent`, the recent list comes along out of band
    (a generation started or ended: its row or badge changed)."""
    response = render(request, f"generations/live.html#{part}", context)
    if recent:
        context = {**context, "recent": _recent_live(request, context["opted_out"])}
        oob = render(request, "generations/live.html#recent", {**context, "recent_oob": True})
        response.content += oob.content
    return response


def live_page(request: HttpRequest) -> HttpResponse:
    run = TrainingRun.active()
    allowed = live.allowed_speakers(run)
    form = LiveForm(request.POST or None, allowed=allowed, opted_out=live.opted_out_voices(run))
    generation = None
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            generation = live.start_live(
                member=request.user,
                speaker=data["speaker"],
                speakers=list(data["speakers"]),
                opening=data["opening"],
                temperature=data["temperature"],
            )
        except GenerationError as exc:
            form.add_error(None, str(exc))
        else:
            if not request.htmx:
                return redirect("generations:live_generation", generation.pk)
    context = _live_context(request, form, generation)
    if request.htmx:
        response = _render_live(request, "area", context, recent=generation is not None)
        if generation is not None:
            response["HX-Push-Url"] = reverse("generations:live_generation", args=[generation.pk])
        return response
    context["recent"] = _recent_live(request, context["opted_out"])
    return render(request, "generations/live.html", context)


def live_generation(request: HttpRequest, pk: int) -> HttpResponse:
    generation = get_object_or_404(LiveGeneration, pk=pk, member=request.user)
    allowed = live.allowed_speakers(generation.run)
    initial = {
        "mode": "conversation" if generation.conversation else "speaker",
        "speaker": generation.speaker_id,
        "speakers": generation.speaker_ids if generation.conversation else [],
        "opening": generation.opening,
        "temperature": generation.temperature,
    }
    context = _live_context(request, LiveForm(initial=initial, allowed=allowed), generation)
    if request.htmx:
        # The poll that sees the end brings the recent list's new badge along; the others not.
        response = _render_live(request, "stream", context, recent=not generation.is_active)
        if not generation.is_active:
            return HttpResponseStopPolling(response.content)
        return response
    context["recent"] = _recent_live(request, context["opted_out"])
    return render(request, "generations/live.html", context)


@require_POST
def stop_live(request: HttpRequest, pk: int) -> HttpResponse:
    generation = get_object_or_404(LiveGeneration, pk=pk, member=request.user)
    if generation.is_active:
        generation.request_cancel()  # the worker stops within half a second, keeping the text
    if request.htmx:
        context = _live_context(request, LiveForm(allowed=[]), generation)
        return _render_live(request, "stream", context)
    return redirect("generations:live_generation", generation.pk)


@require_POST
def save_live(request: HttpRequest, pk: int) -> HttpResponse:
    generation = get_object_or_404(LiveGeneration, pk=pk, member=request.user)
    error = ""
    try:
        live.save_to_gallery(generation=generation, member=request.user)
    except GenerationError as exc:
        error = str(exc)
    generation.refresh_from_db()
    if request.htmx:
        context = _live_context(request, LiveForm(allowed=[]), generation)
        context["save_error"] = error
        return _render_live(request, "stream", context)
    if error:
        messages.error(request, error)
    else:
        messages.success(request, "Saved to the gallery.")
    return redirect("generations:live_generation", generation.pk)
