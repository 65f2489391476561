"""A chat name carrying direction controls (a prank's right-to-left override) reversed the text
around it wherever joe showed it: names lose them when they come in, and old ones are cleaned."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps

from ingest.models import Identity, Speaker
from ingest.rows import clean_name
from ingest.services import import_export
from tests.builders.slack import User
from tests.test_ingest_support import slack_export, stored_export, use_tmp_upload_dir

pytestmark = pytest.mark.django_db
PRANK = "Mira \u202eRTL\u202c \u2067x\u2069"


def test_clean_name_drops_direction_controls_and_keeps_the_script():
    assert clean_name(PRANK) == "Mira RTL x"
    assert clean_name("\u200f\u200e") == ""  # marks alone would be an invisible name
    assert clean_name(" \u05e9\u05e8\u05d4 ") == "\u05e9\u05e8\u05d4"  # Hebrew stays as it is


def test_speakers_are_named_and_renamed_without_them():
    speaker = Speaker.create_named(PRANK)
    assert speaker.display_name == "Mira RTL x"
    speaker.rename("\u202eAnn")
    speaker.refresh_from_db()
    assert speaker.display_name == "Ann"


def test_an_import_names_people_without_them(tmp_path, settings):
    use_tmp_upload_dir(settings, tmp_path / "server")
    path = slack_export(
        tmp_path / "team.zip", {"general": [("U1", "hi")]}, users=[User("U1", "mira", PRANK)]
    )
    export = import_export(export_id=stored_export(path).pk)
    assert export.status == "succeeded", export.error
    assert Identity.objects.get().display_name == "Mira RTL x"
    assert Speaker.objects.get().display_name == "Mira RTL x"


def test_the_migration_cleans_names_already_stored():
    speaker = Speaker.create_named("Bo")
    Speaker.objects.filter(pk=speaker.pk).update(display_name=PRANK)
    Speaker.objects.create(display_name="\u202e", slug="only-controls")
    migration = importlib.import_module("ingest.migrations.0011_names_without_direction_controls")

    migration.strip_controls(apps, None)

    assert set(Speaker.objects.values_list("display_name", flat=True)) == {"Mira RTL x", "Someone"}
