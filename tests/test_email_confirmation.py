"""A member's email gets reset links only once they have confirmed it with the link joe emails
to it: a typo or someone else's address gets none, and one address belongs to one account."""

from __future__ import annotations

import logging
import re
import secrets
import smtplib
from datetime import timedelta

import pytest
from django.core import mail
from django.core.cache import cache
from django.core.mail.backends import locmem
from django.db import IntegrityError, transaction
from django.test import Client

from accounts import email_confirmation
from accounts.models import ConfirmedEmail
from joe_site.access_log import redact
from tests.builders.members import with_confirmed_email
from tests.builders.waiting import wait_for

pytestmark = pytest.mark.django_db
ME = "/accounts/me/"
SAVE_EMAIL = "/accounts/me/email/"
SEND_AGAIN = "/accounts/me/email/send-confirmation/"
FORGOT = "/accounts/password/forgotten/"
ALICE_PASSWORD = "correct horse 1"  # noqa: S105 (the conftest's alice)
BOB_PASSWORD = "correct horse 2"  # noqa: S105 (the conftest's bob)


def address() -> str:
    """A client address no other test (or earlier run: the cache is Redis) has used."""
    return f"2001:db8:{secrets.token_hex(2)}:{secrets.token_hex(2)}::1"


@pytest.fixture(autouse=True)
def fresh_counts(member, other_member):
    """The counts of links sent live in the cache, which outlives a test run."""
    cache.delete_many(
        [
            f"joe:{kind}:account:{user.pk}"
            for user in (member, other_member)
            for kind in ("email-confirmation", "password-reset")
        ]
    )


@pytest.fixture
def email_on(settings):
    """Email configured, into Django's locmem outbox (mail.outbox), and the email tasks run in
    this process, as the `default` worker would run them (as tests/test_password_reset.py)."""
    from joe_site.celery import app

    settings.JOE_EMAIL_ENABLED = True
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    saved = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = saved


def save_email(client: Client, email: str, password: str = ALICE_PASSWORD):
    return client.post(SAVE_EMAIL, {"email": email, "password": password})


def confirmation_link(to: str) -> str:
    """The path of the latest confirmation link emailed to ``to``."""
    sent = [m for m in mail.outbox if m.to == [to] and "Confirm your email" in m.subject]
    assert sent, f"no confirmation link emailed to {to}"
    return re.search(r"http://testserver(/accounts/email/confirm/\S+/)", sent[-1].body)[1]


def open_and_confirm(client: Client, link: str):
    opened = client.get(link)
    assert opened.status_code == 302, opened.status_code
    return client.post(opened["Location"])


def reset_emails() -> list[tuple[list[str], str]]:
    """(to, the account greeted) of each reset email sent."""
    return [
        (m.to, re.match(r"Hello (\S+),", m.body)[1])
        for m in mail.outbox
        if m.subject == "Set a new password for joe"
    ]


def forgot(client: Client, typed: str):
    return client.post(FORGOT, {"username_or_email": typed}, REMOTE_ADDR=address())


# --- confirming ----------------------------------------------------------------------------------


def test_a_member_confirms_the_email_they_set(member_client, member, email_on, caplog):
    with caplog.at_level(logging.DEBUG):
        saved = save_email(member_client, "alice@example.org")

    assert saved.status_code == 302
    assert "joe is emailing a link to alice@example.org" in member_client.get(ME).content.decode()
    link = confirmation_link("alice@example.org")
    token = link.rstrip("/").rsplit("/", 1)[1]
    assert token not in caplog.text and "/accounts/email/confirm/" not in caplog.text
    assert "Emailed a link to confirm the email of alice" in caplog.text
    page = member_client.get(ME).content.decode()
    assert "is not confirmed yet" in page and "Send the link again" in page
    assert not ConfirmedEmail.objects.exists()

    opened = member_client.get(link)
    # The token leaves the address bar at once, and that address sends no Referer.
    assert opened["Location"].endswith("/confirm-email/")
    assert opened["Referrer-Policy"] == "no-referrer"
    asked = member_client.get(opened["Location"]).content.decode()
    assert "Confirm <strong>alice@example.org</strong>" in asked
    assert not ConfirmedEmail.objects.exists()  # opening it (a mail scanner) confirms nothing
    done = member_client.post(opened["Location"])

    assert done.status_code == 302 and done["Location"] == ME
    assert ConfirmedEmail.objects.get().email == "alice@example.org"
    page = member_client.get(ME).content.decode()
    assert "Confirmed your email: alice@example.org." in page
    assert "emails its links to <strong>alice@example.org</strong>" in page
    assert "is not confirmed yet" not in page


