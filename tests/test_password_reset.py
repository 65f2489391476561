"""A member who forgot their password gets back in: with a link staff make on the Invites page,
or one emailed by "Forgot your password?" when the site can send email."""

from __future__ import annotations

import logging
import re
import secrets
import smtplib
import time
from datetime import timedelta

import pytest
from django.core import mail
from django.core.cache import cache
from django.core.mail.backends import locmem
from django.test import Client

from accounts import password_reset
from tests.builders.members import with_confirmed_email
from tests.builders.snippets import make_speaker

pytestmark = pytest.mark.django_db
NEW_PASSWORD = "a-brand-new-passphrase-42"
FORGOT = "/accounts/password/forgotten/"


def address() -> str:
    """An address no other test (or earlier run: the cache may be Redis) has used."""
    return f"2001:db8:{secrets.token_hex(2)}:{secrets.token_hex(2)}::1"


def link_from(page) -> str:  # noqa: ANN001
    found = re.search(r'data-testid="reset-link"', page.content.decode())
    assert found, "no reset link on the page"
    return re.search(r'value="http://testserver(/accounts/reset/[^"]+)"', page.content.decode())[1]


def make_link(staff_client: Client, user) -> str:  # noqa: ANN001
    page = staff_client.post(f"/accounts/members/{user.pk}/reset-link/", follow=True)
    assert page.status_code == 200
    return link_from(page)


def set_password(client: Client, link: str, password: str = NEW_PASSWORD, **extra):  # noqa: ANN003
    opened = client.get(link, **extra)
    assert opened.status_code == 302, opened.status_code
    return client.post(
        opened["Location"], {"new_password1": password, "new_password2": password}, **extra
    )


def logged_in_as(client: Client) -> str | None:
    return client.session.get("_auth_user_id")


@pytest.fixture(autouse=True)
def fresh_counts(member, other_member):
    """The emailed-link counts live in the cache, which outlives a test run."""
    cache.delete_many([f"joe:password-reset:account:{u.pk}" for u in (member, other_member)])


@pytest.fixture
def email_on(settings):
    """Email configured (the test run's backend is Django's locmem one: mail.outbox), and the
    task run in this process, as the worker would run it."""
    from joe_site.celery import app

    settings.JOE_EMAIL_ENABLED = True
    saved = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = saved


@pytest.fixture
def broker_down(email_on):
    """The Celery app pointed at a port where no broker listens."""
    from joe_site.celery import app

    saved = app.conf.broker_url, app.conf.task_always_eager
    app.conf.task_always_eager = False
    app.conf.broker_url = "redis://127.0.0.1:1/0"
    app._pool = app.amqp._producer_pool = None  # their connections were made for the old URL
    yield
    app.conf.broker_url, app.conf.task_always_eager = saved
    app._pool = app.amqp._producer_pool = None


# --- the staff's link --------------------------------------------------------------------------


def test_staff_make_a_link_and_the_member_sets_a_new_password(staff_client, member, client):
    make_speaker("Alice A.", member=member)
    invites = staff_client.get("/accounts/invites/").content.decode()
    assert "Alice A." in invites and "Make a reset link" in invites and "never" in invites

    link = make_link(staff_client, member)
    opened = client.get(link)
    # The token leaves the address bar at once, and no page of the link sends a Referer.
    assert opened["Location"].endswith("/set-password/")
    assert opened["Referrer-Policy"] == "no-referrer"
    form = client.get(opened["Location"])
    assert form.status_code == 200 and "Set a new password" in form.content.decode()
    # Its address holds no token; the site's policy sends no Referer to other sites from it
    # (no-referrer here would post the form with "Origin: null", refused as a forgery).
    assert form["Referrer-Policy"] == "same-origin"
    done = client.post(
        opened["Location"], {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}
    )

    assert done.status_code == 302 and done["Location"] == "/"
    assert logged_in_as(client) == str(member.pk)
    assert "Welcome back, alice" in client.get("/").content.decode()
    member.refresh_from_db()
    assert member.check_password(NEW_PASSWORD)


def test_the_new_password_must_pass_the_password_rules(staff_client, member, client):
    response = set_password(client, make_link(staff_client, member), password="12345678")

    assert response.status_code == 200
    assert "This password is too common" in response.content.decode()
    assert logged_in_as(client) is None


