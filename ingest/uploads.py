"""Receiving an export upload: straight to a temporary file on disk, hashed on the way, with
the size limit enforced while the bytes arrive; and deleting the temporary files of uploads that
were cut off."""

from __future__ import annotations

import hashlib
import logging
import stat
import time
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.core.files.uploadhandler import SkipFile, TemporaryFileUploadHandler
from django.template.defaultfilters import filesizeformat

log = logging.getLogger(__name__)

# A temporary upload file this old belongs to no upload any more. One in progress is written
# with every chunk that arrives (64 KB), so its modification time is seconds old, and it leaves
# the folder (moved under uploads/, or deleted) before its request answers; one whose process
# was killed mid-upload (`docker compose down`, a gunicorn worker past its timeout) stays there,
# gigabytes maybe, with nothing left to delete it. Only an upload that sent nothing for a whole
# day could lose its file (nginx gives up on one that sends nothing for a minute).
ABANDONED_UPLOAD_AGE = timedelta(days=1)


def too_big_message(size: int) -> str:
    limit = settings.JOE_MAX_UPLOAD_BYTES
    return (
        f"This file is {filesizeformat(size)}, more than the {filesizeformat(limit)} limit "
        "(JOE_MAX_UPLOAD_BYTES)."
        if size
        else f"This file is more than the {filesizeformat(limit)} limit (JOE_MAX_UPLOAD_BYTES)."
    )


class HashingUploadHandler(TemporaryFileUploadHandler):
    """Always a temporary file (never memory), with its sha256 computed while it is written.

    A file over JOE_MAX_UPLOAD_BYTES is dropped as soon as it passes the limit and
    ``request.upload_too_big`` says so, for the form to report.
    """

    def new_file(self, *args, **kwargs) -> None:
        super().new_file(*args, **kwargs)
        self.sha256 = hashlib.sha256()
        self.received = 0
        self.request.upload_too_big = False

    def receive_data_chunk(self, raw_data: bytes, start: int) -> None:
        self.received += len(raw_data)
        if self.received > settings.JOE_MAX_UPLOAD_BYTES:
            self.request.upload_too_big = True
            self.file.close()  # a temporary file: closing deletes it
            raise SkipFile
        self.sha256.update(raw_data)
        return super().receive_data_chunk(raw_data, start)

    def file_complete(self, file_size: int):
        upload = super().file_complete(file_size)
        upload.sha256 = self.sha256.hexdigest()
        return upload


def sha256_of(upload) -> str:
    """The upload's sha256: computed on arrival by HashingUploadHandler, else read back now."""
    if getattr(upload, "sha256", ""):
        return upload.sha256
    digest = hashlib.sha256()
    for chunk in upload.chunks():
        digest.update(chunk)
    upload.seek(0)
    return digest.hexdigest()


def delete_abandoned_temp_files() -> int:
    """Delete the temporary files of uploads cut off mid-way (Django's ``tmp….upload…`` in
    FILE_UPLOAD_TEMP_DIR) not written to for ABANDONED_UPLOAD_AGE; how many went. The default
    worker runs this with expire_failed_uploads: when it starts and after each import."""
    cutoff = time.time() - ABANDONED_UPLOAD_AGE.total_seconds()
    gone = freed = 0
    for path in Path(settings.FILE_UPLOAD_TEMP_DIR).glob("*.upload*"):
        try:
            status = path.lstat()
            if not stat.S_ISREG(status.st_mode) or status.st_mtime >= cutoff:
                continue
            path.unlink()
        except FileNotFoundError:
            continue  # its request moved it away meanwhile, or another worker deleted it
        gone += 1
        freed += status.st_size
    if gone:
        log.info("Deleted %d temporary files (%s) of uploads cut off over a day ago",
                 gone, filesizeformat(freed))  # fmt: skip
    return gone
