"""A second read of the session's changes: email confirmation seen from the admin, the proxy's
log and the worker, and the bits of self-hosting around them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.urls import reverse

from accounts.models import ConfirmedEmail
from tests.builders.members import with_confirmed_email

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parent.parent


# --- the admin ----------------------------------------------------------------------------------


def change_form(member, **changes) -> dict:  # noqa: ANN001
    """The admin's change form for ``member`` as it stands, with ``changes``."""
    data = {
        "username": member.username,
        "first_name": member.first_name,
        "last_name": member.last_name,
        "email": member.email,
        "is_active": "on",
        "date_joined_0": member.date_joined.strftime("%Y-%m-%d"),
        "date_joined_1": member.date_joined.strftime("%H:%M:%S"),
    }
    data.update(changes)
    return {key: value for key, value in data.items() if value is not None}


def test_staff_see_the_confirmed_email_read_only_in_the_admin(staff_client, member):
    with_confirmed_email(member, "alice@example.org")
    member.email = "alice@new.example.org"  # set on Me, not confirmed yet
    member.save(update_fields=["email"])

    page = staff_client.get(reverse("admin:auth_user_change", args=[member.pk]))

    html = page.content.decode()
    assert page.status_code == 200
    assert "alice@example.org (confirmed " in html  # where reset links go, not the one on Me
    assert 'name="forget_confirmed_email"' in html
    assert "alice@example.org" not in re.findall(r'<input[^>]*name="email"[^>]*>', html)[0]


def test_staff_can_delete_a_confirmed_email_so_that_no_more_links_go_there(staff_client, member):
    with_confirmed_email(member, "alice@example.org")

    saved = staff_client.post(
        reverse("admin:auth_user_change", args=[member.pk]),
        change_form(member, forget_confirmed_email="on"),
    )

    assert saved.status_code == 302, saved.content.decode()[:2000]
    assert not ConfirmedEmail.objects.filter(user=member).exists()


def test_an_email_emptied_in_the_admin_takes_its_confirmation_with_it(staff_client, member):
    with_confirmed_email(member, "alice@example.org")

    saved = staff_client.post(
        reverse("admin:auth_user_change", args=[member.pk]), change_form(member, email="")
    )

    assert saved.status_code == 302, saved.content.decode()[:2000]
    member.refresh_from_db()
    assert member.email == "" and not ConfirmedEmail.objects.filter(user=member).exists()


def test_an_email_changed_in_the_admin_waits_for_its_member_and_links_keep_their_address(
    staff_client, member
):
    with_confirmed_email(member, "alice@example.org")

    saved = staff_client.post(
        reverse("admin:auth_user_change", args=[member.pk]),
        change_form(member, email="alice@new.example.org"),
    )

    assert saved.status_code == 302, saved.content.decode()[:2000]
    member.refresh_from_db()
    assert ConfirmedEmail.of(member).email == "alice@example.org"
    assert ConfirmedEmail.waiting_for(member) == "alice@new.example.org"


def test_a_member_with_no_confirmed_email_shows_none_in_the_admin(staff_client, member):
    page = staff_client.get(reverse("admin:auth_user_change", args=[member.pk]))

    assert page.status_code == 200
    assert "emails this member no link" in page.content.decode()


# --- the proxy's log ----------------------------------------------------------------------------


def test_the_readmes_nginx_keeps_every_link_token_out_of_its_log():
    """gunicorn's access log leaves out the tokens of reset and email confirmation links; the
    README's nginx, in front of it, logged the confirmation links' tokens."""
    readme = (ROOT / "README.md").read_text()
    nginx = re.search(r"```nginx\n(.*?)```", readme, re.S)[1]
    unlogged = re.findall(r"location (\S+) \{[^}]*access_log off;", nginx)
    for path in (
        reverse("password_reset_confirm", args=["MQ", "token"]),
        reverse("confirm_email", args=["MQ", "token"]),
    ):
        assert any(path.startswith(prefix) for prefix in unlogged), path