def test_a_link_works_once(staff_client, member, client):
    link = make_link(staff_client, member)
    set_password(client, link)

    again = Client().get(link)

    assert again.status_code == 410
    page = again.content.decode()
    assert "This reset link doesn't work" in page and "Ask a staff member for a new link" in page
    # Its token opens nothing now; the page keeps the site's policy so that its forms work.
    assert again["Referrer-Policy"] == "same-origin"


def test_a_link_lasts_the_days_the_setting_says(staff_client, member, settings, monkeypatch):
    settings.JOE_PASSWORD_RESET_DAYS = 2
    link = make_link(staff_client, member)
    made = password_reset.tokens._now()

    monkeypatch.setattr(password_reset.tokens, "_now", lambda: made + timedelta(days=2, hours=-1))
    assert Client().get(link).status_code == 302
    monkeypatch.setattr(password_reset.tokens, "_now", lambda: made + timedelta(days=2, hours=1))
    expired = Client().get(link)
    assert expired.status_code == 410
    assert "a link works for 2 days" in expired.content.decode()


def test_a_link_dies_with_its_account_deactivated(staff_client, member):
    link = make_link(staff_client, member)
    member.is_active = False
    member.save()

    assert Client().get(link).status_code == 410


def test_the_invite_form_beside_a_reset_link_still_makes_invites(staff_client, member):
    made = staff_client.post(f"/accounts/members/{member.pk}/reset-link/", follow=True)

    assert '<form method="post" action="/accounts/invites/" class="inline-form">' in (
        made.content.decode()
    )


def test_a_garbled_link_says_to_ask_staff(client):
    for path in ("/accounts/reset/zzz/abc-def/", "/accounts/reset/MQ/set-password/"):
        response = client.get(path)
        assert response.status_code == 410
        assert "Ask a staff member for a new link" in response.content.decode()


def test_members_cannot_make_reset_links(member_client, other_member):
    response = member_client.post(f"/accounts/members/{other_member.pk}/reset-link/")

    assert response.status_code == 403
    assert "reset-link" not in response.content.decode()


def test_only_a_superuser_makes_a_link_for_a_superuser(staff, member, django_user_model):
    helper = django_user_model.objects.create_user(
        username="helper", password="correct horse 4", is_staff=True
    )
    staff_member = Client()
    staff_member.force_login(helper)

    page = staff_member.get("/accounts/invites/").content.decode()
    assert f"/accounts/members/{staff.pk}/reset-link/" not in page
    assert f"/accounts/members/{member.pk}/reset-link/" in page
    assert staff_member.post(f"/accounts/members/{staff.pk}/reset-link/").status_code == 403
    assert make_link(staff_member, member)
    superuser = Client()
    superuser.force_login(staff)
    assert make_link(superuser, staff)


def test_a_new_password_clears_the_login_lock(staff_client, member, settings):
    settings.JOE_LOGIN_FAILURES, settings.JOE_LOGIN_LOCK_MINUTES = 5, 15
    phone = address()
    for _ in range(6):
        locked = Client().post(
            "/accounts/login/", {"username": "alice", "password": "wrong"}, REMOTE_ADDR=phone
        )
    assert locked.status_code == 429
    assert "or use “Forgot your password?” on the login page" in locked.content.decode()

    set_password(Client(), make_link(staff_client, member), REMOTE_ADDR=address())  # a laptop

    back = Client().post(
        "/accounts/login/", {"username": "alice", "password": NEW_PASSWORD}, REMOTE_ADDR=phone
    )
    assert back.status_code == 302


def test_the_members_table_takes_the_same_queries_for_many(
    staff_client, django_user_model, django_assert_max_num_queries
):
    for n in range(12):
        user = django_user_model.objects.create_user(username=f"friend{n}")
        make_speaker(f"Friend {n}", member=user)
    with django_assert_max_num_queries(12):
        page = staff_client.get("/accounts/invites/")
    assert "Friend 11" in page.content.decode()


def test_emailed_links_are_sent_by_the_default_worker():
    from joe_site.celery import app

    assert app.amqp.router.route({}, "accounts.tasks.send_password_reset")["queue"].name == (
        "default"
    )


# --- "Forgot your password?" -------------------------------------------------------------------


def test_the_login_page_links_to_forgot_your_password(client):
    assert 'href="/accounts/password/forgotten/"' in client.get("/accounts/login/").content.decode()


