"""The Django admin's lists at a big corpus: each changelist page of a large table, timed.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/joe_admin_bench \\
        .venv/bin/python benchmarks/admin_changelists.py [--messages 1000000] [--reuse]

Creates (or, with --reuse, keeps) its own database, COPYs ~N messages into it (one group chat
holding most of them, a few smaller chats, 40 exports, 60 identities of 30 speakers), 100k
snippets and 200k votes, then asks for each admin page a staff member would open on it through
Django's test client as a superuser: the default list, a sort by each sortable column, a search,
each list filter, page 500, and a message's and a snippet's change form. For each it prints the
median time of 3 requests, that time over the baseline's (a list of 30 speakers, the same admin
page on a small table, timed in the same run: the ratio is comparable between runs on a busy
machine), the number of queries, the slowest query's time, and what is wrong with the SQL:
a COUNT(*) of a whole big table, and the <select> options a form rendered.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.gallery import copy_rows, create_database  # noqa: E402

DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/joe_admin_bench"
CHATTER = (
    "pub tonight who is in honestly cannot believe this the train is late again pizza or curry "
    "lol no way did you see that match I am never drinking again send the photos what time "
    "tomorrow bring snacks classic dave absolutely not my charger is gone again"
)
WORDS = CHATTER.split()
BIG_TABLES = ("ingest_message", "generations_snippet", "generations_vote")


def setup_django(database_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "joe_site.settings")
    os.environ.setdefault("DEBUG", "1")
    os.environ.setdefault("ALLOWED_HOSTS", "testserver")
    os.environ.pop("REDIS_URL", None)  # the cache stays out of the timings
    import django

    django.setup()


def fill(messages: int, snippets: int, votes: int, rng: random.Random) -> None:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.core.management import call_command
    from django.db import connection

    from generations.models import Snippet, Vote
    from ingest.models import Conversation, Export, Identity, Message, Speaker

    call_command("migrate", verbosity=0)
    t0 = time.perf_counter()
    User = get_user_model()
    unusable = make_password(None)
    User.objects.bulk_create([User(username=f"bench{i}", password=unusable) for i in range(200)])
    members = list(User.objects.values_list("pk", flat=True))
    speakers = Speaker.objects.bulk_create(
        [Speaker(display_name=f"Friend {i}", slug=f"friend-{i}") for i in range(30)]
    )
    identities = Identity.objects.bulk_create(
        [
            Identity(
                source_kind="slack" if i % 2 else "whatsapp",
                external_id=f"U{i}",
                display_name=f"friend{i}",
                speaker=speakers[i % len(speakers)],
            )
            for i in range(60)
        ]
    )
    chats = Conversation.objects.bulk_create(
        [
            Conversation(source_kind="slack", external_id=f"C{i}", title=f"chat {i}")
            for i in range(200)
        ]
    )
    exports = Export.objects.bulk_create(
        [
            Export(original_name=f"export-{i}.zip", kind="slack", status="succeeded")
            for i in range(40)
        ]
    )
    start = datetime(2015, 1, 1, tzinfo=UTC)
    per_export = max(1, messages // len(exports))

    def message_rows():
        for i in range(messages):
            # Most in one group chat (the case the admin must survive), the rest spread.
            chat = chats[0] if rng.random() < 0.8 else rng.choice(chats)
            who = rng.choice(identities)
            text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 18)))
            sent = start + timedelta(seconds=i * 300 + rng.randint(0, 299))
            export = exports[min(i // per_export, len(exports) - 1)]
            yield (chat.pk, who.pk, export.pk, who.source_kind, f"m{i}", sent, text, "")

    with connection.cursor() as cursor:
        copy_rows(
            cursor.cursor,
            Message._meta.db_table,
            [
                "conversation_id",
                "identity_id",
                "export_id",
                "source_kind",
                "external_id",
                "sent_at",
                "text",
                "reply_to_external_id",
            ],
            message_rows(),
        )
        print(f"  {messages:,} messages in {time.perf_counter() - t0:.1f}s", flush=True)
        t1 = time.perf_counter()
        now = datetime.now(UTC)

        def snippet_rows():
            for i in range(snippets):
                speaker = rng.choice(speakers)
                text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 25)))
                lines = f'[{{"speaker": "{speaker.slug}", "name": "{speaker}", "text": "{text}"}}]'
                created = now - timedelta(seconds=rng.uniform(0, 365 * 86400))
                score = rng.randint(-3, 40)
                yield (speaker.pk, lines, text, i, "published", score, created, created)

        copy_rows(
            cursor.cursor,
            Snippet._meta.db_table,
            [
                "kind", "source", "speaker_id", "lines", "text", "prompt", "temperature",
                "top_p", "top_k", "max_new_tokens", "seed", "longest_shared_run", "is_leak",
                "status", "hidden_reason", "upvotes", "downvotes", "score", "views", "best",
                "hot_ceiling", "created_at", "published_at",
            ],
            (
                ("message", "batch", spk, lines, text, "", 0.9, 0.95, 50, 60, seed, 0, False,
                 status, "", max(score, 0), 0, score, 0, 0.0, 0.0, created, published)
                for spk, lines, text, seed, status, score, created, published in snippet_rows()
            ),
        )  # fmt: skip
        snippet_ids = list(Snippet.objects.values_list("pk", flat=True))
        pairs: set[tuple[int, int]] = set()
        while len(pairs) < votes:
            pairs.add((rng.choice(members), rng.choice(snippet_ids)))
        copy_rows(
            cursor.cursor,
            Vote._meta.db_table,
            ["user_id", "snippet_id", "value", "created_at"],
            ((u, s, 1, now) for u, s in pairs),
        )
        print(f"  {snippets:,} snippets, {votes:,} votes in {time.perf_counter() - t1:.1f}s")
        cursor.execute("VACUUM ANALYZE")
    print(f"  filled in {time.perf_counter() - t0:.1f}s (VACUUM ANALYZE included)", flush=True)


def pages() -> list[tuple[str, str, dict]]:
    """(label, url, query) for each page timed; the first is the baseline."""
    from django.urls import reverse

    from generations.models import Snippet
    from ingest.models import Export, Message, Speaker

    message = Message.objects.order_by("pk").first()
    export = Export.objects.order_by("pk").first()
    speaker = Speaker.objects.order_by("pk").first()
    snippet = Snippet.objects.order_by("pk").first()
    messages = reverse("admin:ingest_message_changelist")
    snippets = reverse("admin:generations_snippet_changelist")
    votes = reverse("admin:generations_vote_changelist")
    found = [
        ("baseline: speakers list (30 rows)", reverse("admin:ingest_speaker_changelist"), {}),
        ("messages: default", messages, {}),
        ("messages: page 500", messages, {"p": 500}),
    ]
    for column in range(1, 5):
        found.append((f"messages: sort by column {column}", messages, {"o": f"{column}"}))
        found.append((f"messages: sort by column {column}, desc", messages, {"o": f"-{column}"}))
    found += [
        ("messages: search 'charger'", messages, {"q": "charger"}),
        ("messages: search a word no message has", messages, {"q": "zebra"}),
        ("messages: filter source_kind", messages, {"source_kind__exact": "slack"}),
        ("messages: filter export", messages, {"export__id__exact": export.pk}),
        ("messages: filter speaker", messages, {"identity__speaker__id__exact": speaker.pk}),
        ("messages: filter speaker, sort by date", messages,
         {"identity__speaker__id__exact": speaker.pk, "o": "1"}),
        ("messages: filter export, sort by person", messages,
         {"export__id__exact": export.pk, "o": "2"}),
        ("messages: filter speaker, page 50", messages,
         {"identity__speaker__id__exact": speaker.pk, "p": 50}),
        ("messages: filter export + search", messages,
         {"export__id__exact": export.pk, "q": "charger"}),
        ("message: change form", reverse("admin:ingest_message_change", args=[message.pk]), {}),
        ("message: add form", reverse("admin:ingest_message_add"), {}),
        ("conversations: default", reverse("admin:ingest_conversation_changelist"), {}),
        ("identities: default", reverse("admin:ingest_identity_changelist"), {}),
        ("snippets: default", snippets, {}),
        ("snippets: page 500", snippets, {"p": 500}),
    ]  # fmt: skip
    for column in range(1, 7):
        found.append((f"snippets: sort by column {column}", snippets, {"o": f"{column}"}))
    found += [
        ("snippets: search 'charger'", snippets, {"q": "charger"}),
        ("snippets: filter status", snippets, {"status__exact": "published"}),
        ("snippets: filter kind", snippets, {"kind__exact": "message"}),
        ("snippets: filter is_leak", snippets, {"is_leak__exact": "1"}),
        ("snippet: change form", reverse("admin:generations_snippet_change", args=[snippet.pk]),
         {}),
        ("votes: default", votes, {}),
        ("votes: page 500", votes, {"p": 500}),
    ]  # fmt: skip
    for column in range(1, 5):
        found.append((f"votes: sort by column {column}", votes, {"o": f"{column}"}))
    vote = snippet.votes.first()
    if vote:
        found.append(
            ("vote: change form", reverse("admin:generations_vote_change", args=[vote.pk]), {})
        )
    return found


def problems(captured: list[dict], html: str) -> list[str]:
    """What the page's SQL and HTML do that grows with the table."""
    found = []
    for query in captured:
        sql = query["sql"]
        for table in BIG_TABLES:
            if "COUNT(*)" in sql and f'FROM "{table}"' in sql and "WHERE" not in sql:
                found.append(f"COUNT(*) of all {table}")
    options = html.count("<option")
    if options > 200:
        found.append(f"{options} <option>s")
    return found


