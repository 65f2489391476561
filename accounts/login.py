"""Logging in, with failed attempts throttled (the site's login page and the admin's, and the
pages that ask a logged-in member for their password again: changing it, deleting the account).

Both pages use a form of ours that counts each attempt, and refuses a locked one, before the
password is checked; a successful login gives its attempt back.

After ``JOE_LOGIN_FAILURES`` failed logins in a row for one username from one address (each
within ``JOE_LOGIN_LOCK_MINUTES`` of the one before), that username is locked for that address
for ``JOE_LOGIN_LOCK_MINUTES``; an address is locked for every username after four times as
many. Counting per username *and* address keeps a stranger from locking a friend out of their
account from elsewhere. The counts live in the cache (Redis in
production), keyed by a hash of the username, never the password.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import logging
import math
import secrets
import time

from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm, PasswordChangeForm
from django.contrib.auth.signals import user_logged_in
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.urls import reverse

from joe_site.cache import CacheUnavailable

log = logging.getLogger(__name__)

LOCKED = (
    "Too many failed logins for this account from your address. Try again in {minutes}, or "
    "use “Forgot your password?” on the login page."
)
LOCKED_AGAIN = (
    "Too many wrong passwords for this account from your address. Try again in {minutes}."
)
# Redis, where attempts are counted, does not answer: no password is checked uncounted.
PAUSED = (
    "Logging in is paused: joe cannot reach Redis, where it counts login attempts. Try again "
    "in a few minutes; if it lasts, ask whoever runs joe to start Redis."
)
ADDRESS_FACTOR = 4  # an address may fail this many times the per-username count, all names


def client_address(request: HttpRequest) -> str:
    """The client's address: behind joe's TLS proxy, the one it appended to X-Forwarded-For.
    An IPv6 address counts as its /64: one household or server holds a whole /64."""
    address = request.META.get("REMOTE_ADDR", "") or "unknown"
    if settings.JOE_BEHIND_PROXY:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        if forwarded.strip():
            address = forwarded.split(",")[-1].strip()
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed)


def _name(username: str) -> str:
    return hashlib.sha256(username.strip().casefold().encode()).hexdigest()[:32]


def _keys(request: HttpRequest, username: str) -> tuple[str, str]:
    address = client_address(request)
    name = _name(username)
    # A new password (accounts.password_reset) starts the username's counts afresh at every
    # address at once: they are keyed by an era that it replaces (the cache cannot list keys).
    era = cache.get(f"joe:login-era:{name}") or ""
    return f"joe:login-attempts:{name}{era}:{address}", f"joe:login-attempts::{address}"


def clear_locks(username: str) -> None:
    """Forget the failed logins of ``username`` from every address, and any lock they set (a
    member who was just given a new password by a reset link). The address-wide counts stay:
    they are about whoever else tried names from there."""
    cache.set(f"joe:login-era:{_name(username)}", f".{secrets.token_hex(8)}", None)


def _limits() -> tuple[int, int]:
    limit = settings.JOE_LOGIN_FAILURES
    return limit, limit * ADDRESS_FACTOR


def seconds_locked(request: HttpRequest, username: str) -> int:
    """How much longer logins as ``username`` from this request's address are refused (0: not).
    A lock that has run out is cleared, with the count that set it."""
    if settings.JOE_LOGIN_FAILURES <= 0:
        return 0
    now = time.time()
    left = 0.0
    for key in _keys(request, username):
        until = cache.get(f"{key}:until")
        if until is None:
            continue
        if until > now:
            left = max(left, until - now)
        else:
            cache.delete_many([key, f"{key}:until"])
    return math.ceil(left)


def count_within(key: str, seconds: int) -> int:
    """This attempt's number among those counted under ``key`` within ``seconds`` of the latest
    (the cache's atomic increment)."""
    cache.add(key, 0, seconds)
    try:
        count = cache.incr(key)
    except ValueError:  # it expired between the two calls
        cache.add(key, 1, seconds)
        count = 1
    # Counted for ``seconds`` after the latest attempt, on every cache: the file cache's
    # increment re-stores the count with its default 5 minutes (Redis keeps the first
    # attempt's), which gave a guesser a fresh count every 5 minutes on bin/demo.
    cache.touch(key, seconds)
    return count


def reserve_attempt(request: HttpRequest, username: str) -> int:
    """Count this attempt before the password is checked; 0 if it may go ahead, else the
    seconds left of the lock it ran into. Counting first, atomically (the cache's increment),
    is what keeps many simultaneous guesses from all getting in before the count says stop.
    A successful login gives its attempt back (``_success``)."""
    if settings.JOE_LOGIN_FAILURES <= 0:
        return 0
    left = seconds_locked(request, username)
    if left:
        return left
    window = settings.JOE_LOGIN_LOCK_MINUTES * 60
    over = False
    for key, most in zip(_keys(request, username), _limits(), strict=True):
        if count_within(key, window) > most:
            cache.add(f"{key}:until", time.time() + window, window)
            over = True
    if over:
        log.warning(
            "Login locked for %s minutes: too many attempts from %s",
            settings.JOE_LOGIN_LOCK_MINUTES,
            client_address(request),
        )
        return seconds_locked(request, username) or window
    return 0


@receiver(user_logged_in, dispatch_uid="joe-login-throttle-success")
def _success(sender, request: HttpRequest | None, user, **kwargs) -> None:
    """A successful login: the failures before it stop counting for that username, and its own
    attempt stops counting against the address."""
    if request is not None:
        _forgive(request, user.get_username())


def _forgive(request: HttpRequest, username: str) -> None:
    pair, address = _keys(request, username)
    cache.delete(pair)
    with contextlib.suppress(ValueError, CacheUnavailable):
        if (cache.get(address) or 0) > 0:
            cache.decr(address)


def check_password_again(request: HttpRequest, user, password: str) -> bool:
    """A logged-in member's password asked for again (to change it, to delete the account),
    counted as a login's: a session left open on a shared computer is no way to guess it
    without end. Raises ValidationError while that username is locked for this address."""
    username = user.get_username()
    try:
        left = reserve_attempt(request, username)
    except CacheUnavailable:
        raise ValidationError(PAUSED, code="unavailable") from None
    if left:
        raise ValidationError(LOCKED_AGAIN.format(minutes=_in_words(left)), code="locked")
    if not user.check_password(password):
        return False
    _forgive(request, username)
    return True


def _in_words(seconds: int) -> str:
    minutes = max(1, math.ceil(seconds / 60))
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


class _SaysWhenLocked:
    """Says when a login is locked, and for how long, instead of "incorrect password"."""

    def clean(self):  # noqa: ANN201
        username = self.cleaned_data.get("username")
        if username and self.request is not None:
            try:
                left = reserve_attempt(self.request, username)
            except CacheUnavailable:
                raise ValidationError(PAUSED, code="unavailable") from None
            if left:
                raise ValidationError(LOCKED.format(minutes=_in_words(left)), code="locked")
        return super().clean()


class ThrottledAuthenticationForm(_SaysWhenLocked, AuthenticationForm):
    def full_clean(self) -> None:
        super().full_clean()
        # "Wrong password" and "locked" belong to no one field: both point at the sentence
        # (login.html's #login-error), so a screen reader on the focused username reads it.
        if self.non_field_errors():
            for field in self.fields.values():
                field.widget.attrs |= {"aria-invalid": "true", "aria-describedby": "login-error"}


class ThrottledAdminAuthenticationForm(_SaysWhenLocked, AdminAuthenticationForm):
    pass


class ThrottledPasswordChangeForm(PasswordChangeForm):
    def __init__(self, user, *args, request: HttpRequest, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(user, *args, **kwargs)
        self.request = request

    def clean_old_password(self) -> str:
        password = self.cleaned_data["old_password"]
        if not check_password_again(self.request, self.user, password):
            raise ValidationError(
                self.error_messages["password_incorrect"], code="password_incorrect"
            )
        return password


class PasswordChangeView(auth_views.PasswordChangeView):
    form_class = ThrottledPasswordChangeForm

    def get_form_kwargs(self) -> dict:
        return {**super().get_form_kwargs(), "request": self.request}


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
        elif form.has_error("__all__", "unavailable"):
            response.status_code = 503
        return response
