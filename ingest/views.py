"""Staff pages: upload exports and follow their import; map identities to speakers.

Every action is a plain form post that redirects; htmx requests get the page's partial instead.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import Count, Prefetch
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.defaultfilters import date as date_filter
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseClientRedirect, push_url, trigger_client_event

from accounts import consent
from accounts.decorators import staff_required
from ingest import services
from ingest.forms import (
    ExcludeForm,
    RenameSpeakerForm,
    RetryForm,
    SpeakerChoiceForm,
    UploadForm,
)
from ingest.models import Export, Identity, Speaker, unreferenced_speakers
from ingest.progress import overlay_live_progress, request_cancel_via_cache
from ingest.speakers import matches, merge_suggestions, normalise
from ingest.tasks import LOST_IMPORTS
from ingest.uploads import HashingUploadHandler, sha256_of
from joe_site.jobs import JobStatus

# -- exports ---------------------------------------------------------------------------------

EXPORTS_PER_PAGE = 50


@csrf_exempt  # CSRF is checked by _exports, after the upload handler is in place
@sensitive_post_parameters("passphrase")
@staff_required
def exports(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        # Must happen before anything reads request.POST (as the CSRF check would).
        request.upload_handlers = [HashingUploadHandler(request)]
    return _exports(request)


@csrf_protect
def _exports(request: HttpRequest) -> HttpResponse:
    form = UploadForm()
    if request.method == "POST":
        data, files = request.POST, request.FILES  # reading them receives the upload
        form = UploadForm(data, files, too_big=getattr(request, "upload_too_big", False))
        if form.is_valid():
            export = _accept_upload(request, form)
            if request.htmx:
                return HttpResponseClientRedirect(export.get_absolute_url())
            return redirect(export)
        if request.htmx:
            return render(request, "ingest/exports.html#upload_form", {"form": form})
    newest_first = Export.objects.select_related("uploaded_by").order_by("-created_at", "-pk")
    page = Paginator(newest_first, EXPORTS_PER_PAGE).get_page(request.GET.get("page"))
    context = {
        "form": form,
        "page": page,
        # While an import or deletion on this page runs, the list follows it.
        "any_active": any(e.is_active or e.is_deleting for e in page.object_list),
    }
    if request.htmx and request.GET.get("list"):
        return render(request, "ingest/exports.html#export_list", context)
    return render(request, "ingest/exports.html", context)


def _accept_upload(request: HttpRequest, form: UploadForm) -> Export:
    data = form.cleaned_data
    export = services.create_export(
        upload=data["file"],
        sha256=sha256_of(data["file"]),
        kind=data["kind"],
        owner_name=data["owner_name"],
        keep_file=data["keep_file"],
        include_bots=data["include_bots"],
        uploaded_by=request.user,
    )
    if form.detect_error:
        export.mark_failed(form.detect_error)
        export.delete_file()  # not an export joe can read: nothing worth keeping
        return export
    if not services.queue_import(export=export, passphrase=data["passphrase"] or None):
        return export  # its page says why, and asks for the passphrase again
    earlier = export.earlier_import()
    if earlier is not None:
        messages.info(
            request,
            f"This file was already imported on {date_filter(earlier.created_at, 'j M Y')} "
            f"({earlier.original_name}): importing it again adds only messages deleted since.",
        )
    else:
        messages.success(request, f"Uploaded {export.original_name}; importing it now.")
    return export


@staff_required
def export(request: HttpRequest, pk: int) -> HttpResponse:
    export = Export.objects.select_related("uploaded_by").filter(pk=pk).first()
    if export is None:
        return _gone(request, pk)
    if LOST_IMPORTS.check_from_page(export):
        export.refresh_from_db()
    return _export_page(request, overlay_live_progress(export))


def _gone(request: HttpRequest, pk: int) -> HttpResponse:
    """An export that is no more: if it was deleted lately (its page may have been following
    the deletion on the worker), the list says so; else "not found"."""
    notice = services.recently_deleted(pk)
    if notice is None:
        raise Http404("No such export.")
    messages.success(request, notice)
    if request.htmx:
        return HttpResponseClientRedirect(reverse("ingest:exports"))
    return redirect("ingest:exports")


def _export_page(request: HttpRequest, export: Export, **extra) -> HttpResponse:
    """The export's page; for htmx (polling, cancel) only its job partial."""
    context = {
        "export": export,
        "later_overlaps": (
            list(export.later_overlaps()[:5]) if export.status == JobStatus.SUCCEEDED else []
        ),
        "earlier": export.earlier_import(),
        "retry_form": RetryForm(export=export),
        "inline_delete_max": services.INLINE_DELETE_MAX_MESSAGES,
        "worker_silent": services.worker_silent(export),
        # How long the file of a failed or cancelled import waits for a retry.
        "kept_until": (
            export.finished_at + timedelta(days=settings.JOE_FAILED_UPLOAD_DAYS)
            if export.finished_at
            else None
        ),
        **extra,
    }
    template = "ingest/export.html#job" if request.htmx else "ingest/export.html"
    return render(request, template, context)


