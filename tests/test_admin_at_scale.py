"""The admin's lists of big tables (a group chat's million messages, a busy gallery's snippets
and votes), checked on the shape of their SQL rather than on a million rows: no COUNT(*) of the
whole table, no sort that reads every row, as many queries for many rows as for few, and no form
that lists every conversation. benchmarks/admin_changelists.py times them at 1M."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from ingest.models import Conversation, Export, Identity, Message, SourceKind, Speaker

pytestmark = pytest.mark.django_db
MESSAGES = reverse("admin:ingest_message_changelist")


def corpus(messages: int, *, people: int = 3, chats: int = 3, tag: str = "") -> Export:
    """One export of ``messages`` messages, spread over new people and chats of their own."""
    export = Export.objects.create(original_name=f"chat{tag}.zip", kind="slack", status="done")
    speakers = [
        Speaker.objects.create(display_name=f"Friend {tag}{i}", slug=f"friend-{tag}{i}")
        for i in range(people)
    ]
    identities = [
        Identity.objects.create(
            source_kind="slack", external_id=f"U{tag}{i}", display_name=f"f{tag}{i}", speaker=s
        )
        for i, s in enumerate(speakers)
    ]
    conversations = [
        Conversation.objects.create(
            source_kind="slack", external_id=f"C{tag}{i}", title=f"Chat {tag}{i} title"
        )
        for i in range(chats)
    ]
    start = datetime(2024, 1, 1, tzinfo=UTC)
    Message.objects.bulk_create(
        Message(
            conversation=conversations[i % chats],
            identity=identities[i % people],
            export=export,
            source_kind="slack",
            external_id=f"m{tag}{i}",
            sent_at=start + timedelta(minutes=(messages - i)),  # newest first: pk is not time
            text=f"message {i} from the big chat",
        )
        for i in range(messages)
    )
    return export


def message_sql(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if 'FROM "ingest_message"' in q["sql"]]


def whole_table_counts(queries: CaptureQueriesContext, table: str) -> list[str]:
    return [
        q["sql"]
        for q in queries.captured_queries
        if "COUNT(" in q["sql"] and f'FROM "{table}"' in q["sql"] and "WHERE" not in q["sql"]
    ]


def analyze(*tables: str) -> None:
    """What autovacuum does soon after rows are written: the planner's statistics."""
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {', '.join(tables)}")


@pytest.fixture
def estimate_every_count(monkeypatch):
    """As if every table were big: the unfiltered lists count by the planner's estimate."""
    monkeypatch.setattr("joe_site.admin_lists.ESTIMATE_FROM", 0)


@pytest.mark.parametrize(
    ("changelist", "table"),
    [
        ("ingest_message", "ingest_message"),
        ("generations_snippet", "generations_snippet"),
        ("generations_vote", "generations_vote"),
    ],
)
def test_a_big_tables_unfiltered_list_is_counted_by_the_planner_not_by_count(
    staff_client, estimate_every_count, changelist, table, ann, staff
):
    """COUNT(*) read every row (or its index) on every page: 37 ms at 1M messages on a vacuumed
    table, more before autovacuum, and twice on the snippets' list (the whole table again beside
    the filtered count)."""
    from generations.models import Vote
    from tests.builders.snippets import make_snippet

    corpus(5)
    Vote.objects.create(user=staff, snippet=make_snippet((ann, "hi")), value=1)
    analyze(table)

    with CaptureQueriesContext(connection) as queries:
        page = staff_client.get(reverse(f"admin:{changelist}_changelist"))

    assert page.status_code == 200
    assert whole_table_counts(queries, table) == []
    assert page.context["cl"].paginator.estimated
    assert "about " in page.content.decode()  # the count on the page is the planner's


