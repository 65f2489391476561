"""Gallery sort orders as SQL expressions: hot (HN gravity), best (Wilson lower bound), random.

Everything is computed by the database so a page is one query whatever the sort.
"""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta

from django.db.models import CharField, F, FloatField, Func, Q, QuerySet, Value
from django.db.models.expressions import Combinable, ExpressionWrapper
from django.db.models.functions import MD5, Cast, Concat, Greatest, Power, Sqrt

GRAVITY = 1.8
WILSON_Z = 1.2816  # 80% confidence, as reddit's "best"
SORTS = ("hot", "new", "top", "best", "random")
DEFAULT_SORT = "hot"
OLDEST_HOURS = 24 * 365 * 50
SHUFFLE_ALL_UP_TO = 5000  # a span of ids; beyond it random samples instead of shuffling all
HOT_WINDOW = 200  # the newest snippets, always ranked; older ones join only if they compete


class EpochSeconds(Func):
    """Seconds since 1970 of a datetime column (Postgres, with a SQLite fallback for dev)."""

    output_field = FloatField()
    template = "EXTRACT(EPOCH FROM %(expressions)s)"

    def as_sqlite(self, compiler, connection, **extra):
        template = "CAST(strftime('%%%%s', %(expressions)s) AS REAL)"
        return self.as_sql(compiler, connection, template=template, **extra)


def hot(now: datetime) -> ExpressionWrapper:
    """HN gravity: score / (age in hours + 2) ^ 1.8, age counted from generation (created_at)."""
    age_hours = (Value(now.timestamp()) - EpochSeconds(F("created_at"))) / Value(3600.0)
    return ExpressionWrapper(
        Cast(F("score"), FloatField())
        / Power(Greatest(age_hours, Value(0.0)) + Value(2.0), Value(GRAVITY)),
        output_field=FloatField(),
    )


def hot_page_ids(snippets: QuerySet, *, now: datetime, offset: int, limit: int) -> list[int]:
    """The ids of one page of hot, exactly as ORDER BY hot would give, without scoring every row.

    The page needs the `wanted` hottest rows. Any `wanted` rows give a lower bound h on the hot
    value of the last one, so score a few likely ones: the newest HOT_WINDOW and the top
    `wanted` by score. A snippet of age a can only reach h with score >= h * (a + 2)^1.8, so one
    more query asks the (status, score, created_at) index for those, in age bands that double
    in width, and keeps the ones whose hot really is >= h. Only when fewer than `wanted`
    snippets have a positive score is there no bound: then rank them all in SQL.
    """
    wanted = offset + limit
    scored = snippets.annotate(hot=hot(now))
    fields = ("pk", "hot", "created_at")
    window = max(HOT_WINDOW, 3 * wanted)
    newest = list(scored.order_by("-created_at", "-pk").values_list(*fields)[:window])
    if len(newest) < window:  # a small gallery: every snippet is in hand
        return [row[0] for row in sorted(newest, key=_hot_key)[offset : offset + limit]]
    top = scored.order_by("-score", "-created_at").values_list(*fields)[:wanted]
    seeds = {row[0]: row for row in [*newest, *top]}
    ranked = sorted(seeds.values(), key=_hot_key)
    h = ranked[wanted - 1][1] if len(ranked) >= wanted else 0.0
    if h <= 0:
        everything = scored.order_by("-hot", "-created_at", "-pk").values_list("pk", flat=True)
        return list(everything[offset : offset + limit])
    could_reach = Q()
    young, since = 0.0, now
    while True:
        in_band = Q(created_at__lte=since, score__gte=math.floor(h * (young + 2) ** GRAVITY))
        old_edge = young * 2 + 1
        if old_edge > OLDEST_HOURS:
            could_reach |= in_band  # the last band reaches back to the beginning
            break
        since = now - timedelta(hours=old_edge)
        could_reach |= in_band & Q(created_at__gt=since)
        young = old_edge
    contenders = (
        scored.filter(could_reach, hot__gte=h)
        .order_by("-hot", "-created_at", "-pk")
        .values_list(*fields)[:wanted]
    )
    rows = {row[0]: row for row in [*ranked, *contenders]}.values()
    return [row[0] for row in sorted(rows, key=_hot_key)[offset : offset + limit]]


def _hot_key(row: tuple) -> tuple:
    pk, hot_value, created_at = row
    return (-hot_value, -created_at.timestamp(), -pk)


def wilson_lower_bound(upvotes: Combinable, impressions: Combinable) -> ExpressionWrapper:
    """Wilson score interval's lower bound for upvotes out of impressions (members who saw it).

    Callers pass impressions as at least the number of votes, so a vote from a member with no
    recorded impression still counts as having seen it.
    """
    z2 = WILSON_Z * WILSON_Z
    ups = Cast(upvotes, FloatField())
    n = Cast(Greatest(impressions, Value(1)), FloatField())
    p = ups / n
    bound = (
        p
        + Value(z2 / 2) / n
        - Value(WILSON_Z) * Sqrt((p * (Value(1.0) - p) + Value(z2 / 4) / n) / n)
    ) / (Value(1.0) + Value(z2) / n)
    return ExpressionWrapper(Greatest(bound, Value(0.0)), output_field=FloatField())


def wilson_in_python(upvotes: int, impressions: int) -> float:
    """The same bound in Python, for tests and the benchmark's bulk data."""
    n = max(impressions, 1)
    p = upvotes / n
    z = WILSON_Z
    bound = (p + z * z / (2 * n) - z * math.sqrt((p * (1 - p) + z * z / (4 * n)) / n)) / (
        1 + z * z / n
    )
    return max(bound, 0.0)


def random_page_ids(snippets: QuerySet, *, seed: int, offset: int, limit: int) -> list[int]:
    """A page of random: a seeded shuffle of everything in a small gallery; in a big one, a
    seeded sample of ids (bash.org's "random": endless, and a repeat across pages is rare)."""
    ids = snippets.values_list("pk", flat=True)
    # Two LIMIT 1 walks of the primary key: an aggregate would scan every visible row.
    lowest, highest = ids.order_by("pk").first() or 0, ids.order_by("-pk").first() or 0
    if highest - lowest < SHUFFLE_ALL_UP_TO:
        ranked = snippets.ranked("random", seed=seed).values_list("pk", flat=True)
        return list(ranked[offset : offset + limit])
    rng = random.Random(f"{seed}:{offset}")
    span = range(lowest, highest + 1)
    sample = rng.sample(span, min(len(span), 8 * limit))
    found = set(snippets.filter(pk__in=sample).values_list("pk", flat=True))
    return [pk for pk in sample if pk in found][:limit]


def shuffled(seed: int) -> MD5:
    """A stable random order for one seed, so "more" pages of random do not repeat items."""
    return MD5(Concat(Value(f"{seed}:"), Cast(F("pk"), CharField())))
