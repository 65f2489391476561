"""Confirming a member's email: the address set on their page gets reset links only once its
member has opened the link joe emails to it (a ConfirmedEmail), so a typo or someone else's
address gets none.

A link is ``/accounts/email/confirm/<uidb64>/<token>/``: it works for LINK_DAYS days, once, and
for the address it was sent to only (setting another on the page kills it). The worker makes
it, so neither the broker nor a log line holds one. As with reset links, its page swaps the
token for a session key at once, and the address confirms with a press of a button (a POST),
so a mail scanner that opens every link in an inbox confirms nothing.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.decorators import login_not_required
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.encoding import force_bytes, force_str
from django.utils.http import urlsafe_base64_decode, urlsafe_base64_encode
from django.views.decorators.http import require_POST
from kombu.exceptions import OperationalError

from accounts import login
from accounts.models import ConfirmedEmail
from accounts.password_reset import ResetLinkTokens
from joe_site.cache import CacheUnavailable

log = logging.getLogger(__name__)

LINK_DAYS = 3
LINKS_PER_HOUR = 3  # per account: setting an address and "Send the link again" both count
SESSION_TOKEN = "_email_confirmation_token"  # noqa: S105 (a session key)
# The link's address once its token is in the session.
URL_TOKEN = "confirm-email"  # noqa: S105

NOT_SET_UP = (
    "This joe sends no email, so it cannot confirm your address: if you forget your password, "
    "ask a staff member for a reset link."
)
TOO_MANY = (
    f"joe sent {LINKS_PER_HOUR} links to confirm your email within the hour already: look in "
    "your spam folder, or try again in an hour."
)
QUEUE_DOWN = "joe's job queue is not answering: try again in a few minutes."
TAKEN = "Another account on this joe confirmed that address first."


class ConfirmationTokens(ResetLinkTokens):
    """Tokens for the account's email as it is now, dead once an address is confirmed."""

    key_salt = "accounts.email_confirmation.ConfirmationTokens"

    def valid_seconds(self) -> int:
        return LINK_DAYS * 86400

    def _make_hash_value(self, user: AbstractBaseUser, timestamp: int) -> str:
        confirmed = ConfirmedEmail.of(user)
        held = f"{confirmed.email}{confirmed.confirmed_at.isoformat()}" if confirmed else ""
        return f"{user.pk}:{user.email}:{timestamp}:{held}"


tokens = ConfirmationTokens()


def confirm_path(user: AbstractBaseUser) -> str:
    uidb64 = urlsafe_base64_encode(force_bytes(user.pk))
    return reverse("confirm_email", args=[uidb64, tokens.make_token(user)])


def queue_link(request: HttpRequest, user: AbstractBaseUser) -> str | None:
    """Have the ``default`` worker email a link to confirm ``user``'s email; None once it is
    queued, or else the sentence that says why not (for the page)."""
    from accounts import tasks  # tasks import this module

    try:
        count = login.count_within(f"joe:email-confirmation:account:{user.pk}", 3600)
    except CacheUnavailable:  # one Redis holds the counts and the queue: neither answers
        return QUEUE_DOWN
    if count > LINKS_PER_HOUR:
        log.warning("No email confirmation link for %s: %d within the hour", user, LINKS_PER_HOUR)
        return TOO_MANY
    try:
        tasks.send_email_confirmation.delay(user.pk, user.email, request.build_absolute_uri("/"))
    except (OperationalError, OSError):
        log.exception("Could not queue an email confirmation link for %s", user)
        return QUEUE_DOWN
    return None


