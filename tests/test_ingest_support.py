"""Builders the ingest tests share (this module has no tests of its own)."""

from __future__ import annotations

import os
from pathlib import Path

from django.core.files import File
from django.db import connection

from ingest.models import Conversation, Export, Identity, Message, Speaker
from ingest.services import import_export
from tests.builders.slack import User, build_slack

PEOPLE = [
    User("U1", "alice", "Alice"),
    User("U2", "bob", "Bob"),
    User("U3", "sam", "Sam"),
    User("B1", "deploybot", "Deploy Bot", is_bot=True),
]
PASSPHRASE = "000001111122222333334444455555"
SPACED_PASSPHRASE = "00000 11111 22222 33333 44444 55555"


def use_tmp_upload_dir(settings, tmp_path: Path) -> Path:
    """Point the upload storage at a temporary folder for one test."""
    location = tmp_path / "uploads"
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(location), "base_url": None},
        },
    }
    return location


def upload(client, path: Path, **fields) -> Export:
    """Upload ``path`` through the Exports page's form, as staff do; the export it made."""
    with path.open("rb") as handle:
        response = client.post("/ingest/", {"file": handle, **fields})
    assert response.status_code in (200, 302), response.content[:500]
    return Export.objects.latest("pk")


def slack_export(path: Path, channels: dict, users=PEOPLE, **kwargs) -> Path:
    return build_slack(path, users=users, channels=channels, **kwargs)


def stored_export(path: Path, **fields) -> Export:
    """An Export whose file was uploaded (copied into the upload storage)."""
    export = Export(original_name=path.name, size_bytes=path.stat().st_size, **fields)
    with path.open("rb") as stream:
        export.file.save(path.name, File(stream), save=False)
    export.save()
    return export


def worker_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a worker process run by a test: this test's database, its uploads."""
    db = connection.settings_dict
    host, port = db["HOST"] or "127.0.0.1", db["PORT"] or 5432
    return {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{host}:{port}/{db['NAME']}",
        "DJANGO_SETTINGS_MODULE": "joe_site.settings",
        "JOE_DATA_DIR": str(data_dir),  # its uploads folder is this test's
        **extra,
    }


def import_path(path: Path, **options) -> Export:
    """Import a file in place, as `manage.py ingest` does."""
    fields = {k: options.pop(k) for k in ("kind", "sha256", "keep_file") if k in options}
    export = Export.objects.create(original_name=path.name, **fields)
    return import_export(export_id=export.pk, path=path, **options)


def corpus() -> dict[str, int]:
    return {
        "messages": Message.objects.count(),
        "conversations": Conversation.objects.count(),
        "identities": Identity.objects.count(),
        "speakers": Speaker.objects.count(),
    }


EMPTY = {"messages": 0, "conversations": 0, "identities": 0, "speakers": 0}