def test_a_small_table_and_a_filtered_list_are_counted_exactly(staff_client):
    export = corpus(5)
    corpus(2, tag="x")

    page = staff_client.get(MESSAGES)
    with CaptureQueriesContext(connection) as queries:
        narrowed = staff_client.get(MESSAGES, {"export__id__exact": export.pk})

    assert page.context["cl"].result_count == 7 and not page.context["cl"].paginator.estimated
    assert narrowed.context["cl"].result_count == 5
    assert not narrowed.context["cl"].paginator.estimated
    assert whole_table_counts(queries, "ingest_message") == []  # no full count beside it
    assert "about " not in narrowed.content.decode()


def test_the_planner_count_is_postgresqls_and_close_to_the_table(estimate_every_count):
    """Only an unfiltered list is estimated: a filter's count could be far off the planner's."""
    from django.contrib.admin.views.main import ChangeList  # noqa: F401 (the admin loaded)

    from joe_site.admin_lists import EstimatedCountPaginator, planner_estimate

    corpus(40)
    analyze("ingest_message")

    assert planner_estimate(Message.objects.all()) == 40
    assert planner_estimate(Message.objects.filter(text__contains="1")) is None
    assert EstimatedCountPaginator(Message.objects.filter(text__contains="1"), 10).count == 13


def test_a_table_not_analyzed_yet_is_counted():
    """Before its first ANALYZE the planner guesses from the columns' declared widths: a fresh
    table of 300k messages read as 32k. Autovacuum analyzes it soon after a big import."""
    from joe_site.admin_lists import table_estimate

    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE scratch AS SELECT g AS id, repeat('x', 40) AS text FROM "
                       "generate_series(1, 20000) g")  # fmt: skip
        assert table_estimate(connection, "scratch") is None
        cursor.execute("INSERT INTO scratch SELECT g, 'y' FROM generate_series(1, 20000) g")
        cursor.execute("ANALYZE scratch")
        assert table_estimate(connection, "scratch") == 40000


@pytest.mark.parametrize("column", ["1", "-1", "2", "3", "4"])
def test_the_whole_message_list_is_never_sorted_by_an_unindexed_column(staff_client, column):
    """A sort of a million messages by date, person, chat or text read every row: 0.5-0.7 s a
    page. The whole list is newest imported first, whatever ?o= says, and offers no sort."""
    corpus(5)

    with CaptureQueriesContext(connection) as queries:
        page = staff_client.get(MESSAGES, {"o": column})

    assert page.status_code == 200
    listed = [sql for sql in message_sql(queries) if "LIMIT" in sql or "ORDER BY" in sql]
    assert listed
    for sql in listed:
        assert sql.split("ORDER BY")[-1].strip().startswith('"ingest_message"."id" DESC'), sql
    assert 'class="sortable' not in page.content.decode()


def test_a_narrowed_message_list_sorts_by_its_columns(staff_client):
    corpus(6)
    speaker = Speaker.objects.get(slug="friend-0")

    page = staff_client.get(MESSAGES, {"identity__speaker__id__exact": speaker.pk, "o": "1"})

    rows = list(page.context["cl"].result_list)
    assert [m.sent_at for m in rows] == sorted(m.sent_at for m in rows) and len(rows) == 2
    assert 'class="sortable' in page.content.decode()


def test_an_exports_messages_are_found_in_its_pk_range(staff_client):
    """Without the range PostgreSQL walked the pk index from the newest message back to the
    export's (an old export of a 1M-message corpus: 230 ms a page; 2 s at 10M)."""
    old = corpus(4, tag="a")
    corpus(3, tag="b")
    # An import that ran beside another: its rows inside the first's range are not listed.
    Message.objects.filter(external_id="mb0").update(export=old)
    Message.objects.filter(external_id="ma1").update(
        export=Export.objects.get(original_name="chatb.zip")
    )

    with CaptureQueriesContext(connection) as queries:
        page = staff_client.get(MESSAGES, {"export__id__exact": old.pk})

    listed = {m.external_id for m in page.context["cl"].result_list}
    assert listed == {"ma0", "ma2", "ma3", "mb0"}
    pages = [sql for sql in message_sql(queries) if "LIMIT" in sql or "COUNT(" in sql]
    assert pages and all('"ingest_message"."id" BETWEEN' in sql for sql in pages)
    assert staff_client.get(MESSAGES, {"export__id__exact": "x"}).status_code in (200, 302)


