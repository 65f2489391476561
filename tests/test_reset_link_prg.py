"""Staff press "Make a reset link" (a POST) and land on the Invites page by a redirect, which
shows the link once: reloading that page made another link by posting again."""

from __future__ import annotations

import logging
import re
from datetime import timedelta

import pytest
from django.contrib.sessions.models import Session
from django.test import Client

from accounts import password_reset
from accounts.views import RESET_LINK_MADE

pytestmark = pytest.mark.django_db
NEW_PASSWORD = "a-brand-new-passphrase-42"


def links_on(page) -> list[str]:  # noqa: ANN001
    return re.findall(
        r'value="http://testserver(/accounts/reset/[^"]+)"[^>]*data-testid="reset-link"',
        page.content.decode(),
    )


def make(staff_client: Client, member) -> str:  # noqa: ANN001
    made = staff_client.post(f"/accounts/members/{member.pk}/reset-link/")
    assert made.status_code == 302 and made["Location"] == "/accounts/invites/#reset-link"
    [link] = links_on(staff_client.get(made["Location"]))
    return link


def sets_a_password(link: str) -> bool:
    browser = Client()
    opened = browser.get(link)
    if opened.status_code != 302:
        return False
    browser.post(opened["Location"], {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    return "_auth_user_id" in browser.session


def test_the_link_is_shown_once_and_reloading_makes_no_other(staff_client, member, caplog):
    with caplog.at_level(logging.INFO):
        made = staff_client.post(f"/accounts/members/{member.pk}/reset-link/")
        assert made.status_code == 302  # a reload of the page it leads to posts nothing
        shown = staff_client.get(made["Location"])
        reloaded = staff_client.get(made["Location"])

    assert len(links_on(shown)) == 1
    assert "A reset link for alice" in shown.content.decode()
    assert links_on(reloaded) == []
    assert "A reset link for alice" not in reloaded.content.decode()
    assert caplog.text.count("made a password reset link for alice") == 1
    assert "/accounts/reset/" not in caplog.text
    assert sets_a_password(links_on(shown)[0])


def test_the_session_holds_whose_link_and_when_never_the_token(staff_client, member):
    staff_client.post(f"/accounts/members/{member.pk}/reset-link/")
    held = staff_client.session[RESET_LINK_MADE]
    assert set(held) == {"member", "made_at"} and held["member"] == member.pk

    link = links_on(staff_client.get("/accounts/invites/"))[0]

    token = link.rstrip("/").rsplit("/", 1)[1]
    for session in Session.objects.all():
        assert token not in str(session.get_decoded())
    assert link == password_reset.reset_path(member, made_at=held["made_at"])


def test_an_older_link_still_works_and_the_page_says_so(staff_client, member, monkeypatch):
    older = make(staff_client, member)
    later = password_reset.tokens._now() + timedelta(minutes=5)
    monkeypatch.setattr(password_reset.tokens, "_now", lambda: later)

    made = staff_client.post(f"/accounts/members/{member.pk}/reset-link/")
    page = staff_client.get(made["Location"])
    [newer] = links_on(page)

    assert newer != older
    assert "Links made for alice before this one still work too" in page.content.decode()
    assert Client().get(older).status_code == 302
    assert Client().get(newer).status_code == 302
    # Any one of them setting a password ends them all, as the page says.
    assert sets_a_password(older)
    assert Client().get(newer).status_code == 410


def test_a_failed_invite_post_keeps_the_link_for_the_page_after(staff_client, member):
    staff_client.post(f"/accounts/members/{member.pk}/reset-link/")

    refused = staff_client.post("/accounts/invites/", {"note": ""})

    assert "Say who it is for" in refused.content.decode() and links_on(refused) == []
    assert len(links_on(staff_client.get("/accounts/invites/"))) == 1


def test_a_link_made_for_a_member_deactivated_before_the_page_shows_is_not_shown(
    staff_client, member
):
    staff_client.post(f"/accounts/members/{member.pk}/reset-link/")
    member.is_active = False
    member.save()

    assert links_on(staff_client.get("/accounts/invites/")) == []
