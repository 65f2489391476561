"""A member's own page: their speakers, how much of them is in the corpus, and their controls."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model, logout
from django.db.models import Count, Exists, OuterRef, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from accounts import consent, email_confirmation, login
from accounts.decorators import staff_required
from accounts.logout import forget_in_browser
from accounts.models import ConfirmedEmail, SpeakerClaim, is_last_admin
from ingest.models import Identity, Speaker
from joe_site.forms import FocusFirstError


class ClaimForm(forms.Form):
    # Speakers nobody holds, that some of the corpus trains: not a phone backup's one-to-one
    # contacts or anyone else staff excluded (members need not see every name in the corpus).
    speaker = forms.ModelChoiceField(
        queryset=Speaker.objects.filter(
            Exists(Identity.objects.filter(speaker=OuterRef("pk"), excluded=False, is_bot=False)),
            member__isnull=True,
        ).order_by("display_name"),
        label="Which speaker are you?",
    )


class LinkForm(forms.Form):
    member = forms.ModelChoiceField(queryset=get_user_model().objects.order_by("username"))
    # Only speakers nobody holds: a linked speaker's consent settings are its member's, and
    # moving it takes an explicit unlink first (below), never a silent re-link.
    speaker = forms.ModelChoiceField(
        queryset=Speaker.objects.filter(member__isnull=True).order_by("display_name"),
        error_messages={"invalid_choice": consent.ALREADY_LINKED},
    )
    opt_out_confirmed = forms.BooleanField(
        required=False,
        label="They may undo an earlier opt-out",
        help_text="Needed only for an opted-out speaker that this member did not opt out.",
    )


def _own_speaker(request: HttpRequest, pk: int) -> Speaker:
    return get_object_or_404(Speaker, pk=pk, member=request.user)


class EmailForm(FocusFirstError, forms.Form):
    """A member's email, for "Forgot your password?" links once confirmed: one account per
    confirmed address."""

    email = forms.EmailField(
        label="Your email",
        required=False,
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
        help_text="Only for a link to set a new password if you forget it, once you confirm it. "
        "Leave it empty to remove it.",
    )
    password = forms.CharField(
        label="Your password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
        help_text="To be sure it is you: whoever sets the email can reset the password.",
    )

    def __init__(self, user, *args, request: HttpRequest, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        self.user = user
        self.request = request

    def clean_email(self) -> str:
        return get_user_model().objects.normalize_email(self.cleaned_data["email"])

    def clean_password(self) -> str:
        password = self.cleaned_data["password"]
        if not login.check_password_again(self.request, self.user, password):
            raise forms.ValidationError("That is not your password.")
        return password

    def clean(self) -> dict:
        # Whether another account has an email is said only to whoever gave their password
        # (counted as a login): a session left open is no way to learn members' emails.
        cleaned = super().clean()
        email = cleaned.get("email")
        # Only confirmed addresses are taken: one typed and never confirmed holds nobody's back.
        if email and "password" in cleaned and ConfirmedEmail.held_by_another(email, self.user):
            self.add_error("email", "Another account has that email already.")
        return cleaned


def profile(request: HttpRequest, email_form: EmailForm | None = None) -> HttpResponse:
    speakers = Speaker.objects.filter(member=request.user).annotate(
        corpus_messages=Count("identities__messages")
    )
    context = {
        "speakers": speakers,
        "claims": SpeakerClaim.objects.filter(member=request.user).select_related("speaker")[:20],
        "claim_form": ClaimForm(),
        "email_enabled": settings.JOE_EMAIL_ENABLED,
        "confirmed_email": ConfirmedEmail.of(request.user),
        "email_waiting": ConfirmedEmail.waiting_for(request.user),
        "email_form": email_form
        or EmailForm(request.user, initial={"email": request.user.email}, request=request),
    }
    return render(request, "accounts/profile.html", context)


@require_POST
def change_email(request: HttpRequest) -> HttpResponse:
    form = EmailForm(request.user, request.POST, request=request)
    if not form.is_valid():
        return profile(request, email_form=form)
    user = request.user
    user.email = form.cleaned_data["email"]
    user.save(update_fields=["email"])
    confirmed = ConfirmedEmail.of(user)
    if not user.email:
        ConfirmedEmail.objects.filter(user=user).delete()
        messages.success(request, "Removed your email.")
    elif not ConfirmedEmail.waiting_for(user):  # the confirmed one, perhaps capitalised anew
        ConfirmedEmail.objects.filter(user=user).update(email=user.email)
        messages.success(request, f"Saved your email: {user.email}.")
    elif not settings.JOE_EMAIL_ENABLED:
        messages.warning(request, f"Saved your email. {email_confirmation.NOT_SET_UP}")
    elif (problem := email_confirmation.queue_link(request, user)) is not None:
        messages.warning(
            request, f"Saved your email: {user.email}, but no link to confirm it went: {problem}"
        )
    else:
        still = f"reset links go to {confirmed.email}" if confirmed else "no reset link is emailed"
        messages.success(
            request,
            f"Saved your email: joe is emailing a link to {user.email}. Open it to confirm the "
            f"address; until then {still}.",
        )
    return redirect("profile")


@require_POST
def claim(request: HttpRequest) -> HttpResponse:
    form = ClaimForm(request.POST)
    if form.is_valid():
        SpeakerClaim.objects.get_or_create(
            member=request.user,
            speaker=form.cleaned_data["speaker"],
            status=SpeakerClaim.Status.PENDING,
        )
        messages.success(request, "Asked staff to link you to that speaker.")
    else:
        messages.error(request, "Pick a speaker nobody has claimed yet.")
    return redirect("profile")


@require_POST
def opt_out(request: HttpRequest, pk: int) -> HttpResponse:
    speaker = _own_speaker(request, pk)
    wants_out = request.POST.get("opted_out") == "1"
    consent.set_opted_out(speaker=speaker, opted_out=wants_out)
    if wants_out:
        messages.success(
            request,
            "You opted out: fakes in your voice are hidden now, their public links revoked, and "
            "the next training run leaves your messages out.",
        )
    else:
        messages.success(request, "You opted back in.")
    return redirect("profile")


@require_POST
def game_opt_in(request: HttpRequest, pk: int) -> HttpResponse:
    speaker = _own_speaker(request, pk)
    Speaker.objects.filter(pk=speaker.pk).update(game_opt_in=request.POST.get("game_opt_in") == "1")
    messages.success(request, "Saved your Real or fake? choice.")
    return redirect("profile")


def delete_messages(request: HttpRequest, pk: int) -> HttpResponse:
    speaker = _own_speaker(request, pk)
    count = consent.message_count(speaker)
    if request.method == "POST" and request.POST.get("confirm_count") == str(count):
        deleted = consent.delete_messages(speaker=speaker)
        messages.success(request, f"Deleted {deleted:,} of your messages from the corpus.")
        return redirect("profile")
    return render(request, "accounts/delete_messages.html", {"speaker": speaker, "count": count})


@staff_required
def claims(request: HttpRequest) -> HttpResponse:
    link_form = LinkForm(request.POST or None)
    if request.method == "POST" and link_form.is_valid():
        speaker, member = link_form.cleaned_data["speaker"], link_form.cleaned_data["member"]
        try:
            consent.link_speaker(
                speaker=speaker,
                member=member,
                staff_user=request.user,
                opt_out_confirmed=link_form.cleaned_data["opt_out_confirmed"],
            )
        except consent.AlreadyLinked as error:
            link_form.add_error("speaker", str(error))
        except consent.OptOutOfSomeoneElse as error:
            link_form.add_error("opt_out_confirmed", str(error))
        else:
            messages.success(request, f"Linked {speaker} to {member}.")
            return redirect("claims")
    pending = list(
        SpeakerClaim.objects.filter(status=SpeakerClaim.Status.PENDING).select_related(
            "member", "speaker"
        )
    )
    for pending_claim in pending:
        pending_claim.at_stake = consent.opt_out_at_stake(
            pending_claim.speaker, pending_claim.member
        )
    context = {
        "pending": pending,
        "linked": Speaker.objects.filter(member__isnull=False).select_related("member"),
        "link_form": link_form,
        "unlinked_count": Speaker.objects.filter(Q(member__isnull=True)).count(),
    }
    return render(request, "accounts/claims.html", context)


@staff_required
@require_POST
def unlink(request: HttpRequest, pk: int) -> HttpResponse:
    """Free a speaker from its member (a wrong link, say); its opt-out and vetoes stay."""
    speaker = get_object_or_404(Speaker, pk=pk, member__isnull=False)
    member = consent.unlink_speaker(speaker=speaker, staff_user=request.user)
    if member is None:  # another staff member unlinked it a moment ago
        messages.info(request, f"{speaker} is not linked to anyone.")
        return redirect("claims")
    messages.success(
        request,
        f"Unlinked {speaker} from {member}: they no longer hold its settings. Its opt-out and "
        "vetoes stay as they are; its real messages are out of Real or fake? until its next "
        "member lets them in.",
    )
    return redirect("claims")


@staff_required
@require_POST
def decide_claim(request: HttpRequest, pk: int) -> HttpResponse:
    claim_obj = get_object_or_404(SpeakerClaim, pk=pk, status=SpeakerClaim.Status.PENDING)
    approve = request.POST.get("decision") == "approve"
    try:
        consent.decide_claim(
            claim=claim_obj,
            approve=approve,
            staff_user=request.user,
            opt_out_confirmed=request.POST.get("opt_out_confirmed") == "1",
        )
    except consent.AlreadyLinked:
        messages.error(request, f"{claim_obj.speaker} is linked already: unlink it first.")
        return redirect("claims")
    except consent.OptOutOfSomeoneElse as error:
        messages.error(request, f"Not approved: {error} Tick the box beside Approve to do so.")
        return redirect("claims")
    messages.success(request, "Claim approved." if approve else "Claim rejected.")
    return redirect("claims")


class DeleteAccountForm(forms.Form):
    password = forms.CharField(
        label="Your password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
        help_text="To be sure it is you.",
    )

    def __init__(self, user, *args, request: HttpRequest, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        self.user = user
        self.request = request

    def clean_password(self) -> str:
        password = self.cleaned_data["password"]
        if not login.check_password_again(self.request, self.user, password):
            raise forms.ValidationError("That is not your password.")
        return password


def delete_account(request: HttpRequest) -> HttpResponse:
    """A member deletes their own account (their speaker and its messages stay, see the page)."""
    user = request.user
    last_admin = is_last_admin(user)
    form = DeleteAccountForm(user, request.POST or None, request=request)
    if request.method == "POST" and not last_admin and form.is_valid():
        username = user.get_username()
        logout(request)
        user.delete()
        messages.success(request, f"The account {username} is deleted.")
        return forget_in_browser(redirect("login"))
    context = {
        "form": form,
        "last_admin": last_admin,
        "speakers": Speaker.objects.filter(member=user),
    }
    return render(request, "accounts/delete_account.html", context)
