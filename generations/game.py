"""Real or fake? A message is shown, either a generated snippet or a real one from a friend who
opted in to the game; the member guesses which. Only opted-in voices appear on either side, so a
name never gives the answer away."""

from __future__ import annotations

import random
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models import Count, Q, QuerySet
from django.db.models.functions import Length

from generations.models import GameGuess, Snippet
from ingest.models import Message, Speaker
from trainer.ml.redaction import RedactionConfig, redact
from trainer.models import TrainingRun

MIN_CHARS, MAX_CHARS = 12, 240  # long enough to judge, short enough to read at a glance
LEADERBOARD_MIN_GUESSES = 5
RECENT_ROUNDS = 20  # a member is not dealt a message again within their last this many rounds


class GameUnavailable(Exception):
    """There is nothing to play with yet; the message says why, for the page."""


@dataclass(frozen=True)
class Round:
    kind: str  # "fake" or "real": kept in the member's session, never sent to the page
    pk: int
    speaker: Speaker
    text: str


def players() -> QuerySet[Speaker]:
    return Speaker.objects.filter(game_opt_in=True, opted_out=False)


def _real_messages() -> QuerySet[Message]:
    # Group conversations only: the other person in a one-to-one chat never agreed to have it
    # shown to the group, whatever the friend who opted in said.
    return Message.objects.annotate(chars=Length("text")).filter(
        identity__speaker__in=players(),
        identity__excluded=False,
        identity__is_bot=False,
        conversation__is_group=True,
        chars__gte=MIN_CHARS,
        chars__lte=MAX_CHARS,
    )


def _fake_snippets() -> QuerySet[Snippet]:
    # Not those a batch prompt started: every one of them opens with the same words, a giveaway.
    return (
        Snippet.objects.visible()
        .filter(kind=Snippet.Kind.MESSAGE, speaker__in=players(), prompt="")
        .annotate(chars=Length("text"))
        .filter(chars__gte=MIN_CHARS, chars__lte=MAX_CHARS)
    )


def _random_row(queryset: QuerySet, rng: random.Random):
    """A row picked uniformly: a random position among them (not a random key, which favours
    the rows after a gap in the keys, so the same few would come back again and again)."""
    count = queryset.count()
    if not count:
        return None
    return queryset.order_by("pk")[rng.randrange(count)]


def _recently_played(user) -> tuple[list[int], list[int]]:
    """The snippets and the real messages of the member's last RECENT_ROUNDS rounds, the most
    recent first."""
    if user is None:
        return [], []
    recent = GameGuess.objects.filter(user=user).order_by("-pk")[:RECENT_ROUNDS]
    rows = list(recent.values_list("snippet_id", "message_id"))
    return [s for s, _ in rows if s], [m for _, m in rows if m]


def _least_recent(queryset: QuerySet, played: list[int], rng: random.Random):
    """A row of the queryset that is none of `played` (the most recent first), or, when every
    one of them is, the one played longest ago."""
    fresh = _random_row(queryset.exclude(pk__in=played), rng)
    if fresh is not None or not played:
        return fresh
    by_pk = queryset.in_bulk(set(played))
    oldest = next((pk for pk in reversed(dict.fromkeys(played)) if pk in by_pk), None)
    return by_pk[oldest] if oldest is not None else _random_row(queryset, rng)


def new_round(rng: random.Random | None = None, *, user=None) -> Round:
    """A round for `user` (when given): real or fake at even odds, whatever the member played
    lately (odds that followed what is left would give the answer away once one side is played
    through), then a message of that side that is none of their last RECENT_ROUNDS, or the
    one played longest ago."""
    rng = rng or random.Random()
    if not players().exists():
        raise GameUnavailable(
            "Nobody has opted in to the game yet: friends can allow their real messages in it "
            "from their Me page."
        )
    seen_fakes, seen_reals = _recently_played(user)
    reals = _real_messages().select_related("identity__speaker")
    fakes = _fake_snippets().select_related("speaker")
    real = _least_recent(reals, seen_reals, rng)
    fake = _least_recent(fakes, seen_fakes, rng)
    if fake is None:
        raise GameUnavailable(
            "There are no generated messages in the voices of the friends who opted in yet "
            "(batches started without a prompt), so there would be nothing to spot. Come back "
            "after the next batch."
        )
    if real is None:
        raise GameUnavailable(
            f"The friends who opted in have no real messages the game can use ({MIN_CHARS} to "
            f"{MAX_CHARS} characters), so every round would be a fake. It needs at least one "
            "friend whose real messages are in."
        )
    return _fake_round(fake) if rng.random() < 0.5 else _real_round(real)


