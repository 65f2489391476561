"""Getting back in after forgetting a password: a link that sets a new one, made by staff on the
Invites page or emailed by "Forgot your password?" when the site can send email.

A link is ``/accounts/reset/<uidb64>/<token>/``: it works for ``JOE_PASSWORD_RESET_DAYS`` days
and once (the token hashes the password and the last login, which setting a password changes).
Its page swaps the token for a session key at once, as Django's own view does, so the address
the member then sees, and any Referer sent from it, holds no token; the link's own address
answers with Referrer-Policy: no-referrer.
"""

from __future__ import annotations

import logging
import smtplib

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth import views as auth_views
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.forms import SetPasswordForm
from django.contrib.auth.tokens import PasswordResetTokenGenerator
from django.core.mail import send_mail
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse, reverse_lazy
from django.utils.crypto import constant_time_compare
from django.utils.decorators import method_decorator
from django.utils.encoding import force_bytes
from django.utils.http import base36_to_int, urlsafe_base64_encode
from kombu.exceptions import OperationalError

from accounts import login
from accounts.models import ConfirmedEmail
from joe_site.cache import CacheUnavailable

log = logging.getLogger(__name__)

ACCOUNT_REQUESTS_PER_HOUR = 3  # emailed links per account
ADDRESS_REQUESTS_PER_HOUR = 5  # "Forgot your password?" requests per client address
TOO_MANY = (
    "Too many requests for a new password from your address: try again in an hour, or ask a "
    "staff member for a reset link."
)


class ResetLinkTokens(PasswordResetTokenGenerator):
    """Django's reset tokens, valid for JOE_PASSWORD_RESET_DAYS days (read when checked)."""

    key_salt = "accounts.password_reset.ResetLinkTokens"

    def valid_seconds(self) -> int:
        return settings.JOE_PASSWORD_RESET_DAYS * 86400

    def now_seconds(self) -> int:
        return self._num_seconds(self._now())

    def token_made_at(self, user: AbstractBaseUser, made_at: int) -> str:
        """The token ``make_token`` gave ``user`` at ``made_at`` (``now_seconds()`` then): the
        same link again, so long as the account has not changed since (then it is dead too)."""
        return self._make_token_with_timestamp(user, made_at, self.secret)

    def check_token(self, user: AbstractBaseUser | None, token: str | None) -> bool:
        if not (user and token):
            return False
        try:
            made_at = base36_to_int(token.split("-")[0])
        except ValueError:
            return False
        if self.now_seconds() - made_at > self.valid_seconds():
            return False
        return any(
            constant_time_compare(self._make_token_with_timestamp(user, made_at, secret), token)
            for secret in [self.secret, *self.secret_fallbacks]
        )


tokens = ResetLinkTokens()


def reset_path(user: AbstractBaseUser, *, made_at: int | None = None) -> str:
    """A fresh link's path for ``user``, or the one made at ``made_at`` (never stored or logged:
    whoever holds it can take the account)."""
    uidb64 = urlsafe_base64_encode(force_bytes(user.pk))
    token = tokens.make_token(user) if made_at is None else tokens.token_made_at(user, made_at)
    return reverse("password_reset_confirm", args=[uidb64, token])


def days_valid() -> str:
    days = settings.JOE_PASSWORD_RESET_DAYS
    return f"{days} day{'s' if days != 1 else ''}"


def address_may_ask(request) -> bool:  # noqa: ANN001
    """Whether this client address is still under ADDRESS_REQUESTS_PER_HOUR requests."""
    key = f"joe:password-reset:address:{login.client_address(request)}"
    return login.count_within(key, 3600) <= ADDRESS_REQUESTS_PER_HOUR


def accounts_for(username_or_email: str) -> list:
    """The active accounts a "Forgot your password?" request names: the one whose username it is
    (exactly, or else the only one with it however capitalised), and the one whose confirmed
    email it is. They can be two (a username that is someone else's address): each is emailed
    a link for itself at its own confirmed address, never at the other's."""
    typed = username_or_email.strip()
    if not typed:
        return []
    users = get_user_model().objects.filter(is_active=True).select_related("confirmed_email")
    named = users.filter(username=typed).first()
    if named is None:
        by_name = list(users.filter(username__iexact=typed)[:2])
        named = by_name[0] if len(by_name) == 1 else None
    by_email = users.filter(confirmed_email__email__iexact=typed).first()
    return list(dict.fromkeys(user for user in (named, by_email) if user is not None))


class NotEmailed(Exception):
    """The mail server refused or did not answer for some accounts: their ids, to try again."""

    def __init__(self, user_ids: list[int], error: Exception) -> None:
        super().__init__(f"{len(user_ids)} reset email(s) not sent: {error}")
        self.user_ids = user_ids


