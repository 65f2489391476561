"""What a member does to a snippet: vote, star, and (by looking at it) add an impression.

The vote counts, the best score and the hot ceiling are denormalised on the snippet; every write
here keeps them right when many members act at once.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import connection, transaction
from django.db.models import Count, F, IntegerField, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from generations import ranking
from generations.models import Favourite, Impression, Snippet, Vote

VOTE_VALUES = {"up": 1, "down": -1, "none": 0}


def _vote_count(value: int) -> Coalesce:
    counted = (
        Vote.objects.filter(snippet_id=OuterRef("pk"), value=value)
        .order_by()
        .values("snippet_id")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Coalesce(Subquery(counted, output_field=IntegerField()), Value(0))


def set_vote(*, member, snippet_id: int, value: int) -> Snippet:
    """Make the member's vote `value` (1 up, -1 down, 0 none): idempotent, so a double click
    or a retried form post never counts twice. Raises Snippet.DoesNotExist if not visible."""
    if value not in (1, -1, 0):
        raise ValueError(f"a vote is 1, -1 or 0, not {value!r}")
    with transaction.atomic():
        # Lock the snippet row first: votes on one snippet queue up here, and each recount below
        # then sees every vote committed before it. NO KEY UPDATE, because a plain FOR UPDATE
        # also blocks the foreign-key checks of other members' impression inserts, and one of
        # those can hold the very impression row this vote is about to insert: a deadlock.
        locked = Snippet.objects.visible().select_for_update(of=("self",), no_key=True)
        snippet = locked.get(pk=snippet_id)
        if value:
            Vote.objects.bulk_create(
                [Vote(user=member, snippet=snippet, value=value, created_at=timezone.now())],
                update_conflicts=True,
                unique_fields=["user", "snippet"],
                update_fields=["value", "created_at"],
            )
        else:
            Vote.objects.filter(user=member, snippet=snippet).delete()
        record_impressions(member=member, snippet_ids=[snippet.pk])  # voting means they saw it
        ups, downs = _vote_count(1), _vote_count(-1)
        Snippet.objects.filter(pk=snippet.pk).update(
            upvotes=ups,
            downvotes=downs,
            score=ups - downs,
            best=ranking.wilson_lower_bound(ups, Greatest(F("views"), ups + downs)),
            hot_ceiling=ranking.hot_ceiling(timezone.now(), score=ups - downs),
        )
    snippet.refresh_from_db(
        fields=["upvotes", "downvotes", "score", "views", "best", "hot_ceiling"]
    )
    snippet.my_vote = value or None
    return snippet


def record_impressions(*, member, snippet_ids: Iterable[int]) -> list[int]:
    """Count that the member saw these snippets, once per member per snippet, ever.

    One INSERT ... ON CONFLICT DO NOTHING RETURNING tells which impressions are new; only those
    snippets get views + 1 (an atomic increment, safe beside concurrent readers and voters).
    Returns the ids that were new.
    """
    ids = list(dict.fromkeys(snippet_ids))
    if not ids or member.pk is None:
        return []
    now = timezone.now()
    table = Impression._meta.db_table
    rows = ", ".join(["(%s, %s, %s)"] * len(ids))
    params: list = []
    for snippet_id in ids:
        params += [member.pk, snippet_id, now]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (user_id, snippet_id, created_at) VALUES {rows} "
            "ON CONFLICT (user_id, snippet_id) DO NOTHING RETURNING snippet_id",
            params,
        )
        new_ids = [row[0] for row in cursor.fetchall()]
    if new_ids:
        views = F("views") + 1
        Snippet.objects.filter(pk__in=new_ids).update(
            views=views,
            best=ranking.wilson_lower_bound(
                F("upvotes"), Greatest(views, F("upvotes") + F("downvotes"))
            ),
        )
    return new_ids


def set_favourite(*, member, snippet_id: int, starred: bool) -> Snippet:
    """Star or unstar; idempotent. Raises Snippet.DoesNotExist if the snippet is not visible."""
    snippet = Snippet.objects.visible().get(pk=snippet_id)
    if starred:
        Favourite.objects.get_or_create(user=member, snippet=snippet)
    else:
        Favourite.objects.filter(user=member, snippet=snippet).delete()
    snippet.is_favourite = starred
    return snippet


def recount(snippet_ids: Iterable[int]) -> None:
    """Vote counts, views and scores of these snippets from the votes and impressions left: after
    a member's account is deleted, say, whose votes and impressions went with it."""
    ids = sorted(set(snippet_ids))
    if not ids:
        return
    seen = (
        Impression.objects.filter(snippet_id=OuterRef("pk"))
        .order_by()
        .values("snippet_id")
        .annotate(n=Count("pk"))
        .values("n")
    )
    with transaction.atomic():
        rows = Snippet.objects.filter(pk__in=ids)
        rows.update(views=Coalesce(Subquery(seen, output_field=IntegerField()), Value(0)))
        ups, downs = _vote_count(1), _vote_count(-1)
        rows.update(
            upvotes=ups,
            downvotes=downs,
            score=ups - downs,
            best=ranking.wilson_lower_bound(ups, Greatest(F("views"), ups + downs)),
            hot_ceiling=ranking.hot_ceiling(timezone.now(), score=ups - downs),
        )
