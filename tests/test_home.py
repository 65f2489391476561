"""The home page: the counts for everyone, and for staff the way in to each step."""

from __future__ import annotations

import pytest

from ingest.models import Export

pytestmark = pytest.mark.django_db


def test_staff_getting_started_steps_and_recent_jobs_are_links(staff_client, staff):
    export = Export.objects.create(original_name="slack.zip", kind="slack", uploaded_by=staff)

    html = staff_client.get("/").content.decode()

    for url in ("/ingest/", "/ingest/speakers/", "/trainer/", "/batches/", "/accounts/invites/"):
        assert f'href="{url}"' in html, url
    assert f'<a href="{export.get_absolute_url()}">slack.zip</a>' in html


def test_members_see_no_staff_steps(member_client):
    html = member_client.get("/").content.decode()
    assert "Getting started" not in html and 'href="/ingest/"' not in html