@staff_required
def export_delete(request: HttpRequest, pk: int) -> HttpResponse:
    """GET asks for confirmation (naming the message count); POST deletes."""
    export = Export.objects.filter(pk=pk).first()
    if export is None:
        return _gone(request, pk)  # a second click on "Delete", say
    if request.method != "POST":
        return _export_page(request, export, confirm_delete=not export.is_deleting)
    try:
        deleted = services.request_delete(export_id=export.pk)
    except services.ImportInProgress as error:
        messages.error(request, str(error))
        return redirect(export)
    except Export.DoesNotExist:
        return _gone(request, pk)
    if deleted is None:  # on the worker: its page follows the deletion
        count = services.count_messages(export.messages_count)
        messages.info(
            request,
            f"Deleting {export.original_name} and its {count} on the worker; this page shows "
            "when it is done.",
        )
        if request.htmx:
            return HttpResponseClientRedirect(export.get_absolute_url())
        return redirect(export)
    messages.success(
        request, f"Deleted {export.original_name} and its {services.count_messages(deleted)}."
    )
    if request.htmx:
        return HttpResponseClientRedirect(reverse("ingest:exports"))
    return redirect("ingest:exports")


@staff_required
@require_POST
def export_keep(request: HttpRequest, pk: int) -> HttpResponse:
    """Withdraw a deletion that no worker has begun."""
    export = get_object_or_404(Export, pk=pk)
    if services.cancel_delete(export_id=export.pk):
        messages.success(request, f"{export.original_name} stays: its deletion was withdrawn.")
    else:
        messages.error(request, "A worker has already begun deleting it; it can't be stopped now.")
    return redirect(export)


@staff_required
@require_POST
def export_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    export = get_object_or_404(Export, pk=pk)
    if export.status == JobStatus.RUNNING and connection.vendor == "sqlite":
        # The running import holds SQLite's only write lock: ask through the cache instead.
        request_cancel_via_cache(export.pk)
    else:
        services.cancel_import(export)
    if request.htmx:  # the button goes with the swap: the focus goes to the status instead
        return _export_page(request, overlay_live_progress(export), focus_status=True)
    messages.info(request, "Cancelling the import: nothing of it will be kept.")
    return redirect(export)


