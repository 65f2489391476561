"""Site-wide views: the home dashboard and the health check."""

from __future__ import annotations

import logging
from pathlib import Path

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.templatetags.static import static
from django.views.decorators.cache import never_cache

from accounts.models import SpeakerClaim
from generations.models import Snippet
from ingest.models import Export, Message, Speaker
from trainer.models import TrainingRun

log = logging.getLogger(__name__)


def home(request: HttpRequest) -> HttpResponse:
    staff = request.user.is_staff
    pending = SpeakerClaim.objects.filter(status=SpeakerClaim.Status.PENDING)
    context = {
        "speaker_count": Speaker.objects.count(),
        "message_count": Message.objects.count(),
        "snippet_count": Snippet.objects.visible().count(),
        "active_run": TrainingRun.active(),
        "recent_exports": Export.objects.all()[:5] if request.user.is_staff else [],
        "recent_runs": TrainingRun.objects.all()[:5] if request.user.is_staff else [],
        # Claims wait on a page of the Staff menu: say so where staff land.
        "pending_claims": pending.count() if staff else 0,
        # A friend who just joined controls their voice only once linked to their speaker.
        "unlinked": not staff
        and not Speaker.objects.filter(member=request.user).exists()
        and not pending.filter(member=request.user).exists(),
    }
    return render(request, "home.html", context)


def _check_database() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any driver error means "down"; the name is what we report
        log.warning("healthz: database check failed: %s", exc)
        return f"database: {exc.__class__.__name__}"
    return None


def _check_broker() -> str | None:
    from joe_site.celery import app

    if settings.CELERY_BROKER_URL.startswith("filesystem://"):
        folder = Path(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"])
        if folder.is_dir() and folder.stat():
            return None
        return "broker: the embedded broker folder is missing"
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:  # kombu raises many transport-specific errors
        log.warning("healthz: broker check failed: %s", exc)
        return f"broker: {exc.__class__.__name__}"
    return None


@login_not_required
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    failures = [f for f in (_check_database(), _check_broker()) if f]
    body = {"status": "ok" if not failures else "unavailable", "failed": failures}
    return JsonResponse(body, status=503 if failures else 200)


@login_not_required
def favicon(request: HttpRequest) -> HttpResponse:
    """What a browser asks for where a page names no icon (the admin's error pages, a link
    preview): the site's icon, rather than a 404 logged each time."""
    return redirect(static("favicon.svg"))
