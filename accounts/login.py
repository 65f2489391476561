"""Logging in, with failed attempts throttled (the site's login page and the admin's).

Both pages use a form of ours that refuses a locked login before the password is checked; the
failures are counted from Django's ``user_login_failed`` signal.

After ``JOE_LOGIN_FAILURES`` failed logins in a row for one username from one address, that
username is locked for that address for ``JOE_LOGIN_LOCK_MINUTES``; an address is locked for
every username after four times as many. Counting per username *and* address keeps a stranger
from locking a friend out of their account from elsewhere. The counts live in the cache (Redis in
production), keyed by a hash of the username, never the password.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time

from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.urls import reverse

log = logging.getLogger(__name__)

LOCKED = (
    "Too many failed logins for this account from your address. Try again in {minutes}, or "
    "ask whoever runs joe to set a new password for you."
)
ADDRESS_FACTOR = 4  # an address may fail this many times the per-username count, all names


def client_address(request: HttpRequest) -> str:
    """The client's address: behind joe's TLS proxy, the one it appended to X-Forwarded-For."""
    if settings.JOE_BEHIND_PROXY:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        if forwarded.strip():
            return forwarded.split(",")[-1].strip()
    return request.META.get("REMOTE_ADDR", "") or "unknown"


def _keys(request: HttpRequest, username: str) -> tuple[str, str]:
    address = client_address(request)
    name = hashlib.sha256(username.strip().casefold().encode()).hexdigest()[:32]
    return f"joe:login-failures:{name}:{address}", f"joe:login-failures::{address}"


def seconds_locked(request: HttpRequest, username: str) -> int:
    """How much longer logins as ``username`` from this request's address are refused (0: not)."""
    limit = settings.JOE_LOGIN_FAILURES
    if limit <= 0:
        return 0
    pair, address = _keys(request, username)
    now = time.time()
    left = 0.0
    for key, most in ((pair, limit), (address, limit * ADDRESS_FACTOR)):
        count, until = cache.get(key) or (0, 0.0)
        if count >= most and until > now:
            left = max(left, until - now)
    return math.ceil(left)


def _record_failure(request: HttpRequest, username: str) -> None:
    if settings.JOE_LOGIN_FAILURES <= 0 or seconds_locked(request, username):
        return  # attempts while locked do not lengthen the lock
    window = settings.JOE_LOGIN_LOCK_MINUTES * 60
    until = time.time() + window
    for key in _keys(request, username):
        count, _until = cache.get(key) or (0, 0.0)
        cache.set(key, (count + 1, until), window)
    if seconds_locked(request, username):
        log.warning(
            "Login locked for %s minutes after %s failed attempts from %s",
            settings.JOE_LOGIN_LOCK_MINUTES,
            settings.JOE_LOGIN_FAILURES,
            client_address(request),
        )


@receiver(user_login_failed, dispatch_uid="joe-login-throttle-failed")
def _count_failure(sender, credentials: dict, request: HttpRequest | None = None, **kwargs) -> None:
    username = credentials.get("username")
    if request is not None and username:
        _record_failure(request, username)


@receiver(user_logged_in, dispatch_uid="joe-login-throttle-success")
def _forget_failures(sender, request: HttpRequest | None, user, **kwargs) -> None:
    if request is not None:
        cache.delete(_keys(request, user.get_username())[0])


def _in_words(seconds: int) -> str:
    minutes = max(1, math.ceil(seconds / 60))
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


class _SaysWhenLocked:
    """Says when a login is locked, and for how long, instead of "incorrect password"."""

    def clean(self):  # noqa: ANN201
        username = self.cleaned_data.get("username")
        if username and self.request is not None:
            left = seconds_locked(self.request, username)
            if left:
                raise ValidationError(LOCKED.format(minutes=_in_words(left)), code="locked")
        return super().clean()


class ThrottledAuthenticationForm(_SaysWhenLocked, AuthenticationForm):
    pass


class ThrottledAdminAuthenticationForm(_SaysWhenLocked, AdminAuthenticationForm):
    pass


class LoginView(auth_views.LoginView):
    form_class = ThrottledAuthenticationForm
    redirect_authenticated_user = True

    def get_redirect_url(self) -> str:
        # ?next=/accounts/login/ for someone logged in would send them here again and again.
        url = super().get_redirect_url()
        return "" if url.split("?")[0] == reverse("login") else url

    def form_invalid(self, form: AuthenticationForm) -> HttpResponse:
        response = super().form_invalid(form)
        if form.has_error("__all__", "locked"):
            response.status_code = 429
        return response
