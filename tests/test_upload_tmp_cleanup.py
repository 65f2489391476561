"""Uploads cut off mid-way (web killed by `docker compose down`, a gunicorn worker past its
timeout) left their temporary file, gigabytes maybe, in the upload temp folder for good. The
default worker deletes those a day old, when it starts and after each import, and never the file
of an upload still arriving."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.test import RequestFactory

from ingest import tasks
from ingest.uploads import ABANDONED_UPLOAD_AGE, HashingUploadHandler

ROOT = Path(__file__).resolve().parents[1]
CHUNK = b"x" * 65536

# A web process receiving an upload, killed mid-way (SIGKILL: nothing of Python runs after it).
KILLED_MID_UPLOAD = """
import os, signal, django
django.setup()
from django.test import RequestFactory
from ingest.uploads import HashingUploadHandler
handler = HashingUploadHandler(RequestFactory().post("/ingest/"))
handler.new_file("file", "whole-phone.zip", "application/zip", None)
for start in range(0, 3 * 65536, 65536):
    handler.receive_data_chunk(b"x" * 65536, start)
os.kill(os.getpid(), signal.SIGKILL)
"""


def killed_mid_upload(data_dir: Path) -> Path:
    """The temporary file such a process left."""
    env = {**os.environ, "JOE_DATA_DIR": str(data_dir)}
    killed = subprocess.run([sys.executable, "-c", KILLED_MID_UPLOAD], cwd=ROOT, env=env)
    assert killed.returncode == -9
    [left] = (data_dir / "tmp").glob("*.upload.zip")
    return left


def days_ago(path: Path, days: float) -> None:
    then = time.time() - days * 86400
    os.utime(path, (then, then))


def receiving_upload() -> HashingUploadHandler:
    handler = HashingUploadHandler(RequestFactory().post("/ingest/"))
    handler.new_file("file", "slack.zip", "application/zip", None)
    handler.receive_data_chunk(CHUNK, 0)
    handler.file.flush()
    return handler


@pytest.fixture
def temp_dir(tmp_path, settings) -> Path:
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path / "data" / "tmp")
    Path(settings.FILE_UPLOAD_TEMP_DIR).mkdir(parents=True)  # as settings.py makes it
    return Path(settings.FILE_UPLOAD_TEMP_DIR)


def test_an_upload_killed_mid_way_leaves_a_file_that_goes_a_day_later(temp_dir, db):
    left = killed_mid_upload(temp_dir.parent)
    assert left.stat().st_size == 3 * len(CHUNK)

    tasks.import_export(123456)  # any import task, even one whose export is gone, tidies up
    assert left.exists()  # minutes old: it could be an upload still arriving

    days_ago(left, 1.1)
    tasks.import_export(123456)
    assert not left.exists()


def test_an_upload_still_arriving_keeps_its_file_however_long_ago_it_began(temp_dir, db):
    cut_off = killed_mid_upload(temp_dir.parent)
    days_ago(cut_off, 2)
    arriving = receiving_upload()
    path = Path(arriving.file.temporary_file_path())
    days_ago(path, 2)  # begun two days ago, on a very slow line...
    arriving.receive_data_chunk(CHUNK, len(CHUNK))  # ...and still sending
    arriving.file.flush()
    not_an_upload = temp_dir / "notes.txt"
    not_an_upload.write_text("kept")
    days_ago(not_an_upload, 30)

    tasks.import_export(123456)

    assert path.exists() and not cut_off.exists() and not_an_upload.exists()
    upload = arriving.file_complete(2 * len(CHUNK))
    assert upload.read() == 2 * CHUNK and upload.sha256
    assert ABANDONED_UPLOAD_AGE.days == 1
