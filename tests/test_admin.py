"""The Django admin: what it may change without going around the site's own rules."""

from __future__ import annotations

import pytest
from django.urls import reverse

from ingest.models import Export
from tests.test_ingest_support import slack_export, stored_export, use_tmp_upload_dir

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def uploads(settings, tmp_path):
    return use_tmp_upload_dir(settings, tmp_path / "server")


def test_exports_are_only_looked_at_in_the_admin(staff_client, tmp_path):
    export = stored_export(slack_export(tmp_path / "slack.zip", {"general": [("U1", "hi")]}))

    page = staff_client.get(reverse("admin:ingest_export_change", args=[export.pk]))

    assert page.status_code == 200
    html = page.content.decode()
    assert export.file.name not in html  # no link to the upload, which nothing serves
    assert "View on site" in html  # where it is deleted, with its file and people
    assert reverse("admin:ingest_export_delete", args=[export.pk]) not in html
    assert (
        staff_client.post(
            reverse("admin:ingest_export_delete", args=[export.pk]), {"post": "yes"}
        ).status_code
        == 403
    )
    assert staff_client.get(reverse("admin:ingest_export_add")).status_code == 403
    changelist = staff_client.post(
        reverse("admin:ingest_export_changelist"),
        {"action": "delete_selected", "_selected_action": [export.pk], "post": "yes"},
    )
    assert changelist.status_code in (200, 302)
    assert Export.objects.filter(pk=export.pk).exists() and export.has_file
