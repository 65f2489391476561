"""From chat messages to token windows: sessions, redaction, packing, labels and the time split.

Pipeline, top to bottom in :func:`build_dataset`:

1. drop excluded / unknown speakers and empty texts (upstream already filters; this is a guard);
2. redact PII (emails, phone numbers, URLs, a custom word list) - on by default;
3. cut each conversation into sessions at time gaps (default 30 minutes);
4. split by time: the latest sessions become validation, so validation measures how well the
   model writes *future* chat, and no session is shared between the two sides;
5. tokenize each session in the chat format (``<|conv|>``, speaker token, text, ``<|eom|>`` ...
   ``<|eoc|>``) and pack whole messages greedily into windows of at most ``window_len`` tokens.

Labels are the input ids with padding masked (-100); padding only ever appears at collate time.
Every other token is trained, markers included: the speaker token after ``<|eom|>`` is how the
model learns who talks next, and ``<|eom|>``/``<|eoc|>`` are how it learns to stop. Masking them
would leave generation unable to end a message or hand over to another friend.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import torch
from transformers import PreTrainedTokenizerBase

from trainer.ml.chat_format import CONV, EOC, ChatFormat

# Redaction lives in its own module, without torch, for the web side.
from trainer.ml.redaction import RedactionConfig, Redactor

IGNORE_INDEX = -100


@dataclass(frozen=True)
class CorpusMessage:
    """One chat message as the Django side hands it over (already consent-filtered)."""

    conversation_id: str
    speaker_slug: str
    text: str
    sent_at: datetime


@dataclass(frozen=True)
class DataConfig:
    window_len: int = 256
    session_gap_minutes: float = 30.0
    val_fraction: float = 0.1  # of tokens, taken from the latest sessions
    # ...but no more than this: every evaluation reads the whole validation set, and 10% of a
    # large group chat would make each one cost minutes on a CPU.
    val_max_tokens: int = 16_384
    # A message that cannot fit in one window even alone. "skip" by default: in chat exports such
    # messages are nearly always pastes (articles, logs, forwarded texts) rather than the friend's
    # own voice, and truncating them would teach the model to end messages mid-sentence.
    # "truncate" keeps the start and the <|eom|> instead (useful with very short windows).
    long_messages: Literal["skip", "truncate"] = "skip"
    redaction: RedactionConfig = field(default_factory=RedactionConfig)


# --- sessions ------------------------------------------------------------------------------------


@dataclass
class Session:
    conversation_id: str
    messages: list[CorpusMessage]

    @property
    def start(self) -> datetime:
        return self.messages[0].sent_at


def cut_sessions(messages: Iterable[CorpusMessage], gap: timedelta) -> list[Session]:
    """Group messages by conversation, order by time, cut where the silence exceeds ``gap``.

    Sessions come back ordered by start time (ties by conversation id), which is the order the
    time split and the packing rely on.
    """
    by_conv: dict[str, list[CorpusMessage]] = {}
    for m in messages:
        by_conv.setdefault(m.conversation_id, []).append(m)
    sessions: list[Session] = []
    for conv_id, msgs in by_conv.items():
        msgs.sort(key=lambda m: m.sent_at)  # stable: same-timestamp messages keep export order
        current: list[CorpusMessage] = []
        for m in msgs:
            if current and m.sent_at - current[-1].sent_at > gap:
                sessions.append(Session(conv_id, current))
                current = []
            current.append(m)
        if current:
            sessions.append(Session(conv_id, current))
    sessions.sort(key=lambda s: (s.start, s.conversation_id))
    return sessions


def split_by_time(
    sessions: Sequence[Session],
    token_counts: Sequence[int],
    val_fraction: float,
    max_tokens: int | None = None,
) -> int:
    """Index of the first validation session: the latest sessions holding ~val_fraction of tokens
    (at most about ``max_tokens``).

    Keeps at least one session on each side when there are two or more and val_fraction > 0.
    """
    n = len(sessions)
    if val_fraction <= 0 or n < 2:
        return n
    target = val_fraction * sum(token_counts)
    if max_tokens is not None:
        target = min(target, max_tokens)
    cut, acc = n, 0
    while cut > 1 and acc < target:
        cut -= 1
        acc += token_counts[cut]
    return cut


# --- tokenizing and packing ----------------------------------------------------------------------


@dataclass
class ChatDataset:
    """Packed token windows for training and validation, plus what it takes to save a checkpoint."""

    train: list[list[int]]
    val: list[list[int]]
    pad_id: int
    window_len: int
    chat_format: ChatFormat
    summary: dict[str, Any]

    def fingerprint(self) -> str:
        """Hash of the training windows: resuming on different data must fail loudly."""
        h = hashlib.sha256()
        for w in self.train:
            h.update(len(w).to_bytes(4, "little"))
            h.update(torch.tensor(w, dtype=torch.int64).numpy().tobytes())
        return h.hexdigest()


def collate(windows: Sequence[Sequence[int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad a batch; labels are the inputs with padding set to -100.

    No attention mask: padding is only ever on the right and attention is causal, so real tokens
    never see pad tokens. Leaving the mask out keeps PyTorch's fused causal attention path.
    """
    length = max(len(w) for w in windows)
    input_ids = torch.full((len(windows), length), pad_id, dtype=torch.long)
    labels = torch.full((len(windows), length), IGNORE_INDEX, dtype=torch.long)
    for i, w in enumerate(windows):
        input_ids[i, : len(w)] = torch.as_tensor(w, dtype=torch.long)
        labels[i, : len(w)] = input_ids[i, : len(w)]
    return {"input_ids": input_ids, "labels": labels}