def test_a_sorted_exports_messages_are_found_through_its_index_alone(staff_client):
    """Range and export together, the planner guessed 40x too few rows and joined each person
    to each of the export's messages in a nested loop (163 ms against 27 ms at 1M)."""
    export = corpus(4, people=2)

    with CaptureQueriesContext(connection) as queries:
        page = staff_client.get(MESSAGES, {"export__id__exact": export.pk, "o": "2"})

    assert len(page.context["cl"].result_list) == 4
    assert all("BETWEEN" not in sql for sql in message_sql(queries))
    assert any("ORDER BY" in sql and '"ingest_identity"' in sql for sql in message_sql(queries))


def test_the_message_list_takes_as_many_queries_for_many_rows_as_for_few(
    staff_client, django_assert_max_num_queries
):
    """Each row names its person and chat: read with the row, not a query each."""
    corpus(2, people=2, chats=2)
    with CaptureQueriesContext(connection) as few:
        staff_client.get(MESSAGES)
    corpus(60, people=30, chats=30, tag="x")

    with django_assert_max_num_queries(len(few)):
        page = staff_client.get(MESSAGES, {"o": "2"})

    assert len(page.context["cl"].result_list) == 62


def test_the_message_change_form_lists_no_conversation_person_or_export(staff_client):
    """A <select> of every chat, person and export of a big corpus made the form megabytes."""
    corpus(3, chats=3)
    message = Message.objects.select_related("conversation").first()

    page = staff_client.get(reverse("admin:ingest_message_change", args=[message.pk]))

    html = page.content.decode()
    assert page.status_code == 200
    for field in ("conversation", "identity", "export"):
        assert f'name="{field}"' in html and f'<select name="{field}"' not in html
    assert html.count("<option") <= len(SourceKind.choices) + 1  # source_kind's, and no more
    assert message.conversation.title in html  # named beside its id
    others = Conversation.objects.exclude(pk=message.conversation_id)
    assert [c.title for c in others if c.title in html] == []  # the other chats are nowhere


def test_the_message_search_says_what_it_reads(staff_client):
    corpus(2)

    html = staff_client.get(MESSAGES).content.decode()

    assert "It reads every message listed" in html and "pick an export or a speaker" in html


def test_votes_sort_only_by_member(staff_client, staff, ann):
    """A sort of every vote by snippet, value or date read the whole table (0.25 s at 200k)."""
    from generations.models import Vote
    from tests.builders.snippets import make_snippet

    Vote.objects.create(user=staff, snippet=make_snippet((ann, "hi")), value=1)
    url = reverse("admin:generations_vote_changelist")

    for column in ("1", "3", "4"):
        with CaptureQueriesContext(connection) as queries:
            assert staff_client.get(url, {"o": column}).status_code == 200
        listed = [
            q["sql"].split("ORDER BY")[-1]
            for q in queries.captured_queries
            if 'FROM "generations_vote"' in q["sql"] and "ORDER BY" in q["sql"]
        ]
        assert listed and all(s.strip() == '"generations_vote"."id" DESC' for s in listed)
    with CaptureQueriesContext(connection) as queries:
        staff_client.get(url, {"o": "2"})
    assert any('ORDER BY "generations_vote"."user_id" ASC' in q["sql"] for q in queries)


def test_the_snippet_list_is_newest_first_by_pk(staff_client, ann):
    """By created_at, which no index serves alone, each page sorted every snippet."""
    from tests.builders.snippets import make_snippet

    make_snippet((ann, "older"))
    make_snippet((ann, "newer"))

    with CaptureQueriesContext(connection) as queries:
        page = staff_client.get(reverse("admin:generations_snippet_changelist"))

    assert [s.text for s in page.context["cl"].result_list] == ["newer", "older"]
    listed = [q["sql"] for q in queries if 'FROM "generations_snippet"' in q["sql"]]
    assert any(sql.endswith('ORDER BY "generations_snippet"."id" DESC') for sql in listed)
