"""Access rules beyond "members only" (which LoginRequiredMiddleware enforces everywhere)."""

from __future__ import annotations

from functools import wraps

from django.core.exceptions import PermissionDenied


def staff_required(view):
    """Staff-only pages: members get a 403. Anonymous visitors never get here (login first)."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_staff:
            raise PermissionDenied("Only staff can open this page.")
        return view(request, *args, **kwargs)

    return wrapper
