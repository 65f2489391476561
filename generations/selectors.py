"""Reads the gallery pages share: a page of snippets with everything a card draws, leaderboards."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Count, Exists, IntegerField, OuterRef, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.functional import SimpleLazyObject

from generations import compiled, ranking
from generations.models import Favourite, Impression, Snippet, SnippetStatus, Vote
from generations.votes import record_impressions
from ingest.models import Speaker

PAGE_SIZE = 20
# What a gallery card draws (cards.card_key), loaded for the page's rows and nothing more.
CARD_FIELDS = ("kind", "status", "speaker_id", "lines", "upvotes", "downvotes", "score")


def speakers_by_slug() -> dict[str, Speaker]:
    """Every speaker in one query: a friend group has a handful, and each card needs names."""
    return {speaker.slug: speaker for speaker in Speaker.objects.all()}


def gallery_voices(speakers: dict[str, Speaker]) -> list[Speaker]:
    """The voices the gallery can be filtered by: those with a fake on show. Not every name in
    the corpus: a phone backup brings one-to-one contacts, and staff exclude people from
    training; members need not see who they are."""
    visible = Snippet.objects.visible()
    on_show = Speaker.objects.filter(
        Exists(visible.filter(speaker_id=OuterRef("pk")))
        | Exists(visible.filter(speakers=OuterRef("pk")))
    )
    ids = set(on_show.values_list("pk", flat=True))
    return [speaker for speaker in speakers.values() if speaker.pk in ids]


def shown_before_opting_out(speaker: Speaker) -> bool:
    """Whether a fake in this opted-out voice was on show until they opted out: the gallery
    then says why it has none, where a voice members never saw is not named at all."""
    published = Snippet.objects.filter(
        status=SnippetStatus.PUBLISHED,
        is_leak=False,
        vetoed_by__isnull=True,
        vetoed_at__isnull=True,
    )
    return published.featuring(speaker).exists()


def dress(snippets: Iterable[Snippet], speakers: dict[str, Speaker]) -> list[Snippet]:
    """Attach bubbles and the (cached) speaker so drawing a card runs no query."""
    by_pk = {speaker.pk: speaker for speaker in speakers.values()}
    dressed = []
    for snippet in snippets:
        if snippet.speaker_id in by_pk:
            snippet.speaker = by_pk[snippet.speaker_id]
        snippet.bubble_list = snippet.bubbles(speakers)
        snippet.voices = ", ".join(snippet.voice_names(speakers))
        dressed.append(snippet)
    return dressed


@dataclass
class GalleryPage:
    snippets: list[Snippet]
    has_more: bool
    speakers: dict[str, Speaker] = field(default_factory=dict)


def gallery_page(
    *,
    member,
    sort: str,
    speaker: Speaker | None = None,
    page: int = 1,
    seed: int = 0,
    page_size: int = PAGE_SIZE,
    speakers: dict[str, Speaker] | None = None,
    now: datetime | None = None,
) -> GalleryPage:
    """One page of the gallery for this member, with their votes and stars, counted as seen.

    Its queries are compiled once per shape (generations.compiled): only the member, the speaker
    and the moment change from one request to the next.
    """
    speakers = speakers if speakers is not None else speakers_by_slug()
    offset, limit = (page - 1) * page_size, page_size + 1
    if sort in ("hot", "random"):
        # Two steps: rank narrow rows to find the page's ids, then load those few cards in full
        # with the member's own vote and star (never computed for rows that are not shown).
        if sort == "hot":
            now = now or timezone.now()
            ranked = _hot_page_ids(speaker, now=now, offset=offset, limit=limit)
        else:
            snippets = _visible(speaker)
            ranked = ranking.random_page_ids(snippets, seed=seed, offset=offset, limit=limit)
        page_ids = ranked[:page_size]
        cards = compiled.run("cards", _cards_by_id, [member.pk, *page_ids]) if page_ids else []
        by_pk = {snippet.pk: snippet for snippet in cards}
        shown = [by_pk[pk] for pk in page_ids if pk in by_pk]
        has_more = len(ranked) > page_size
    else:
        # The same two steps in one query: the sort's index finds the page's ids (LIMIT stops
        # the scan) and only those rows get the member's vote and star.
        ids = [member.pk] if speaker is None else [member.pk, speaker.pk]
        build = _ranked_cards(sort, offset=offset, limit=limit)
        rows = list(compiled.run(("page", sort, offset, limit), build, ids))
        shown, has_more = rows[:page_size], len(rows) > page_size
    record_impressions(member=member, snippet_ids=[s.pk for s in shown if not s.seen])
    return GalleryPage(dress(shown, speakers), has_more=has_more, speakers=speakers)


def _ranked_cards(sort: str, *, offset: int, limit: int) -> Callable[..., QuerySet]:
    def build(member, speaker=None) -> QuerySet:
        page_ids = _visible(speaker).ranked(sort).values("pk")[offset : offset + limit]
        return _cards(Snippet.objects.filter(pk__in=page_ids).ranked(sort), member)

    return build


def _hot_page_ids(speaker: Speaker | None, *, now: datetime, offset: int, limit: int) -> list[int]:
    """ranking.hot_page_ids, its first query compiled once per page depth."""
    wanted = offset + limit

    def first(moment, speaker=None) -> QuerySet:
        return ranking.hot_candidates(_visible(speaker), now=moment, wanted=wanted)

    values = [now] if speaker is None else [now, speaker.pk]
    candidates = compiled.rows(("hot", wanted), first, values)
    # Built only if the page needs more than that first query (a small gallery, stale ceilings).
    snippets = SimpleLazyObject(lambda: _visible(speaker))
    return ranking.hot_page_ids(
        snippets, now=now, offset=offset, limit=limit, candidates=candidates
    )


def _visible(speaker: Speaker | None) -> QuerySet:
    snippets = Snippet.objects.visible()
    return snippets if speaker is None else snippets.featuring(speaker)


def _cards(snippets: QuerySet, member) -> QuerySet:
    """What a card draws, the member's vote and star, and whether they have seen it before."""
    seen = Impression.objects.filter(snippet_id=OuterRef("pk"), user_id=member.pk)
    return snippets.for_member(member).annotate(seen=Exists(seen)).only(*CARD_FIELDS)


