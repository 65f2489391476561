"""Real or fake?: one round at a time, the answer kept server-side in the member's session."""

from __future__ import annotations

import secrets

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from generations import game
from generations.models import Snippet
from ingest.models import Message

SESSION_KEY = "game_round"


def _context(request: HttpRequest, **extra) -> dict:
    return {
        "score": game.score(request.user),
        "leaderboard": game.leaderboard(),
        "min_guesses": game.LEADERBOARD_MIN_GUESSES,
        **extra,
    }


def play(request: HttpRequest) -> HttpResponse:
    # A reload shows the round dealt before until it is answered: no skipping the hard ones.
    pending = request.session.get(SESSION_KEY)
    current = game.same_round(pending["kind"], pending["pk"]) if pending else None
    try:
        current = current or game.new_round(user=request.user)
    except game.GameUnavailable as exc:
        request.session.pop(SESSION_KEY, None)
        return render(request, "generations/game.html", _context(request, unavailable=str(exc)))
    same = pending and (pending["kind"], pending["pk"]) == (current.kind, current.pk)
    deal = pending.get("deal") if same else None
    request.session[SESSION_KEY] = {
        "kind": current.kind,
        "pk": current.pk,
        "deal": deal or secrets.token_urlsafe(12),  # this dealing of the round, answered once
    }
    template = "generations/game.html#round" if request.htmx else "generations/game.html"
    return render(request, template, _context(request, round=current))


@require_POST
def guess(request: HttpRequest) -> HttpResponse:
    if request.POST.get("guess") not in {"real", "fake"}:
        return redirect("generations:game")  # the round stays dealt: no skipping it this way
    pending = request.session.pop(SESSION_KEY, None)
    if pending is None:
        return redirect("generations:game")  # a reload or a second click: just play on
    # Posts sent at once (a double click without JavaScript) each read the round from the
    # session before any of them saves it popped: the database counts one answer per deal.
    try:
        result = game.record_guess(
            user=request.user,
            kind=pending["kind"],
            pk=pending["pk"],
            guessed_fake=request.POST["guess"] == "fake",
            deal=pending.get("deal") or secrets.token_urlsafe(12),
        )
    except (Snippet.DoesNotExist, Message.DoesNotExist):
        return redirect("generations:game")  # deleted or vetoed meanwhile
    if result is None:
        return redirect("generations:game")  # answered already: just play on
    context = _context(request, result=result, answer=pending["kind"])
    if not request.htmx:
        return render(request, "generations/game.html", context)
    # The htmx answer replaces the round only: the leaderboard comes along out of band, or a
    # member's fifth answer (or any answer once on it) leaves it stale until a reload.
    response = render(request, "generations/game.html#result", context)
    board = render(
        request, "generations/game.html#leaderboard", {**context, "leaderboard_oob": True}
    )
    response.content += board.content
    return response
