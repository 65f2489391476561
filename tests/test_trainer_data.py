"""Data formatting for training: sessions, markers, packing, masking, time split, redaction."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import torch

from trainer.ml.base_models import build_tiny_gpt2, load_for_training
from trainer.ml.chat_format import CONV, EOC, EOM, ChatFormat, speaker_token
from trainer.ml.data import (
    IGNORE_INDEX,
    CorpusMessage,
    DataConfig,
    build_dataset,
    collate,
    cut_sessions,
    pack,
    split_by_time,
)
from trainer.ml.redaction import RedactionConfig, redact

FORMAT = ChatFormat(speakers={"alice": "Alice", "bob": "Bob", "carol": "Carol"})
T0 = datetime(2024, 3, 1, 18, 0)


@pytest.fixture(scope="module")
def tok(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("tiny")
    _, tokenizer = load_for_training(build_tiny_gpt2(folder / "gpt2"), FORMAT, folder)
    return tokenizer


def msg(minutes: float, slug: str, text: str, conv: str = "c1") -> CorpusMessage:
    return CorpusMessage(conv, slug, text, T0 + timedelta(minutes=minutes))


NO_REDACT = RedactionConfig(enabled=False)


def decode_all(tok, windows: list[list[int]]) -> list[str]:
    return [tok.decode(w) for w in windows]


def test_session_text_matches_chat_format_exactly(tok) -> None:
    msgs = [msg(0, "alice", "anyone up for pho?"), msg(1, "bob", "  always ")]
    ds = build_dataset(msgs, tok, FORMAT, DataConfig(val_fraction=0, redaction=NO_REDACT))
    expected = FORMAT.session([("alice", "anyone up for pho?"), ("bob", "always")])
    assert decode_all(tok, ds.train) == [expected]
    # Per-message tokenization equals tokenizing the whole session string.
    assert ds.train[0] == tok(expected, add_special_tokens=False)["input_ids"]


def test_sessions_cut_at_gap_and_per_conversation(tok) -> None:
    msgs = [
        msg(0, "alice", "a1"),
        msg(29, "bob", "b1"),  # 29 min: same session
        msg(29 + 31, "alice", "a2"),  # 31 min later: new session
        msg(5, "carol", "elsewhere", conv="c2"),
    ]
    sessions = cut_sessions(msgs, timedelta(minutes=30))
    assert [(s.conversation_id, [m.text for m in s.messages]) for s in sessions] == [
        ("c1", ["a1", "b1"]),
        ("c2", ["elsewhere"]),
        ("c1", ["a2"]),
    ]
    cfg = DataConfig(val_fraction=0, redaction=NO_REDACT, session_gap_minutes=30)
    text = "".join(decode_all(tok, build_dataset(msgs, tok, FORMAT, cfg).train))
    assert text.count(CONV) == 3 and text.count(EOC) == 3
    # A longer gap parameter merges the c1 sessions.
    cfg = DataConfig(val_fraction=0, redaction=NO_REDACT, session_gap_minutes=60)
    text = "".join(decode_all(tok, build_dataset(msgs, tok, FORMAT, cfg).train))
    assert text.count(CONV) == 2


def test_out_of_order_input_is_sorted_by_time(tok) -> None:
    msgs = [msg(2, "bob", "second"), msg(0, "alice", "first")]
    ds = build_dataset(msgs, tok, FORMAT, DataConfig(val_fraction=0, redaction=NO_REDACT))
    assert decode_all(tok, ds.train) == [FORMAT.session([("alice", "first"), ("bob", "second")])]


def test_windows_pack_whole_messages(tok) -> None:
    msgs = [msg(i, ["alice", "bob"][i % 2], f"message number {i} here") for i in range(40)]
    cfg = DataConfig(window_len=40, val_fraction=0, redaction=NO_REDACT)
    ds = build_dataset(msgs, tok, FORMAT, cfg)
    assert len(ds.train) > 1
    eom = tok.convert_tokens_to_ids(EOM)
    speakers = {tok.convert_tokens_to_ids(speaker_token(s)) for s in FORMAT.speakers}
    for w in ds.train:
        assert len(w) <= 40
        # Every window ends at a message boundary and starts at one.
        assert w[-1] in (eom, tok.convert_tokens_to_ids(EOC))
        assert w[0] in speakers | {tok.convert_tokens_to_ids(CONV)}
    # Nothing lost: all windows together are exactly the session.
    flat = [t for w in ds.train for t in w]
    full = FORMAT.session([(m.speaker_slug, m.text) for m in msgs])
    assert flat == tok(full, add_special_tokens=False)["input_ids"]


def test_pack_starts_new_window_when_message_does_not_fit() -> None:
    assert pack([[1, 2], [3, 4, 5], [6], [7, 8, 9, 10]], window_len=5) == [
        [1, 2, 3, 4, 5],
        [6, 7, 8, 9, 10],
    ]
    assert pack([[1, 2, 3], [4, 5, 6]], window_len=5) == [[1, 2, 3], [4, 5, 6]]


def test_long_messages_skipped_or_truncated(tok) -> None:
    long_text = "word " * 100
    msgs = [msg(0, "alice", "short"), msg(1, "bob", long_text), msg(2, "alice", "after")]
    skip = build_dataset(
        msgs, tok, FORMAT, DataConfig(window_len=32, val_fraction=0, redaction=NO_REDACT)
    )
    assert "".join(decode_all(tok, skip.train)) == FORMAT.session(
        [("alice", "short"), ("alice", "after")]
    )
    assert skip.summary["dropped"]["too_long_skipped"] == 1

    cfg = DataConfig(window_len=32, val_fraction=0, redaction=NO_REDACT, long_messages="truncate")
    trunc = build_dataset(msgs, tok, FORMAT, cfg)
    assert trunc.summary["truncated"] == 1
    assert all(len(w) <= 32 for w in trunc.train)
    bob_window = next(w for w in trunc.train if tok.convert_tokens_to_ids("<|spk:bob|>") in w)
    text = tok.decode(bob_window)
    assert text.startswith(speaker_token("bob") + " word") and text.endswith(EOM)


def test_labels_mask_only_padding(tok) -> None:
    batch = collate([[5, 6, 7], [8]], pad_id=tok.pad_token_id)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, tok.pad_token_id, tok.pad_token_id]]
    assert batch["labels"].tolist() == [[5, 6, 7], [8, IGNORE_INDEX, IGNORE_INDEX]]


def test_speaker_and_marker_tokens_are_trained(tok) -> None:
    msgs = [msg(0, "alice", "hi"), msg(1, "bob", "yo")]
    ds = build_dataset(msgs, tok, FORMAT, DataConfig(val_fraction=0, redaction=NO_REDACT))
    labels = collate(ds.train, ds.pad_id)["labels"][0].tolist()
    for token in (speaker_token("bob"), EOM, EOC):
        assert tok.convert_tokens_to_ids(token) in labels
    assert IGNORE_INDEX not in labels


def test_validation_is_the_latest_sessions(tok) -> None:
    # Ten sessions a day apart, given in shuffled order, in two conversations.
    order = [3, 7, 0, 9, 5, 1, 8, 2, 6, 4]
    msgs = [msg(day * 1440, "alice", f"day {day} text", conv=f"c{day % 2}") for day in order]
    ds = build_dataset(msgs, tok, FORMAT, DataConfig(val_fraction=0.2, redaction=NO_REDACT))
    val_text = "".join(decode_all(tok, ds.val))
    train_text = "".join(decode_all(tok, ds.train))
    assert "day 8" in val_text and "day 9" in val_text
    assert all(f"day {d} " not in val_text for d in range(8))
    assert "day 8" not in train_text and "day 9" not in train_text
    assert ds.summary["val"]["sessions"] == 2 and ds.summary["train"]["sessions"] == 8
    assert ds.summary["val_starts_at"] == (T0 + timedelta(days=8)).isoformat()


def test_validation_never_empty_train(tok) -> None:
    msgs = [msg(0, "alice", "only one"), msg(100, "bob", "and another")]
    ds = build_dataset(msgs, tok, FORMAT, DataConfig(val_fraction=0.9, redaction=NO_REDACT))
    assert len(ds.train) == 1 and len(ds.val) == 1


def test_excluded_and_unknown_speakers_dropped(tok) -> None:
    msgs = [msg(0, "alice", "hi"), msg(1, "carol", "secret"), msg(2, "mallory", "who")]
    ds = build_dataset(
        msgs,
        tok,
        FORMAT,
        DataConfig(val_fraction=0, redaction=NO_REDACT),
        exclude_speakers={"carol"},
    )
    text = "".join(decode_all(tok, ds.train))
    assert "secret" not in text and "who" not in text
    assert tok.convert_tokens_to_ids(speaker_token("carol")) not in ds.train[0]
    assert ds.summary["dropped"] == {"excluded_speaker": 1, "unknown_speaker": 1}
    assert ds.summary["speakers"]["carol"] == {"messages": 0, "tokens": 0}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail jo.doe+x@example.co.uk now", "mail <email> now"),
        ("call +44 20 7946 0958!", "call <phone>!"),
        ("or (555) 123-4567", "or <phone>"),
        ("see https://example.com/a?b=1, ok", "see <url>, ok"),
        ("www.example.org is down", "<url> is down"),
        ("on 2024-03-01 at 10:30, 3 pizzas", "on 2024-03-01 at 10:30, 3 pizzas"),
        ("12/05/2023 and 1,000,000", "12/05/2023 and 1,000,000"),
    ],
)
def test_redaction_patterns(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "we lived there 1998-2004, then moved",
        "the 2019–2021 seasons",
        "only 45.5% of us came",
        "I am 100.0000 percent sure",
        "pi is 3.14159265 roughly",
        "a cool 1000000 views",
        "10 000 people and 10 000 000 more",
        "2,500,000 in the jar",
        "the numbers are 4 8 15 16 23 42",
    ],
)
def test_numbers_that_are_not_phone_numbers_are_left_alone(text: str) -> None:
    """Year spans, percentages, decimals, round numbers and small numbers in a row became
    <phone> in training data, in the redaction preview and in the game's real rounds."""
    assert redact(text) == text


