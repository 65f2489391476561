"""Access rules beyond "members only" (which LoginRequiredMiddleware enforces everywhere)."""

from __future__ import annotations

from functools import wraps

from django.core.exceptions import PermissionDenied
from django.utils.log import log_response
from django.views.defaults import permission_denied


def staff_required(view):
    """Staff-only pages: members get a 403. Anonymous visitors never get here (login first)."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_staff:
            # Answered here rather than raised: Django logs a raised PermissionDenied with its
            # whole traceback, for a member who only followed a link. One line says it all.
            response = permission_denied(
                request, PermissionDenied("Only staff can open this page.")
            )
            log_response(
                "Forbidden: %s, not staff, opened %s",
                request.user.get_username(),
                request.path,
                response=response,
                request=request,
            )
            return response
        return view(request, *args, **kwargs)

    return wrapper
