"""Near-duplicate filter: exact and fuzzy duplicates removed, distinct texts kept."""

from __future__ import annotations

import random
import string

import pytest

from generations.near_duplicates import NearDuplicateFilter, _choose_bands, jaccard, shingles


def test_normalisation_makes_trivial_variants_identical():
    f = NearDuplicateFilter(["LOL same!!"])
    assert f.is_duplicate("lol same")
    assert f.is_duplicate("  lol   SAME ")
    assert not f.is_duplicate("lol different")


def test_fuzzy_duplicate_against_existing():
    existing = ["see you at the station at 8 tomorrow morning, bring the tickets"]
    f = NearDuplicateFilter(existing, threshold=0.8)
    assert f.is_duplicate("see you at the station at 8 tomorrow morning, bring the ticket")
    assert not f.is_duplicate("the tickets are at home, bring snacks for the train")


def test_within_batch_keeps_first_of_each_group():
    f = NearDuplicateFilter(threshold=0.8)
    batch = [
        "who is coming to the barbecue on saturday",
        "Who is coming to the barbecue on Saturday?",
        "who is coming to the barbecue on saturday??",
        "i'm bringing the grill and some corn",
        "who's coming to the barbecue on sunday instead",
    ]
    kept = f.filter(batch)
    assert kept == [0, 3, 4]
    assert len(f) == 3


def test_threshold_parameter_matters():
    a = "pizza tonight at marco's place"
    b = "pizza tonight at marco's house"
    sim = jaccard(shingles(a), shingles(b))
    assert 0.5 < sim < 0.8
    assert not NearDuplicateFilter([a], threshold=0.8).is_duplicate(b)
    assert NearDuplicateFilter([a], threshold=0.5).is_duplicate(b)


def test_emoji_only_messages_are_not_all_equal():
    f = NearDuplicateFilter(["😂😂😂"])
    assert f.is_duplicate("😂😂😂")
    assert not f.is_duplicate("🍕")


@pytest.mark.parametrize("threshold", [0.5, 0.7, 0.8, 0.9])
def test_lsh_bands_give_high_recall_at_threshold(threshold):
    bands, rows = _choose_bands(64, threshold)
    assert bands * rows == 64
    assert 1 - (1 - threshold**rows) ** bands >= 0.995


def test_matches_brute_force_on_random_texts():
    """No false positives (exact Jaccard check) and the LSH misses nothing on this sample."""
    rng = random.Random(3)
    words = ["".join(rng.choice(string.ascii_lowercase) for _ in range(4)) for _ in range(30)]
    base = [" ".join(rng.choice(words) for _ in range(8)) for _ in range(40)]
    texts = []
    for t in base:
        texts.append(t)
        w = t.split()
        w[rng.randrange(len(w))] = rng.choice(words)  # one word changed: often a near dup
        texts.append(" ".join(w))
    f = NearDuplicateFilter(threshold=0.7)
    kept_sets: list = []
    expected = []
    for i, t in enumerate(texts):
        sh = shingles(t)
        if all(jaccard(sh, k) < 0.7 for k in kept_sets):
            kept_sets.append(sh)
            expected.append(i)
    assert f.filter(texts) == expected
    assert len(expected) < len(texts)  # the sample does contain duplicates