@pytest.mark.parametrize(
    "text",
    [
        "+44 20 7946 0958",
        "(555) 123-4567",
        "555-123-4567",
        "555.123.4567",
        "06 12 34 56 78",
        "+33 6 12 34 56 78",
        "0612345678",
        "555 123 4000",
    ],
)
def test_phone_numbers_are_still_redacted(text: str) -> None:
    assert redact(f"ring {text} tonight") == "ring <phone> tonight"


def test_redaction_word_list_and_switches() -> None:
    cfg = RedactionConfig(words=("Jane Doe", "Jane", "42 Elm St"))
    assert redact("jane doe lives at 42 elm st, Janet too", cfg) == (
        "<redacted> lives at <redacted>, Janet too"
    )
    assert redact("x@y.com", RedactionConfig(enabled=False)) == "x@y.com"
    assert redact("x@y.com https://a.b", RedactionConfig(urls=False)) == "<email> https://a.b"


def test_redaction_on_by_default_in_dataset(tok) -> None:
    msgs = [msg(0, "alice", "ping me at me@home.net"), msg(1, "bob", "ok")]
    ds = build_dataset(msgs, tok, FORMAT, DataConfig(val_fraction=0))
    text = "".join(decode_all(tok, ds.train))
    assert "me@home.net" not in text and "<email>" in text
    assert ds.summary["redactions"] == {"emails": 1}


