"""Builders for generation tests: a tiny real checkpoint, a small corpus, a run, a fake model."""

from __future__ import annotations

import atexit
import functools
import hashlib
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from generations.sampling import GeneratedConversation, GeneratedMessage, Replay, SamplingParams
from ingest.models import Conversation, Identity, Message, Speaker
from joe_site.jobs import JobStatus
from trainer.ml.chat_format import ChatFormat
from trainer.models import TrainingRun

T0 = datetime(2024, 5, 1, 12, tzinfo=UTC)
FRIENDS = {"ann": "Ann", "bo": "Bo", "cy": "Cy"}
# Real messages: private, and long enough that a copy of one is unmistakable.
CORPUS = {
    "ann": [
        "meet me at the old station at eight and bring the blue tickets please",
        "pho tonight?",
    ],
    "bo": ["always", "my landlord finally fixed the boiler after three weeks of cold showers"],
    "cy": ["who is driving on saturday", "lol same"],
}


def build_checkpoint(folder: Path, speakers: dict[str, str] = FRIENDS) -> Path:
    """A randomly initialised tiny GPT-2 with the chat tokens, saved as a training checkpoint."""
    from trainer.ml.base_models import build_tiny_gpt2, load_for_training

    chat_format = ChatFormat(speakers=dict(speakers))
    base = build_tiny_gpt2(folder / "base", n_layer=1, n_embd=32, n_head=2, n_positions=256)
    model, tokenizer = load_for_training(base, chat_format, folder / "cache")
    checkpoint = folder / "checkpoint"
    model.save_pretrained(checkpoint)
    tokenizer.save_pretrained(checkpoint)
    chat_format.save(checkpoint)
    return checkpoint


@functools.cache
def tiny_checkpoint() -> Path:
    """One tiny checkpoint per test process, shared by every test module that needs a model."""
    folder = Path(tempfile.mkdtemp(prefix="joe-tiny-checkpoint-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return build_checkpoint(folder)


def checkpoint_copy(checkpoint: Path, folder: Path) -> Path:
    """A run's own checkpoint folder (files linked, not copied), so its leak index is its own."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in checkpoint.iterdir():
        if path.name != "leak_index.npz":
            (folder / path.name).symlink_to(path)
    return folder


def make_friends(corpus: dict[str, list[str]] = CORPUS) -> dict[str, Speaker]:
    """Speakers with real messages in one Slack channel."""
    conversation = Conversation.objects.create(source_kind="slack", external_id="C1", title="g")
    speakers = {}
    for i, (slug, texts) in enumerate(corpus.items()):
        speaker = Speaker.objects.create(display_name=FRIENDS.get(slug, slug.title()), slug=slug)
        identity = Identity.objects.create(
            source_kind="slack", external_id=f"U{i}", display_name=slug, speaker=speaker
        )
        for j, text in enumerate(texts):
            Message.objects.create(
                conversation=conversation, identity=identity, source_kind="slack",
                external_id=f"{slug}-{j}", sent_at=T0 + timedelta(minutes=i * 10 + j), text=text,
            )  # fmt: skip
        speakers[slug] = speaker
    return speakers


def make_run(checkpoint_dir: Path, speakers: dict[str, Speaker], *, active: bool = True):
    run = TrainingRun.objects.create(
        name="tiny",
        status=JobStatus.SUCCEEDED,
        checkpoint_dir=str(checkpoint_dir),
        speaker_ids=[s.pk for s in speakers.values()],
    )
    if active:
        run.make_active()
    return run


def fresh_take(n: int) -> str:
    """A made-up message unlike any other fresh take (random letters share few shingles)."""
    return "fresh take " + hashlib.sha256(str(n).encode()).hexdigest()[:16]


@dataclass
class FakeGenerator:
    """Stands in for generations.sampling.Generator: says what it is told to, in order.

    `messages` are texts handed out one per requested message (then "fresh take N");
    `conversations` are line lists handed out one per conversation.
    """

    messages: list[str] = field(default_factory=list)
    conversations: list[list[tuple[str, str]]] = field(default_factory=list)
    speakers: dict[str, str] = field(default_factory=lambda: dict(FRIENDS))
    after_chunk: object = None  # called after each generate_messages call
    calls: int = 0

    @property
    def chat_format(self) -> ChatFormat:
        return ChatFormat(speakers=self.speakers)

    def generate_messages(
        self, requests, params, *, seeds=None, banned_speakers=(), on_token=None,
        should_stop=None, **kwargs,
    ):  # fmt: skip
        out = []
        for i, (slug, opening) in enumerate(requests):
            assert slug not in banned_speakers
            self.calls += 1
            text = self.messages.pop(0) if self.messages else fresh_take(self.calls)
            words = text.split()
            for k in range(1, len(words) + 1) if on_token else ():
                if should_stop is not None and should_stop():
                    return out  # like the real one: an unfinished row is not returned
                on_token(i, " ".join(words[:k]))
            out.append(
                GeneratedMessage(
                    index=i,
                    speaker=slug,
                    opening=opening,
                    text=text,
                    completion=text[len(opening) :] if text.startswith(opening) else text,
                    seed=seeds[i],
                    params=params,
                    n_tokens=3,
                    stop_reason="eom",
                    replay=Replay(len(requests), 3, i),
                )  # fmt: skip
            )
        if callable(self.after_chunk):
            self.after_chunk()
        return out

    def generate_conversation(self, params: SamplingParams, *, speakers_allowed, seed, **kwargs):
        lines = self.conversations.pop(0) if self.conversations else [("ann", "hi"), ("bo", "yo")]
        assert {slug for slug, _ in lines} <= set(speakers_allowed)
        return GeneratedConversation(lines=lines, seed=seed, params=params, stop_reason="eoc")


def wait_for_gpu_worker(timeout: float = 20.0) -> None:
    """Block until the test worker answers on the `gpu` queue (a loaded machine can take a few
    seconds); the answer is then remembered, as it is for the web process."""
    import time

    from django.core.cache import cache

    from generations import live

    cache.clear()
    deadline = time.monotonic() + timeout
    while not live.gpu_worker_is_up():
        assert time.monotonic() < deadline, "the test worker never answered on the gpu queue"