def _session_units(
    session: Session,
    texts: list[str],
    tokenizer: PreTrainedTokenizerBase,
    chat_format: ChatFormat,
    config: DataConfig,
    stats: Counter[str],
) -> list[tuple[str, list[int]]]:
    """Token ids of each message of a session as (speaker, ids), <|conv|>/<|eoc|> attached.

    Tokenizing messages one by one equals tokenizing the whole session string, because special
    tokens are split out before BPE; the tests check that.
    """
    conv_id = tokenizer.convert_tokens_to_ids(CONV)
    eoc_id = tokenizer.convert_tokens_to_ids(EOC)
    # Room for <|conv|> and <|eoc|> too, so any kept message fits a window on its own.
    limit = config.window_len - 2
    encoded = tokenizer(
        [
            chat_format.message(m.speaker_slug, t)
            for m, t in zip(session.messages, texts, strict=True)
        ],
        add_special_tokens=False,
    )["input_ids"]
    units: list[tuple[str, list[int]]] = []
    for m, ids in zip(session.messages, encoded, strict=True):
        if len(ids) > limit:
            if config.long_messages == "skip":
                stats["messages_too_long_skipped"] += 1
                continue
            stats["messages_truncated"] += 1
            ids = ids[: limit - 1] + ids[-1:]  # keep the speaker token and <|eom|>
        units.append((m.speaker_slug, list(ids)))
    if units:
        units[0] = (units[0][0], [conv_id, *units[0][1]])
        units[-1] = (units[-1][0], [*units[-1][1], eoc_id])
    return units


def pack(units: Iterable[list[int]], window_len: int) -> list[list[int]]:
    """Greedily fill windows with whole messages, in order; a message that does not fit starts
    the next window. Sessions share windows (separated by <|eoc|><|conv|>), which keeps padding
    low on chat data where most sessions are far shorter than a window."""
    windows: list[list[int]] = []
    current: list[int] = []
    for ids in units:
        if current and len(current) + len(ids) > window_len:
            windows.append(current)
            current = []
        current = current + ids if current else list(ids)
    if current:
        windows.append(current)
    return windows