def test_a_link_opened_in_another_browser_confirms_without_a_login(member_client, email_on):
    save_email(member_client, "alice@example.org")

    done = open_and_confirm(Client(), confirmation_link("alice@example.org"))

    assert done.status_code == 200
    assert "alice@example.org is the confirmed email of alice" in done.content.decode()
    assert ConfirmedEmail.objects.get().email == "alice@example.org"


def test_a_link_works_once(member_client, email_on):
    save_email(member_client, "alice@example.org")
    link = confirmation_link("alice@example.org")
    open_and_confirm(member_client, link)

    again = Client().get(link)

    assert again.status_code == 410
    assert "This confirmation link doesn't work" in again.content.decode()


def test_a_link_dies_once_the_email_changes(member_client, member, email_on):
    save_email(member_client, "alice@exmaple.org")  # a typo
    typo_link = confirmation_link("alice@exmaple.org")
    save_email(member_client, "alice@example.org")

    assert Client().get(typo_link).status_code == 410
    assert open_and_confirm(Client(), confirmation_link("alice@example.org")).status_code == 200
    assert ConfirmedEmail.objects.get().email == "alice@example.org"


def test_a_link_pressed_after_the_email_changed_confirms_nothing(member_client, email_on):
    save_email(member_client, "alice@example.org")
    other_browser = Client()
    opened = other_browser.get(confirmation_link("alice@example.org"))
    save_email(member_client, "alice@example.net")

    pressed = other_browser.post(opened["Location"])

    assert pressed.status_code == 410
    assert not ConfirmedEmail.objects.exists()


def test_a_garbled_link_says_how_to_get_another(client):
    for path in (
        "/accounts/email/confirm/zzz/abc-def/",
        "/accounts/email/confirm/MQ/confirm-email/",
    ):
        response = client.get(path)
        assert response.status_code == 410
        assert "Send the link again" in response.content.decode()


def test_the_access_log_leaves_the_confirmation_token_out(member):
    member.email = "alice@example.org"
    member.save()
    link = email_confirmation.confirm_path(member)
    token = link.rstrip("/").rsplit("/", 1)[1]

    line = f'"GET {link} HTTP/1.1" 302 - "http://testserver{link}"'

    assert token not in redact(line)
    assert link.replace(token, "(token)") in redact(line)
    swapped = link.replace(token, email_confirmation.URL_TOKEN)
    assert redact(swapped) == swapped


def test_the_broker_gets_the_account_and_address_never_a_link(
    member_client, member, email_on, monkeypatch
):
    from accounts import tasks

    queued = []
    monkeypatch.setattr(tasks.send_email_confirmation, "delay", lambda *args: queued.append(args))
    save_email(member_client, "alice@example.org")

    assert queued == [(member.pk, "alice@example.org", "http://testserver/")]
    tasks.send_email_confirmation.apply(args=queued[0])
    assert "/accounts/email/confirm/" in mail.outbox[0].body


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_emails_the_link(member, settings, celery_worker_on_redis):
    settings.JOE_EMAIL_ENABLED = True
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    client = Client()
    client.force_login(member)

    save_email(client, "alice@example.org")

    assert wait_for(lambda: mail.outbox, timeout=30)
    assert open_and_confirm(Client(), confirmation_link("alice@example.org")).status_code == 200


class MailServerDownOnce(locmem.EmailBackend):
    tried = 0

    def send_messages(self, messages):  # noqa: ANN001, ANN201
        MailServerDownOnce.tried += 1
        if MailServerDownOnce.tried == 1:
            raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")
        return super().send_messages(messages)


def test_a_mail_server_that_fails_once_is_tried_again(member, email_on, settings, caplog):
    from accounts.tasks import send_email_confirmation

    settings.EMAIL_BACKEND = f"{__name__}.MailServerDownOnce"
    MailServerDownOnce.tried = 0
    member.email = "alice@example.org"
    member.save()

    with caplog.at_level(logging.DEBUG):
        send_email_confirmation.apply(args=(member.pk, "alice@example.org", "http://testserver/"))

    assert [m.to for m in mail.outbox] == [["alice@example.org"]]
    assert "Trying the email confirmation link again in 60 s" in caplog.text
    assert "/accounts/email/confirm/" not in caplog.text


