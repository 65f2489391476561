"""Leak guard: exact shared-run lengths, planted copies caught, novel text passed, persistence."""

from __future__ import annotations

import random

import numpy as np
import pytest

from generations.leak_guard import LeakIndex, tokenize

CORPUS = [
    "anyone up for pho tonight at the usual place on main street?",
    "I can't make it, my sister is visiting from Lisbon this weekend",
    "a b c d e f g h",
    "b c d e f g h i j",
    "ok",
    "",
    "the quick brown fox jumps over the lazy dog again and again",
]


@pytest.fixture(scope="module")
def index() -> LeakIndex:
    return LeakIndex.build(CORPUS, n=8, min_n=3)


def test_tokenizer_is_word_level_and_normalised():
    assert tokenize("Don’t you DARE!!! eat my pho...") == [
        "don't",
        "you",
        "dare",
        "!",
        "eat",
        "my",
        "pho",
        ".",
    ]
    # Case, curly quotes and repeated punctuation do not hide a copy.
    assert tokenize("I CAN’T make it!!") == tokenize("i can't make it!")


def test_planted_verbatim_copy_is_caught(index):
    planted = (
        "honestly no idea what you mean but my sister is visiting from Lisbon this weekend so "
        "maybe next time"
    )
    # "my sister is visiting from lisbon this weekend" = 8 tokens
    assert index.longest_shared_run(planted) == 8
    assert index.is_leak(planted)
    assert not index.is_leak(planted, threshold=9)


def test_novel_text_passes(index):
    novel = "we should totally get dumplings instead, the pho place closed down last month"
    assert index.longest_shared_run(novel) < 3
    assert not index.is_leak(novel)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # the whole first message plus novel words around it: 13 tokens incl. "?"
        ("lol anyone up for pho tonight at the usual place on main street? haha", 13),
        # exactly 8, 9, 10 consecutive tokens of the last message
        ("zz quick brown fox jumps over the lazy dog yy", 8),
        ("zz the quick brown fox jumps over the lazy dog yy", 9),
        ("the quick brown fox jumps over the lazy dog again", 10),
        # a 7-token copy: below n, answered exactly from the shorter-gram sets
        ("zz quick brown fox jumps over the lazy yy", 7),
        ("zz brown fox jumps yy", 3),
        # 2 shared tokens is below min_n=3 -> 0
        ("zz brown fox yy", 0),
        # two corpus messages overlap: "a..h" and "b..j". The query holds a..j (10 tokens) but
        # no single message has more than 9 of them in a row: chains must not stitch messages.
        ("x a b c d e f g h i j", 9),
        # a run interrupted by a novel word: two runs of 5 and 6, not 12
        ("anyone up for pho tonight WAIT the usual place on main street", 6),
        ("", 0),
        ("ok", 0),
    ],
)
def test_exact_run_length(index, text, expected):
    assert index.longest_shared_run(text) == expected


def test_batch_matches_single(index):
    texts = [
        "zz the quick brown fox jumps over the lazy dog yy",
        "",
        "novel words only here",
        "x a b c d e f g h i j",
        "anyone up for pho tonight",
    ]
    assert index.longest_shared_runs(texts) == [index.longest_shared_run(t) for t in texts]


def test_runs_do_not_cross_query_texts(index):
    # Each half alone shares 4 tokens; concatenated in one batch they must not chain.
    texts = ["quick brown fox jumps", "over the lazy dog"]
    assert index.longest_shared_runs(texts) == [4, 4]


def test_threshold_below_min_n_is_refused(index):
    with pytest.raises(ValueError):
        index.is_leak("anything", threshold=2)


def test_save_load_round_trip(index, tmp_path):
    path = index.save(tmp_path / "leak_index.npz")
    loaded = LeakIndex.load(path)
    assert (loaded.n, loaded.min_n, loaded.n_messages) == (8, 3, len(CORPUS))
    assert np.array_equal(loaded.hashes, index.hashes)
    probes = [
        "zz the quick brown fox jumps over the lazy dog yy",
        "x a b c d e f g h i j",
        "zz brown fox jumps yy",
        "nothing in common",
    ]
    assert loaded.longest_shared_runs(probes) == index.longest_shared_runs(probes)


def test_randomised_against_brute_force():
    """Exact lengths match a brute-force longest-common-run over a random small corpus."""
    rng = random.Random(7)
    vocab = [f"w{i}" for i in range(12)]  # tiny vocab: many partial overlaps
    corpus = [" ".join(rng.choice(vocab) for _ in range(rng.randint(1, 20))) for _ in range(60)]
    index = LeakIndex.build(corpus, n=5, min_n=2, chunk_messages=7)  # several chunks
    corpus_toks = [tokenize(t) for t in corpus]

    def brute(query: str) -> int:
        q = tokenize(query)
        best = 0
        for m in corpus_toks:
            for i in range(len(q)):
                for j in range(len(m)):
                    k = 0
                    while i + k < len(q) and j + k < len(m) and q[i + k] == m[j + k]:
                        k += 1
                    best = max(best, k)
        return best if best >= 2 else 0

    queries = [" ".join(rng.choice(vocab) for _ in range(rng.randint(0, 25))) for _ in range(80)]
    queries += [corpus[i] + " w0 " + corpus[i + 1] for i in range(0, 20, 2)]
    assert index.longest_shared_runs(queries) == [brute(q) for q in queries]
