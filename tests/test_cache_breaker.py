"""A Redis that hangs (takes connections, never answers) or refuses them: once a call has failed,
this process takes that Redis as down for joe_site.cache.ASSUME_DOWN_FOR_S without asking it,
so a page pays one timeout at most, not one per cache call and one per look into the broker.
After the window one caller asks again, and a Redis that answers is used again at once."""

from __future__ import annotations

import logging
import socket
import threading
import time
from urllib.parse import urlsplit

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from accounts import login
from generations.models import LiveGeneration
from joe_site import cache as fail_soft
from joe_site.cache import CacheUnavailable, FailSoftRedisCache, redis_cache
from joe_site.jobs import SEND_FAILED, JobStatus
from tests.builders.generation import checkpoint_copy, make_friends, make_run, tiny_checkpoint
from tests.test_jobs_lost_messages import broker_at
from trainer import services as trainer_services
from trainer.models import TrainingRun

# The cache's connect and read timeouts here (production: 2 s and 5 s); every call that asked a
# hung Redis would wait this long.
WAIT_S = 0.5
HTMX = {"HX-Request": "true"}


class HungRedis:
    """A Redis that takes connections and never answers (stopped with SIGSTOP, swapping), on a
    port of its own or a given one; ``asked``: how many connections it took, i.e. how many calls
    asked it. ``answer_from(url)`` makes it a Redis that answers again: it then passes what it
    takes on to the Redis at ``url``."""

    def __init__(self, port: int = 0) -> None:
        self.server = socket.create_server(("127.0.0.1", port))
        self.port = self.server.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.held: list[socket.socket] = []
        self.upstream: tuple[str, int] | None = None
        threading.Thread(target=self._take, daemon=True).start()

    @property
    def asked(self) -> int:
        return len(self.held)

    def answer_from(self, url: str) -> None:
        parts = urlsplit(url)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 6379)

    def _take(self) -> None:
        while True:
            try:
                conn = self.server.accept()[0]
            except OSError:
                return
            self.held.append(conn)
            if self.upstream:
                far = socket.create_connection(self.upstream)
                self.held.append(far)
                for a, b in ((conn, far), (far, conn)):
                    threading.Thread(target=_pass_on, args=(a, b), daemon=True).start()

    def close(self) -> None:
        self.server.close()
        for conn in self.held:
            conn.close()