@sensitive_post_parameters("passphrase")
@staff_required
@require_POST
def export_retry(request: HttpRequest, pk: int) -> HttpResponse:
    export = get_object_or_404(Export, pk=pk)
    if export.is_deleting:
        messages.error(request, services.BEING_DELETED)
        return redirect(export)
    if not export.can_retry:
        messages.error(request, "Only a failed or cancelled import whose file is kept can retry.")
        return redirect(export)
    form = RetryForm(request.POST, export=export)
    if not form.is_valid():
        return _export_page(request, export, retry_form=form)
    if form.cleaned_data["kind"] != export.kind:
        Export.objects.filter(pk=export.pk).update(kind=form.cleaned_data["kind"])
    if form.asks_owner and form.cleaned_data["owner_name"].strip() != export.owner_name:
        Export.objects.filter(pk=export.pk).update(
            owner_name=form.cleaned_data["owner_name"].strip()
        )
    if services.queue_import(export=export, passphrase=form.cleaned_data["passphrase"] or None):
        messages.success(request, "Importing again.")
    return redirect(export)  # else its page says why, and asks for the passphrase again


# -- speakers --------------------------------------------------------------------------------


SPEAKERS_PER_PAGE = 25


def _speakers_context(request: HttpRequest, show: Speaker | None = None) -> dict:
    """The list as the page shows it: ``q`` finds people by any of their names, ``page`` pages
    through them (a phone backup brings hundreds of contacts); every speaker stays a choice to
    merge into or move to. ``show``: a speaker the search finds is shown on its page."""
    identities = Identity.objects.annotate(message_count=Count("messages")).order_by(
        "source_kind", "display_name"
    )
    speakers = list(
        Speaker.objects.select_related("member").prefetch_related(
            Prefetch("identities", queryset=identities), "not_same_as"
        )
    )
    for speaker in speakers:
        speaker.message_count = sum(i.message_count for i in speaker.identities.all())
    query = request.GET.get("q", "").strip()
    found = [s for s in speakers if matches(s, query)] if query else speakers
    unassigned = list(identities.filter(speaker=None))
    if query:
        wanted = normalise(query)
        unassigned = [
            i
            for i in unassigned
            if wanted in f"{normalise(i.display_name)} {normalise(i.full_name)}"
        ]
    number = request.GET.get("page")
    if show is not None and show in found:
        number = found.index(show) // SPEAKERS_PER_PAGE + 1
    page = Paginator(found, SPEAKERS_PER_PAGE).get_page(number)
    return {
        "speakers": speakers,
        "page": page,
        "query": query,
        "here": _list_state(request, page.number if show is not None else None),
        "unassigned": unassigned,
        "suggestions": merge_suggestions(speakers),
    }


def _list_state(request: HttpRequest, page: int | None = None) -> str:
    """The list's search and page as a query string: the actions' URLs carry it, so that the
    list they refresh (or redirect to) is the one staff were looking at (or ``page`` of it)."""
    state = {key: request.GET[key] for key in ("q", "page") if request.GET.get(key, "").strip()}
    if page is not None:
        state.pop("page", None)
        state.update({"page": str(page)} if page > 1 else {})
    return f"?{urlencode(state)}" if state else ""


@staff_required
def speakers(request: HttpRequest) -> HttpResponse:
    context = _speakers_context(request)
    if request.htmx and not request.htmx.history_restore_request:  # the search box
        return render(request, "ingest/speakers.html#speaker_list", context)
    return render(request, "ingest/speakers.html", context)


def _speakers_changed(
    request: HttpRequest,
    message: str,
    level: str = "success",
    focus: Speaker | None = None,
    focus_suggestions: bool = False,
) -> HttpResponse:
    """After an action: the refreshed list and a toast (htmx), or a redirect and a message.
    ``focus``: the speaker whose heading takes the focus (the control used is gone; the list
    turns to its page), or the suggestions' heading."""
    if request.htmx:
        context = {
            **_speakers_context(request, show=focus),
            "focus_speaker": focus.pk if focus else None,
            "focus_suggestions": focus_suggestions,
        }
        # Merged into someone the search does not find: the list's count takes the focus.
        context["focus_count"] = focus is not None and focus not in context["page"].object_list
        if focus_suggestions and not context["suggestions"] and context["page"].object_list:
            # The last pair told apart took the suggestions away: the list's first speaker.
            context["focus_speaker"] = context["page"].object_list[0].pk
        response = render(request, "ingest/speakers.html#speaker_list", context)
        if focus is not None and context["here"] != _list_state(request):
            push_url(response, reverse("ingest:speakers") + context["here"])
        return trigger_client_event(response, "toast", {"level": level, "message": message})
    messages.add_message(request, messages.ERROR if level == "error" else messages.SUCCESS, message)
    return redirect(reverse("ingest:speakers") + _list_state(request))