def build_dataset(
    messages: Iterable[CorpusMessage],
    tokenizer: PreTrainedTokenizerBase,
    chat_format: ChatFormat,
    config: DataConfig | None = None,
    *,
    exclude_speakers: Collection[str] = (),
) -> ChatDataset:
    """Turn allowed messages into packed train/validation windows and a JSON-able summary."""
    config = config or DataConfig()
    if config.window_len < 8:
        raise ValueError("window_len must be at least 8 tokens")
    if tokenizer.pad_token_id is None:
        raise ValueError("tokenizer has no pad token; load it with load_for_training()")
    stats: Counter[str] = Counter()
    excluded = set(exclude_speakers)

    kept: list[CorpusMessage] = []
    for m in messages:
        stats["messages_in"] += 1
        if m.speaker_slug in excluded:
            stats["messages_excluded_speaker"] += 1
        elif m.speaker_slug not in chat_format.speakers:
            stats["messages_unknown_speaker"] += 1
        elif not m.text.strip():
            stats["messages_empty"] += 1
        else:
            kept.append(m)

    redactor = Redactor(config.redaction)
    sessions = cut_sessions(kept, timedelta(minutes=config.session_gap_minutes))

    tokens_per_speaker: Counter[str] = Counter()
    messages_per_speaker: Counter[str] = Counter()
    session_units: list[list[tuple[str, list[int]]]] = []
    for s in sessions:
        texts = [redactor(m.text) for m in s.messages]
        units = _session_units(s, texts, tokenizer, chat_format, config, stats)
        session_units.append(units)
        for slug, ids in units:
            tokens_per_speaker[slug] += len(ids)
            messages_per_speaker[slug] += 1
    # Sessions whose every message was too long leave nothing behind.
    pairs = [(s, u) for s, u in zip(sessions, session_units, strict=True) if u]
    sessions = [s for s, _ in pairs]
    session_units = [u for _, u in pairs]

    token_counts = [sum(len(ids) for _, ids in u) for u in session_units]
    cut = split_by_time(sessions, token_counts, config.val_fraction, config.val_max_tokens)
    train = pack((ids for u in session_units[:cut] for _, ids in u), config.window_len)
    val = pack((ids for u in session_units[cut:] for _, ids in u), config.window_len)

    def split_summary(windows: list[list[int]], sess: Sequence[Session]) -> dict[str, Any]:
        tokens = sum(len(w) for w in windows)
        return {
            "sessions": len(sess),
            "messages": sum(len(s.messages) for s in sess),
            "windows": len(windows),
            "tokens": tokens,
            # Share of each window left as padding, were every window padded to window_len.
            "padding_fraction": round(1 - tokens / (len(windows) * config.window_len), 4)
            if windows
            else 0.0,
        }

    train_summary = split_summary(train, sessions[:cut])
    val_summary = split_summary(val, sessions[cut:])
    # Messages actually in the windows (too-long ones skipped are not).
    train_summary["messages"] = sum(len(u) for u in session_units[:cut])
    val_summary["messages"] = sum(len(u) for u in session_units[cut:])
    summary: dict[str, Any] = {
        "config": asdict(config),
        "speakers": {
            slug: {"messages": messages_per_speaker[slug], "tokens": tokens_per_speaker[slug]}
            for slug in sorted(chat_format.speakers)
        },
        "messages": sum(messages_per_speaker.values()),
        "tokens": sum(token_counts),
        "sessions": len(sessions),
        "train": train_summary,
        "val": val_summary,
        "val_starts_at": sessions[cut].start.isoformat() if cut < len(sessions) else None,
        "dropped": {
            k.removeprefix("messages_"): v
            for k, v in sorted(stats.items())
            if k not in ("messages_in", "messages_truncated")
        },
        "truncated": stats["messages_truncated"],
        "messages_in": stats["messages_in"],
        "redactions": dict(sorted(redactor.counts.items())),
    }
    # The summary is shown in the UI and stored in the database: count the words, don't list them.
    summary["config"]["redaction"]["words"] = len(config.redaction.words)
    return ChatDataset(
        train=train,
        val=val,
        pad_id=tokenizer.pad_token_id,
        window_len=config.window_len,
        chat_format=chat_format,
        summary=summary,
    )
