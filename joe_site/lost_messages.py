"""Queued jobs whose Celery message is gone (Redis restarted without its data, a send that failed
at commit, the embedded broker's folder wiped): found by looking in the broker, and sent again.

A job row (run, batch, import) says "queued" and names its task; its message is either in its
queue (Redis: the queue's lists; the embedded broker: a file per message), in Redis' ``unacked``
hash (delivered to a worker, not yet acknowledged), or nowhere. Nowhere, for longer than
``JOE_LOST_MESSAGE_AFTER``, means no worker will ever take it: it is sent again, when a worker
starts and from the job's page.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from joe_site import cache as redis_health
from joe_site.jobs import SEND_FAILED, JobStatus
from joe_site.workers import broker_redis

logger = logging.getLogger(__name__)

# A page asks the broker about its job at most this often, whoever is looking at it.
PAGE_CHECK_EVERY_S = 30
# How long one look in the broker may wait for it to connect or answer: a Redis that hangs
# (stopped, swapping, a network that drops packets) leaves the page answering "still queued".
BROKER_ANSWER_S = 2
_QUEUED_AT_KEY = "lost-messages:queued-at:{label}:{pk}"
_PAGE_KEY = "lost-messages:page:{label}:{pk}"


def lost_after() -> timedelta:
    return timedelta(seconds=settings.JOE_LOST_MESSAGE_AFTER)


@dataclass(frozen=True)
class Pending:
    """What the broker holds for some queues: task ids, and (task name, first argument) pairs."""

    ids: frozenset[str] = frozenset()
    calls: frozenset[tuple[str, Any]] = frozenset()


def pending_messages(queues: Iterable[str]) -> Pending | None:
    """Every message waiting in these queues or delivered and unacknowledged; None when the
    broker cannot be asked (it is down, failed a moment ago, or a transport joe cannot look
    into)."""
    from kombu.exceptions import KombuError

    from joe_site.celery import app

    queues = sorted(set(queues))
    redis = broker_redis()
    if redis_health.failed_lately(redis):
        return None
    try:
        timeouts = {"socket_timeout": BROKER_ANSWER_S, "socket_connect_timeout": BROKER_ANSWER_S}
        with app.connection_for_read(transport_options=timeouts) as conn:
            conn.ensure_connection(max_retries=0, timeout=BROKER_ANSWER_S)
            channel = conn.channel()
            try:
                driver = conn.transport.driver_type
                if driver == "redis":
                    payloads = list(_redis_payloads(channel, queues))
                elif driver == "filesystem":
                    payloads = list(_folder_payloads(Path(channel.data_folder_in), queues))
                else:
                    return None
            finally:
                channel.close()
    except (OSError, KombuError) as error:
        logger.info("Could not look for lost messages in the broker: %s", error)
        redis_health.note_failed(redis, error)
        return None
    except Exception as error:  # redis-py's own errors are not OSErrors
        if type(error).__module__.startswith("redis"):
            logger.info("Could not look for lost messages in Redis: %s", error)
            redis_health.note_failed(redis, error)
            return None
        raise
    redis_health.note_answered(redis)
    ids, calls = set(), set()
    for payload in payloads:
        task_id, call = _describe(payload)
        if task_id:
            ids.add(task_id)
        if call:
            calls.add(call)
    return Pending(frozenset(ids), frozenset(calls))


def _redis_payloads(channel: Any, queues: list[str]) -> Iterator[Any]:
    client = channel.client
    pipe = client.pipeline()
    keys = {channel._q_for_pri(queue, pri) for queue in queues for pri in channel.priority_steps}
    for key in sorted(keys):
        pipe.lrange(key, 0, -1)
    pipe.hvals(channel.unacked_key)
    *lists, unacked = pipe.execute()
    for raw in (item for items in lists for item in items):
        yield _loads(raw)
    for raw in unacked:
        entry = _loads(raw)  # [message, exchange, routing key]
        yield entry[0] if isinstance(entry, list) and entry else None


def _folder_payloads(folder: Path, queues: list[str]) -> Iterator[Any]:
    suffixes = tuple(f".{queue}.msg" for queue in queues)
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return
    for name in names:
        if name.endswith(suffixes):
            try:
                yield _loads((folder / name).read_bytes())
            except OSError:  # taken by a worker meanwhile
                continue


def _loads(raw: bytes | str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _describe(payload: Any) -> tuple[str, tuple[str, Any] | None]:
    """A kombu message's task id, and its task name with its first argument (Celery's
    protocol 2: headers name the task, the body holds [args, kwargs, embed])."""
    if not isinstance(payload, dict):
        return "", None
    headers = payload.get("headers") or {}
    properties = payload.get("properties") or {}
    task_id = str(headers.get("id") or properties.get("correlation_id") or "")
    name = headers.get("task")
    try:
        body = payload.get("body") or ""
        if properties.get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args = json.loads(body)[0]
        first = args[0] if args else None
    except (ValueError, TypeError, IndexError, KeyError):
        return task_id, None
    return task_id, (name, first) if name else None


# -- sending --------------------------------------------------------------------------------------


def _label(model: type) -> str:
    return model._meta.label_lower


def note_queued(model: type, pk: int, *, at: float | None = None) -> None:
    """Remember when a job was (re-)queued, ``at`` a Unix time (now): a row queued again keeps
    its created_at, and a job queued lately is left alone, as its message may be on its way."""
    timeout = int(lost_after().total_seconds()) + 60  # a minute longer than it is needed
    key = _QUEUED_AT_KEY.format(label=_label(model), pk=pk)
    cache.set(key, time.time() if at is None else at, timeout)


def send_on_commit(model: type, pk: int, send: Callable[[], Any], *, task_id: str = "") -> None:
    """Send a job's message once the transaction commits. ``send`` returns what Celery's
    ``delay`` does (its id is recorded on the row) or sends under ``task_id``, recorded already.

    A broker that does not answer then is no 500 and no silent loss: the row says it will be sent
    again (SEND_FAILED), and it is, by ``LostMessages``, once the broker answers. One that failed
    a moment ago (joe_site.cache.failed_lately) is not tried: a send to a Redis that hangs would
    wait on it without end."""
    note_queued(model, pk)

    def not_sent(why: str) -> None:
        logger.warning(
            "Could not send %s %s to its worker (%s); it is sent again when the task queue "
            "answers", model._meta.verbose_name, pk, why,
        )  # fmt: skip
        still = model.objects.filter(pk=pk, status=JobStatus.QUEUED)
        if task_id:
            still = still.filter(celery_task_id=task_id)
        still.update(progress_note=SEND_FAILED)

    def deliver() -> None:
        redis = broker_redis()
        if redis_health.failed_lately(redis):
            not_sent("Redis did not answer a moment ago")
            return
        try:
            sent = send()
        except Exception as error:  # kombu's OperationalError, redis-py's, OSError: all "down"
            if _is_down(error):  # not, say, a message that would not encode
                redis_health.note_failed(redis, error)
            not_sent(f"{type(error).__name__}: {error}")
            return
        redis_health.note_answered(redis)
        if not task_id and getattr(sent, "id", None):
            model.objects.filter(pk=pk).update(celery_task_id=sent.id)

    transaction.on_commit(deliver)


def _is_down(error: Exception) -> bool:
    """Whether a send failed because the broker did not answer."""
    from kombu.exceptions import OperationalError

    return isinstance(error, (OSError, OperationalError)) or type(error).__module__.startswith(
        "redis"
    )


@dataclass
class LostMessages:
    """One kind of job: its rows, its task, and how to send one again. ``by_call``: any
    message of the task for the row counts (runs, batches: a second one does nothing), not
    only the one the row names (imports: a task whose id is not the row's skips itself)."""

    model: type
    task_name: str
    resend: Callable[[Any], None]  # called with the locked row, inside its transaction
    by_call: bool = True
    waiting_note: str = ""
    # Live generations, watched as they wait: lost after a few seconds (None: the setting
    # JOE_LOST_MESSAGE_AFTER), their page asks the broker that often, and one queued longer than
    # ``give_up_after`` (its member has left) fails with ``give_up_note``, not sent again.
    after: timedelta | None = None
    page_check_every_s: int = PAGE_CHECK_EVERY_S
    give_up_after: timedelta | None = None
    give_up_note: str = ""
    _queue: str = field(default="", init=False)

    @property
    def queue(self) -> str:
        if not self._queue:
            from joe_site.celery import app

            self._queue = app.amqp.router.route({}, self.task_name)["queue"].name
        return self._queue

    def _candidates(self, pk: int | None) -> list[Any]:
        rows = self.model.objects.filter(status=JobStatus.QUEUED, cancel_requested=False)
        if pk is not None:
            rows = rows.filter(pk=pk)
        cutoff = timezone.now() - (lost_after() if self.after is None else self.after)
        label = _label(self.model)
        old = []
        for row in rows.only("pk", "created_at", "celery_task_id", "progress_note"):
            failed = row.progress_note == SEND_FAILED  # known never sent: no need to wait
            queued_at = cache.get(_QUEUED_AT_KEY.format(label=label, pk=row.pk)) or 0.0
            young = max(row.created_at.timestamp(), queued_at) > cutoff.timestamp()
            if failed or not young:
                old.append(row)
        return old

    def _is_pending(self, row: Any, pending: Pending) -> bool:
        if row.celery_task_id and row.celery_task_id in pending.ids:
            return True
        return self.by_call and (self.task_name, row.pk) in pending.calls

    def resend_lost(self, *, pk: int | None = None) -> list[int]:
        """Send again every queued job of this kind (or the one with this pk) whose message the
        broker has nowhere, once it has been queued for JOE_LOST_MESSAGE_AFTER; their ids."""
        candidates = self._candidates(pk)
        if not candidates:
            return []
        pending = pending_messages([self.queue])
        if pending is None:
            return []  # the broker cannot say: never guess
        resent = []
        for row in candidates:
            if self._is_pending(row, pending):
                continue
            with transaction.atomic():
                # Another process (a page, a starting worker) may have sent it meanwhile: it
                # then holds another task id, or the job has started.
                locked = (
                    self.model.objects.select_for_update()
                    .filter(pk=row.pk, status=JobStatus.QUEUED, cancel_requested=False)
                    .filter(celery_task_id=row.celery_task_id)
                    .first()
                )
                if locked is None:
                    continue
                if self._give_up(locked):
                    continue
                if locked.progress_note == SEND_FAILED:
                    self.model.objects.filter(pk=row.pk).update(progress_note=self.waiting_note)
                else:
                    logger.warning(
                        "%s %s was queued but its message is not in the broker (lost with a "
                        "restart of Redis, or never sent); sending it again",
                        self.model._meta.verbose_name.capitalize(), row.pk,
                    )  # fmt: skip
                self.resend(locked)
            resent.append(row.pk)
        return resent

    def _give_up(self, row: Any) -> bool:
        """Fail a job queued too long ago to be worth sending again (the locked row)."""
        now = timezone.now()
        if self.give_up_after is None or now - row.created_at <= self.give_up_after:
            return False
        logger.warning(
            "%s %s was queued %d s ago and its message is not in the broker; failing it",
            self.model._meta.verbose_name.capitalize(), row.pk,
            (now - row.created_at).total_seconds(),
        )  # fmt: skip
        self.model.objects.filter(pk=row.pk).update(
            status=JobStatus.FAILED, error=self.give_up_note, finished_at=now
        )
        return True

    def check_from_page(self, job: Any) -> bool:
        """From a queued job's page (polled every few seconds, by anyone looking at it): ask the
        broker at most every ``page_check_every_s``; whether the job was sent again (re-read it)."""
        if job.status != JobStatus.QUEUED:
            return False
        key = _PAGE_KEY.format(label=_label(self.model), pk=job.pk)
        if not cache.add(key, True, self.page_check_every_s):
            return False
        return bool(self.resend_lost(pk=job.pk))
