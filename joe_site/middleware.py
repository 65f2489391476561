"""Site-wide middleware."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from django.contrib.auth import middleware as auth_middleware
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import resolve_url
from django.utils.cache import patch_cache_control
from django_htmx.http import HttpResponseClientRedirect


class LocalHealthCheckMiddleware:
    """Answers ``GET /healthz`` from the machine itself before the host check and the HTTPS
    redirect, which a container's own health check cannot pass: it calls ``127.0.0.1:8000``,
    not a host in ALLOWED_HOSTS, over plain HTTP. Anyone else (a load balancer, a request a
    proxy forwards) goes through the usual checks. The answer says only "ok" or which service
    is down, as it does to anyone."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if is_own_health_check(request.META):
            from joe_site.views import healthz

            return healthz(request)
        return self.get_response(request)


def is_own_health_check(environ: Mapping[str, Any]) -> bool:
    """A request (its WSGI environ, or request.META) for /healthz from this machine, not through
    a proxy: the container's health check, which gunicorn's access log leaves out too."""
    return (
        environ.get("PATH_INFO") == "/healthz"
        and environ.get("REQUEST_METHOD") in ("GET", "HEAD")
        and "HTTP_X_FORWARDED_FOR" not in environ
        and _is_loopback(environ.get("REMOTE_ADDR", ""))
    )


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


class LoginRequiredMiddleware(auth_middleware.LoginRequiredMiddleware):
    """Django's, but an htmx request whose session has ended (a vote on a gallery left open after
    logging out in another tab) sends the whole page to the login form, instead of the login page
    being swapped into the vote box; after logging in the member is back on that page."""

    def handle_no_permission(self, request: HttpRequest, view_func) -> HttpResponse:
        if not request.htmx:
            return super().handle_no_permission(request, view_func)
        page = request.htmx.current_url_abs_path or "/"  # None from another site's page
        login = redirect_to_login(
            page,
            resolve_url(self.get_login_url(view_func)),
            self.get_redirect_field_name(view_func),
        )
        return HttpResponseClientRedirect(login.url)


class PrivateCacheMiddleware:
    """A page that depends on who asks (it read the session: every member's page does, with
    the login check) is private, so no shared proxy keeps a friend's messages; and, unless
    the view said how long it may be kept, not stored either, so neither the browser's disk
    nor its back-forward cache shows it again after they log out. A view's own header stays
    (the share card's "private, no-cache" is revalidated with its ETag); a response that read
    no session (the public share page) is left as it is, and static files never get here:
    WhiteNoise answers them first."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if getattr(request, "session", None) is None or not request.session.accessed:
            return response
        if response.has_header("Cache-Control"):
            patch_cache_control(response, private=True)
        else:
            patch_cache_control(response, private=True, no_store=True)
        return response