def email_reset_links(
    *, username_or_email: str, base_url: str, again_for: list[int] | None = None
) -> int:
    """Email a reset link to each account named that has a confirmed email, there, at most
    ACCOUNT_REQUESTS_PER_HOUR an hour each; how many went. The link itself is never logged.

    Raises NotEmailed for the accounts the mail server failed for, once the others are sent;
    ``again_for`` is those accounts' ids on a later try, which emails them only (still named by
    what was typed) and does not count against their hourly links again."""
    sent = 0
    failed: list[int] = []
    error: Exception | None = None
    for user in accounts_for(username_or_email):
        if again_for is not None and user.pk not in again_for:
            continue
        confirmed = ConfirmedEmail.of(user)
        if confirmed is None:
            log.info("No reset link emailed to %s: the account has no confirmed email", user)
            continue
        if again_for is None and (
            login.count_within(f"joe:password-reset:account:{user.pk}", 3600)
            > ACCOUNT_REQUESTS_PER_HOUR
        ):
            log.warning(
                "No reset link emailed to %s: %d were asked for within the hour already",
                user.username,
                ACCOUNT_REQUESTS_PER_HOUR,
            )
            continue
        link = base_url.rstrip("/") + reset_path(user)
        body = (
            f"Hello {user.username},\n\n"
            "Someone, most likely you, asked joe for a link to set a new password for your "
            f"account. This one works for {days_valid()}, once:\n\n{link}\n\n"
            "If it was not you, ignore this email: your password stays as it is.\n"
        )
        try:
            send_mail("Set a new password for joe", body, None, [confirmed.email])
        except (smtplib.SMTPException, OSError) as failure:
            log.error("Could not email a reset link to %s: %s", user.username, failure)
            failed.append(user.pk)
            error = failure
            continue
        log.info("Emailed a password reset link to %s", user.username)
        sent += 1
    if error is not None:
        raise NotEmailed(failed, error)
    return sent


@method_decorator(login_not_required, name="dispatch")
class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    """Django's page for a reset link, ending logged in at home with the login locks cleared;
    a link that does not work says so with 410 Gone, and a live link's own address sends no
    Referer."""

    form_class = SetPasswordForm
    template_name = "registration/password_reset_confirm.html"
    token_generator = tokens
    post_reset_login = True
    post_reset_login_backend = "django.contrib.auth.backends.ModelBackend"
    success_url = reverse_lazy("home")

    def dispatch(self, *args, **kwargs) -> HttpResponse:  # noqa: ANN002, ANN003
        response = super().dispatch(*args, **kwargs)
        if not self.validlink and response.status_code == 200:
            response.status_code = 410
        if kwargs["token"] != self.reset_url_token and response.status_code == 302:
            # The address holds a live token (answered with a redirect): no Referer from it.
            # Every page a person stays on keeps the site's same-origin policy: with no-referrer,
            # browsers post its forms (set password, Log out in the bar) with "Origin: null",
            # which the CSRF check refuses. The set-password page's address holds no token, and
            # a dead link's token opens nothing.
            response["Referrer-Policy"] = "no-referrer"
        return response

    def get_user(self, uidb64: str) -> AbstractBaseUser | None:
        # A link made before the account was deactivated sets no password: no login follows.
        user = super().get_user(uidb64)
        return user if user is not None and user.is_active else None

    def get_context_data(self, **kwargs) -> dict:  # noqa: ANN003
        return {**super().get_context_data(**kwargs), "member": self.user, "days": days_valid()}

    def form_valid(self, form: SetPasswordForm) -> HttpResponse:
        response = super().form_valid(form)
        login.clear_locks(form.user.get_username())
        log.info("%s set a new password with a reset link", form.user.get_username())
        messages.success(self.request, f"Your new password is set. Welcome back, {form.user}!")
        return response


class ForgotPasswordForm(forms.Form):
    username_or_email = forms.CharField(
        label="Your username or email",
        max_length=254,
        widget=forms.TextInput(attrs={"autocomplete": "username", "autofocus": True}),
    )


@login_not_required
def forgot_password(request: HttpRequest) -> HttpResponse:
    """Email a reset link, when the site can; otherwise say to ask staff for one. The answer is
    the same whether or not the account exists: the worker looks it up."""
    from accounts import tasks  # tasks import this module

    context: dict = {"email_enabled": settings.JOE_EMAIL_ENABLED, "days": days_valid()}
    if not settings.JOE_EMAIL_ENABLED:
        return render(request, "registration/password_forgotten.html", context)
    form = ForgotPasswordForm(request.POST or None)
    context["form"] = form
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            may_ask = address_may_ask(request)
        except CacheUnavailable:  # one Redis holds the counts and the queue: neither answers
            may_ask = None
        if may_ask is None:
            context["queue_down"] = True
            status = 503
        elif not may_ask:
            form.add_error(None, TOO_MANY)
            status = 429
        else:
            try:
                tasks.send_password_reset.delay(
                    form.cleaned_data["username_or_email"], request.build_absolute_uri("/")
                )
            except (OperationalError, OSError):
                log.exception("Could not queue a password reset email")
                context["queue_down"] = True
                status = 503
            else:
                context["sent"] = True
    return render(request, "registration/password_forgotten.html", context, status=status)
