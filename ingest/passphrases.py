"""Hand a Signal backup's passphrase from the web request to the worker without storing it.

The passphrase is encrypted (Fernet, with a key derived from SECRET_KEY) and put in the cache
under a random one-time key with a short lifetime. Only that key travels in the task's arguments,
so neither the broker, Celery's logs nor the database ever hold the passphrase, and a leaked cache
entry is useless without SECRET_KEY. A cache that does not keep it (Redis down: writes do nothing,
joe_site.cache) makes ``stash`` raise ``NotKept``: no worker could ever read it.
"""

from __future__ import annotations

import base64
import secrets

from cryptography.fernet import Fernet, InvalidToken
from django.core.cache import cache
from django.utils.crypto import salted_hmac

from joe_site.cache import asking_anyway, unreachable

TTL_SECONDS = 3600  # long enough for a busy queue; a retry asks for the passphrase again
_PREFIX = "ingest:passphrase:"
_BY_EXPORT = "ingest:passphrase-key-of-export:"


class NotKept(Exception):
    """The cache did not keep the passphrase (Redis does not answer)."""


def _fernet() -> Fernet:
    key = salted_hmac("ingest.passphrases", "fernet key", algorithm="sha256").digest()
    return Fernet(base64.urlsafe_b64encode(key))


def stash(passphrase: str, *, export_id: int | None = None) -> str:
    """Keep the passphrase for a while; return the one-time key to pass to the task.

    With ``export_id`` the key can also be found from the export (``key_for``), for as long
    as the passphrase is kept: a worker that restarts after being killed mid-import queues the
    import again with it. Raises ``NotKept`` when the cache does not keep it: read back, as
    a cache whose Redis is down forgets writes without a word."""
    key = secrets.token_urlsafe(24)
    token = _fernet().encrypt(passphrase.encode())
    cache.set(_PREFIX + key, token, timeout=TTL_SECONDS)
    if export_id is not None:
        cache.set(_BY_EXPORT + str(export_id), key, timeout=TTL_SECONDS)
    # Only the passphrase is read back: another stash for the same export (a retry clicked
    # twice) may have replaced the export's key meanwhile, and that one is kept.
    if cache.get(_PREFIX + key) != token:
        raise NotKept("the cache did not keep the passphrase")
    return key


def key_for(export_id: int) -> str | None:
    """The key of the passphrase last stashed for this export, while it is still kept."""
    key = cache.get(_BY_EXPORT + str(export_id))
    if key is None or cache.get(_PREFIX + key) is None:
        return None
    return key


def read(key: str) -> str | None:
    """The passphrase, or None when it expired, was discarded or cannot be decrypted; raises
    ``NotKept`` when the cache (Redis) does not answer. Asked even if this process saw Redis
    fail a moment ago (joe_site.cache takes it as down for a while): the worker that reads it
    can wait one timeout, and a miss would fail the import."""
    with asking_anyway():
        token = cache.get(_PREFIX + key)
    if token is None and unreachable():
        raise NotKept("the cache (Redis) did not answer")
    if token is None:
        return None
    try:
        return _fernet().decrypt(token, ttl=TTL_SECONDS).decode()
    except InvalidToken:
        return None


def discard(key: str) -> None:
    cache.delete(_PREFIX + key)
