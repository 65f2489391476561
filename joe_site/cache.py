"""Django's Redis cache, for a site that keeps working while Redis is down.

In production one Redis is both Celery's broker and Django's cache. While it does not answer,
reading the cache is a miss and writing to it does nothing (``add`` adds nothing: False), so a
page that only remembers things there (a share card, when a worker was last seen, when a job's
broker was last asked) is still served. A WARNING says so in the logs, at most once a minute.

Counting cannot fail open: ``incr`` (and ``decr``) raise ``CacheUnavailable`` instead, and the
throttles that count with them (accounts.login, accounts.password_reset) refuse to go on with a
sentence rather than let attempts through uncounted.

A Redis that hangs (stopped with SIGSTOP, swapping, a network dropping packets) answers each call
only with its timeout, and a page makes several calls. So once a call to a Redis fails, this
process takes that Redis as down for ``ASSUME_DOWN_FOR_S`` (10 s) without asking it: every cache
call answers at once as above, and the pages' looks into Celery's broker, the same Redis in
production (joe_site.workers, joe_site.lost_messages), skip it too (``failed_lately``). A hung
Redis then costs one call its timeout once in 10 s, not every call of every page. 10 s, not less:
that one call waits up to 5 s (the read timeout), so the window is twice it; not more: once Redis
is back, logins wait at most that long to be counted again. After the window one caller asks
again (the others keep answering "down" until it has its answer).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.redis import RedisCache
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)

DOWN = (RedisConnectionError, RedisTimeoutError)
WARN_EVERY_S = 60.0
ASSUME_DOWN_FOR_S = 10.0

_warned_at = 0.0
_warn_lock = threading.Lock()
_latest = threading.local()  # whether this thread's latest cache call found Redis down
_asking = threading.local()  # whether this thread's calls ask Redis even if it failed lately

# Per Redis URL: until when (time.monotonic) it is taken as down without asking, and why.
_down_until: dict[str, float] = {}
_down_why: dict[str, str] = {}
_down_lock = threading.Lock()


def redis_cache(url: str) -> dict:
    """The cache's settings (CACHES["default"]) for Redis at ``url``: this backend, and timeouts
    that make a Redis that hangs (rather than refusing) fail within seconds too."""
    return {
        "BACKEND": "joe_site.cache.FailSoftRedisCache",
        "LOCATION": url,
        "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 5},
    }


class CacheUnavailable(Exception):
    """The cache (Redis) does not answer, and the caller cannot do without it."""


def unreachable() -> bool:
    """Whether this thread's latest call on the cache found Redis down: tells an ``add`` that
    added nothing because the key is there from one that could not ask (always False on the
    other caches)."""
    return getattr(_latest, "down", False)


def failed_lately(url: str) -> bool:
    """Whether a call to the Redis at ``url`` failed less than ``ASSUME_DOWN_FOR_S`` ago: then
    take it as down without asking. Once that has passed, the first caller is told False (it asks,
    and must report with ``note_failed`` or ``note_answered``); the others are told True until it
    does, or for another window if it never does."""
    if not url or url not in _down_until:  # no lock on the path taken while Redis answers
        return False
    with _down_lock:
        until = _down_until.get(url)
        if until is None:
            return False
        now = time.monotonic()
        if now < until:
            return True
        _down_until[url] = now + ASSUME_DOWN_FOR_S  # this caller asks; the others wait for it
        return False


@contextmanager
def asking_anyway() -> Iterator[None]:
    """This thread's cache calls within ask Redis even if it failed a moment ago (and report
    what they find): for a worker's job that can wait one timeout, and that a miss would fail
    (a Signal backup's passphrase), not for pages."""
    before = getattr(_asking, "on", False)
    _asking.on = True
    try:
        yield
    finally:
        _asking.on = before


def note_failed(url: str, error: Exception | str) -> None:
    """A call to the Redis at ``url`` failed: take it as down for ``ASSUME_DOWN_FOR_S``."""
    if url:
        with _down_lock:
            _down_until[url] = time.monotonic() + ASSUME_DOWN_FOR_S
            _down_why[url] = str(error)


def note_answered(url: str) -> None:
    """The Redis at ``url`` answered (even with an error of its own): it is up."""
    if url in _down_until:
        with _down_lock:
            _down_until.pop(url, None)


def forget_failures() -> None:
    """Take every Redis as up again (tests start from here)."""
    with _down_lock:
        _down_until.clear()
        _down_why.clear()


def _warn(error: Exception | str) -> None:
    global _warned_at
    with _warn_lock:
        now = time.monotonic()
        if _warned_at and now - _warned_at < WARN_EVERY_S:
            return
        _warned_at = now
    logger.warning("The cache (Redis) does not answer, pages go on without it: %s", error)


def _ask(cache: FailSoftRedisCache, method, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
    """Run a cache call on Redis; raise CacheUnavailable (logged once a minute) if it is down,
    or failed a moment ago (then without asking it)."""
    url = cache.url
    if not getattr(_asking, "on", False) and failed_lately(url):
        _latest.down = True
        why = _down_why.get(url, "")
        _warn(why)
        raise CacheUnavailable(f"Redis did not answer a moment ago: {why}")
    try:
        result = method(cache, *args, **kwargs)
    except DOWN as error:
        note_failed(url, error)
        _latest.down = True
        _warn(error)
        raise CacheUnavailable(str(error)) from error
    except Exception:
        note_answered(url)  # an error of Redis' own (or of the value): Redis is up
        raise
    note_answered(url)
    _latest.down = False
    return result


def _soft(fallback):  # noqa: ANN001, ANN202
    """Run the cache call; while Redis is down, log (once a minute) and return ``fallback``."""

    def wrap(method):  # noqa: ANN001, ANN202
        @functools.wraps(method)
        def call(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
            try:
                return _ask(self, method, *args, **kwargs)
            except CacheUnavailable:
                return fallback(*args, **kwargs) if callable(fallback) else fallback

        return call

    return wrap


class FailSoftRedisCache(RedisCache):
    """RedisCache whose reads miss and writes do nothing while Redis is down; counts raise."""

    @functools.cached_property
    def url(self) -> str:
        """Its Redis, as ``failed_lately`` knows it (LOCATION: REDIS_URL in production)."""
        return ",".join(self._servers)

    @_soft(lambda key, default=None, version=None: default)
    def get(self, key, default=None, version=None):  # noqa: ANN001, ANN201
        return super().get(key, default, version)

    @_soft(False)
    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):  # noqa: ANN001, ANN201
        return super().add(key, value, timeout, version)

    @_soft(None)
    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):  # noqa: ANN001, ANN201
        return super().set(key, value, timeout, version)

    @_soft(False)
    def touch(self, key, timeout=DEFAULT_TIMEOUT, version=None):  # noqa: ANN001, ANN201
        return super().touch(key, timeout, version)

    @_soft(False)
    def delete(self, key, version=None):  # noqa: ANN001, ANN201
        return super().delete(key, version)

    @_soft(lambda keys, version=None: {})
    def get_many(self, keys, version=None):  # noqa: ANN001, ANN201
        return super().get_many(keys, version)

    @_soft(False)
    def has_key(self, key, version=None):  # noqa: ANN001, ANN201
        return super().has_key(key, version)

    @_soft(lambda data, timeout=DEFAULT_TIMEOUT, version=None: list(data))
    def set_many(self, data, timeout=DEFAULT_TIMEOUT, version=None):  # noqa: ANN001, ANN201
        return super().set_many(data, timeout, version)

    @_soft(None)
    def delete_many(self, keys, version=None):  # noqa: ANN001, ANN201
        return super().delete_many(keys, version)

    @_soft(False)
    def clear(self):  # noqa: ANN201
        return super().clear()

    def incr(self, key, delta=1, version=None):  # noqa: ANN001, ANN201
        return _ask(self, RedisCache.incr, key, delta, version)
