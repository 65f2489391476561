from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from accounts.models import Invite

pytestmark = pytest.mark.django_db
PASSWORD = "a-long-unusual-passphrase-77"


def signup(client, invite, username="carol", password=PASSWORD):
    return client.post(
        f"/accounts/signup/{invite.token}/",
        {"username": username, "password1": password, "password2": password},
    )


def test_staff_creates_invite(staff_client):
    response = staff_client.post("/accounts/invites/", {"note": "Carol"}, follow=True)
    invite = Invite.objects.get()
    assert invite.note == "Carol"
    assert invite.get_absolute_url().encode() in response.content


def test_an_invite_says_who_it_is_for(staff_client):
    response = staff_client.post("/accounts/invites/", {"note": "  "})
    assert "Say who it is for" in response.content.decode()
    assert not Invite.objects.exists()


def test_friend_signs_up_once_with_an_invite(client, staff):
    invite = Invite.objects.create(created_by=staff, note="Carol")
    response = signup(client, invite)
    assert response.status_code == 302
    user = get_user_model().objects.get(username="carol")
    invite.refresh_from_db()
    assert invite.used_by == user and invite.state == "used"
    assert not user.is_staff
    # logged in straight away
    assert client.get("/").status_code == 200


def test_staff_who_open_their_own_invite_link_are_told_it_is_for_the_friend(staff_client, staff):
    invite = Invite.objects.create(created_by=staff, note="Carol")

    html = staff_client.get(f"/accounts/signup/{invite.token}/").content.decode()

    assert "You are logged in as <bdi>staff</bdi>." in html
    assert "would use it up and log you out" in html
    invite.refresh_from_db()
    assert invite.state == "open"


def test_used_invite_is_refused(client, staff):
    invite = Invite.objects.create(created_by=staff)
    signup(client, invite)
    client.logout()
    response = signup(client, invite, username="mallory")
    assert response.status_code == 410
    assert b"already been used" in response.content
    assert not get_user_model().objects.filter(username="mallory").exists()


def test_expired_invite_is_refused(client, staff):
    invite = Invite.objects.create(created_by=staff, expires_at=timezone.now() - timedelta(hours=1))
    response = client.get(f"/accounts/signup/{invite.token}/")
    assert response.status_code == 410
    assert b"expired" in response.content


def test_revoked_and_unknown_invites_are_refused(client, staff_client, staff):
    invite = Invite.objects.create(created_by=staff)
    staff_client.post(f"/accounts/invites/{invite.pk}/revoke/")
    assert client.get(f"/accounts/signup/{invite.token}/").status_code == 410
    assert client.get("/accounts/signup/not-a-token/").status_code == 410


def test_weak_password_is_rejected_by_django_validators(client, staff):
    invite = Invite.objects.create(created_by=staff)
    response = signup(client, invite, password="password")
    assert response.status_code == 200
    assert b"too common" in response.content
    invite.refresh_from_db()
    assert invite.state == "open"


def test_member_can_change_password(member_client, member):
    response = member_client.post(
        "/accounts/password/",
        {"old_password": "correct horse 1", "new_password1": PASSWORD, "new_password2": PASSWORD},
    )
    assert response.status_code == 302
    member.refresh_from_db()
    assert member.check_password(PASSWORD)


def test_a_name_taken_by_a_simultaneous_signup_is_said_not_a_500(client, staff, monkeypatch):
    """Two friends sign up with two invites at the same moment, as the same name: the form's check
    passes for both, and the database refuses the second."""
    from accounts.forms import SignupForm

    invite = Invite.objects.create(created_by=staff, note="Carol")
    monkeypatch.setattr(SignupForm, "clean_username", lambda form: form.cleaned_data["username"])
    get_user_model().objects.create_user(username="carol", password=PASSWORD)  # the other one

    response = signup(client, invite)

    assert response.status_code == 200
    assert "A user with that username already exists." in response.content.decode()
    invite.refresh_from_db()
    assert invite.state == "open" and invite.used_by is None
