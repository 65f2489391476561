"""Django's Redis cache, for a site that keeps working while Redis is down.

In production one Redis is both Celery's broker and Django's cache. While it does not answer,
reading the cache is a miss and writing to it does nothing (``add`` adds nothing: False), so a
page that only remembers things there (a share card, when a worker was last seen, when a job's
broker was last asked) is still served. A WARNING says so in the logs, at most once a minute.

Counting cannot fail open: ``incr`` (and ``decr``) raise ``CacheUnavailable`` instead, and the
throttles that count with them (accounts.login, accounts.password_reset) refuse to go on with a
sentence rather than let attempts through uncounted.
"""

from __future__ import annotations

import functools
import logging
import threading
import time

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.redis import RedisCache
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)

DOWN = (RedisConnectionError, RedisTimeoutError)
WARN_EVERY_S = 60.0

_warned_at = 0.0
_warn_lock = threading.Lock()
_latest = threading.local()  # whether this thread's latest cache call found Redis down


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


def _warn(error: Exception) -> None:
    global _warned_at
    with _warn_lock:
        now = time.monotonic()
        if _warned_at and now - _warned_at < WARN_EVERY_S:
            return
        _warned_at = now
    logger.warning("The cache (Redis) does not answer, pages go on without it: %s", error)


def _soft(fallback):  # noqa: ANN001, ANN202
    """Run the cache call; while Redis is down, log (once a minute) and return ``fallback``."""

    def wrap(method):  # noqa: ANN001, ANN202
        @functools.wraps(method)
        def call(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
            try:
                result = method(self, *args, **kwargs)
            except DOWN as error:
                _latest.down = True
                _warn(error)
                return fallback(*args, **kwargs) if callable(fallback) else fallback
            _latest.down = False
            return result

        return call

    return wrap


class FailSoftRedisCache(RedisCache):
    """RedisCache whose reads miss and writes do nothing while Redis is down; counts raise."""

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
        try:
            result = super().incr(key, delta, version)
        except DOWN as error:
            _latest.down = True
            _warn(error)
            raise CacheUnavailable(str(error)) from error
        _latest.down = False
        return result
