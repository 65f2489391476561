"""What a gallery page costs the database: one ranked query, and impressions only when new."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from generations import votes
from generations.models import Impression
from tests.builders.snippets import make_snippet

pytestmark = pytest.mark.django_db


def load(client, url: str) -> list[str]:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return [q["sql"] for q in queries]


@pytest.mark.parametrize("sort", ["new", "top", "best"])
def test_a_page_of_an_indexed_sort_is_one_query(member_client, member, ann, sort):
    for i in range(25):
        snippet = make_snippet((ann, f"n{i}"))
        votes.set_vote(member=member, snippet_id=snippet.pk, value=1 if i % 2 else -1)
    load(member_client, f"/gallery/?sort={sort}")
    again = load(member_client, f"/gallery/?sort={sort}")
    on_snippets = [
        sql
        for sql in again
        if 'FROM "generations_snippet"' in sql
        and not sql.startswith('SELECT "ingest_speaker"')  # which voices have a fake on show
    ]
    assert len(on_snippets) == 1, on_snippets
    assert 'data-testid="upvotes">1<' in member_client.get(f"/gallery/?sort={sort}").text


def test_a_second_look_records_no_impressions(member_client, member, ann):
    shown = [make_snippet((ann, f"n{i}")) for i in range(3)]
    first = load(member_client, "/gallery/?sort=new")
    assert any("INSERT INTO generations_impression" in sql for sql in first)
    again = load(member_client, "/gallery/?sort=new")
    assert not any("generations_impression (" in sql for sql in again)
    assert Impression.objects.filter(user=member).count() == 3
    make_snippet((ann, "a new one"))
    load(member_client, "/gallery/?sort=hot")
    assert Impression.objects.filter(user=member).count() == 4
    for snippet in shown:
        snippet.refresh_from_db()
        assert snippet.views == 1
