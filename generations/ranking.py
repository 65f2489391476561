"""Gallery sort orders as SQL expressions: hot (HN gravity), best (Wilson lower bound), random.

Everything is computed by the database; each sort finds a page through an index.
"""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import CharField, F, FloatField, Func, QuerySet, Value
from django.db.models.expressions import Combinable, ExpressionWrapper
from django.db.models.functions import MD5, Cast, Concat, Greatest, Power, Sqrt

GRAVITY = 1.8
WILSON_Z = 1.2816  # 80% confidence, as reddit's "best"
SORTS = ("hot", "new", "top", "best", "random")
DEFAULT_SORT = "hot"
SHUFFLE_ALL_UP_TO = 5000  # a span of ids; beyond it random samples instead of shuffling all
# Ceilings are hot as of this long before the moment they are written, so a web process whose
# clock runs a little behind another's still sees them at or above the hot it computes.
HOT_CEILING_SLACK = timedelta(minutes=1)


class EpochSeconds(Func):
    """Seconds since 1970 of a datetime column (Postgres, with a SQLite fallback for dev)."""

    output_field = FloatField()
    # EXTRACT gives numeric since PostgreSQL 14: hot's arithmetic and POWER on numeric cost
    # ~10 µs a row, ten times double precision's.
    template = "EXTRACT(EPOCH FROM %(expressions)s)::double precision"

    def as_sqlite(self, compiler, connection, **extra):
        template = "CAST(strftime('%%%%s', %(expressions)s) AS REAL)"
        return self.as_sql(compiler, connection, template=template, **extra)


def hot(now: datetime, score: Combinable | None = None) -> ExpressionWrapper:
    """HN gravity: score / (age in hours + 2) ^ 1.8, age counted from generation (created_at)."""
    age_hours = (Value(now.timestamp()) - EpochSeconds(F("created_at"))) / Value(3600.0)
    return ExpressionWrapper(
        Cast(F("score") if score is None else score, FloatField())
        / Power(Greatest(age_hours, Value(0.0)) + Value(2.0), Value(GRAVITY)),
        output_field=FloatField(),
    )


def hot_ceiling(now: datetime, score: Combinable | None = None) -> ExpressionWrapper:
    """What Snippet.hot_ceiling stores: hot a little before `now`. With the score unchanged, a
    positive hot only falls with age, so this stays at or above the row's hot from then on."""
    return hot(now - HOT_CEILING_SLACK, score)


def hot_ceiling_in_python(score: int, created_at: datetime, now: datetime) -> float:
    """hot_ceiling computed here rather than in SQL, nudged up so that Python's and the
    database's last-bit rounding of the power can never put it below the database's hot."""
    age_hours = max((now - HOT_CEILING_SLACK - created_at).total_seconds() / 3600, 0.0)
    value = score / (age_hours + 2) ** GRAVITY
    return value * (1 + 1e-9) if value > 0 else value


def hot_candidates(snippets: QuerySet, *, now: datetime, wanted: int) -> QuerySet:
    """The first query of a hot page: positive scores by ceiling, each with its hot now."""
    scored = snippets.filter(score__gt=0).annotate(hot=hot(now), created=EpochSeconds("created_at"))
    scored = scored.order_by("-hot_ceiling")
    return scored.values_list(*_HOT_FIELDS)[: _fetch(wanted)]


def _fetch(wanted: int) -> int:
    return wanted + wanted // 2 + 10  # the margin absorbs ceilings that drifted a little


def hot_page_ids(
    snippets: QuerySet,
    *,
    now: datetime,
    offset: int,
    limit: int,
    candidates: list[tuple] | None = None,
) -> list[int]:
    """The ids of one page of hot, exactly as ORDER BY hot would give, without scoring every row.

    Positive scores come first. Each row stores a ceiling (Snippet.hot_ceiling): its hot as of
    its last vote or refresh, which the hot of a positive score only falls below with age. The
    `(status, -hot_ceiling)` index gives some more than `wanted` rows with the highest ceilings; if
    the lowest of those ceilings is below the `wanted`-th best hot among them, no row left out can
    reach the page. Otherwise ceilings have gone stale: the rows whose ceiling still reaches
    that hot are ranked in SQL instead, and their ceilings refreshed, so the next page is one
    query again. After the positives come the zeros (hot exactly 0: newest first, the `new`
    index) and then the negatives.

    `candidates` are the rows of hot_candidates() when the caller has run it already.
    """
    wanted = offset + limit
    if candidates is None:
        candidates = list(hot_candidates(snippets, now=now, wanted=wanted))
    by_ceiling, ranked = candidates, sorted(candidates, key=_hot_key, reverse=True)
    if len(by_ceiling) == _fetch(wanted):  # there may be more positive rows
        h = ranked[wanted - 1][1]
        if by_ceiling[-1][3] >= h:  # a row left out might still reach the page
            positive = snippets.filter(score__gt=0)
            contenders = positive.filter(hot_ceiling__gte=h).annotate(
                hot=hot(now), created=EpochSeconds("created_at")
            )
            ordered = contenders.order_by("-hot", "-created_at", "-pk")
            ranked = list(ordered.values_list(*_HOT_FIELDS)[:wanted])
            refresh_hot_ceilings(positive.filter(hot_ceiling__gte=h), now=now)
        return [row[0] for row in ranked[offset : offset + limit]]
    ids = [row[0] for row in ranked]  # every positive row is in hand
    page = ids[offset : offset + limit]
    if len(page) < limit:
        skip = max(0, offset - len(ids))
        page += _hot_after_positives(snippets, now=now, skip=skip, take=limit - len(page))
    return page


# created_at as seconds: a double resolves microseconds until 2106, so the order is the same,
# and a float loads far faster than a datetime.
_HOT_FIELDS = ("pk", "hot", "created", "hot_ceiling")


def _hot_key(row: tuple) -> tuple:
    """(hot, created, pk): sorted in reverse, the order of ORDER BY -hot, -created_at, -pk."""
    return (row[1], row[2], row[0])


def _hot_after_positives(snippets: QuerySet, *, now: datetime, skip: int, take: int) -> list[int]:
    """Hot's rows after every positive score: the zeros newest first, then the negatives."""
    zeros = snippets.filter(score=0).order_by("-created_at", "-pk").values_list("pk", flat=True)
    page = list(zeros[skip : skip + take])
    if len(page) == take:
        return page
    zero_count = skip + len(page) if page or not skip else zeros.count()
    skip = max(0, skip - zero_count)
    negatives = snippets.filter(score__lt=0).annotate(hot=hot(now))
    ranked = negatives.order_by("-hot", "-created_at", "-pk").values_list("pk", flat=True)
    return page + list(ranked[skip : skip + take - len(page)])


def refresh_hot_ceilings(snippets: QuerySet, *, now: datetime) -> int:
    """Lower these rows' ceilings to their hot as of now (less the slack); returns how many.

    Rows another transaction holds (a vote) are skipped, never waited for: their ceilings are
    still valid, only loose, and the vote is writing a fresh one anyway.
    """
    with transaction.atomic():
        free = snippets.select_for_update(skip_locked=True, no_key=True, of=("self",))
        return snippets.model.objects.filter(pk__in=free.values("pk")).update(
            hot_ceiling=hot_ceiling(now)
        )


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
