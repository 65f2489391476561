"""The pages this session changed, read as a screen reader reads them: each control labelled and
tied to its help and its error, the first field in error focused, headings in order, a <title>
that says the page, and no control that does nothing."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from accounts import email_confirmation
from generations import live
from generations.models import LiveGeneration
from joe_site.jobs import JobStatus
from tests.builders.members import with_confirmed_email
from tests.test_form_accessibility import _Controls

pytestmark = pytest.mark.django_db
ME = "/accounts/me/"


def read(page) -> _Controls:  # noqa: ANN001
    parsed = _Controls()
    parsed.feed(page.content.decode())
    return parsed


def unlabelled(parsed: _Controls) -> list[str]:
    return [
        c.get("name", "")
        for c in parsed.controls
        if not (c.get("aria-label") or c.get("aria-labelledby") or c.get("id") in parsed.labelled)
    ]


def title(page) -> str:  # noqa: ANN001
    return re.search(r"<title>(.*?)</title>", page.content.decode(), re.S)[1].strip()


def headings(page) -> list[int]:  # noqa: ANN001
    return [int(level) for level in re.findall(r"<h([1-6])\b", page.content.decode())]


def in_order(levels: list[int]) -> bool:
    """One h1 first, and no level skipped on the way down."""
    return levels[:1] == [1] and all(b <= a + 1 for a, b in zip(levels, levels[1:], strict=False))


def focused(page) -> list[str]:  # noqa: ANN001
    """The names of the fields the page gives the focus to."""
    return [c.get("name", "") for c in read(page).controls if "autofocus" in c]


@pytest.mark.parametrize("email_on", [True, False])
@pytest.mark.parametrize("state", ["none", "waiting", "confirmed", "changing"])
def test_the_me_pages_email_in_every_state_is_labelled_and_in_order(
    member_client, member, settings, email_on, state
):
    settings.JOE_EMAIL_ENABLED = email_on
    if state in ("confirmed", "changing"):
        with_confirmed_email(member, "alice@example.org")
    if state in ("waiting", "changing"):
        member.email = "alice@new.example.org"
        member.save(update_fields=["email"])

    page = member_client.get(ME)

    parsed = read(page)
    assert page.status_code == 200 and title(page) == "Me · joe"
    assert unlabelled(parsed) == [] and sorted(set(parsed.described) - parsed.ids) == []
    assert in_order(headings(page)), headings(page)
    assert focused(page) == []  # nothing went wrong: the page starts at its top
    waiting = state in ("waiting", "changing")
    assert ('aria-describedby="email-waiting-note"' in page.content.decode()) == (
        waiting and email_on
    )


def test_an_email_sent_back_with_a_mistake_focuses_the_first_field_in_error(
    member_client, member, other_member
):
    """The page came back with the focus at its top, far above the sentence (as the login form
    does, the field in error takes it, tied to its message)."""
    with_confirmed_email(other_member, "bob@example.org")

    wrong = member_client.post(
        reverse("change_email"), {"email": "alice@example.org", "password": "not hers"}
    )
    taken = member_client.post(
        reverse("change_email"), {"email": "bob@example.org", "password": "correct horse 1"}
    )

    assert focused(wrong) == ["password"]
    assert 'aria-describedby="id_password_helptext id_password_error"' in wrong.content.decode()
    assert 'id="id_password_error"' in wrong.content.decode()
    assert focused(taken) == ["email"]
    assert 'id="id_email_error"' in taken.content.decode()


def test_a_signal_retry_without_its_passphrase_focuses_the_passphrase(
    staff_client, settings, tmp_path
):
    from django.core.files.base import ContentFile

    from ingest import services
    from ingest.models import Export
    from tests.test_ingest_support import use_tmp_upload_dir

    use_tmp_upload_dir(settings, tmp_path)
    export = Export.objects.create(
        original_name="signal.backup", kind="signal", status=JobStatus.FAILED,
        error=services.SIGNAL_KEY_NOT_KEPT,
    )  # fmt: skip
    export.file.save("signal.backup", ContentFile(b"not read here"))

    page = staff_client.post(reverse("ingest:export_retry", args=[export.pk]), {"kind": "signal"})

    parsed = read(page)
    assert focused(page) == ["passphrase"]
    assert "id_passphrase_error" in parsed.described and "id_passphrase_error" in parsed.ids
    assert unlabelled(parsed) == []


@pytest.mark.parametrize("logged_in", [False, True])
def test_each_email_confirmation_page_says_what_it_is_in_its_title(
    client, member, other_member, logged_in
):
    if logged_in:
        client.force_login(other_member)  # someone else's session on that device
    member.email = "alice@example.org"
    member.save(update_fields=["email"])
    link = email_confirmation.confirm_path(member)

    opened = client.get(link, follow=True)
    done = client.post(opened.redirect_chain[-1][0])
    dead = client.get(link)

    assert title(opened) == "Confirm your email · joe" and headings(opened) == [1]
    assert done.status_code == 200 and title(done) == "Email confirmed · joe"  # was "Confirm…"
    assert dead.status_code == 410 and title(dead) == "Confirmation link not valid · joe"
    for page in (opened, done, dead):
        assert unlabelled(read(page)) == []


def test_a_confirmation_taken_meanwhile_is_said_as_an_alert(client, member, other_member):
    member.email = other_member.email = "alice@example.org"
    member.save(update_fields=["email"])
    other_member.save(update_fields=["email"])
    opened = client.get(email_confirmation.confirm_path(member), follow=True)
    with_confirmed_email(other_member, "alice@example.org")

    taken = client.post(opened.redirect_chain[-1][0])

    assert taken.status_code == 409
    assert f'<p role="alert" class="errorlist">{email_confirmation.TAKEN}</p>' in (
        taken.content.decode()
    )


def test_the_admin_offers_to_delete_a_confirmed_email_only_where_there_is_one(
    staff_client, member, other_member
):
    """A member with none had the box too, which did nothing; and the box's name did not say
    which address it deletes."""
    with_confirmed_email(member, "alice@example.org")

    confirmed = staff_client.get(reverse("admin:auth_user_change", args=[member.pk]))
    none = staff_client.get(reverse("admin:auth_user_change", args=[other_member.pk]))

    assert (
        '<label class="vCheckboxLabel" for="id_forget_confirmed_email">Delete the confirmed '
        "email alice@example.org</label>"
    ) in confirmed.content.decode()
    assert none.status_code == 200
    assert "None: “Forgot your password?” emails this member no link." in none.content.decode()
    assert 'name="forget_confirmed_email"' not in none.content.decode()


def test_a_live_request_cancelled_as_its_member_was_removed_does_not_say_they_stopped_it(
    member_client, member
):
    generation = LiveGeneration.objects.create(
        member=member, status=JobStatus.CANCELLED, progress_note=live.MEMBER_GONE
    )
    stopped = LiveGeneration.objects.create(member=member, status=JobStatus.CANCELLED)

    gone = member_client.get(reverse("generations:live_generation", args=[generation.pk]))
    own = member_client.get(reverse("generations:live_generation", args=[stopped.pk]))

    note = re.search(r'data-testid="live-member-gone">([^<]*)<', gone.content.decode())
    assert note and "account was deactivated" in note[1]
    assert "Stopped" not in gone.content.decode()
    assert "Stopped." in own.content.decode() and "live-member-gone" not in own.content.decode()
    assert in_order(headings(gone)) and title(gone) == "Live · joe"