def _pass_on(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        return


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def cache_at(url: str) -> FailSoftRedisCache:
    """Django's cache as production builds it, with this test's short timeouts."""
    return FailSoftRedisCache(
        url, {"OPTIONS": {"socket_connect_timeout": WAIT_S, "socket_timeout": WAIT_S}}
    )


def timed(call):  # noqa: ANN001, ANN201
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


@pytest.fixture(autouse=True)
def nothing_failed_yet():
    fail_soft.forget_failures()
    fail_soft._warned_at = 0.0
    yield
    fail_soft.forget_failures()
    fail_soft._warned_at = 0.0


@pytest.fixture
def hung_redis():
    redis = HungRedis()
    yield redis
    redis.close()


def every_call(cache: FailSoftRedisCache) -> None:
    """Each of the cache's calls once, as while Redis is down."""
    assert cache.get("joe:k") is None and cache.get("joe:k", 7) == 7
    cache.set("joe:k", 1, 60)
    assert cache.add("joe:k", 1, 60) is False and fail_soft.unreachable()
    assert cache.get_many(["joe:k"]) == {} and cache.has_key("joe:k") is False
    assert cache.get_or_set("joe:k", 3, 60) == 3
    cache.set_many({"joe:k": 1}, 60)
    cache.delete("joe:k")
    cache.delete_many(["joe:k"])
    assert cache.touch("joe:k", 60) is False
    with pytest.raises(CacheUnavailable):
        cache.incr("joe:k")  # a count cannot be made up
    with pytest.raises(CacheUnavailable):
        cache.decr("joe:k")


# -- the cache itself -------------------------------------------------------------------------


def test_a_hung_redis_costs_one_call_its_timeout_and_the_next_calls_answer_at_once(
    hung_redis, caplog
):
    cache = cache_at(hung_redis.url)

    with caplog.at_level(logging.WARNING, logger="joe_site.cache"):
        first, waited = timed(lambda: cache.get("joe:k", 7))
        _, then = timed(lambda: [every_call(cache) for _ in range(3)])

    assert first == 7 and WAIT_S * 0.8 <= waited < WAIT_S + 2
    assert then < 2 * WAIT_S, "~40 calls that would each have waited its timeout"
    assert hung_redis.asked == 1  # the first call only
    assert fail_soft.failed_lately(cache.url)
    warnings = [r for r in caplog.records if r.name == "joe_site.cache"]
    assert len(warnings) == 1 and "The cache (Redis) does not answer" in warnings[0].getMessage()


def test_after_the_window_one_call_asks_again_not_every_waiting_one(hung_redis, monkeypatch):
    monkeypatch.setattr(fail_soft, "ASSUME_DOWN_FOR_S", 1.0)
    cache = cache_at(hung_redis.url)
    cache.get("joe:k")
    assert hung_redis.asked == 1
    time.sleep(1.2)

    waits = []

    def page() -> None:
        waits.append(timed(lambda: cache.get("joe:k"))[1])

    pages = [threading.Thread(target=page) for _ in range(6)]
    for thread in pages:
        thread.start()
    for thread in pages:
        thread.join(10)

    assert hung_redis.asked == 2, "one of them asks Redis again"
    assert len(waits) == 6 and sorted(waits)[-2] < WAIT_S * 0.8  # the others did not wait
    with pytest.raises(CacheUnavailable):
        cache.incr("joe:k")  # the window starts again: counting is refused at once
    assert hung_redis.asked == 2


def test_a_redis_that_answers_again_after_the_window_is_used_again(
    hung_redis, redis_url, monkeypatch
):
    monkeypatch.setattr(fail_soft, "ASSUME_DOWN_FOR_S", 1.0)
    cache = cache_at(f"redis://127.0.0.1:{hung_redis.port}{urlsplit(redis_url).path}")
    assert cache.add("joe:test-cache-breaker", 1, 60) is False and fail_soft.unreachable()

    hung_redis.answer_from(redis_url)  # Redis answers again (woken, swapped back in)
    with pytest.raises(CacheUnavailable):
        cache.incr("joe:test-cache-breaker")  # within the window: not asked yet
    time.sleep(1.2)

    cache.delete("joe:test-cache-breaker")
    assert cache.add("joe:test-cache-breaker", 0, 60) is True and not fail_soft.unreachable()
    assert cache.incr("joe:test-cache-breaker") == 1
    assert cache.get("joe:test-cache-breaker") == 1
    assert not fail_soft.failed_lately(cache.url)
    cache.delete("joe:test-cache-breaker")


def test_a_refused_connection_takes_the_same_path(monkeypatch):
    monkeypatch.setattr(fail_soft, "ASSUME_DOWN_FOR_S", 1.0)
    port = free_port()
    cache = cache_at(f"redis://127.0.0.1:{port}/0")  # Redis stopped: nothing listens
    assert cache.get("joe:k", 7) == 7
    with pytest.raises(CacheUnavailable):
        cache.incr("joe:k")

    # Something listens there now, and hangs: within the window nobody asks it.
    listening = HungRedis(port)
    try:
        _, waited = timed(lambda: every_call(cache))
        assert listening.asked == 0 and waited < WAIT_S * 0.8
        time.sleep(1.2)
        _, waited = timed(lambda: cache.get("joe:k"))
        assert listening.asked == 1 and waited >= WAIT_S * 0.8  # after it: asked again
    finally:
        listening.close()


# -- pages, with the cache and Celery's broker on a Redis that hangs --------------------------


@pytest.fixture
def redis_hangs(settings, hung_redis):
    """Production's settings, the cache's timeouts shortened: one Redis, the cache and the
    broker, hung. The broker's looks keep their own 2 s waits."""
    settings.REDIS_URL = hung_redis.url
    settings.CACHES = {"default": redis_cache(hung_redis.url)}
    settings.CACHES["default"]["OPTIONS"] = {
        "socket_connect_timeout": WAIT_S,
        "socket_timeout": WAIT_S,
    }
    with broker_at(hung_redis.url):
        yield hung_redis


def in_a_thread(ask, within: float):  # noqa: ANN001, ANN201
    """``ask()`` and how long it took, or None if it was still waiting after ``within`` s (a
    thread: a page that hangs fails the test, not the suite)."""
    answers = []

    def run() -> None:
        try:
            answers.append(timed(ask))
        finally:
            connection.close()  # this thread's own

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(within)
    return answers[0] if answers else (None, None)


@pytest.mark.django_db
def test_logging_in_is_paused_after_one_wait_not_one_per_cache_call(redis_hangs, client, member):
    form = {"username": "alice", "password": "correct horse 1"}
    page, took = in_a_thread(lambda: client.post("/accounts/login/", form), 10)

    assert page is not None and page.status_code == 503
    assert escape(login.PAUSED) in page.content.decode()
    # Six cache calls before the count that cannot be made (the era, the locks, the count):
    # one waited, the others answered at once.
    assert took < 4 * WAIT_S, f"{took:.1f} s"
    assert redis_hangs.asked == 1


@pytest.mark.django_db(transaction=True)
def test_a_queued_runs_page_waits_once_for_the_cache_and_the_broker_together(
    redis_hangs, staff_client
):
    run = TrainingRun.objects.create(name="waiting", status=JobStatus.QUEUED, celery_task_id="x")
    TrainingRun.objects.filter(pk=run.pk).update(
        created_at=timezone.now() - timezone.timedelta(minutes=3)
    )  # waited long enough for its page to ask whether a GPU worker is up

    page, took = in_a_thread(lambda: staff_client.get(run.get_absolute_url(), headers=HTMX), 15)

    assert page is not None and page.status_code == 200
    assert escape(trainer_services.NO_GPU_WORKER_YET) in page.content.decode()
    # The cache waited; asking the broker whether a GPU worker listens would have waited 2 s
    # more, and the cache's four calls each theirs.
    assert took < WAIT_S + 2, f"{took:.1f} s"
    assert redis_hangs.asked == 1  # the broker was not asked


@pytest.mark.django_db(transaction=True)
def test_generate_on_the_live_page_answers_after_one_wait_and_says_the_queue_is_down(
    redis_hangs, member_client, tmp_path
):
    friends = make_friends()
    make_run(checkpoint_copy(tiny_checkpoint(), tmp_path / "checkpoint"), friends)
    data = {"opening": "", "temperature": 0.9, "mode": "speaker", "speaker": friends["ann"].pk}

    started, took = in_a_thread(
        lambda: member_client.post(reverse("generations:live"), data, headers=HTMX), 15
    )

    # Whether a GPU worker is up (the cache, then the broker: 2 s), then its message sent (to a
    # Redis that hangs, Celery waits without end): neither asked, once the cache found it hung.
    assert started is not None, "Generate still waits for Redis"
    assert started.status_code == 200 and took < WAIT_S + 2, f"{took:.1f} s"
    generation = LiveGeneration.objects.get()
    assert (generation.status, generation.progress_note) == (JobStatus.QUEUED, SEND_FAILED)
    assert redis_hangs.asked == 1


@pytest.mark.django_db(transaction=True)
def test_a_queued_runs_page_looks_into_a_hung_broker_once_not_once_per_look(
    settings, redis_url, hung_redis, staff_client
):
    """The cache answers, the broker hangs (a test's setup; in production they are one Redis):
    the look for the run's lost message waits its 2 s, and the ask whether a GPU worker is up,
    right after it on the same page, is not made."""
    from django.core.cache import cache

    from joe_site import lost_messages, workers

    settings.CACHES = {"default": redis_cache(redis_url)}
    run = TrainingRun.objects.create(name="waiting", status=JobStatus.QUEUED, celery_task_id="x")
    TrainingRun.objects.filter(pk=run.pk).update(
        created_at=timezone.now() - timezone.timedelta(minutes=3)
    )
    page_key = lost_messages._PAGE_KEY.format(label="trainer.trainingrun", pk=run.pk)
    cache.delete_many([workers._WORKER_SEEN_KEY, trainer_services._NO_GPU_WORKER_KEY, page_key])

    with broker_at(hung_redis.url):
        page, took = in_a_thread(lambda: staff_client.get(run.get_absolute_url(), headers=HTMX), 15)

    assert page is not None and page.status_code == 200
    assert escape(trainer_services.NO_GPU_WORKER_YET) in page.content.decode()
    assert hung_redis.asked == 1, "the broker was asked twice"
    assert took < lost_messages.BROKER_ANSWER_S + 1.5, f"{took:.1f} s"