def _form_error(form) -> str:
    return " ".join(str(e) for errors in form.errors.values() for e in errors)


@staff_required
@require_POST
def speaker_rename(request: HttpRequest, pk: int) -> HttpResponse:
    speaker = get_object_or_404(Speaker, pk=pk)
    form = RenameSpeakerForm(request.POST)
    if not form.is_valid():
        return _speakers_changed(request, _form_error(form), "error")
    old = speaker.display_name
    try:
        speaker.rename(form.cleaned_data["display_name"])
    except ValidationError as error:  # nothing left once direction controls are taken off
        return _speakers_changed(request, " ".join(error.messages), "error")
    message = f"Renamed {old} to {speaker.display_name}."
    namesake = Speaker.objects.filter(display_name__iexact=speaker.display_name).exclude(pk=pk)
    if namesake.exists():
        # Allowed (two friends may share a name), but the two look alike in every list.
        message += (
            f" Another speaker is also called {speaker.display_name}: merge them if they are"
            " the same friend, or give one a name that tells them apart."
        )
    return _speakers_changed(request, message)


@staff_required
@require_POST
def speaker_merge(request: HttpRequest, pk: int) -> HttpResponse:
    speaker = get_object_or_404(Speaker, pk=pk)
    form = SpeakerChoiceForm(request.POST)
    if not form.is_valid():
        return _speakers_changed(request, _form_error(form), "error")
    target = form.cleaned_data["speaker"]
    was_opted_out, had_deleted = target.opted_out, target.messages_deleted_at is not None
    try:
        flagged = consent.merge_speakers(speaker=speaker, target=target)
    except ValidationError as error:
        return _speakers_changed(request, " ".join(error.messages), "error")
    message = f"Merged {speaker.display_name} into {target.display_name}."
    if speaker.opted_out and not was_opted_out:
        message += f" {speaker} had opted out of training, so {target} is opted out now."
    if speaker.messages_deleted_at and not had_deleted:
        message += (
            f" {speaker} had deleted their messages from joe; {target}'s are still in the corpus:"
            f" exclude its identities, or ask {target} to delete again from their Me page."
        )
    if flagged:
        message += (
            f" Training runs that learnt {target}'s voice are marked “needs retrain” ({flagged})."
        )
    return _speakers_changed(request, message, focus=target)


@staff_required
@require_POST
def speaker_not_same(request: HttpRequest, pk: int) -> HttpResponse:
    """A suggested pair that is two people: never suggested again."""
    speaker = get_object_or_404(Speaker, pk=pk)
    form = SpeakerChoiceForm(request.POST)
    if not form.is_valid():
        return _speakers_changed(request, _form_error(form), "error")
    other = form.cleaned_data["speaker"]
    if other.pk != speaker.pk:
        speaker.not_same_as.add(other)
    return _speakers_changed(
        request,
        f"{speaker} and {other} are two people: joe no longer suggests merging them.",
        focus_suggestions=True,
    )


