"""Secrets in addresses stay out of every log: gunicorn's access and error logs, Django's request
log ("Gone: /accounts/signup/<token>/"), runserver's. An invite's link makes an account on an
invite-only site and a reset link sets a member's password, for whoever reads the log."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.core.servers.basehttp import WSGIRequestHandler
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from accounts.models import Invite
from joe_site.access_log import AccessLog
from joe_site.log_redaction import PUBLIC_TOKEN_URLS, redact
from tests.test_selfhost_config import log_request, web_gunicorn_config

SECRET = "s3cretTOKEN-abc123_XYZ"


@contextmanager
def written_by(logger: str, handler: str) -> Iterator[io.StringIO]:
    """What the handler LOGGING gives ``logger`` writes meanwhile, through its own filters and
    formatter."""
    configured = next(h for h in logging.getLogger(logger).handlers if h.name == handler)
    written = io.StringIO()
    before = configured.setStream(written)
    try:
        yield written
    finally:
        configured.setStream(before)


def named_routes(resolver: URLResolver, namespace: str = "") -> Iterator[tuple[str, object]]:
    """Every named URL of the site, its name as reverse() takes it, and its pattern."""
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            inner = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            yield from named_routes(entry, inner)
        elif isinstance(entry, URLPattern) and entry.name:
            yield f"{namespace}{entry.name}", entry.pattern


def test_every_address_with_a_token_is_redacted_unless_declared_public():
    """Walks every urls.py: a new URL with a token in it, not added to log_redaction's list,
    fails here (or is declared public there, with the reason)."""
    found = {}
    for name, pattern in named_routes(get_resolver()):
        params = getattr(pattern, "converters", {})
        if not any(word in param for param in params for word in ("token", "secret", "key")):
            continue
        kwargs = {
            param: SECRET if "token" in param else 7 if converter.regex == "[0-9]+" else "MQ"
            for param, converter in params.items()
        }
        path = reverse(name, kwargs=kwargs)
        found[name] = SECRET not in redact(f'GET {path} HTTP/1.1 "https://joe.example.org{path}"')

    assert found == {
        "password_reset_confirm": True,
        "signup": True,
        "confirm_email": True,
        **dict.fromkeys(PUBLIC_TOKEN_URLS, False),
    }


def test_the_set_password_page_and_other_addresses_are_logged_as_they_are():
    for path in ("/accounts/reset/MQ/set-password/", "/accounts/signup/", "/accounts/invites/",
                 "/accounts/email/confirm/MQ/confirm-email/"):  # fmt: skip
        assert redact(f"GET {path} HTTP/1.1") == f"GET {path} HTTP/1.1"
    assert redact("Gone: /accounts/signup/abc?x=1") == "Gone: /accounts/signup/(token)?x=1"


@pytest.mark.django_db
def test_the_web_containers_access_log_leaves_an_invites_token_out(tmp_path):
    config = web_gunicorn_config()  # docker/web's own command line and format
    config.set("accesslog", str(tmp_path / "access.log"))
    invite = Invite.objects.create(note="Carol")
    link = invite.get_absolute_url()

    log_request(
        AccessLog(config),
        link,
        REQUEST_METHOD="POST",
        HTTP_X_FORWARDED_FOR="203.0.113.9",
        HTTP_REFERER=f"https://joe.example.org{link}",
    )

    [line] = (tmp_path / "access.log").read_text().splitlines()
    assert invite.token not in line
    assert line.startswith("203.0.113.9 ")
    assert '"POST /accounts/signup/(token)/ HTTP/1.1" 200' in line
    assert '"https://joe.example.org/accounts/signup/(token)/"' in line


def test_gunicorns_error_log_leaves_the_token_out(tmp_path):
    """gunicorn's worker logs a request its app raised on as "Error handling request <uri>"."""
    config = web_gunicorn_config()
    config.set("errorlog", str(tmp_path / "error.log"))
    gunicorn_log = AccessLog(config)

    try:
        raise OSError(f"cannot read /accounts/signup/{SECRET}/")
    except OSError:
        gunicorn_log.exception("Error handling request %s", f"/accounts/signup/{SECRET}/")

    logged = (tmp_path / "error.log").read_text()
    assert SECRET not in logged
    assert "Error handling request /accounts/signup/(token)/" in logged
    assert "OSError: cannot read /accounts/signup/(token)/" in logged


@pytest.mark.django_db
def test_djangos_request_log_of_a_used_invite_leaves_its_token_out(client, member):
    invite = Invite.objects.create(note="Carol", used_by=member, used_at=timezone.now())

    with written_by("", "console") as written:
        gone = client.get(invite.get_absolute_url())
        dead_reset = client.get(f"/accounts/reset/MQ/{SECRET}/")
        not_found = client.get(f"/accounts/signup/{SECRET}/more/")

    assert (gone.status_code, dead_reset.status_code, not_found.status_code) == (410, 410, 404)
    logged = written.getvalue()
    assert invite.token not in logged and SECRET not in logged
    assert "WARNING django.request: Gone: /accounts/signup/(token)/\n" in logged
    assert "WARNING django.request: Gone: /accounts/reset/MQ/(token)/\n" in logged
    assert "WARNING django.request: Not Found: /accounts/signup/(token)/more/\n" in logged


@pytest.mark.django_db
def test_a_refused_signup_form_is_logged_without_the_token():
    """Django's CSRF check logs its refusal with the path, on django.security.csrf."""
    invite = Invite.objects.create(note="Carol")

    with written_by("", "console") as written:
        refused = Client(enforce_csrf_checks=True).post(invite.get_absolute_url(), {})

    assert refused.status_code == 403
    logged = written.getvalue()
    assert invite.token not in logged
    assert "django.security.csrf: Forbidden (CSRF cookie not set.): /accounts/signup/(token)/" in (
        logged
    )


def test_runservers_request_lines_leave_the_token_out():
    server = WSGIRequestHandler.__new__(WSGIRequestHandler)  # its logging, without a socket
    server.request, server.client_address = None, ("127.0.0.1", 5000)
    server.requestline = f"GET /accounts/signup/{SECRET}/ HTTP/1.1"

    with written_by("django.server", "django.server") as written:
        server.log_request(410, 1234)

    logged = written.getvalue()
    assert SECRET not in logged
    assert '"GET /accounts/signup/(token)/ HTTP/1.1" 410 1234' in logged


def test_a_share_links_token_stays_in_the_access_log(tmp_path):
    """Published on purpose (see log_redaction.PUBLIC_TOKEN_URLS): staff need it to tell which
    link to revoke."""
    config = web_gunicorn_config()
    config.set("accesslog", str(tmp_path / "access.log"))

    log_request(AccessLog(config), f"/share/{SECRET}/", HTTP_X_FORWARDED_FOR="203.0.113.9")

    assert f"GET /share/{SECRET}/ HTTP/1.1" in (tmp_path / "access.log").read_text()