# --- sending again, and without email -----------------------------------------------------------


def test_send_again_is_throttled_to_three_links_an_hour(member_client, email_on):
    save_email(member_client, "alice@example.org")  # the first of the three
    for _ in range(2):
        member_client.post(SEND_AGAIN)

    fourth = member_client.post(SEND_AGAIN, follow=True)

    assert "within the hour already" in fourth.content.decode()
    assert len(mail.outbox) == 3
    # Setting another address counts too: nobody sends a stream of links to addresses they typed.
    save_email(member_client, "alice@example.net")
    assert "no link to confirm it went" in member_client.get(ME).content.decode()
    assert len(mail.outbox) == 3


def test_a_confirmed_email_needs_no_link(member_client, member, email_on):
    with_confirmed_email(member, "alice@example.org")

    member_client.post(SEND_AGAIN)
    save_email(member_client, "alice@example.org")

    assert mail.outbox == []
    assert "is not confirmed yet" not in member_client.get(ME).content.decode()


def test_without_email_the_me_page_says_no_address_can_be_confirmed(
    member_client, member, settings
):
    settings.JOE_EMAIL_ENABLED = False

    save_email(member_client, "alice@example.org")
    page = member_client.get(ME).content.decode()

    assert "This joe sends no email, so it cannot confirm your address" in page  # the toast
    assert "is not confirmed yet" in page
    assert "This joe sends no email, so it cannot confirm an address" in page
    assert 'action="/accounts/me/email/send-confirmation/"' not in page
    member_client.post(SEND_AGAIN)
    assert mail.outbox == []
    member.refresh_from_db()
    assert member.email == "alice@example.org" and not ConfirmedEmail.objects.exists()


def test_a_queue_that_does_not_answer_is_said(member_client, member, email_on, monkeypatch):
    from kombu.exceptions import OperationalError

    from accounts import tasks

    def broker_down(*args):  # noqa: ANN002, ANN202
        raise OperationalError("Error 111 connecting to 127.0.0.1:1. Connection refused.")

    monkeypatch.setattr(tasks.send_email_confirmation, "delay", broker_down)

    save_email(member_client, "alice@example.org")

    assert "job queue is not answering" in member_client.get(ME).content.decode()
    member.refresh_from_db()
    assert member.email == "alice@example.org"  # saved: "Send the link again" later


# --- which address gets reset links --------------------------------------------------------------


def test_an_unconfirmed_email_gets_no_reset_link(client, member, email_on, caplog):
    """So were the emails set before confirming existed: they wait to be confirmed."""
    member.email = "alice@example.org"
    member.save()

    with caplog.at_level(logging.INFO):
        for typed in ("alice", "alice@example.org"):
            assert "is on its way" in forgot(client, typed).content.decode()

    assert reset_emails() == []
    assert "the account has no confirmed email" in caplog.text
    member_page = Client()
    member_page.force_login(member)
    page = member_page.get(ME).content.decode()
    assert "is not confirmed yet" in page and "Send the link again" in page


def test_the_confirmed_email_keeps_its_links_until_a_new_one_is_confirmed(
    member_client, member, client, email_on
):
    with_confirmed_email(member, "alice@example.org")
    save_email(member_client, "alice@example.net")

    page = member_client.get(ME).content.decode()
    assert "alice@example.net</strong> is not confirmed yet" in page
    assert "links still go to alice@example.org" in page
    forgot(client, "alice")
    forgot(client, "alice@example.net")  # not hers until confirmed: nobody's
    assert reset_emails() == [(["alice@example.org"], "alice")]

    open_and_confirm(member_client, confirmation_link("alice@example.net"))
    forgot(client, "alice@example.net")
    forgot(client, "alice@example.org")  # nobody's now
    assert reset_emails()[1:] == [(["alice@example.net"], "alice")]


def test_removing_the_email_removes_its_confirmation(member_client, member, client, email_on):
    with_confirmed_email(member, "alice@example.org")

    save_email(member_client, "")

    assert not ConfirmedEmail.objects.exists()
    forgot(client, "alice")
    assert reset_emails() == []


