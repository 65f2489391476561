"""Gallery under load: 100k snippets and 500k votes in PostgreSQL, pages served by gunicorn.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/joe_bench .venv/bin/python benchmarks/gallery.py

Creates (or reuses, with --reuse) its own database, bulk-loads it with COPY, starts gunicorn on a
free port, logs in benchmark members by minting session cookies, then hammers /gallery/?sort=...
from threads on keep-alive connections and prints requests/s with p50/p99 latency per sort.
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/joe_bench"
# Signs the benchmark's session cookies; used only against the throwaway benchmark database.
SECRET_KEY = "benchmark-only-secret-key-not-for-production-0123456789"  # noqa: S105
CHATTER = (
    "pub tonight who is in honestly cannot believe this the train is late again pizza or curry "
    "lol no way did you see that match I am never drinking again send the photos what time "
    "tomorrow bring snacks classic dave absolutely not my charger is gone again"
)
WORDS = CHATTER.split()
SNIPPET_COLUMN_NAMES = (
    "kind source speaker_id lines text prompt temperature top_p top_k max_new_tokens seed "
    "longest_shared_run is_leak status hidden_reason upvotes downvotes score views best "
    "hot_ceiling created_at published_at"
)
SNIPPET_COLUMNS = SNIPPET_COLUMN_NAMES.split()


def setup_django(database_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ["SECRET_KEY"] = SECRET_KEY
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "joe_site.settings")
    os.environ.setdefault("DEBUG", "1")
    import django

    django.setup()


def create_database(database_url: str) -> None:
    import psycopg

    parsed = urlparse(database_url)
    name = parsed.path.lstrip("/")
    admin = parsed._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def copy_rows(cursor, table: str, columns: list[str], rows) -> None:
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def seed(*, snippets: int, votes: int, members: int, speakers: int, rng: random.Random) -> None:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.core.management import call_command
    from django.db import connection
    from django.db.models import F
    from django.db.models.functions import Greatest

    from generations import ranking
    from generations.models import Impression, Snippet, Vote
    from ingest.models import Speaker

    call_command("migrate", verbosity=0)
    User = get_user_model()
    unusable = make_password(None)
    User.objects.bulk_create(
        [User(username=f"bench{i}", password=unusable) for i in range(members)]
    )
    member_ids = list(User.objects.values_list("pk", flat=True))
    Speaker.objects.bulk_create(
        [Speaker(display_name=f"Friend {i}", slug=f"friend-{i}") for i in range(speakers)]
    )
    voices = list(Speaker.objects.values_list("pk", "slug", "display_name"))
    now = datetime.now(UTC)
    t0 = time.perf_counter()
    snippet_speakers = []
    with connection.cursor() as cursor:
        pg = cursor.cursor

        def snippet_rows():
            import json

            for i in range(snippets):
                n = 1 if rng.random() < 0.7 else rng.randint(2, 5)
                lines = []
                for _ in range(n):
                    pk, slug, name = rng.choice(voices)
                    text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 25)))
                    lines.append({"speaker": slug, "name": name, "text": text})
                first = next(v for v in voices if v[1] == lines[0]["speaker"])[0]
                snippet_speakers.append(
                    {v[0] for v in voices if v[1] in {ln["speaker"] for ln in lines}}
                )
                created = now - timedelta(seconds=rng.uniform(0, 365 * 86400))
                text = "\n".join(ln["text"] for ln in lines)
                yield (
                    "conversation" if n > 1 else "message", "batch", first, json.dumps(lines),
                    text, "", 0.9, 0.95, 50, 60, i, 0, False, "published", "", 0, 0, 0, 0, 0.0,
                    0.0, created, created,
                )  # fmt: skip

        copy_rows(
            pg,
            Snippet._meta.db_table,
            SNIPPET_COLUMNS,
            snippet_rows(),
        )
        snippet_ids = [row[0] for row in Snippet.objects.order_by("pk").values_list("pk")]
        through = Snippet.speakers.through._meta.db_table
        copy_rows(
            pg,
            through,
            ["snippet_id", "speaker_id"],
            (
                (sid, spk)
                for sid, spks in zip(snippet_ids, snippet_speakers, strict=True)
                for spk in spks
            ),
        )
        print(f"  {snippets} snippets in {time.perf_counter() - t0:.1f}s", flush=True)

        # Popularity is skewed, as in a real group: a few snippets draw most of the votes.
        pairs: set[tuple[int, int]] = set()
        weights = [rng.paretovariate(1.2) for _ in snippet_ids]
        while len(pairs) < votes:
            for sid in rng.choices(snippet_ids, weights=weights, k=votes - len(pairs)):
                pairs.add((rng.choice(member_ids), sid))
        t0 = time.perf_counter()
        copy_rows(
            pg,
            Vote._meta.db_table,
            ["user_id", "snippet_id", "value", "created_at"],
            ((u, s, 1 if rng.random() < 0.8 else -1, now) for u, s in pairs),
        )
        # Everyone who voted saw it, and so did a few more who did not vote.
        seen = set(pairs)
        for _ in range(votes // 2):
            seen.add((rng.choice(member_ids), rng.choice(snippet_ids)))
        copy_rows(
            pg,
            Impression._meta.db_table,
            ["user_id", "snippet_id", "created_at"],
            ((u, s, now) for u, s in seen),
        )
        print(f"  {len(pairs)} votes, {len(seen)} impressions in {time.perf_counter() - t0:.1f}s")
        cursor.execute(
            f"""
            UPDATE {Snippet._meta.db_table} s SET upvotes = v.ups, downvotes = v.downs,
                   score = v.ups - v.downs
            FROM (SELECT snippet_id, count(*) FILTER (WHERE value = 1) ups,
                         count(*) FILTER (WHERE value = -1) downs
                  FROM {Vote._meta.db_table} GROUP BY snippet_id) v
            WHERE s.id = v.snippet_id
            """
        )
        cursor.execute(
            f"""
            UPDATE {Snippet._meta.db_table} s SET views = i.n
            FROM (SELECT snippet_id, count(*) n FROM {Impression._meta.db_table}
                  GROUP BY snippet_id) i
            WHERE s.id = i.snippet_id
            """
        )
    Snippet.objects.update(
        best=ranking.wilson_lower_bound(
            F("upvotes"), Greatest(F("views"), F("upvotes") + F("downvotes"))
        ),
        hot_ceiling=ranking.hot_ceiling(datetime.now(UTC)),
    )
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")


def session_cookies(n: int) -> list[str]:
    """Log in n benchmark members the way the login view would: one session row each."""
    from django.contrib.auth import (
        BACKEND_SESSION_KEY,
        HASH_SESSION_KEY,
        SESSION_KEY,
        get_user_model,
    )
    from django.contrib.sessions.backends.db import SessionStore

    cookies = []
    for user in get_user_model().objects.order_by("pk")[:n]:
        session = SessionStore()
        session[SESSION_KEY] = str(user.pk)
        session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        session.create()
        cookies.append(f"sessionid={session.session_key}")
    return cookies


def wsgi_app():
    """gunicorn's app factory: load every URL module (and what they import) before forking."""
    from django.core.wsgi import get_wsgi_application
    from django.urls import get_resolver

    app = get_wsgi_application()
    get_resolver().url_patterns  # noqa: B018  (import the views now, once, in the master)
    return app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gunicorn(database_url: str, port: int, workers: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DEBUG": "0",
        "SECRET_KEY": SECRET_KEY,
        "ALLOWED_HOSTS": "127.0.0.1",
        "JOE_HTTPS": "0",
        "JOE_MANIFEST_STATIC": "0",
        "LOG_LEVEL": "WARNING",
        "DB_CONN_MAX_AGE": "600",
    }
    env.pop("REDIS_URL", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "benchmarks.gallery:wsgi_app()",
         "--workers", str(workers),
         "--bind", f"127.0.0.1:{port}", "--log-level", "warning", "--preload", "--timeout", "120"],
        cwd=ROOT, env=env,
    )  # fmt: skip
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/accounts/login/")
            status = conn.getresponse().status
            if status == 200:
                return process
            print(f"  gunicorn answered the login page with {status}", flush=True)
        except OSError:
            pass  # still booting
        time.sleep(0.5)
    process.kill()
    raise RuntimeError("gunicorn did not start")


