"""Gallery pages: browse, vote, star, permalink, share links, leaderboards and staff curation.

Every htmx action renders a partial of the page it came from and works as a plain form post too.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import replace

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.core.cache import cache
from django.db import transaction
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseNotModified,
)
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.views.decorators.http import require_GET, require_POST, require_safe
from django_htmx.http import trigger_client_event

from accounts.decorators import staff_required
from generations import cards, consent, ranking, selectors, share_card, votes
from generations.models import Bubble, CurationError, ShareLink, Snippet
from trainer.ml.redaction import redact


class GalleryForm(forms.Form):
    sort = forms.ChoiceField(choices=[(s, s) for s in ranking.SORTS], required=False)
    speaker = forms.SlugField(required=False)
    page = forms.IntegerField(min_value=1, max_value=10_000, required=False)
    seed = forms.IntegerField(min_value=0, max_value=2**31, required=False)


def _next_url(request: HttpRequest, default: str) -> str:
    url = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(url, {request.get_host()}, request.is_secure()):
        return url
    return default


def _toast(response: HttpResponse, message: str, level: str = "success") -> HttpResponse:
    return trigger_client_event(response, "toast", {"level": level, "message": message})


@require_GET
def gallery(request: HttpRequest) -> HttpResponse:
    form = GalleryForm(request.GET)
    form.is_valid()
    params = form.cleaned_data  # the fields that are valid: a bad page number keeps the sort
    sort = params.get("sort") or ranking.DEFAULT_SORT
    page = params.get("page") or 1
    seed = params.get("seed")
    if seed is None:
        seed = secrets.randbelow(2**31)
    speakers = selectors.speakers_by_slug()
    voices = selectors.gallery_voices(speakers)
    asked = speakers.get(params.get("speaker") or "")
    # Only a voice with a fake on show filters: any other slug (a phone backup's contact,
    # someone staff excluded, a voice with nothing shown yet) is unknown, and named nowhere.
    speaker = asked if asked in voices else None
    opted_out = None  # a voice whose fakes the group saw, gone since: say so, not everyone
    if asked is not None and asked.opted_out and selectors.shown_before_opting_out(asked):
        opted_out = asked
    result = selectors.gallery_page(
        member=request.user, sort=sort, speaker=speaker, page=page, seed=seed, speakers=speakers
    )
    query = {"sort": sort, **({"speaker": speaker.slug} if speaker else {})}
    if sort == "random":
        query["seed"] = seed
    next_url = request.get_full_path()
    context = {
        "cards": cards.render_cards(request, result.snippets, next_url=next_url),
        "sort": sort,
        "sorts": ranking.SORTS,
        "speaker": speaker,
        "opted_out": opted_out,
        "speakers": voices,
        "page": page,
        "query": urlencode(query),
        "more_url": f"?{urlencode({**query, 'page': page + 1})}" if result.has_more else "",
    }
    template = "generations/gallery.html#page" if request.htmx else "generations/gallery.html"
    return render(request, template, context)


@require_POST
def vote(request: HttpRequest, pk: int) -> HttpResponse:
    value = votes.VOTE_VALUES.get(request.POST.get("value", ""))
    if value is None:
        return HttpResponseBadRequest("A vote is up, down or none.")
    try:
        snippet = votes.set_vote(member=request.user, snippet_id=pk, value=value)
    except Snippet.DoesNotExist as exc:
        raise Http404("No such snippet.") from exc
    next_url = _next_url(request, reverse("generations:snippet", args=[pk]))
    if request.htmx:
        context = {"snippet": snippet, "next_url": next_url}
        return render(request, "generations/gallery.html#vote_box", context)
    return redirect(next_url)


@require_POST
def favourite(request: HttpRequest, pk: int) -> HttpResponse:
    starred = request.POST.get("starred") == "1"
    try:
        snippet = votes.set_favourite(member=request.user, snippet_id=pk, starred=starred)
    except Snippet.DoesNotExist as exc:
        raise Http404("No such snippet.") from exc
    next_url = _next_url(request, reverse("generations:snippet", args=[pk]))
    if request.htmx:
        context = {"snippet": snippet, "next_url": next_url}
        return render(request, "generations/gallery.html#fav_box", context)
    return redirect(next_url)


def snippet(request: HttpRequest, pk: int) -> HttpResponse:
    snippets = Snippet.objects.all() if request.user.is_staff else Snippet.objects.visible()
    found = get_object_or_404(snippets.for_member(request.user), pk=pk)
    speakers = selectors.speakers_by_slug()
    is_visible = not request.user.is_staff or found.is_visible
    if is_visible:
        votes.record_impressions(member=request.user, snippet_ids=[found.pk])
    context = {
        "snippet": selectors.dress([found], speakers)[0],
        "is_visible": is_visible,
        "share_links": _share_links(request, found),
        "next_url": request.get_full_path(),
        "can_veto": found.vetoed_by_id is None and consent.can_veto(request.user, found),
    }
    return render(request, "generations/snippet.html", context)


def _share_links(request: HttpRequest, snippet: Snippet) -> list[ShareLink]:
    links = ShareLink.objects.filter(snippet=snippet, revoked_at__isnull=True)
    # A friend whose voice it is sees every public link to it, and can revoke them.
    if not request.user.is_staff and not consent.can_veto(request.user, snippet):
        links = links.filter(created_by=request.user)
    return list(links.select_related("created_by").order_by("-created_at"))


@require_POST
def create_share(request: HttpRequest, pk: int) -> HttpResponse:
    with transaction.atomic():
        # The snippet's row locked: two clicks or tabs at once would each find no open link and
        # make one, and revoking one of the twins would leave the other alive.
        locked = Snippet.objects.visible().select_for_update(of=("self",), no_key=True)
        found = get_object_or_404(locked, pk=pk)
        link = ShareLink.objects.filter(
            snippet=found, created_by=request.user, revoked_at__isnull=True
        ).first() or ShareLink.objects.create(snippet=found, created_by=request.user)
    if request.htmx:
        context = {"snippet": found, "share_links": _share_links(request, found)}
        response = render(request, "generations/snippet.html#share_box", context)
        return _toast(response, "Share link ready: anyone with it can see this one snippet.")
    messages.success(
        request, f"Share link ready: {request.build_absolute_uri(link.get_absolute_url())}"
    )
    return redirect(found)


@require_POST
def revoke_share(request: HttpRequest, pk: int) -> HttpResponse:
    link = get_object_or_404(ShareLink.objects.select_related("snippet"), pk=pk)
    if not link.can_revoke(request.user):
        raise Http404("No such share link.")
    link.revoke()
    if request.htmx:
        context = {"snippet": link.snippet, "share_links": _share_links(request, link.snippet)}
        response = render(request, "generations/snippet.html#share_box", context)
        return _toast(response, "Share link revoked: it now shows nothing.")
    messages.info(request, "Share link revoked: it now shows nothing.")
    return redirect(_next_url(request, link.snippet.get_absolute_url()))


def _active_link(token: str) -> ShareLink:
    return get_object_or_404(ShareLink.objects.active().select_related("snippet"), token=token)


@login_not_required
@require_safe  # GET, and HEAD: some unfurlers and link checkers ask with HEAD first
def share(request: HttpRequest, token: str) -> HttpResponse:
    """The public page of one shared snippet: no nav, no other names, nothing else of the group."""
    link = ShareLink.objects.active().select_related("snippet").filter(token=token).first()
    if link is None:
        # Revoked, taken down or never made: one page for all, which tells no stranger which.
        return render(request, "generations/share_gone.html", status=404)
    shown = selectors.dress([link.snippet], selectors.speakers_by_slug())[0]
    shown.bubble_list, label = _for_strangers(shown.bubble_list)
    context = {
        "snippet": shown,
        "label": label,
        "what": "conversation" if shown.kind == Snippet.Kind.CONVERSATION else "message",
        "page_url": request.build_absolute_uri(),
        "image_url": request.build_absolute_uri(reverse("generations:share_image", args=[token])),
    }
    return render(request, "generations/share.html", context)


# Direction controls a chat display name may carry (a prank's right-to-left override, say).
BIDI_CONTROLS = re.compile("[\u200e\u200f\u061c\u202a-\u202e\u2066-\u2069]")


UNNAMED = {"name": "a friend", "initial": "?"}


def _for_strangers(bubbles: list[Bubble]) -> tuple[list[Bubble], str]:
    """The bubbles and label a share link shows. A chat app names someone it has no name for by
    their phone number or address (a WhatsApp group, a Signal backup, iMessage): fine within
    the group, not on a page or card that anyone with the link can see."""
    bubbles = [
        bubble if redact(bubble.name) == bubble.name else replace(bubble, **UNNAMED)
        for bubble in bubbles
    ]
    return bubbles, _parody_label(list(dict.fromkeys(bubble.name for bubble in bubbles)))


def _parody_label(names: list[str]) -> str:
    # A name with its own direction controls is isolated (FSI ... PDI), or it would reverse the
    # rest of the label on the page, in the unfurl and on the card: "AI parody of nnA dna ...".
    names = [f"\u2068{name}\u2069" if BIDI_CONTROLS.search(name) else name for name in names]
    if len(names) > 1:
        return f"AI parody of {', '.join(names[:-1])} and {names[-1]}"
    return f"AI parody of {names[0] if names else 'a friend'}"


@login_not_required
@require_safe
def share_image(request: HttpRequest, token: str) -> HttpResponse:
    link = _active_link(token)  # checked on every request, so a revoked link stops at once
    bubbles, label = _for_strangers(link.snippet.bubbles(selectors.speakers_by_slug()))
    conversation = link.snippet.kind == Snippet.Kind.CONVERSATION
    drawn = (bubbles, label, conversation, share_card.VERSION)
    digest = hashlib.sha256(repr(drawn).encode()).hexdigest()[:24]
    etag = f'"{digest}"'
    if etag in request.headers.get("If-None-Match", ""):
        response = HttpResponseNotModified()  # the link still lives: the copy they hold is good
    else:
        key = f"share-card:{link.snippet_id}:{digest}"
        png = cache.get(key)
        if png is None:
            png = share_card.render_card(bubbles=bubbles, label=label, conversation=conversation)
            cache.set(key, png, 24 * 3600)
        response = HttpResponse(png, content_type="image/png")
    # Asked again every time (cheap, with the ETag): a revoked, opted-out or vetoed link's card
    # must stop showing at once, from browsers and from shared caches alike.
    response["Cache-Control"] = "private, no-cache"
    response["ETag"] = etag
    return response


def favourites(request: HttpRequest) -> HttpResponse:
    context = {
        "snippets": selectors.favourites_of(request.user),
        "next_url": request.get_full_path(),
    }
    return render(request, "generations/favourites.html", context)


def leaderboards(request: HttpRequest) -> HttpResponse:
    context = {
        "speaker_rows": selectors.speaker_leaderboard(),
        "spotter_rows": selectors.spotter_leaderboard(),
    }
    return render(request, "generations/leaderboards.html", context)


CURATION = {
    "publish": ("publish", "Published: it is in the gallery."),
    "unhide": ("publish", "Back in the gallery."),
    "hide": ("hide", "Hidden from the gallery."),
    "discard": ("discard", "Discarded."),
}


@staff_required
@require_POST
def curate(request: HttpRequest, pk: int) -> HttpResponse:
    found = get_object_or_404(Snippet, pk=pk)
    action = CURATION.get(request.POST.get("action", ""))
    if action is None:
        return HttpResponseBadRequest("Curation is publish, unhide, hide or discard.")
    method, done = action
    try:
        getattr(found, method)()
    except CurationError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, done)
    return redirect(_next_url(request, reverse("generations:triage")))


@staff_required
def triage(request: HttpRequest) -> HttpResponse:
    context = {
        **selectors.triage_queues(),
        "curate_first": settings.JOE_CURATE_BEFORE_PUBLISH,
        "next_url": request.get_full_path(),
    }
    return render(request, "generations/triage.html", context)
