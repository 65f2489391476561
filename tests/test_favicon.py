"""The site's icon: named by every page, so browsers stop asking for /favicon.ico (a 404 logged
on every admin page), and answered there for those that ask anyway."""

from __future__ import annotations

import pytest
from django.contrib.staticfiles import finders
from django.templatetags.static import static
from django.urls import reverse

from generations.models import ShareLink
from tests.builders.snippets import make_snippet, make_speaker

pytestmark = pytest.mark.django_db

ICON = f'<link rel="icon" href="{static("favicon.svg")}" type="image/svg+xml">'


def test_favicon_ico_leads_to_the_sites_icon_for_anyone(client):
    response = client.get("/favicon.ico")

    assert response.status_code == 302 and response["Location"] == static("favicon.svg")
    assert finders.find("favicon.svg")


def test_the_sites_pages_and_the_admins_name_the_icon(client, staff_client):
    assert ICON in client.get(reverse("login")).content.decode()
    assert ICON in client.get(reverse("admin:login")).content.decode()
    assert ICON in staff_client.get(reverse("admin:index")).content.decode()
    assert ICON in staff_client.get(reverse("home")).content.decode()


def test_a_shared_snippets_page_names_the_icon(client, member):
    snippet = make_snippet((make_speaker("Ann"), "a fake"), status="published")
    link = ShareLink.objects.create(snippet=snippet, created_by=member)

    assert ICON in client.get(f"/share/{link.token}/").content.decode()