def load(port: int, path_for, cookies: list[str], concurrency: int, seconds: float) -> dict:
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def worker(index: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        headers = {"Cookie": cookies[index % len(cookies)], "Host": "127.0.0.1"}
        mine = []
        rng = random.Random(index)
        while time.perf_counter() < stop:
            started = time.perf_counter()
            try:
                conn.request("GET", path_for(rng), headers=headers)
                response = conn.getresponse()
                response.read()
                ok = response.status == 200
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                ok = False
            if ok:
                mine.append(time.perf_counter() - started)
            else:
                with lock:
                    errors[0] += 1
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    latencies.sort()
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000  # noqa: E731
    return {
        "requests": len(latencies),
        "errors": errors[0],
        "rps": len(latencies) / elapsed,
        "p50": pick(0.50) if latencies else float("nan"),
        "p99": pick(0.99) if latencies else float("nan"),
        "mean": statistics.fmean(latencies) * 1000 if latencies else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--snippets", type=int, default=100_000)
    parser.add_argument("--votes", type=int, default=500_000)
    parser.add_argument("--members", type=int, default=200)
    parser.add_argument("--speakers", type=int, default=12)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--reuse", action="store_true", help="keep the database from a last run")
    parser.add_argument("--sorts", default="new,top,hot,best")
    args = parser.parse_args()
    database_url = os.environ.get("DATABASE_URL", DEFAULT_DB)
    if "bench" not in urlparse(database_url).path:
        sys.exit("refusing to run: DATABASE_URL must name a benchmark database (…bench…)")
    if not args.reuse:
        create_database(database_url)
    setup_django(database_url)
    if not args.reuse:
        print(f"seeding {args.snippets} snippets and {args.votes} votes…", flush=True)
        seed(
            snippets=args.snippets, votes=args.votes, members=args.members,
            speakers=args.speakers, rng=random.Random(5),
        )  # fmt: skip
    cookies = session_cookies(args.concurrency)
    from django.db import connections

    connections.close_all()
    port = free_port()
    server = start_gunicorn(database_url, port, args.workers)
    try:
        print(
            f"gunicorn {args.workers} sync workers, {args.concurrency} client threads, "
            f"{args.seconds:.0f}s per sort, {os.cpu_count()} CPUs shared by all"
        )
        print(f"{'sort':<14}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}")
        for sort in args.sorts.split(","):
            for label, path_for in [
                (sort, lambda rng, s=sort: f"/gallery/?sort={s}"),
                (
                    f"{sort} p2-5",
                    lambda rng, s=sort: f"/gallery/?sort={s}&page={rng.randint(2, 5)}",
                ),
            ]:
                load(port, path_for, cookies, args.concurrency, 1.5)  # warm caches and pools
                r = load(port, path_for, cookies, args.concurrency, args.seconds)
                print(
                    f"{label:<14}{r['rps']:>8.0f}{r['p50']:>9.1f}{r['p99']:>9.1f}{r['errors']:>8}"
                )
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    main()
