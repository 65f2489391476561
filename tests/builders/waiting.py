"""Waiting in a test for what another process (a Celery worker, a server) does."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(predicate: Callable[[], object], timeout: float = 60.0, every: float = 0.1) -> bool:
    """Whether ``predicate`` came true within ``timeout`` seconds, asked every ``every``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return False