def email_link(*, user_id: int, email: str, base_url: str) -> bool:
    """Email the link to confirm ``email``, if it is still the account's email and not yet
    confirmed; whether it went. The link itself is never logged. A mail server that fails
    raises (smtplib.SMTPException, OSError) for the task to try again."""
    user = get_user_model().objects.filter(pk=user_id, is_active=True).first()
    if user is None or user.email != email or not ConfirmedEmail.waiting_for(user):
        log.info("No email confirmation link sent for account %s: nothing waits for one", user_id)
        return False
    link = base_url.rstrip("/") + confirm_path(user)
    days = f"{LINK_DAYS} day{'s' if LINK_DAYS != 1 else ''}"
    body = (
        f"Hello {user.username},\n\n"
        "This address was set as the email of your account on joe. Open this link and press "
        f"Confirm to have joe send links to set a new password here (it works for {days}):\n\n"
        f"{link}\n\n"
        "If it was not you, ignore this email: nothing is sent to this address unless the link "
        "is opened.\n"
    )
    send_mail("Confirm your email for joe", body, None, [email])
    log.info("Emailed a link to confirm the email of %s", user.username)
    return True


def confirm(user: AbstractBaseUser, token: str) -> str | None:
    """Make the account's email its confirmed one, if ``token`` is still good for it; None when
    done, or the sentence that says why not."""
    try:
        with transaction.atomic():
            # Locked, and the token checked again: the email cannot change, nor another press
            # confirm it, between the check and the write.
            locked = get_user_model().objects.select_for_update().get(pk=user.pk)
            if not tokens.check_token(locked, token):
                return "This link doesn't work any more."
            if ConfirmedEmail.held_by_another(locked.email, locked):
                return TAKEN
            ConfirmedEmail.objects.update_or_create(
                user=locked, defaults={"email": locked.email, "confirmed_at": timezone.now()}
            )
    except IntegrityError:  # another account confirmed it between the check and the write
        return TAKEN
    log.info("%s confirmed their email", user)
    return None


def _account(uidb64: str) -> AbstractBaseUser | None:
    try:
        pk = int(force_str(urlsafe_base64_decode(uidb64)))
    except (ValueError, TypeError, OverflowError):
        return None
    return get_user_model().objects.filter(pk=pk, is_active=True).first()


@login_not_required
def open_link(request: HttpRequest, uidb64: str, token: str) -> HttpResponse:
    """The emailed link: its token goes into the session at once, and the page it leads to asks
    for a press of Confirm. No login is needed: the link is the proof."""
    user = _account(uidb64)
    if token != URL_TOKEN:
        if not tokens.check_token(user, token):
            return _dead(request)
        request.session[SESSION_TOKEN] = token
        response = redirect("confirm_email", uidb64=uidb64, token=URL_TOKEN)
        response["Referrer-Policy"] = "no-referrer"  # this address holds a live token
        return response
    token = request.session.get(SESSION_TOKEN, "")
    if not tokens.check_token(user, token):
        return _dead(request)
    context = {"member": user, "address": user.email}
    if request.method == "POST":
        problem = confirm(user, token)
        if problem is not None:
            context["problem"] = problem
            return render(request, "accounts/email_confirm.html", context, status=409)
        del request.session[SESSION_TOKEN]
        if request.user.pk == user.pk:
            messages.success(request, f"Confirmed your email: {user.email}.")
            return redirect("profile")
        return render(request, "accounts/email_confirm.html", {**context, "done": True})
    return render(request, "accounts/email_confirm.html", context)


def _dead(request: HttpRequest) -> HttpResponse:
    context = {"dead": True, "days": LINK_DAYS}
    return render(request, "accounts/email_confirm.html", context, status=410)


@require_POST
def send_again(request: HttpRequest) -> HttpResponse:
    """The Me page's "Send the link again"."""
    user = request.user
    waiting = ConfirmedEmail.waiting_for(user)
    if not settings.JOE_EMAIL_ENABLED:
        messages.error(request, NOT_SET_UP)
    elif not waiting:
        messages.info(request, "Your email needs no confirming.")
    elif (problem := queue_link(request, user)) is not None:
        messages.error(request, f"No link sent: {problem}")
    else:
        messages.success(request, f"joe is emailing a link to {waiting}: open it to confirm.")
    return redirect("profile")
