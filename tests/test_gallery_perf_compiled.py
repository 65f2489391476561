"""Gallery queries compiled once per shape give what the ORM gives, for whoever is asking."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from generations import compiled, selectors, votes
from generations.models import Snippet
from tests.builders.snippets import make_snippet

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_shapes():
    compiled.clear()
    yield
    compiled.clear()


@pytest.fixture
def gallery(ann, bo, member, other_member):
    """60 snippets, some conversations, with votes and stars from two members."""
    rng = random.Random(3)
    voters = [get_user_model().objects.create_user(username=f"v{i}") for i in range(6)]
    for i in range(60):
        lines = [(ann, f"n{i}")] + ([(bo, "reply")] if i % 4 == 0 else [])
        snippet = make_snippet(*lines, age=timedelta(hours=rng.uniform(0, 300)))
        for voter in rng.sample(voters, rng.randint(0, 6)):
            votes.set_vote(member=voter, snippet_id=snippet.pk, value=rng.choice([1, 1, -1]))
        if i % 3 == 0:
            votes.set_vote(member=member, snippet_id=snippet.pk, value=1)
        if i % 5 == 0:
            votes.set_favourite(member=other_member, snippet_id=snippet.pk, starred=True)


def by_the_orm(member, sort, speaker, page, now) -> list[tuple]:
    snippets = Snippet.objects.visible()
    if speaker is not None:
        snippets = snippets.featuring(speaker)
    ordered = snippets.ranked(sort, now=now).for_member(member)[(page - 1) * 20 : page * 20]
    return [(s.pk, s.my_vote, s.is_favourite, s.upvotes) for s in ordered]


def by_the_gallery(member, sort, speaker, page, now) -> list[tuple]:
    shown = selectors.gallery_page(member=member, sort=sort, speaker=speaker, page=page, now=now)
    return [(s.pk, s.my_vote, s.is_favourite, s.upvotes) for s in shown.snippets]


@pytest.mark.parametrize("sort", ["new", "top", "best", "hot"])
def test_compiled_pages_match_the_orm(gallery, member, other_member, bo, sort):
    now = timezone.now()
    for viewer in (member, other_member):  # the same shapes, each member's own votes and stars
        for speaker in (None, bo):
            for page in (1, 2, 3):
                expected = by_the_orm(viewer, sort, speaker, page, now)
                assert by_the_gallery(viewer, sort, speaker, page, now) == expected, (
                    viewer,
                    speaker,
                    page,
                )


def test_each_member_sees_their_own_votes_through_one_shape(gallery, member, other_member):
    mine = by_the_gallery(member, "new", None, 1, None)
    theirs = by_the_gallery(other_member, "new", None, 1, None)
    assert [pk for pk, *_ in mine] == [pk for pk, *_ in theirs]
    assert any(vote == 1 for _, vote, _, _ in mine)
    assert not any(vote for _, vote, _, _ in theirs)
    assert any(star for _, _, star, _ in theirs) and not any(star for _, _, star, _ in mine)


def test_a_shape_compiles_once(ann):
    make_snippet((ann, "only one"))
    built = []

    def build(speaker):
        built.append(speaker)
        return Snippet.objects.filter(speaker_id=speaker.pk).only("pk")

    for _ in range(3):
        assert [s.text for s in compiled.run("by speaker", build, [ann.pk])] == ["only one"]
    assert len(built) == 2  # two stand-in compilations, then never again
    assert list(compiled.run("by speaker", build, [ann.pk + 1000])) == []


def test_a_queryset_that_depends_on_more_than_its_values_is_refused(ann):
    def since_now(speaker):
        return Snippet.objects.filter(speaker_id=speaker.pk, created_at__lte=timezone.now())

    with pytest.raises(compiled.ShapeError):
        compiled.run("since now", since_now, [ann.pk])

    def with_a_literal(speaker):
        return Snippet.objects.filter(speaker_id=speaker.pk, seed=random.randint(0, 10**9))

    with pytest.raises(compiled.ShapeError):
        compiled.run("with a literal", with_a_literal, [ann.pk])


def test_moments_are_swapped_in_too(ann):
    old = make_snippet((ann, "old"), age=timedelta(days=2))
    make_snippet((ann, "new"))

    def older_than(moment):
        from generations.ranking import EpochSeconds

        age = EpochSeconds("created_at")
        return Snippet.objects.alias(age=age).filter(age__lt=moment.timestamp()).values_list("pk")

    yesterday = timezone.now() - timedelta(days=1)
    assert compiled.rows("older than", older_than, [yesterday]) == [(old.pk,)]
    assert len(compiled.rows("older than", older_than, [timezone.now()])) == 2


def test_the_number_of_shapes_is_bounded(ann, monkeypatch):
    monkeypatch.setattr(compiled, "MAX_SHAPES", 3)
    make_snippet((ann, "x"))
    for shape in range(5):
        compiled.run(shape, lambda s: Snippet.objects.filter(speaker_id=s.pk), [ann.pk])
    assert len(compiled._compiled) == 3
