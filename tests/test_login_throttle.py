"""Failed logins are throttled per username and address, on the login page and the admin's."""

from __future__ import annotations

import pickle
import secrets
import time

import pytest
from django.test import Client

from accounts import login as throttle

pytestmark = pytest.mark.django_db
LOGIN = "/accounts/login/"


def address() -> str:
    """An address no other test (or earlier run, the cache may be Redis) has used."""
    return f"2001:db8:{secrets.token_hex(2)}:{secrets.token_hex(2)}::1"  # a /64 of its own


def attempt(client: Client, username: str, password: str, at: str, **extra):
    return client.post(LOGIN, {"username": username, "password": password}, REMOTE_ADDR=at, **extra)


def logged_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


@pytest.fixture(autouse=True)
def limits(settings):
    settings.JOE_LOGIN_FAILURES = 5
    settings.JOE_LOGIN_LOCK_MINUTES = 15


def test_a_username_is_locked_for_an_address_after_five_failures(client, member):
    here = address()
    for _ in range(5):
        response = attempt(client, "alice", "wrong", here)
        assert response.status_code == 200 and "correct username and password" in (
            response.content.decode()
        )

    response = attempt(client, "alice", "correct horse 1", here)  # the right one, too late

    assert response.status_code == 429
    assert "Too many failed logins for this account from your address" in response.content.decode()
    assert "Try again in 15 minutes" in response.content.decode()
    assert not logged_in(client)
    # Elsewhere, alice is not locked out: a stranger cannot lock a friend out of their account.
    other = Client()
    assert attempt(other, "alice", "correct horse 1", address()).status_code == 302
    assert logged_in(other)


def test_the_lock_ends_after_its_minutes(client, member, monkeypatch):
    here = address()
    for _ in range(5):
        attempt(client, "ALICE ", "wrong", here)  # a username counts however it is typed
    assert attempt(client, "alice", "correct horse 1", here).status_code == 429

    later = throttle.time.time() + 15 * 60 + 1
    monkeypatch.setattr(throttle.time, "time", lambda: later)

    assert attempt(client, "alice", "correct horse 1", here).status_code == 302
    assert logged_in(client)


def test_a_successful_login_clears_the_count(client, member):
    here = address()
    for _ in range(4):
        attempt(client, "alice", "wrong", here)
    assert attempt(client, "alice", "correct horse 1", here).status_code == 302
    client.logout()
    for _ in range(4):
        attempt(client, "alice", "wrong", here)

    assert attempt(client, "alice", "correct horse 1", here).status_code == 302


def test_an_address_trying_many_usernames_is_locked_for_all(client, member, settings):
    settings.JOE_LOGIN_FAILURES = 2
    here = address()
    for n in range(2 * throttle.ADDRESS_FACTOR):
        attempt(client, f"guess{n}", "wrong", here)  # one try each: no username is locked

    response = attempt(client, "alice", "correct horse 1", here)

    assert response.status_code == 429 and not logged_in(client)


def test_the_admin_login_is_throttled_too(client, staff):
    here = address()
    for _ in range(5):
        client.post("/admin/login/", {"username": "staff", "password": "wrong"}, REMOTE_ADDR=here)

    response = client.post(
        "/admin/login/",
        {"username": "staff", "password": "correct horse 3", "next": "/admin/"},
        REMOTE_ADDR=here,
    )

    assert response.status_code == 200 and not logged_in(client)
    assert "Too many failed logins" in response.content.decode()


def test_behind_the_proxy_the_forwarded_address_counts(client, member, settings):
    settings.JOE_BEHIND_PROXY = True
    here, there = address(), address()
    for _ in range(5):
        # The proxy appends the client's address; anything before it is the client's own say.
        attempt(client, "alice", "wrong", "127.0.0.1", HTTP_X_FORWARDED_FOR=f"10.0.0.1, {here}")

    locked = attempt(client, "alice", "correct horse 1", "127.0.0.1", HTTP_X_FORWARDED_FOR=here)
    spoofed = attempt(
        client, "alice", "correct horse 1", "127.0.0.1", HTTP_X_FORWARDED_FOR=f"{there}, {here}"
    )
    elsewhere = attempt(client, "alice", "correct horse 1", "127.0.0.1", HTTP_X_FORWARDED_FOR=there)

    assert (locked.status_code, spoofed.status_code, elsewhere.status_code) == (429, 429, 302)


