"""How good is a model, and how much of the corpus does it give back? (no Django here)

Three numbers per run, all on the run's held-out split (the latest sessions, cut exactly as
training cut them):

* perplexity on the message text tokens, overall and per speaker, for the fine-tuned model and two
  baselines: a per-speaker unigram model fitted on the training messages, and the base model before
  fine-tuning. Only text tokens count (not the speaker and end markers) because the base model has
  never seen the markers; counting them would flatter the fine-tuned model;
* speaker fidelity: a TF-IDF + logistic-regression classifier trained on real messages labels the
  generated snippets; its accuracy against the intended speaker, next to chance (1/speakers);
* leak rate: computed by the caller from the snippets' stored longest shared runs.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta

import torch

from trainer.ml.chat_format import CONV, EOC, ChatFormat
from trainer.ml.data import CorpusMessage, RedactionConfig, Redactor, cut_sessions, split_by_time

UNIGRAM_ALPHA = 0.1  # additive smoothing: add-one over a 50k vocabulary drowns small corpora


@dataclass
class HeldOut:
    """The run's split, in message text token ids per speaker."""

    train: dict[str, list[list[int]]] = field(default_factory=lambda: defaultdict(list))
    val_sessions: list[list[tuple[str, list[int]]]] = field(default_factory=list)
    train_texts: list[tuple[str, str]] = field(default_factory=list)
    val_texts: list[tuple[str, str]] = field(default_factory=list)


def held_out_split(
    messages: Sequence[CorpusMessage],
    tokenizer,
    chat_format: ChatFormat,
    *,
    window_len: int,
    session_gap_minutes: float,
    val_fraction: float,
    val_max_tokens: int | None = None,
    redaction: RedactionConfig | None = None,
) -> HeldOut:
    """Cut sessions and split them by time the way trainer.ml.data.build_dataset does."""
    redact = Redactor(redaction or RedactionConfig())
    kept = [m for m in messages if m.speaker_slug in chat_format.speakers and m.text.strip()]
    sessions = cut_sessions(kept, timedelta(minutes=session_gap_minutes))
    encoded_sessions: list[list[tuple[str, list[int], str]]] = []
    for session in sessions:
        texts = [redact(m.text) for m in session.messages]
        ids = tokenizer(
            [
                chat_format.message(m.speaker_slug, t)
                for m, t in zip(session.messages, texts, strict=True)
            ],
            add_special_tokens=False,
        )["input_ids"]
        units = [
            (m.speaker_slug, list(i), t)
            for m, i, t in zip(session.messages, ids, texts, strict=True)
            if len(i) <= window_len - 2  # training skips messages that fit no window
        ]
        encoded_sessions.append(units)
    pairs = [(s, u) for s, u in zip(sessions, encoded_sessions, strict=True) if u]
    token_counts = [sum(len(i) for _, i, _ in u) + 2 for _, u in pairs]
    cut = split_by_time([s for s, _ in pairs], token_counts, val_fraction, val_max_tokens)
    held = HeldOut()
    for _, units in pairs[:cut]:
        for slug, ids, text in units:
            held.train[slug].append(ids[1:-1])
            held.train_texts.append((slug, text))
    for _, units in pairs[cut:]:
        held.val_sessions.append([(slug, ids) for slug, ids, _ in units])
        held.val_texts.extend((slug, text) for slug, _, text in units)
    return held


def unigram_perplexity(held: HeldOut, vocab_size: int) -> dict[str, float]:
    """Per-speaker unigram model over the same tokens; speakers unseen in training are skipped."""
    nll: dict[str, float] = defaultdict(float)
    count: Counter[str] = Counter()
    for slug, train_messages in held.train.items():
        counts = Counter(t for ids in train_messages for t in ids)
        total = sum(counts.values())
        denominator = total + UNIGRAM_ALPHA * vocab_size
        for session in held.val_sessions:
            for speaker, ids in session:
                if speaker != slug:
                    continue
                for token in ids[1:-1]:
                    nll[slug] += -math.log((counts[token] + UNIGRAM_ALPHA) / denominator)
                    count[slug] += 1
    return _perplexities(nll, count)


@torch.no_grad()
def model_perplexity(
    model, tokenizer, held: HeldOut, *, window_len: int, max_tokens: int = 40_000
) -> dict[str, float]:
    """Perplexity of a causal LM on the held-out text tokens, attributed to their speakers."""
    model.eval()
    device = next(model.parameters()).device
    conv_id = tokenizer.convert_tokens_to_ids(CONV)
    eoc_id = tokenizer.convert_tokens_to_ids(EOC)
    nll: dict[str, float] = defaultdict(float)
    count: Counter[str] = Counter()
    budget = max_tokens
    for session in held.val_sessions:
        if budget <= 0:
            break
        # Rebuild the session's ids with, for every position, who wrote it (None = a marker).
        ids: list[int] = [conv_id]
        owner: list[str | None] = [None]
        for slug, message_ids in session:
            ids.extend(message_ids)
            owner.extend([None] + [slug] * (len(message_ids) - 2) + [None])
        ids.append(eoc_id)
        owner.append(None)
        for start in range(0, len(ids) - 1, window_len - 1):
            window = ids[start : start + window_len]
            if len(window) < 2:
                break
            input_ids = torch.tensor([window], device=device)
            logits = model(input_ids=input_ids).logits.float()
            log_probs = torch.log_softmax(logits[0, :-1], dim=-1)
            targets = input_ids[0, 1:]
            token_nll = (-log_probs.gather(1, targets[:, None])[:, 0]).tolist()
            for offset, value in enumerate(token_nll):
                slug = owner[start + offset + 1]
                if slug is not None:
                    nll[slug] += value
                    count[slug] += 1
            budget -= len(window)
    return _perplexities(nll, count)


def _perplexities(nll: dict[str, float], count: Counter[str]) -> dict[str, float]:
    result = {slug: math.exp(min(nll[slug] / count[slug], 50.0)) for slug in count if count[slug]}
    total = sum(count.values())
    if total:
        result["__all__"] = math.exp(min(sum(nll.values()) / total, 50.0))
    return result


def speaker_fidelity(
    train_texts: Sequence[tuple[str, str]],
    generated: Sequence[tuple[str, str]],
    *,
    val_texts: Sequence[tuple[str, str]] = (),
) -> dict[str, float | int | None]:
    """Train a real-message speaker classifier; score generated snippets against their speakers.

    Returns accuracy on generated snippets, the chance level, and (as a ceiling) accuracy on
    held-out real messages.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    speakers = sorted({slug for slug, _ in train_texts})
    result: dict[str, float | int | None] = {
        "speakers": len(speakers),
        "chance": 1 / len(speakers) if speakers else None,
        "generated": len(generated),
        "accuracy": None,
        "real_accuracy": None,
    }
    if len(speakers) < 2 or not generated:
        return result
    classifier = make_pipeline(
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), min_df=1, sublinear_tf=True),
        LogisticRegression(max_iter=1000),
    )
    classifier.fit([text for _, text in train_texts], [slug for slug, _ in train_texts])
    known = [(slug, text) for slug, text in generated if slug in speakers]
    if known:
        predicted = classifier.predict([text for _, text in known])
        hits = sum(p == slug for p, (slug, _) in zip(predicted, known, strict=True))
        result["accuracy"] = hits / len(known)
    real = [(slug, text) for slug, text in val_texts if slug in speakers]
    if real:
        predicted = classifier.predict([text for _, text in real])
        hits = sum(p == slug for p, (slug, _) in zip(predicted, real, strict=True))
        result["real_accuracy"] = hits / len(real)
    return result
