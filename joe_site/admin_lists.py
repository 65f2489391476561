"""What the admin's lists of big tables (a million messages, hundreds of thousands of snippets or
votes) need so that a page does not read the whole table: a count PostgreSQL's planner gives
for an unfiltered list, and sorts only by what an index serves (benchmarks/admin_changelists.py).
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import QuerySet
from django.utils.functional import cached_property

# Below this many rows (as the planner guesses) the exact count is cheap: counted.
ESTIMATE_FROM = 100_000


def planner_estimate(queryset: QuerySet) -> int | None:
    """PostgreSQL's guess at how many rows an unfiltered queryset holds, or None where that is
    not a fair answer: a filter, a search, DISTINCT, another database, a table not analyzed yet."""
    connection = connections[queryset.db]
    query = queryset.query
    if connection.vendor != "postgresql" or query.where or query.distinct or query.combinator:
        return None
    return table_estimate(connection, queryset.model._meta.db_table)


def table_estimate(connection, table: str) -> int | None:
    """The rows its last ANALYZE found per page, times the pages it has now (as the planner
    reckons), or None before any ANALYZE: the planner then guesses from the columns' declared
    widths (300k messages read as 32k), and the table is counted instead. Autovacuum analyzes a
    table within a minute or so of a big import."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT CASE WHEN reltuples < 0 OR relpages = 0 THEN NULL ELSE (reltuples / relpages"
            " * (pg_relation_size(oid) / current_setting('block_size')::int))::bigint END"
            " FROM pg_class WHERE oid = %s::regclass",
            [connection.ops.quote_name(table)],
        )
        row = cursor.fetchone()
    return None if row is None or row[0] is None else int(row[0])


class EstimatedCountPaginator(Paginator):
    """Counts an unfiltered list of a big table with the planner's estimate instead of COUNT(*),
    which reads every row (or its index) on each page; a filtered or searched list, and a small
    table, are counted exactly. The estimate is within a few percent after autovacuum's ANALYZE:
    the last page may come out empty or a few rows short of the oldest, and the page says
    "about" (templates/admin/pagination.html)."""

    estimated = False

    @cached_property
    def count(self) -> int:
        if isinstance(self.object_list, QuerySet):
            estimate = planner_estimate(self.object_list)
            if estimate is not None and estimate >= ESTIMATE_FROM:
                self.estimated = True
                return estimate
        return super().count


class IndexedSortChangeList(ChangeList):
    """Sorts only by the columns the admin's sortable_by names: Django sorts by any column's
    number given in ?o= (an old link, a typed URL), whatever the headers offer."""

    def get_ordering_field(self, field_name):
        if field_name not in self.sortable_by:
            return None
        return super().get_ordering_field(field_name)


class BigTableAdmin(admin.ModelAdmin):
    """A list that stays a few queries on an index whatever the table's size: no count of the
    whole table beside a filtered one, the planner's count for the unfiltered list, and sorts
    limited to get_sortable_by (the subclass names the columns an index serves)."""

    paginator = EstimatedCountPaginator
    show_full_result_count = False

    def get_changelist(self, request, **kwargs):
        return IndexedSortChangeList