def time_page(client, url: str, query: dict, repeat: int) -> dict:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    times = []
    for _ in range(repeat):
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            response = client.get(url, query)
            times.append(time.perf_counter() - started)
        assert response.status_code == 200, (url, query, response.status_code)
    slowest = max(captured.captured_queries, key=lambda q: float(q["time"]))
    return {
        "median": statistics.median(times),
        "queries": len(captured.captured_queries),
        "slowest": float(slowest["time"]),
        "slowest_sql": slowest["sql"],
        "problems": problems(captured.captured_queries, response.content.decode()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--snippets", type=int, default=100_000)
    parser.add_argument("--votes", type=int, default=200_000)
    parser.add_argument("--reuse", action="store_true", help="keep the filled database")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", default="", help="time only the pages whose label has this")
    parser.add_argument("--sql", action="store_true", help="print each page's slowest query")
    args = parser.parse_args()
    database_url = os.environ.get("DATABASE_URL", DEFAULT_DB)
    if not urlparse(database_url).scheme.startswith("postgres"):
        sys.exit("benchmarks/admin_changelists.py measures PostgreSQL: set DATABASE_URL")
    if not args.reuse:
        create_database(database_url)
    setup_django(database_url)

    from django.contrib.auth import get_user_model
    from django.test import Client

    from ingest.models import Message

    if not args.reuse or not Message.objects.exists():
        fill(args.messages, args.snippets, args.votes, random.Random(7))
    User = get_user_model()
    admin, _ = User.objects.get_or_create(
        username="bench-admin", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(admin)
    rows = pages()
    baseline = time_page(client, rows[0][1], rows[0][2], args.repeat)["median"]
    print(f"\nbaseline ({rows[0][0]}): {baseline * 1000:.0f} ms\n")
    print(f"{'page':<46} {'ms':>7} {'x base':>7} {'queries':>7} {'slowest ms':>10}  problems")
    for label, url, query in rows[1:]:
        if args.only and args.only not in label:
            continue
        client.get(url, query)  # warm: the first request of a page pays for its templates
        result = time_page(client, url, query, args.repeat)
        print(
            f"{label:<46} {result['median'] * 1000:>7.0f} {result['median'] / baseline:>7.1f} "
            f"{result['queries']:>7} {result['slowest'] * 1000:>10.0f}  "
            f"{'; '.join(result['problems'])}",
            flush=True,
        )
        if args.sql:
            print(f"    {result['slowest_sql'][:600]}")


if __name__ == "__main__":
    main()
