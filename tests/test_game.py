"""Real or fake?: real messages only from friends who opted in; a running score; a leaderboard."""

from __future__ import annotations

import random
import secrets
from collections import Counter
from datetime import UTC, datetime

import pytest

from generations import game
from generations.models import GameGuess, Snippet
from ingest.models import Conversation, Identity, Message, Speaker
from trainer.models import TrainingRun

pytestmark = pytest.mark.django_db
REAL = "honestly the best pho place is still the one on 5th"
FAKE = "pho again tonight, nobody is allowed to say no"


def make_friend(name: str, *, opted_in: bool, n: int = 3) -> Speaker:
    speaker = Speaker.objects.create(display_name=name, slug=name.lower(), game_opt_in=opted_in)
    conv, _ = Conversation.objects.get_or_create(source_kind="slack", external_id="C")
    ident = Identity.objects.create(
        source_kind="slack", external_id=name, display_name=name, speaker=speaker
    )
    for i in range(n):
        Message.objects.create(
            conversation=conv, identity=ident, source_kind="slack", external_id=f"{name}{i}",
            sent_at=datetime(2024, 1, 1, i, tzinfo=UTC), text=f"{REAL} ({name} {i})",
        )  # fmt: skip
    snippet = Snippet.objects.create(speaker=speaker, text=f"{FAKE} ({name})")
    snippet.speakers.add(speaker)
    return speaker


def test_real_messages_only_come_from_friends_who_opted_in():
    make_friend("Alice", opted_in=True)
    make_friend("Bob", opted_in=False)
    rng = random.Random(0)
    rounds = [game.new_round(rng) for _ in range(60)]
    assert {r.kind for r in rounds} == {"real", "fake"}
    assert {r.speaker.slug for r in rounds} == {"alice"}  # Bob appears on neither side
    assert all("(Bob" not in r.text for r in rounds)


def test_game_explains_when_nobody_opted_in(member_client):
    make_friend("Bob", opted_in=False)
    page = member_client.get("/game/").content.decode()
    assert "Nobody has opted in to the game yet" in page
    assert REAL not in page


def test_opting_out_of_joe_removes_you_from_the_game():
    alice = make_friend("Alice", opted_in=True)
    Speaker.objects.filter(pk=alice.pk).update(opted_out=True)
    with pytest.raises(game.GameUnavailable):
        game.new_round()


def test_member_plays_a_round_and_the_answer_never_reaches_the_page(member_client, member):
    make_friend("Alice", opted_in=True)
    page = member_client.get("/game/").content.decode()
    assert "Did <bdi>Alice</bdi> really write this?" in page
    kind = member_client.session["game_round"]["kind"]
    round_html = page.split('data-testid="game-round"')[1].split("</section>")[0]
    assert "snippet" not in round_html and "/s/" not in round_html  # no hint of the answer
    wrong = "real" if kind == "fake" else "fake"
    result = member_client.post("/game/guess/", {"guess": wrong}).content.decode()
    assert "Wrong!" in result and "right of 1" in result
    guess = GameGuess.objects.get()
    assert guess.user == member and not guess.correct and guess.guessed_fake == (wrong == "fake")
    # the same round cannot be answered twice
    member_client.post("/game/guess/", {"guess": kind})
    assert GameGuess.objects.count() == 1


def test_right_guess_scores_and_leaderboard_needs_five_rounds(member_client, member):
    make_friend("Alice", opted_in=True)
    for _ in range(5):
        member_client.get("/game/")
        kind = member_client.session["game_round"]["kind"]
        member_client.post("/game/guess/", {"guess": kind})
    assert game.score(member) == {"played": 5, "correct": 5}
    board = game.leaderboard()
    assert board == [{"member": "alice", "played": 5, "correct": 5, "accuracy": 1.0}]
    assert (
        "<td>alice</td><td>5</td><td>5</td><td>100%</td>"
        in member_client.get("/game/").content.decode()
    )


def test_deleting_my_messages_deletes_guesses_about_them(member_client, member):
    alice = make_friend("Alice", opted_in=True)
    message = Message.objects.filter(identity__speaker=alice).first()
    game.record_guess(user=member, kind="real", pk=message.pk, guessed_fake=False)
    Message.objects.filter(identity__speaker=alice).delete()
    assert not GameGuess.objects.exists()


def test_game_escapes_text(member_client):
    alice = make_friend("Alice", opted_in=True, n=0)
    Snippet.objects.filter(speaker=alice).update(text="<script>alert('boo')</script>")
    Message.objects.create(
        conversation=Conversation.objects.get(), identity=alice.identities.get(),
        source_kind="slack", external_id="x", sent_at=datetime(2024, 1, 2, tzinfo=UTC),
        text="<img src=x onerror=alert(1)>",
    )  # fmt: skip
    for _ in range(10):
        page = member_client.get("/game/").content.decode()
        assert "<script>alert" not in page and "<img src=x" not in page