def test_without_email_the_page_says_to_ask_staff(client, settings):
    settings.JOE_EMAIL_ENABLED = False

    page = client.get(FORGOT)

    assert page.status_code == 200
    text = page.content.decode()
    assert "Ask a staff member of this joe for a reset link" in text
    assert '<form method="post">' not in text


def test_a_member_gets_a_link_by_email(client, member, email_on, caplog):
    with_confirmed_email(member, "alice@example.org")
    here = address()

    with caplog.at_level(logging.DEBUG):
        page = client.post(FORGOT, {"username_or_email": "ALICE@example.org"}, REMOTE_ADDR=here)

    assert page.status_code == 200
    assert "a link to set a new password is on its way" in page.content.decode()
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["alice@example.org"]
    link = re.search(r"http://testserver(/accounts/reset/\S+/)", mail.outbox[0].body)[1]
    assert link not in caplog.text and "/accounts/reset/" not in caplog.text
    assert "Emailed a password reset link to alice" in caplog.text
    assert set_password(client, link).status_code == 302
    assert logged_in_as(client) == str(member.pk)


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_emails_the_link(client, member, settings, celery_worker_on_redis):
    settings.JOE_EMAIL_ENABLED = True
    with_confirmed_email(member, "alice@example.org")

    page = client.post(FORGOT, {"username_or_email": "alice"}, REMOTE_ADDR=address())

    assert "is on its way" in page.content.decode()
    deadline = time.monotonic() + 30
    while not mail.outbox and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [m.to for m in mail.outbox] == [["alice@example.org"]]
    assert "http://testserver/accounts/reset/" in mail.outbox[0].body


def test_an_unknown_account_gets_the_same_answer(client, member, email_on):
    with_confirmed_email(member, "alice@example.org")

    known = client.post(FORGOT, {"username_or_email": "alice"}, REMOTE_ADDR=address())
    unknown = client.post(FORGOT, {"username_or_email": "nobody"}, REMOTE_ADDR=address())

    def answer(response) -> str:  # noqa: ANN001
        return re.sub(r"[A-Za-z0-9]{64}", "(csrf token)", response.content.decode())

    assert (known.status_code, answer(known)) == (unknown.status_code, answer(unknown))
    assert len(mail.outbox) == 1


def test_an_address_may_ask_five_times_an_hour(client, member, email_on):
    here = address()
    for _ in range(5):
        assert client.post(FORGOT, {"username_or_email": "x"}, REMOTE_ADDR=here).status_code == 200

    sixth = client.post(FORGOT, {"username_or_email": "alice"}, REMOTE_ADDR=here)

    assert sixth.status_code == 429
    assert "Too many requests for a new password from your address" in sixth.content.decode()
    assert client.post(FORGOT, {"username_or_email": "x"}, REMOTE_ADDR=address()).status_code == 200


def test_an_account_gets_three_links_an_hour(client, member, email_on):
    with_confirmed_email(member, "alice@example.org")

    for _ in range(4):  # from four addresses: the account's own count stops the fourth
        response = client.post(FORGOT, {"username_or_email": "alice"}, REMOTE_ADDR=address())
        assert "is on its way" in response.content.decode()

    assert len(mail.outbox) == 3


class MailServerDown(locmem.EmailBackend):
    """Django's test outbox behind a mail server that drops the first ``failures`` sends."""

    failures = 1
    tried = 0

    def send_messages(self, messages):  # noqa: ANN001, ANN201
        MailServerDown.tried += 1
        if MailServerDown.tried <= MailServerDown.failures:
            raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")
        return super().send_messages(messages)


@pytest.fixture
def mail_server_down(settings):
    settings.EMAIL_BACKEND = f"{__name__}.MailServerDown"
    MailServerDown.tried, MailServerDown.failures = 0, 1
    return MailServerDown


def test_a_mail_server_that_fails_once_is_tried_again(
    client, member, other_member, email_on, mail_server_down, caplog
):
    """The SMTP error was logged and the member never got their link."""
    from accounts.tasks import send_password_reset

    # Two accounts named at once (a username that is the other's email): one was sent at once.
    with_confirmed_email(member, "alice@example.org")
    other_member.username = "alice@example.org"
    other_member.save()
    with_confirmed_email(other_member, "bob@example.org")

    with caplog.at_level(logging.DEBUG):
        send_password_reset.apply(args=("alice@example.org", "http://testserver/"))

    assert sorted(m.to for m in mail.outbox) == [["alice@example.org"], ["bob@example.org"]]
    assert mail_server_down.tried == 3
    assert "Trying the reset email again in 60 s" in caplog.text
    assert "/accounts/reset/" not in caplog.text
    # The try again did not take another of the account's three links an hour.
    for _ in range(2):
        client.post(FORGOT, {"username_or_email": "alice"}, REMOTE_ADDR=address())
    assert len(mail.outbox) == 4