def test_a_logged_in_member_sent_back_to_the_login_page_goes_home(member_client):
    response = member_client.get(LOGIN + "?next=/accounts/login/")

    assert response.status_code == 302 and response.url == "/"


def test_attempts_are_counted_before_the_password_is_checked(rf):
    """Many guesses at once: each takes its turn from the count before any password is
    checked, so no more than the limit get through however many arrive together."""
    request = rf.post(LOGIN, REMOTE_ADDR=address())
    allowed = [throttle.reserve_attempt(request, "alice") == 0 for _ in range(12)]
    assert allowed == [True] * 5 + [False] * 7


def test_an_ipv6_address_counts_as_its_64(client, member):
    network = f"2001:db8:{secrets.token_hex(2)}:{secrets.token_hex(2)}"
    for n in range(5):
        attempt(client, "alice", "wrong", f"{network}::{n + 1:x}")

    response = attempt(client, "alice", "correct horse 1", f"{network}:abcd::9")

    assert response.status_code == 429


@pytest.mark.parametrize(
    ("remote", "counted_as"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("::ffff:192.0.2.7", "192.0.2.7"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("not an address", "not an address"),
    ],
)
def test_which_address_a_login_counts_against(rf, remote, counted_as):
    assert throttle.client_address(rf.post(LOGIN, REMOTE_ADDR=remote)) == counted_as


@pytest.mark.parametrize("backend", ["filebased", "redis"])
def test_failures_count_for_the_lock_minutes_on_every_cache(rf, settings, tmp_path, backend):
    """The file cache (bin/demo's) re-stored an incremented count with its default 5 minutes,
    so a guesser got a fresh count every 5 minutes there, not every 15."""
    if backend == "redis":
        if not settings.REDIS_URL:
            pytest.skip("no REDIS_URL: the suite runs without Redis")
        location, name = settings.REDIS_URL, "RedisCache"
    else:
        location, name = str(tmp_path / "cache"), "FileBasedCache"
    settings.CACHES = {
        "default": {"BACKEND": f"django.core.cache.backends.{backend}.{name}", "LOCATION": location}
    }
    from django.core.cache import cache  # follows the setting

    request = rf.post(LOGIN, REMOTE_ADDR=address())
    for _ in range(3):
        assert throttle.reserve_attempt(request, "alice") == 0
    pair, _ = throttle._keys(request, "alice")
    if backend == "redis":
        ttl = cache._cache.get_client(pair).ttl(cache.make_and_validate_key(pair))
    else:
        with open(cache._key_to_file(pair), "rb") as stored:
            ttl = pickle.load(stored) - time.time()  # noqa: S301 (our own file: its expiry)
    assert 14 * 60 < ttl <= 15 * 60
    assert cache.get(pair) == 3


NEW = "a new horse battery 9"


def change_password(client: Client, old: str, at: str):
    data = {"old_password": old, "new_password1": NEW, "new_password2": NEW}
    return client.post("/accounts/password/", data, REMOTE_ADDR=at)


def test_a_session_left_open_cannot_guess_the_password_without_end(client, member):
    """Changing the password and deleting the account ask for it again: on a shared computer
    where alice stayed logged in, each wrong guess counts as a failed login does."""
    here = address()
    client.force_login(member)
    for _ in range(3):
        assert "incorrectly" in change_password(client, "wrong", here).content.decode()
    for _ in range(2):
        client.post("/accounts/me/delete-account/", {"password": "wrong"}, REMOTE_ADDR=here)

    response = change_password(client, "correct horse 1", here)  # the right one, too late

    assert "Too many wrong passwords for this account from your address" in (
        response.content.decode()
    )
    member.refresh_from_db()
    assert member.check_password("correct horse 1")
    assert attempt(Client(), "alice", "correct horse 1", here).status_code == 429


def test_the_right_password_asked_again_clears_the_count(client, member):
    here = address()
    client.force_login(member)
    for _ in range(4):
        change_password(client, "wrong", here)

    assert change_password(client, "correct horse 1", here).status_code == 302

    assert attempt(Client(), "alice", NEW, here).status_code == 302  # not one try from the lock