def test_summary_is_json_and_counts_per_speaker(tok) -> None:
    msgs = [msg(i * 50, "alice" if i % 3 else "bob", f"text {i}") for i in range(12)]
    cfg = DataConfig(val_fraction=0.25, redaction=RedactionConfig(words=("secret",)))
    ds = build_dataset(msgs, tok, FORMAT, cfg)
    s = json.loads(json.dumps(ds.summary))
    assert s["speakers"]["bob"]["messages"] == 4 and s["speakers"]["alice"]["messages"] == 8
    assert s["messages"] == 12 and s["messages_in"] == 12
    total = sum(len(w) for w in ds.train + ds.val)
    assert s["tokens"] == total == s["train"]["tokens"] + s["val"]["tokens"]
    assert sum(v["tokens"] for v in s["speakers"].values()) == total
    assert s["train"]["windows"] == len(ds.train) and s["val"]["windows"] == len(ds.val)
    assert s["config"]["redaction"]["words"] == 1  # the words themselves are not stored


def test_fingerprint_tracks_training_windows(tok) -> None:
    a = build_dataset([msg(0, "alice", "a")], tok, FORMAT, DataConfig(val_fraction=0))
    b = build_dataset([msg(0, "alice", "b")], tok, FORMAT, DataConfig(val_fraction=0))
    assert a.fingerprint() == a.fingerprint() != b.fingerprint()


def test_tokenizer_without_pad_is_rejected(tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    raw = AutoTokenizer.from_pretrained(build_tiny_gpt2(tmp_path / "t"))
    with pytest.raises(ValueError, match="pad"):
        build_dataset([msg(0, "alice", "a")], raw, FORMAT)


def test_collate_dtypes() -> None:
    batch = collate([[1, 2]], pad_id=0)
    assert batch["input_ids"].dtype == torch.long and batch["labels"].dtype == torch.long


def test_validation_is_capped_in_tokens_for_big_corpora():
    sessions = cut_sessions(
        [
            CorpusMessage(
                f"c{i}", "alice", "hi", datetime(2024, 1, 1, tzinfo=UTC) + timedelta(hours=i)
            )
            for i in range(100)
        ],
        timedelta(minutes=30),
    )
    counts = [100] * 100  # 10,000 tokens: 10% would be 1,000
    assert split_by_time(sessions, counts, 0.1) == 90
    assert split_by_time(sessions, counts, 0.1, max_tokens=300) == 97  # the latest 3 sessions
