"""Gallery sort orders as SQL expressions: hot (HN gravity), best (Wilson lower bound), random.

Everything is computed by the database so a page is one query whatever the sort.
"""

from __future__ import annotations

import math
from datetime import datetime

from django.db.models import CharField, F, FloatField, Func, Value
from django.db.models.expressions import Combinable, ExpressionWrapper
from django.db.models.functions import MD5, Cast, Coalesce, Concat, Greatest, Power, Sqrt

GRAVITY = 1.8
WILSON_Z = 1.2816  # 80% confidence, as reddit's "best"
SORTS = ("hot", "new", "top", "best", "random")
DEFAULT_SORT = "hot"


class EpochSeconds(Func):
    """Seconds since 1970 of a datetime column (Postgres, with a SQLite fallback for dev)."""

    output_field = FloatField()
    template = "EXTRACT(EPOCH FROM %(expressions)s)"

    def as_sqlite(self, compiler, connection, **extra):
        template = "CAST(strftime('%%%%s', %(expressions)s) AS REAL)"
        return self.as_sql(compiler, connection, template=template, **extra)


def published_time() -> Combinable:
    return Coalesce(F("published_at"), F("created_at"))


def hot(now: datetime) -> ExpressionWrapper:
    """HN gravity: score / (age in hours + 2) ^ 1.8, age measured from publication."""
    age_hours = (Value(now.timestamp()) - EpochSeconds(published_time())) / Value(3600.0)
    return ExpressionWrapper(
        Cast(F("score"), FloatField())
        / Power(Greatest(age_hours, Value(0.0)) + Value(2.0), Value(GRAVITY)),
        output_field=FloatField(),
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


def shuffled(seed: int) -> MD5:
    """A stable random order for one seed, so "more" pages of random do not repeat items."""
    return MD5(Concat(Value(f"{seed}:"), Cast(F("pk"), CharField())))
