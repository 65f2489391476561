"""The veto button on a snippet in your own voice."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.http import require_POST

from generations.consent import VetoError, veto
from generations.models import Snippet


@require_POST
def veto_snippet(request: HttpRequest, pk: int) -> HttpResponse:
    snippet = get_object_or_404(Snippet.objects.select_related("speaker"), pk=pk)
    try:
        veto(snippet=snippet, user=request.user)
    except VetoError as exc:
        messages.error(request, str(exc))
        return redirect(snippet)
    messages.success(
        request, "Vetoed: nobody will see this fake again, and its share links are dead."
    )
    return redirect("profile")
