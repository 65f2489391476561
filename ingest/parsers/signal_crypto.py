"""Decrypting a Signal Android backup file, one frame at a time.

The file layout (Signal-Android's ``BackupRecordInputStream``):

* A plain header: 4-byte big-endian length, then a ``BackupFrame`` holding ``Header{iv, salt,
  version}``.
* Keys: SHA-512 over the salt then 250,000 rounds of ``hash = SHA-512(hash || passphrase)``
  (starting from ``hash = passphrase``), truncated to 32 bytes; HKDF-SHA256 with info
  ``"Backup Export"`` stretches it to an AES-256 key and an HMAC-SHA256 key.
* Frames: each one uses the header IV with its first 4 bytes replaced by a counter that starts at
  the IV's own value and goes up by one per frame (and per attachment payload). A frame is a
  4-byte length, then ``length - 10`` bytes of AES-CTR ciphertext, then the first 10 bytes of the
  HMAC. In version 0 the length is plain and the HMAC covers the ciphertext. In version 1 the
  length itself is the first 4 bytes of the CTR stream (the body continues the same stream) and
  the HMAC covers the encrypted length, then the ciphertext.
* Attachment, avatar and sticker frames are followed by their payload: ``length`` bytes of
  AES-CTR under the next counter value, then 10 bytes of HMAC over the IV then the ciphertext.

The reader holds one frame at a time, so memory does not grow with the file.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from google.protobuf.message import DecodeError

from ingest.parsers import signal_pb2
from ingest.parsers.records import ExportError

KDF_ROUNDS = 250_000
MAC_SIZE = 10
SUPPORTED_VERSIONS = (0, 1)
# Signal-Android writes SQL statements and small records as frames; anything bigger than this is a
# garbled length, and refusing it keeps a bad file from making us allocate gigabytes.
MAX_FRAME_SIZE = 110 * 1024 * 1024
MAX_HEADER_SIZE = 4096
_CHUNK = 64 * 1024

NOT_A_BACKUP = "This file is not a Signal backup: it does not start with a Signal backup header."
NOT_30_DIGITS = (
    "The passphrase must be the 30 digits Signal showed when backups were turned on "
    "(spaces are ignored)."
)
WRONG_KEY = "Wrong passphrase: the backup could not be decrypted with it."
CORRUPTED = (
    "The backup is corrupted at frame {frame}: its checksum does not match, so the file was "
    "damaged after Signal wrote it."
)
TRUNCATED = (
    "The backup file is incomplete: it stops in frame {frame}, before Signal's end marker. "
    "Copy or upload the whole file again."
)
UNSUPPORTED_VERSION = (
    "This Signal backup uses file format version {version}, which this site cannot read yet."
)


def normalize_passphrase(passphrase: str) -> bytes:
    """The passphrase as Signal hashes it: 30 ASCII digits, with any whitespace removed."""
    digits = "".join(passphrase.split())
    if len(digits) != 30 or not (digits.isascii() and digits.isdigit()):
        raise ExportError(NOT_30_DIGITS)
    return digits.encode("ascii")


def derive_keys(passphrase: bytes, salt: bytes) -> tuple[bytes, bytes]:
    """(cipher key, MAC key) for a passphrase (as from ``normalize_passphrase``) and salt."""
    # Java's MessageDigest.digest(input) is update(input) + digest() + reset, so the salt only
    # prefixes the first round.
    digest = hashlib.sha512(salt)
    digest.update(passphrase)
    digest.update(passphrase)
    key = digest.digest()
    for _ in range(KDF_ROUNDS - 1):
        key = hashlib.sha512(key + passphrase).digest()
    # HKDF with no salt is HKDF with 32 zero bytes, as libsignal's HKDF.deriveSecrets uses.
    hkdf = HKDF(algorithm=hashes.SHA256(), length=64, salt=None, info=b"Backup Export")
    derived = hkdf.derive(key[:32])
    return derived[:32], derived[32:]


def frame_iv(iv: bytes, counter: int) -> bytes:
    """The header IV with its first 4 bytes replaced by the (32-bit, wrapping) counter."""
    return struct.pack(">I", counter & 0xFFFFFFFF) + iv[4:]


@dataclass(frozen=True, slots=True)
class Header:
    iv: bytes
    salt: bytes
    version: int
    size: int  # bytes taken by the header, its length prefix included


def read_header(stream: BinaryIO) -> Header:
    """Read and check the plain header frame at the start of a backup."""
    prefix = stream.read(4)
    if len(prefix) < 4:
        raise ExportError(NOT_A_BACKUP)
    (length,) = struct.unpack(">I", prefix)
    if not 0 < length <= MAX_HEADER_SIZE:
        raise ExportError(NOT_A_BACKUP)
    data = stream.read(length)
    if len(data) < length:
        raise ExportError(NOT_A_BACKUP)
    frame = signal_pb2.BackupFrame()
    try:
        frame.ParseFromString(data)
    except DecodeError:
        raise ExportError(NOT_A_BACKUP) from None
    if not frame.HasField("header") or len(frame.header.iv) != 16:
        raise ExportError(NOT_A_BACKUP)
    version = frame.header.version
    if version not in SUPPORTED_VERSIONS:
        raise ExportError(UNSUPPORTED_VERSION.format(version=version))
    return Header(iv=frame.header.iv, salt=frame.header.salt, version=version, size=4 + length)


class FrameReader:
    """Iterates the decrypted frames of a backup; payloads are skipped unless asked for.

    After a frame with an attachment, avatar or sticker, call ``read_payload()`` before the next
    frame to get the payload's plaintext; otherwise iteration skips it, still checking its MAC.
    """

    def __init__(self, stream: BinaryIO, passphrase: str, *, file_size: int | None = None) -> None:
        secret = normalize_passphrase(passphrase)
        self._stream = stream
        self.header = read_header(stream)
        cipher_key, mac_key = derive_keys(secret, self.header.salt)
        # Keyed once: one AES-CTR context for the whole backup, given each frame's IV with
        # reset_nonce (a new Cipher per frame cost several times what decrypting the frame
        # does), and a copy of the keyed HMAC per frame.
        self._decryptor = Cipher(algorithms.AES(cipher_key), modes.CTR(self.header.iv)).decryptor()
        self._mac = hmac.new(mac_key, digestmod=hashlib.sha256)
        self._counter = struct.unpack(">I", self.header.iv[:4])[0]
        self.file_size = file_size if file_size is not None else _size_of(stream)
        self.position = self.header.size  # bytes consumed so far
        self.frame_number = 0  # 1 for the first encrypted frame
        self.plaintext = b""  # the serialized frame just yielded, as decrypted
        # Length of the payload that follows the current frame; None when it has none. A zero
        # length still has an IV counter value and a MAC.
        self._pending_payload: int | None = None

    def __iter__(self) -> Iterator[signal_pb2.BackupFrame]:
        while True:
            if self._pending_payload is not None:
                self._consume_payload(keep=False)
            frame = self._read_frame()
            if frame.end:
                return
            self._pending_payload = _payload_length(frame)
            yield frame

    def read_payload(self) -> bytes:
        """The decrypted payload that follows the frame just yielded (MAC checked)."""
        data = self._consume_payload(keep=True)
        assert data is not None
        return data

    # -- internals ---------------------------------------------------------------------------

    def _next_iv(self) -> bytes:
        iv = frame_iv(self.header.iv, self._counter)
        self._counter += 1
        return iv

    def _read_exact(self, n: int) -> bytes:
        data = self._stream.read(n)
        if len(data) < n:
            raise ExportError(TRUNCATED.format(frame=self.frame_number))
        self.position += n
        return data

    def _fail(self) -> ExportError:
        # A key from a wrong passphrase fails on the very first frame, before anything is read.
        if self.frame_number == 1:
            return ExportError(WRONG_KEY)
        return ExportError(CORRUPTED.format(frame=self.frame_number))

    def _read_frame(self) -> signal_pb2.BackupFrame:
        self.frame_number += 1
        raw_length = self._stream.read(4)
        if len(raw_length) < 4:
            raise ExportError(TRUNCATED.format(frame=self.frame_number))
        self.position += 4
        decryptor = self._decryptor
        decryptor.reset_nonce(self._next_iv())
        mac = self._mac.copy()
        if self.header.version >= 1:
            mac.update(raw_length)
            (length,) = struct.unpack(">I", decryptor.update(raw_length))
        else:
            (length,) = struct.unpack(">I", raw_length)
        remaining = self.file_size - self.position
        if length <= MAC_SIZE or length > MAX_FRAME_SIZE:
            # An encrypted length decrypts to garbage under a wrong key or a damaged file.
            raise self._fail()
        if length > remaining:
            if self.header.version >= 1 and self.frame_number == 1:
                raise ExportError(WRONG_KEY)
            raise ExportError(TRUNCATED.format(frame=self.frame_number))
        body = self._read_exact(length)
        ciphertext, their_mac = body[:-MAC_SIZE], body[-MAC_SIZE:]
        mac.update(ciphertext)
        if not hmac.compare_digest(mac.digest()[:MAC_SIZE], their_mac):
            raise self._fail()
        frame = signal_pb2.BackupFrame()
        self.plaintext = decryptor.update(ciphertext)
        try:
            frame.ParseFromString(self.plaintext)
        except DecodeError:
            raise ExportError(CORRUPTED.format(frame=self.frame_number)) from None
        return frame

    def _consume_payload(self, *, keep: bool) -> bytes | None:
        length, self._pending_payload = self._pending_payload, None
        if length is None:
            raise RuntimeError("read_payload() called for a frame without a payload")
        iv = self._next_iv()
        if length + MAC_SIZE > self.file_size - self.position:
            raise ExportError(TRUNCATED.format(frame=self.frame_number))
        mac = self._mac.copy()
        mac.update(iv)
        decryptor = None
        if keep:
            decryptor = self._decryptor
            decryptor.reset_nonce(iv)
        parts: list[bytes] = []
        left = length
        while left:
            chunk = self._read_exact(min(left, _CHUNK))
            mac.update(chunk)
            if decryptor is not None:
                parts.append(decryptor.update(chunk))
            left -= len(chunk)
        if not hmac.compare_digest(mac.digest()[:MAC_SIZE], self._read_exact(MAC_SIZE)):
            raise ExportError(CORRUPTED.format(frame=self.frame_number))
        return b"".join(parts) if keep else None


def _payload_length(frame: signal_pb2.BackupFrame) -> int | None:
    for name in ("attachment", "avatar", "sticker"):
        if frame.HasField(name):
            return getattr(frame, name).length
    return None


def _size_of(stream: BinaryIO) -> int:
    return os.fstat(stream.fileno()).st_size
