"""Receiving an export upload: straight to a temporary file on disk, hashed on the way, with
the size limit enforced while the bytes arrive."""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.core.files.uploadhandler import SkipFile, TemporaryFileUploadHandler
from django.template.defaultfilters import filesizeformat


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
