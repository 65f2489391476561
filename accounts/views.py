"""Invite-only membership: staff create invite links, a friend signs up with one, once; staff
make a reset link for a member who forgot their password."""

from __future__ import annotations

import logging

from django.contrib import messages
from django.contrib.auth import get_user_model, login
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.db.models import Prefetch
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from accounts import password_reset
from accounts.decorators import staff_required
from accounts.forms import InviteForm, SignupForm
from accounts.models import Invite
from ingest.models import Speaker

log = logging.getLogger(__name__)


@login_not_required
def signup(request: HttpRequest, token: str) -> HttpResponse:
    invite = Invite.objects.filter(token=token).first()
    if invite is None or not invite.is_usable:
        state = invite.state if invite else "unknown"
        return render(request, "accounts/invite_invalid.html", {"state": state}, status=410)
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            with transaction.atomic():
                # Lock the invite so two people racing with one link cannot both get in.
                locked = Invite.objects.select_for_update().get(pk=invite.pk)
                if not locked.is_usable:
                    return render(
                        request,
                        "accounts/invite_invalid.html",
                        {"state": locked.state},
                        status=410,
                    )
                user = form.save()
                locked.used_by = user
                locked.used_at = timezone.now()
                locked.save(update_fields=["used_by", "used_at"])
        except IntegrityError:
            # Someone else took the name between the form's check and the save (two invites
            # used at once): the invite is untouched, the form says so like any taken name.
            form.add_error(
                "username", form.instance.unique_error_message(type(form.instance), ["username"])
            )
            return render(request, "accounts/signup.html", {"form": form, "invite": invite})
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        messages.success(request, f"Welcome to joe, {user.username}!")
        return redirect("home")
    return render(request, "accounts/signup.html", {"form": form, "invite": invite})


@staff_required
def invites(request: HttpRequest) -> HttpResponse:
    form = InviteForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        invite = form.save(commit=False)
        invite.created_by = request.user
        invite.save()
        messages.success(request, "Invite created: copy the link and send it to your friend.")
        return redirect("invites")
    if request.method == "POST":
        return _invites_page(request, form)
    return _invites_page(request, form, **_reset_link_made(request))


def _invites_page(request: HttpRequest, form: InviteForm, **extra) -> HttpResponse:  # noqa: ANN003
    voices = Speaker.objects.order_by("display_name").only("display_name", "member_id")
    members = (
        get_user_model()
        .objects.filter(is_active=True)
        .order_by("username")
        .prefetch_related(Prefetch("speakers", queryset=voices))
    )
    context = {
        "form": form,
        "invites": Invite.objects.select_related("created_by", "used_by")[:100],
        "members": members,
        "reset_days": password_reset.days_valid(),
        **extra,
    }
    return render(request, "accounts/invites.html", context)


RESET_LINK_MADE = "joe:reset-link-made"  # session key: whose link, made when (never the token)


@staff_required
@require_POST
def make_reset_link(request: HttpRequest, pk: int) -> HttpResponse:
    """A link for a member who forgot their password, shown to staff once (never stored or
    logged). Only a superuser makes one for a superuser: staff cannot take over an admin.

    The Invites page it redirects to shows the link, once: the session holds whose it is and the
    second it was made, from which the page makes the same token again, so reloading that page
    makes no other link (and shows none)."""
    member = get_object_or_404(get_user_model(), pk=pk, is_active=True)
    if member.is_superuser and not request.user.is_superuser:
        raise PermissionDenied("Only a superuser can make a reset link for a superuser.")
    request.session[RESET_LINK_MADE] = {
        "member": member.pk,
        "made_at": password_reset.tokens.now_seconds(),
    }
    log.info("%s made a password reset link for %s", request.user, member)
    return redirect(reverse("invites") + "#reset-link")


def _reset_link_made(request: HttpRequest) -> dict:
    """The link make_reset_link made, for this page view only."""
    made = request.session.pop(RESET_LINK_MADE, None)
    if not made:
        return {}
    member = get_user_model().objects.filter(pk=made["member"], is_active=True).first()
    if member is None or (member.is_superuser and not request.user.is_superuser):
        return {}
    path = password_reset.reset_path(member, made_at=made["made_at"])
    return {"reset_link": request.build_absolute_uri(path), "reset_for": member}


@staff_required
@require_POST
def revoke_invite(request: HttpRequest, pk: int) -> HttpResponse:
    invite = get_object_or_404(Invite, pk=pk, used_at__isnull=True)
    invite.revoked = True
    invite.save(update_fields=["revoked"])
    messages.info(request, "Invite revoked.")
    return redirect("invites")