def same_round(kind: str, pk: int) -> Round | None:
    """The round a member was dealt and has not answered, if it can still be played."""
    if kind == "fake":
        fake = _fake_snippets().select_related("speaker").filter(pk=pk).first()
        return _fake_round(fake) if fake else None
    real = _real_messages().select_related("identity__speaker").filter(pk=pk).first()
    return _real_round(real) if real else None


def _fake_round(snippet: Snippet) -> Round:
    return Round("fake", snippet.pk, snippet.speaker, snippet.text)


def _real_round(message: Message) -> Round:
    # Redacted as training redacts (emails, phone numbers, links): the fakes never contain them
    # either, and the group does not need a friend's phone number to play.
    text = redact(message.text, _redaction())
    return Round("real", message.pk, message.identity.speaker, text)


def _redaction() -> RedactionConfig:
    """Emails, phone numbers and links always, and every word staff asked any run to redact (a
    surname, an address): the training form starts each run with an empty list, so a word
    typed for an earlier run is still one staff never wanted a page to show."""
    words: set[str] = set()
    for hyperparameters in TrainingRun.objects.values_list("hyperparameters", flat=True):
        redaction = (hyperparameters or {}).get("redaction")
        if isinstance(redaction, dict):
            words.update(redaction.get("words") or ())
    return RedactionConfig(words=tuple(sorted(words)))


def record_guess(
    *, user, kind: str, pk: int, guessed_fake: bool, deal: str = ""
) -> GameGuess | None:
    """Score the member's answer to the round dealt as ``deal``; None if that round was
    answered already (posts sent at once or again: the database keeps one answer per deal;
    without a deal, every answer counts).
    Raises Snippet.DoesNotExist or Message.DoesNotExist if the round left the game meanwhile
    (the fake vetoed or hidden, the friend opted out)."""
    is_fake = kind == "fake"
    if is_fake:
        target = {"snippet": _fake_snippets().select_related("speaker").get(pk=pk)}
        speaker = target["snippet"].speaker
    else:
        target = {"message": _real_messages().select_related("identity__speaker").get(pk=pk)}
        speaker = target["message"].identity.speaker
    try:
        with transaction.atomic():
            return GameGuess.objects.create(
                user=user,
                speaker=speaker,
                guessed_fake=guessed_fake,
                correct=guessed_fake == is_fake,
                deal=deal,
                **target,
            )
    except IntegrityError:
        if not GameGuess.objects.filter(user=user, deal=deal).exclude(deal="").exists():
            raise
        return None


def score(user) -> dict[str, int]:
    totals = GameGuess.objects.filter(user=user).aggregate(
        played=Count("pk"), correct=Count("pk", filter=Q(correct=True))
    )
    return {"played": totals["played"], "correct": totals["correct"]}


def leaderboard(limit: int = 20) -> list[dict]:
    rows = (
        GameGuess.objects.values("user__username")
        .annotate(played=Count("pk"), correct=Count("pk", filter=Q(correct=True)))
        .filter(played__gte=LEADERBOARD_MIN_GUESSES)
    )
    board = [
        {
            "member": row["user__username"],
            "played": row["played"],
            "correct": row["correct"],
            "accuracy": row["correct"] / row["played"],
        }
        for row in rows
    ]
    board.sort(key=lambda row: (-row["accuracy"], -row["played"], row["member"]))
    return board[:limit]