def test_a_reload_deals_the_same_round_until_it_is_answered(member_client):
    make_friend("Alice", opted_in=True, n=20)
    first = member_client.get("/game/").content.decode()
    dealt = dict(member_client.session["game_round"])
    for _ in range(5):
        again = member_client.get("/game/").content.decode()
        assert member_client.session["game_round"] == dealt
    shown = [html.split('class="bubble"')[1].split("</div>")[0] for html in (first, again)]
    assert shown[0] == shown[1]

    member_client.post("/game/guess/", {"guess": "skip"})  # not an answer: the round stays
    assert member_client.session["game_round"] == dealt and not GameGuess.objects.exists()

    member_client.post("/game/guess/", {"guess": "fake"})
    assert GameGuess.objects.count() == 1 and "game_round" not in member_client.session
    member_client.get("/game/")  # answered: the next one is dealt afresh
    assert "game_round" in member_client.session


def test_fakes_a_prompt_started_are_left_out_and_missing_sides_are_explained(member_client):
    alice = make_friend("Alice", opted_in=True)
    Snippet.objects.filter(speaker=alice).update(prompt="pho again")  # all open the same way
    with pytest.raises(game.GameUnavailable, match="no generated messages"):
        game.new_round()

    Snippet.objects.filter(speaker=alice).update(prompt="")
    Message.objects.all().delete()  # e.g. Alice deleted her messages
    with pytest.raises(game.GameUnavailable, match="no real messages the game can use"):
        game.new_round()
    page = member_client.get("/game/").content.decode()
    assert "Come back after the next batch" not in page  # a batch would not help here


def test_real_rounds_come_from_group_chats_only_and_are_redacted():
    alice = make_friend("Alice", opted_in=True, n=0)
    ident = alice.identities.get()
    group = Conversation.objects.get(external_id="C")
    dm = Conversation.objects.create(source_kind="slack", external_id="D1", is_group=False)
    for i, (conv, text) in enumerate(
        [
            (dm, "SECRETDM the door code is 4411, tell nobody"),
            (group, "call me on +44 20 7946 0958 or mail alice@example.com ok"),
        ]
    ):
        Message.objects.create(
            conversation=conv, identity=ident, source_kind="slack", external_id=f"m{i}",
            sent_at=datetime(2024, 1, 2, i, tzinfo=UTC), text=text,
        )  # fmt: skip
    rng = random.Random(1)

    reals = {r.text for r in (game.new_round(rng) for _ in range(80)) if r.kind == "real"}

    assert reals == {"call me on <phone> or mail <email> ok"}


def test_real_rounds_leave_out_the_words_staff_asked_training_to_redact():
    """Staff listed a surname and a street for training to redact: the model never saw them, so
    the game must not show them to every member either (nor give the real ones away by them)."""
    alice = make_friend("Alice", opted_in=True, n=0)
    Message.objects.create(
        conversation=Conversation.objects.get(external_id="C"), identity=alice.identities.get(),
        source_kind="slack", external_id="m", sent_at=datetime(2024, 1, 2, tzinfo=UTC),
        text="party at the Hendersons, 14 Quarry Lane, from nine",
    )  # fmt: skip
    redaction = {"enabled": True, "emails": True, "phones": True, "urls": True}
    TrainingRun.objects.create(
        name="old", hyperparameters={"redaction": {**redaction, "words": ["Quarry Lane"]}}
    )
    TrainingRun.objects.create(
        name="new", hyperparameters={"redaction": {**redaction, "words": ["hendersons"]}}
    )
    rng = random.Random(1)

    reals = {r.text for r in (game.new_round(rng) for _ in range(40)) if r.kind == "real"}

    assert reals == {"party at the <redacted>, 14 <redacted>, from nine"}


def test_every_fake_is_about_as_likely_whatever_the_gaps_between_their_keys():
    alice = make_friend("Alice", opted_in=True)
    fakes = [Snippet.objects.create(speaker=alice, text=f"{FAKE} number {i}") for i in range(20)]
    Snippet.objects.filter(pk__in=[f.pk for f in fakes[2:-1]]).delete()  # a gap before the last
    rng = random.Random(3)

    picked = Counter(game._random_row(game._fake_snippets(), rng).pk for _ in range(400))

    assert len(picked) == 4  # the three left of these and make_friend's own
    assert min(picked.values()) > 60  # about 100 each; by key it was ~340 for the last one


def test_a_name_with_a_right_to_left_override_cannot_reverse_the_question(member_client):
    make_friend("Mira\u202e", opted_in=True)
    page = member_client.get("/game/").content.decode()
    assert "Did <bdi>Mira\u202e</bdi> really write this?" in page


@pytest.mark.django_db(transaction=True)
def test_a_double_click_answers_the_round_once(member):
    """Posts sent at once from one session (a double click without JavaScript) count once."""
    each_round_is_answered_once_in_a_race(member)


