"""The quality report's numbers on corpora built so the answer is known."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from generations.quality import (
    held_out_split,
    model_perplexity,
    speaker_fidelity,
    unigram_perplexity,
)
from trainer.ml.chat_format import ChatFormat
from trainer.ml.data import CorpusMessage

CATS = ["cat", "kitten", "purr", "whiskers", "meow", "litter", "tuna", "nap", "sunbeam", "paws"]
TRAINS = ["train", "platform", "timetable", "locomotive", "carriage", "rail", "signal", "depot"]


def corpus(n_sessions=40, seed=0):
    rng = random.Random(seed)
    t = datetime(2024, 1, 1, tzinfo=UTC)
    messages = []
    for s in range(n_sessions):
        t += timedelta(hours=3)
        for i in range(6):
            slug, words = ("alice", CATS) if i % 2 == 0 else ("bob", TRAINS)
            text = " ".join(rng.choice(words) for _ in range(6))
            messages.append(CorpusMessage(f"c{s % 3}", slug, text, t + timedelta(minutes=i)))
    return messages


@pytest.fixture(scope="module")
def tokenizer_and_format(tmp_path_factory):
    from trainer.ml.base_models import build_tiny_gpt2, load_for_training

    folder = build_tiny_gpt2(tmp_path_factory.mktemp("tiny") / "tiny")
    chat_format = ChatFormat({"alice": "Alice", "bob": "Bob"})
    model, tokenizer = load_for_training(folder, chat_format, tmp_path_factory.mktemp("cache"))
    return model, tokenizer, chat_format


def split(tokenizer, chat_format, messages):
    return held_out_split(
        messages, tokenizer, chat_format, window_len=128, session_gap_minutes=30, val_fraction=0.2
    )


def test_split_takes_the_latest_sessions_for_validation(tokenizer_and_format):
    _, tokenizer, chat_format = tokenizer_and_format
    held = split(tokenizer, chat_format, corpus())
    assert 5 <= len(held.val_sessions) <= 10
    assert set(held.train) == {"alice", "bob"}
    # every held-out message is a real one, not seen in training
    assert held.val_texts and not set(held.val_texts) & set(held.train_texts)


def test_unigram_baseline_knows_each_speakers_vocabulary(tokenizer_and_format):
    _, tokenizer, chat_format = tokenizer_and_format
    held = split(tokenizer, chat_format, corpus())
    ppl = unigram_perplexity(held, vocab_size=len(tokenizer))
    # a handful of words each: orders of magnitude below the ~50k-token vocabulary
    assert 1 < ppl["alice"] < 500 and 1 < ppl["bob"] < 500
    assert ppl["__all__"] < 500


def test_untrained_model_is_near_uniform(tokenizer_and_format):
    model, tokenizer, chat_format = tokenizer_and_format
    held = split(tokenizer, chat_format, corpus())
    ppl = model_perplexity(model, tokenizer, held, window_len=128)
    # a random tiny GPT-2 is close to uniform over ~50k tokens, far worse than the unigram model
    assert ppl["__all__"] > 1000
    assert ppl["__all__"] > 10 * unigram_perplexity(held, len(tokenizer))["__all__"]


def test_fidelity_is_high_when_fakes_sound_like_their_speaker(tokenizer_and_format):
    _, tokenizer, chat_format = tokenizer_and_format
    held = split(tokenizer, chat_format, corpus())
    faithful = [("alice", "purr meow tuna nap"), ("bob", "express locomotive depot rail")] * 5
    result = speaker_fidelity(held.train_texts, faithful, val_texts=held.val_texts)
    assert result["chance"] == 0.5
    assert result["accuracy"] == 1.0
    assert result["real_accuracy"] > 0.9


def test_fidelity_is_low_when_fakes_sound_like_someone_else(tokenizer_and_format):
    _, tokenizer, chat_format = tokenizer_and_format
    held = split(tokenizer, chat_format, corpus())
    swapped = [("bob", "purr meow tuna nap"), ("alice", "express locomotive depot rail")] * 5
    result = speaker_fidelity(held.train_texts, swapped)
    assert result["accuracy"] == 0.0 < result["chance"]