def test_a_username_that_is_someones_email_gets_no_link_of_theirs(
    client, member, other_member, django_user_model, email_on
):
    """Typing bob@example.org named only the account whose username it is: its own address got
    a link, and bob, whose email it is, got nothing (issue 2)."""
    namesake = django_user_model.objects.create_user(username="bob@example.org")
    with_confirmed_email(namesake, "namesake@example.net")
    with_confirmed_email(other_member, "bob@example.org")

    forgot(client, "bob@example.org")

    # Each account named gets a link for itself, at its own confirmed address only.
    assert sorted(reset_emails()) == [
        (["bob@example.org"], "bob"),
        (["namesake@example.net"], "bob@example.org"),
    ]
    links = {m.to[0]: re.search(r"(/accounts/reset/\S+/)", m.body)[1] for m in mail.outbox}
    for to, account in (("bob@example.org", other_member), ("namesake@example.net", namesake)):
        browser = Client()
        opened = browser.get(links[to])
        browser.post(
            opened["Location"], {"new_password1": "x-new-pass-77", "new_password2": "x-new-pass-77"}
        )
        assert browser.session["_auth_user_id"] == str(account.pk)


def test_a_username_with_no_confirmed_email_does_not_take_the_address_owners_link(
    client, other_member, django_user_model, email_on
):
    django_user_model.objects.create_user(username="bob@example.org", email="bob@example.org")
    with_confirmed_email(other_member, "bob@example.org")

    forgot(client, "BOB@example.org")

    assert reset_emails() == [(["bob@example.org"], "bob")]


# --- one account per address -------------------------------------------------------------------


def test_an_address_typed_by_another_account_holds_nobody_back(
    member_client, member, other_member, email_on
):
    """Someone who types bob's address (a typo, or on purpose) gets no links there and does not
    keep bob from setting and confirming it."""
    save_email(member_client, "bob@example.org")
    bob = Client()
    bob.force_login(other_member)

    assert save_email(bob, "bob@example.org", password=BOB_PASSWORD).status_code == 302
    open_and_confirm(bob, confirmation_link("bob@example.org"))

    assert ConfirmedEmail.objects.get().user == other_member
    # alice's link, in bob's inbox, now says the address is taken and confirms nothing.
    alices = [m for m in mail.outbox if "Hello alice" in m.body][0]
    link = re.search(r"http://testserver(/accounts/email/confirm/\S+/)", alices.body)[1]
    pressed = open_and_confirm(Client(), link)
    assert pressed.status_code == 409
    assert "Another account on this joe confirmed that address first" in pressed.content.decode()
    assert ConfirmedEmail.objects.count() == 1
    refused = save_email(member_client, "Bob@example.org")
    assert "Another account has that email already" in refused.content.decode()


def test_two_confirmations_racing_for_one_address_cannot_both_win(
    member, other_member, monkeypatch
):
    """Both passed the look for another account's confirmation before either wrote: the
    database's unique constraint on the lowercased address refuses the second."""
    member.email = "Bob@Example.org"
    member.save()
    token = email_confirmation.tokens.make_token(member)
    with_confirmed_email(other_member, "bob@example.org")
    monkeypatch.setattr(ConfirmedEmail, "held_by_another", classmethod(lambda *a: False))

    assert email_confirmation.confirm(member, token) == email_confirmation.TAKEN
    assert list(ConfirmedEmail.objects.values_list("user", flat=True)) == [other_member.pk]


def test_the_database_keeps_one_account_per_address_whatever_its_case(member, other_member):
    ConfirmedEmail.objects.create(user=member, email="bob@example.org")

    with pytest.raises(IntegrityError), transaction.atomic():
        ConfirmedEmail.objects.create(user=other_member, email="BOB@example.ORG")


def test_links_live_three_days(member, monkeypatch):
    tokens = email_confirmation.tokens
    member.email = "alice@example.org"
    member.save()
    made = tokens._now()
    token = tokens.make_token(member)

    monkeypatch.setattr(tokens, "_now", lambda: made + timedelta(days=3, seconds=-60))
    assert tokens.check_token(member, token)
    monkeypatch.setattr(tokens, "_now", lambda: made + timedelta(days=3, seconds=60))
    assert not tokens.check_token(member, token)