def test_a_mail_server_that_keeps_failing_is_given_up_on(
    member, email_on, mail_server_down, caplog
):
    from accounts.tasks import send_password_reset

    mail_server_down.failures = 99
    with_confirmed_email(member, "alice@example.org")

    with caplog.at_level(logging.DEBUG):
        result = send_password_reset.apply(args=("alice", "http://testserver/"))

    assert result.successful() and mail.outbox == []
    assert mail_server_down.tried == 4
    assert "Gave up emailing a reset link after 4 tries" in caplog.text
    assert "/accounts/reset/" not in caplog.text


def test_a_queue_that_does_not_answer_is_said(client, member, broker_down):
    response = client.post(FORGOT, {"username_or_email": "alice"}, REMOTE_ADDR=address())

    assert response.status_code == 503
    assert "its job queue is not answering" in response.content.decode()
    assert mail.outbox == []


# --- the email on the member's page -------------------------------------------------------------


def test_a_member_sets_changes_and_removes_their_email(member_client, member):
    member_password = "correct horse 1"  # noqa: S105 (the conftest's alice)

    def save(email: str, password: str = member_password):
        return member_client.post("/accounts/me/email/", {"email": email, "password": password})

    assert save("alice@Example.ORG").status_code == 302
    member.refresh_from_db()
    assert member.email == "alice@example.org"
    assert save("alice@elsewhere.org").status_code == 302
    member.refresh_from_db()
    assert member.email == "alice@elsewhere.org"
    wrong = save("someone@else.org", password="not hers")
    assert "That is not your password" in wrong.content.decode()
    assert save("").status_code == 302
    member.refresh_from_db()
    assert member.email == ""


def test_an_email_belongs_to_one_account(member_client, member, other_member):
    with_confirmed_email(other_member, "Bob@Example.org")

    response = member_client.post(
        "/accounts/me/email/", {"email": "bob@example.ORG", "password": "correct horse 1"}
    )

    assert response.status_code == 200
    assert "Another account has that email already" in response.content.decode()
    member.refresh_from_db()
    assert member.email == ""


def test_another_accounts_email_is_not_told_without_the_password(
    member_client, member, other_member
):
    with_confirmed_email(other_member, "bob@example.org")

    response = member_client.post(
        "/accounts/me/email/", {"email": "bob@example.org", "password": "not hers"}
    )

    assert response.status_code == 200
    text = response.content.decode()
    assert "That is not your password" in text
    assert "Another account has that email already" not in text
    member.refresh_from_db()
    assert member.email == ""


def test_the_access_log_leaves_the_token_out(member, client, tmp_path):
    from pathlib import Path
    from types import SimpleNamespace

    from gunicorn.config import Config

    from joe_site.access_log import AccessLog

    root = Path(__file__).resolve().parents[1]
    for server in ("bin/demo", "docker/web"):  # the demo's log file; docker's, if turned on
        assert "--logger-class joe_site.access_log.AccessLog" in (root / server).read_text()
    config = Config()
    config.set("accesslog", str(tmp_path / "web-access.log"))
    access_log = AccessLog(config)
    link = password_reset.reset_path(member)
    set_password_page = client.get(link)["Location"]

    for path in (link, set_password_page):
        environ = {
            "REQUEST_METHOD": "GET", "RAW_URI": path, "PATH_INFO": path, "QUERY_STRING": "",
            "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1", "HTTP_REFERER": path,
        }  # fmt: skip
        response = SimpleNamespace(status="302 Found", headers=[], sent=0)
        access_log.access(response, SimpleNamespace(headers=[]), environ, timedelta(0))

    logged = (tmp_path / "web-access.log").read_text()
    token = link.rstrip("/").rsplit("/", 1)[1]
    assert token not in logged
    assert link.replace(token, "(token)") in logged and set_password_page in logged
