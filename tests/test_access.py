"""Members only: walk every URL in the URL conf and check anonymous visitors are sent to log in."""

from __future__ import annotations

import logging
import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

PUBLIC = {"login", "signup", "healthz", "favicon", "share", "share_image", "logout",
          "password_forgotten", "password_reset_confirm", "confirm_email"}  # fmt: skip
DUMMY = {
    "int": "1",
    "str": "abc",
    "slug": "abc",
    "path": "abc",
    "uuid": "00000000-0000-0000-0000-000000000000",
}


def walk(patterns, prefix="", namespace=""):
    for p in patterns:
        if isinstance(p, URLResolver):
            ns = f"{namespace}{p.namespace}:" if p.namespace else namespace
            yield from walk(p.url_patterns, prefix + str(p.pattern), ns)
        elif isinstance(p, URLPattern):
            yield prefix + str(p.pattern), namespace, p.name


def concrete(route: str) -> str | None:
    if route.startswith("^") or "(?P" in route:
        return None  # admin's regex routes: covered by the admin's own login check below
    return "/" + re.sub(r"<(?:(\w+):)?\w+>", lambda m: DUMMY[m.group(1) or "str"], route)


def private_urls():
    for route, namespace, name in walk(get_resolver().url_patterns):
        if namespace.startswith("admin") or name in PUBLIC:
            continue
        url = concrete(route)
        if url:
            yield pytest.param(url, id=f"{namespace}{name or route}")


@pytest.mark.django_db
@pytest.mark.parametrize("url", list(private_urls()))
def test_anonymous_visitor_is_sent_to_login(client, url):
    response = client.get(url)
    assert response.status_code == 302, url
    assert response["Location"].startswith("/accounts/login/"), response["Location"]


@pytest.mark.django_db
def test_a_page_refreshing_itself_after_logout_goes_to_login_whole(client):
    """A batch or live page polls with htmx: its session ended (logged out in another tab), the
    page must go to the login form, not draw the login page inside the panel it refreshes."""
    response = client.get(
        "/batches/7/",
        headers={"HX-Request": "true", "HX-Current-URL": "http://testserver/batches/7/?x=1"},
    )

    assert response.status_code == 200 and response.content == b""
    assert response["HX-Redirect"] == "/accounts/login/?next=/batches/7/%3Fx%3D1"


@pytest.mark.django_db
def test_admin_needs_staff_login(client, member_client):
    assert client.get("/admin/")["Location"].startswith("/admin/login/")
    assert member_client.get("/admin/")["Location"].startswith("/admin/login/")


@pytest.mark.django_db
def test_walk_finds_the_private_pages():
    names = {param.id for param in private_urls()}
    assert "home" in names and "invites" in names


@pytest.mark.django_db
def test_a_member_who_forgot_their_password_reaches_the_reset_pages(client):
    assert client.get("/accounts/password/forgotten/").status_code == 200
    assert client.get("/accounts/reset/MQ/abc-def/").status_code == 410  # says to ask staff


@pytest.mark.django_db
def test_reset_links_are_made_by_staff_with_a_post(member_client, staff_client, member):
    from django.test import Client

    url = f"/accounts/members/{member.pk}/reset-link/"
    assert Client().post(url)["Location"].startswith("/accounts/login/")
    assert member_client.post(url).status_code == 403
    assert staff_client.get(url).status_code == 405
    assert staff_client.post(url)["Location"] == "/accounts/invites/#reset-link"


@pytest.mark.django_db
def test_member_sees_home(member_client):
    response = member_client.get("/")
    assert response.status_code == 200
    assert b"joe" in response.content


@pytest.mark.django_db
def test_staff_pages_refuse_members(member_client):
    response = member_client.get("/accounts/invites/")
    assert response.status_code == 403
    assert "Only staff can open this page." in response.content.decode()


@pytest.mark.django_db
def test_a_member_on_a_staff_page_is_one_line_in_the_log(member, member_client, caplog):
    """A member who followed a link to a staff page filled the log with a traceback."""
    with caplog.at_level(logging.INFO):
        member_client.get("/accounts/invites/")

    warned = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert len(warned) == 1
    assert warned[0].exc_info is None
    assert warned[0].getMessage() == (
        f"Forbidden: {member.username}, not staff, opened /accounts/invites/"
    )


@pytest.mark.django_db
def test_htmx_action_after_the_session_ended_sends_the_page_to_login(client):
    """A vote from a gallery left open after logging out elsewhere: the login form must not be
    swapped into the vote box; the whole page goes to log in and comes back after."""
    headers = {"HX-Request": "true", "HX-Current-URL": "http://testserver/gallery/?sort=new"}
    response = client.post("/s/1/vote/", {"value": "up"}, headers=headers)
    assert response.status_code == 200
    assert response["HX-Redirect"] == "/accounts/login/?next=/gallery/%3Fsort%3Dnew"
    assert not response.content
    # From another site's page (no current URL of ours), back to the home page after login.
    headers["HX-Current-URL"] = "https://elsewhere.example/"
    response = client.post("/s/1/vote/", {"value": "up"}, headers=headers)
    assert response["HX-Redirect"] == "/accounts/login/?next=/"
    assert client.post("/s/1/vote/", {"value": "up"}).status_code == 302  # a plain post as before


@pytest.mark.django_db
def test_a_stale_form_gets_a_page_that_says_what_to_do(member):
    """A vote from a page opened before logging in again elsewhere (its CSRF token rotated)."""
    from django.test import Client

    browser = Client(enforce_csrf_checks=True)
    browser.force_login(member)
    response = browser.post("/s/1/vote/", {"value": "up", "csrfmiddlewaretoken": "stale" * 8})
    assert response.status_code == 403
    html = response.content.decode()
    assert "reload the page" in html and "<main" in html  # the site's page, not Django's bare one
