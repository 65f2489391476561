"""The admin's own password change asks for the current password as the site's page does, and
counts each wrong one the same way: a staff session left open cannot guess it without end."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.test_login_throttle import address, attempt

pytestmark = pytest.mark.django_db
ADMIN_CHANGE = "/admin/password_change/"
NEW = "a new horse battery 9"


@pytest.fixture(autouse=True)
def limits(settings):
    settings.JOE_LOGIN_FAILURES = 5
    settings.JOE_LOGIN_LOCK_MINUTES = 15


def change_password(client: Client, old: str, at: str):
    data = {"old_password": old, "new_password1": NEW, "new_password2": NEW}
    return client.post(ADMIN_CHANGE, data, REMOTE_ADDR=at)


def test_a_staff_session_left_open_cannot_guess_the_password_in_the_admin(client, staff):
    here = address()
    client.force_login(staff)
    for _ in range(5):
        response = change_password(client, "wrong", here)
        assert response.status_code == 200 and "incorrectly" in response.content.decode()

    response = change_password(client, "correct horse 3", here)  # the right one, too late

    assert "Too many wrong passwords for this account from your address" in (
        response.content.decode()
    )
    staff.refresh_from_db()
    assert staff.check_password("correct horse 3")
    assert attempt(Client(), "staff", "correct horse 3", here).status_code == 429  # one count


def test_the_admin_password_change_still_works(client, staff):
    here = address()
    client.force_login(staff)
    page = client.get(ADMIN_CHANGE)
    assert page.status_code == 200 and 'name="old_password"' in page.content.decode()

    response = change_password(client, "correct horse 3", here)

    assert response.status_code == 302 and response["Location"] == "/admin/password_change/done/"
    staff.refresh_from_db()
    assert staff.check_password(NEW)
    assert "_auth_user_id" in client.session  # still logged in, as after Django's own


def test_the_admin_password_change_is_for_staff_only(client, member):
    client.force_login(member)
    response = client.get(ADMIN_CHANGE)
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    assert client.post(ADMIN_CHANGE, {"old_password": "x"}).status_code == 302