@staff_required
@require_POST
def identity_assign(request: HttpRequest, pk: int) -> HttpResponse:
    identity = get_object_or_404(Identity, pk=pk)
    form = SpeakerChoiceForm(request.POST)
    if not form.is_valid():
        return _speakers_changed(request, _form_error(form), "error")
    previous = identity.speaker
    target = form.cleaned_data["speaker"]
    identity.assign_to(target)
    message = f"{identity} now speaks as {target}."
    if target and target.messages_deleted_at and not identity.messages_deleted_at:
        message += (
            f" {target} deleted their messages from joe; this identity's are still in the"
            f" corpus: exclude it, or ask {target} to delete again from their Me page."
        )
    if previous is not None and previous.opted_out and target and not target.opted_out:
        # Staff may be correcting a mistake; say what it means for the opt-out.
        message += (
            f" {previous} opted out of training; these messages now train as {target}'s."
            f" Exclude the identity if they are still {previous}'s."
        )
    if previous != target:
        message += _flag_runs_that_learnt(
            identity,
            previous,
            consent.Kind.IDENTITY_MOVED,
            f"{identity} moved from {previous} to {target} after this run was trained.",
        )
    message += _drop_if_emptied(previous)
    # The row goes to the speaker it moved to, which may be on another page: the list follows.
    return _speakers_changed(request, message, focus=target)


def _flag_runs_that_learnt(
    identity: Identity, speaker: Speaker | None, kind: str, reason: str
) -> str:
    """What the toast adds about the runs marked for the identity's change."""
    note = consent.flag_runs_that_learnt_identity(identity, speaker, kind, reason)
    return f" {note}" if note else ""


def _drop_if_emptied(speaker: Speaker | None) -> str:
    """A speaker left with nothing (its last identity moved or split off, no member, nothing
    generated in its voice) is removed, or it would sit on the page with no way to go. One
    whose friend opted out or deleted their messages stays: imports still need to know."""
    if speaker is None:
        return ""
    empty = unreferenced_speakers().filter(
        pk=speaker.pk, opted_out=False, messages_deleted_at__isnull=True
    )
    if not empty.exists():
        return ""
    empty.delete()
    return f" {speaker} had no one else left and was removed."


@staff_required
@require_POST
def identity_split(request: HttpRequest, pk: int) -> HttpResponse:
    identity = get_object_or_404(Identity, pk=pk)
    previous = identity.speaker
    speaker = identity.split_off()
    message = f"{identity} is now a speaker of their own, {speaker}."
    if speaker.opted_out:
        message += f" It stays opted out of training, as {previous} is."
    message += _flag_runs_that_learnt(
        identity,
        previous,
        consent.Kind.IDENTITY_SPLIT,
        f"{identity} was split off {previous} after this run was trained on both.",
    )
    message += _drop_if_emptied(previous)
    return _speakers_changed(request, message)


@staff_required
@require_POST
def identity_exclude(request: HttpRequest, pk: int) -> HttpResponse:
    identity = get_object_or_404(Identity, pk=pk)
    form = ExcludeForm(request.POST)
    form.is_valid()
    if identity.messages_deleted_at and not form.cleaned_data.get("excluded", False):
        return _speakers_changed(
            request,
            f"{identity}'s messages were deleted by their owner: every import skips them and "
            "they stay out of training.",
            "error",
        )
    excluding = form.cleaned_data.get("excluded", False)
    flagged = ""
    if excluding:  # asked of the identity as it was: excluded already, it trained nothing
        flagged = _flag_runs_that_learnt(
            identity,
            identity.speaker,
            consent.Kind.IDENTITY_EXCLUDED,
            f"{identity} was excluded from training after this run learnt from it.",
        )
    identity.set_excluded(excluding)
    if identity.excluded:
        return _speakers_changed(request, f"{identity} is excluded from training.{flagged}")
    # Included again, but other rules may still keep it out (trainer.corpus): say which.
    if identity.is_bot:
        kept_out = "bots never train"
    elif identity.speaker is None:
        kept_out = "it has no speaker: move it to one to train on it"
    elif identity.speaker.opted_out:
        kept_out = f"{identity.speaker} opted out of training"
    else:
        return _speakers_changed(request, f"{identity} is included in training.")
    return _speakers_changed(
        request, f"{identity} is no longer excluded, but stays out of training: {kept_out}."
    )