def _cards_by_id(member, *snippets) -> QuerySet:
    return _cards(Snippet.objects.filter(pk__in=[s.pk for s in snippets]), member)


def favourites_of(member) -> list[Snippet]:
    snippets = (
        Snippet.objects.visible()
        .filter(favourites__user=member)
        .for_member(member)
        .order_by("-favourites__created_at")
    )
    return dress(snippets, speakers_by_slug())


@dataclass
class SpeakerRow:
    speaker: Speaker
    total_score: int
    snippets: int
    upvotes: int
    top: Snippet | None


def speaker_leaderboard() -> list[SpeakerRow]:
    """Best-loved fake you: each voice's total score over visible snippets, and its top one."""
    visible = Snippet.objects.visible()
    top = visible.filter(speaker_id=OuterRef("speaker_id")).order_by("-score", "-created_at")
    rows = list(
        visible.filter(speaker__isnull=False)
        .order_by()
        .values("speaker_id")
        .annotate(
            total=Sum("score"),
            n=Count("pk"),
            ups=Sum("upvotes"),
            top_id=Subquery(top.values("pk")[:1]),
        )
        .order_by("-total", "-ups")
    )
    speakers = speakers_by_slug()
    by_pk = {s.pk: s for s in speakers.values()}
    tops = {
        s.pk: s for s in dress(Snippet.objects.filter(pk__in=[r["top_id"] for r in rows]), speakers)
    }
    return [
        SpeakerRow(
            speaker=by_pk[row["speaker_id"]],
            total_score=row["total"] or 0,
            snippets=row["n"],
            upvotes=row["ups"] or 0,
            top=tops.get(row["top_id"]),
        )
        for row in rows
        if row["speaker_id"] in by_pk
    ]


@dataclass
class SpotterRow:
    username: str
    spotted: int  # upvotes from others that came after this member starred the snippet
    stars: int
    best: Snippet | None = None
    best_count: int = 0


def spotter_leaderboard() -> list[SpotterRow]:
    """Members with the best eye: a star counts for each later upvote from someone else.

    Starring something the group then loves is the member's "find"; starring what is already
    on top earns nothing, because only votes cast after the star count.
    """
    later_upvotes = (
        Vote.objects.filter(
            snippet_id=OuterRef("snippet_id"), value=1, created_at__gt=OuterRef("created_at")
        )
        .exclude(user_id=OuterRef("user_id"))
        .order_by()
        .values("snippet_id")
        .annotate(n=Count("pk"))
        .values("n")
    )
    stars = (
        Favourite.objects.filter(snippet__in=Snippet.objects.visible())
        .annotate(later=Coalesce(Subquery(later_upvotes, output_field=IntegerField()), 0))
        .values_list("user__username", "snippet_id", "later")
    )
    rows: dict[str, SpotterRow] = defaultdict(lambda: SpotterRow("", 0, 0))
    best_ids: dict[str, int] = {}
    for username, snippet_id, later in stars:
        row = rows[username]
        row.username = username
        row.stars += 1
        row.spotted += later
        if later > row.best_count:
            row.best_count, best_ids[username] = later, snippet_id
    bests = {
        s.pk: s for s in dress(Snippet.objects.filter(pk__in=best_ids.values()), speakers_by_slug())
    }
    for username, snippet_id in best_ids.items():
        rows[username].best = bests.get(snippet_id)
    return sorted(rows.values(), key=lambda r: (-r.spotted, -r.stars, r.username))


def triage_queues() -> dict[str, list[Snippet]]:
    """Staff curation: waiting snippets, leaks (discard only) and hidden ones."""
    speakers = speakers_by_slug()
    waiting = Snippet.objects.filter(status=SnippetStatus.TRIAGE, is_leak=False).order_by(
        "created_at"
    )
    leaks = (
        Snippet.objects.filter(is_leak=True)
        .exclude(status=SnippetStatus.DISCARDED)
        .order_by("-longest_shared_run")
    )
    hidden = Snippet.objects.filter(status=SnippetStatus.HIDDEN, is_leak=False).order_by(
        "-created_at"
    )
    return {
        "waiting": dress(waiting[:100], speakers),
        "leaks": dress(leaks[:100], speakers),
        "hidden": dress(hidden[:100], speakers),
    }