def each_round_is_answered_once_in_a_race(member) -> None:
    """Three rounds, each answered by four posts at once from one session: each counts once."""
    from django.test import Client

    from tests.test_votes import _race

    make_friend("Alice", opted_in=True)
    player = Client()
    player.force_login(member)
    for _ in range(3):
        player.get("/game/")
        clicks = [Client() for _ in range(4)]
        for click in clicks:
            click.cookies = player.cookies  # the same browser, so the same session
        before = GameGuess.objects.count()
        _race([lambda c=c: c.post("/game/guess/", {"guess": "real"}) for c in clicks])
        assert GameGuess.objects.count() == before + 1


@pytest.mark.parametrize("gone", ["vetoed", "opted out of the game"])
def test_a_round_that_left_the_game_meanwhile_is_not_scored(member_client, gone):
    alice = make_friend("Alice", opted_in=True)
    fake = Snippet.objects.get(speaker=alice)
    real = Message.objects.filter(identity__speaker=alice).first()
    session = member_client.session
    dealt = {"kind": "fake", "pk": fake.pk} if gone == "vetoed" else {"kind": "real", "pk": real.pk}
    session["game_round"] = {**dealt, "deal": secrets.token_hex(8)}
    session.save()
    if gone == "vetoed":
        Snippet.objects.filter(pk=fake.pk).update(vetoed_at=datetime.now(UTC))
    else:
        Speaker.objects.filter(pk=alice.pk).update(game_opt_in=False)
    response = member_client.post("/game/guess/", {"guess": "fake"})
    assert response.status_code == 302  # on to the next round, if any
    assert not GameGuess.objects.exists()  # no score, no "see it in the gallery" to a 404


def test_the_leaderboard_updates_with_the_fifth_answer(member_client, member):
    """Answers swap only the round: the fifth one put the member on the leaderboard, which still
    said nobody had played 5 rounds until the page was reloaded."""
    make_friend("Alice", opted_in=True)
    htmx = {"HX-Request": "true"}
    for played in range(1, 6):
        member_client.get("/game/", headers=htmx)
        answer = member_client.post("/game/guess/", {"guess": "real"}, headers=htmx)
        board = answer.content.decode().split(' id="game-leaderboard"', 1)[1]
        if played < 5:
            assert "Nobody has played 5 rounds yet." in board

    assert board.startswith(' data-testid="game-leaderboard" hx-swap-oob="true">')
    assert "<td>alice</td>" in board and "<td>5</td>" in board


def test_a_member_is_not_dealt_the_same_message_within_their_last_20_rounds(member_client, member):
    """With a dozen messages on each side, a member met the same one again a few rounds on."""
    make_friend("Alice", opted_in=True, n=12)
    for i in range(11):
        Snippet.objects.create(speaker=Speaker.objects.get(), text=f"{FAKE} (more {i})")
    dealt = []
    for _ in range(game.RECENT_ROUNDS):
        member_client.get("/game/")
        current = member_client.session["game_round"]
        dealt.append((current["kind"], current["pk"]))
        member_client.post("/game/guess/", {"guess": "real"})

    # Real or fake at even odds, so a side may come up more than its dozen: no message of it
    # comes back before every other one of that side has been dealt.
    for kind in ("real", "fake"):
        side = [pk for dealt_kind, pk in dealt if dealt_kind == kind][:12]
        assert len(set(side)) == len(side), Counter(side).most_common(3)


def test_a_side_played_through_lately_still_comes_up_half_the_time(member):
    """With one fake among twenty real messages, a member who had just seen the fake was dealt
    only real ones for the next twenty rounds: answering 'real' was right every time."""
    make_friend("Alice", opted_in=True, n=20)
    rng = random.Random(5)
    kinds = []
    for _ in range(60):
        current = game.new_round(rng, user=member)
        kinds.append(current.kind)
        game.record_guess(user=member, kind=current.kind, pk=current.pk, guessed_fake=False)

    assert 20 <= kinds.count("fake") <= 40, Counter(kinds)


def test_a_repeat_is_the_message_played_longest_ago(member):
    make_friend("Alice", opted_in=True, n=3)
    reals = list(Message.objects.order_by("pk"))
    for message in (reals[1], reals[0], reals[2]):  # all three lately, reals[1] first
        game.record_guess(user=member, kind="real", pk=message.pk, guessed_fake=False)
    rng = random.Random(0)
    dealt = {
        r.pk for r in (game.new_round(rng, user=member) for _ in range(20)) if r.kind == "real"
    }

    assert dealt == {reals[1].pk}


def test_a_member_who_played_every_message_lately_still_gets_a_round(member):
    make_friend("Alice", opted_in=True, n=1)
    rng = random.Random(3)
    for _ in range(4):
        current = game.new_round(rng, user=member)
        game.record_guess(user=member, kind=current.kind, pk=current.pk, guessed_fake=True)

    assert GameGuess.objects.filter(user=member).count() == 4
